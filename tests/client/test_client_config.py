"""Construction, defaults, paging, the generic ``call`` and the operations a relay does not have."""

from __future__ import annotations

import httpx
import pytest
import respx

from relay_integrations import (
    DIALECT_NAMES,
    OutboundMessage,
    RelayClient,
    RelayError,
    RelayValidationError,
    UnsupportedOperationError,
    __version__,
)
from relay_integrations.dialects import get_dialect

KEY = "sk_cfg_0a9b"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8080/relaysms", "http://127.0.0.1:8080/relaysms"),
        ("http://127.0.0.1:8080/relaysms/", "http://127.0.0.1:8080/relaysms"),
        ("http://127.0.0.1:8080/relaysms/api/v1", "http://127.0.0.1:8080/relaysms"),
        ("http://127.0.0.1:8080/relaysms/api/v1/", "http://127.0.0.1:8080/relaysms"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/api/v1", "http://127.0.0.1:8080"),
    ],
)
def test_base_url_with_or_without_the_doc_base_path(given: str, expected: str) -> None:
    with RelayClient(given, "relaysms", KEY) as client:
        assert client.base_url == expected


def test_smsgate_base_path_is_stripped_and_requests_land_on_the_doc_path() -> None:
    with respx.mock(base_url="http://127.0.0.1:9") as mock, RelayClient(
        "http://127.0.0.1:9/api/3rdparty/v1/", "smsgate", KEY, login="u"
    ) as client:
        route = mock.get("/api/3rdparty/v1/messages/abc").respond(200, json={"id": "abc", "state": "Sent"})
        client.get_status("abc")
    assert route.called


@pytest.mark.parametrize("bad", ["127.0.0.1:8080/coop", "ftp://127.0.0.1/coop", "/coop", ""])
def test_bad_base_url_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        RelayClient(bad, "coop", KEY)


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown dialect"):
        RelayClient("http://127.0.0.1:9", "twilio", KEY)


def test_defaults_timeouts_pool_and_user_agent() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/coop") as mock, RelayClient(
        "http://127.0.0.1:9/coop", "coop", KEY
    ) as client:
        route = mock.get("/api/v1/messages/queue/stats").respond(200, json={})
        client.queue_stats()
        timeout = client._http.timeout
        assert (timeout.connect, timeout.read) == (5.0, 10.0)
        assert client.retry_policy.max_retries == 3 and client.retry_policy.backoff_factor == 0.5
        assert client.dialect is get_dialect("coop") and client.capabilities.batch == "bulk"
        # one pooled connection per host: a second request reuses it
        assert route.calls.last.request.headers["User-Agent"] == f"relay-integrations/{__version__}"
    assert client._http.is_closed
    with RelayClient("http://127.0.0.1:9/coop", "coop", KEY, timeout=2.0) as short:
        assert (short._http.timeout.connect, short._http.timeout.read) == (2.0, 2.0)


def test_transport_argument_is_used() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json={"pending": 1})

    with RelayClient("http://127.0.0.1:9/coop", "coop", KEY, transport=httpx.MockTransport(handler)) as client:
        assert client.queue_stats() == {"pending": 1}
    assert seen == ["GET /coop/api/v1/messages/queue/stats"]


def test_iter_messages_smsgate_advances_skip_until_a_short_page() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        skip, limit = int(request.url.params["skip"]), int(request.url.params["limit"])
        ids = [f"m{i}" for i in range(skip, min(skip + limit, 5))]
        return httpx.Response(200, json=[{"id": i, "state": "Sent"} for i in ids])

    with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock, RelayClient(
        "http://127.0.0.1:9/smsgate", "smsgate", KEY, login="u"
    ) as client:
        route = mock.get("/api/3rdparty/v1/messages").mock(side_effect=page)
        pages = list(client.iter_messages(limit=2))
    assert [[m.message_id for m in p.messages] for p in pages] == [["m0", "m1"], ["m2", "m3"], ["m4"]]
    assert [c.request.url.params["skip"] for c in route.calls] == ["0", "2", "4"]


def test_iter_messages_phonerelay_has_one_page_and_max_pages_stops() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/phonerelay") as mock, RelayClient(
        "http://127.0.0.1:9/phonerelay", "phonerelay", KEY
    ) as client:
        route = mock.get("/api/v1/messages").respond(
            200, json={"messages": [{"message_id": "a", "status": "sent"}, {"message_id": "b", "status": "sent"}]}
        )
        assert len(list(client.iter_messages(limit=50))) == 1
    assert route.call_count == 1
    with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock, RelayClient(
        "http://127.0.0.1:9/relaysms", "relaysms", KEY
    ) as client:
        route = mock.get("/api/v1/messages").respond(
            200, json={"data": {"messages": [{"id": "x", "status": "sent"}], "page": 1, "has_more": True}}
        )
        assert len(list(client.iter_messages(max_pages=3))) == 3
    assert [c.request.url.params.get("page") for c in route.calls] == [None, "2", "3"]


def test_call_reaches_any_documented_endpoint_and_unwraps() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock, RelayClient(
        "http://127.0.0.1:9/relaysms", "relaysms", KEY
    ) as client:
        route = mock.get("/api/v1/numbers/%2B1987654321/webhooks").respond(
            200, json={"data": {"phone": "+1987654321", "inbound_callback": None}, "timestamp": "t"}
        )
        answer = client.call("get_number_webhooks", path_params={"phone": "+1987654321"}, params={"x": None})
        assert answer == {"phone": "+1987654321", "inbound_callback": None}
        assert route.calls.last.request.url.query == b""
        with pytest.raises(UnsupportedOperationError, match="no endpoint 'teleport'"):
            client.call("teleport")


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_every_documented_endpoint_is_callable(dialect: str) -> None:
    """``call`` puts every endpoint of the dialect's table on the wire, path fields filled."""
    relay_dialect = get_dialect(dialect)
    with respx.mock(base_url="http://127.0.0.1:9/x") as mock, RelayClient(
        "http://127.0.0.1:9/x", dialect, KEY, login="u", max_retries=0
    ) as client:
        mock.route().respond(200, json={"ok": True})
        for endpoint in relay_dialect.endpoints.values():
            fields = {name: "v1" for name in _fields(endpoint.path)}
            client.call(endpoint.name, path_params=fields, json={} if endpoint.method in ("POST", "PUT") else None)
            request = mock.calls.last.request
            assert request.method == endpoint.method
            assert request.url.path == "/x" + endpoint.path.format(**fields)


def _fields(path: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(path) if f]


@pytest.mark.parametrize(
    ("dialect", "operation"),
    [
        ("phonerelay", lambda c: c.send_batch([OutboundMessage(to="+1", text="x")])),
        ("smsgate", lambda c: c.send_batch([OutboundMessage(to="+1", text="x")])),
        ("phonerelay", lambda c: c.get_batch("b1")),
        ("relaysms", lambda c: c.inbound_stats()),
        ("coop", lambda c: c.balance()),
        ("smsgate", lambda c: c.queue_stats()),
        ("coop", lambda c: c.register_webhook("https://example.com/hook", "message.delivered")),
        ("phonerelay", lambda c: c.register_webhook("https://example.com/hook", "status")),
        ("relaysms", lambda c: c.delete_webhook("w1")),
        ("coop", lambda c: c.get_token()),
    ],
)
def test_operations_a_relay_lacks_raise_before_any_request(dialect: str, operation: object) -> None:
    with respx.mock(base_url="http://127.0.0.1:9/x", assert_all_called=False) as mock, RelayClient(
        "http://127.0.0.1:9/x", dialect, KEY, login="u"
    ) as client:
        catch_all = mock.route().respond(200, json={})
        with pytest.raises(UnsupportedOperationError):
            operation(client)  # type: ignore[operator]
    assert not catch_all.called


def test_use_jwt_needs_a_token_endpoint() -> None:
    with pytest.raises(UnsupportedOperationError, match="token endpoint"):
        RelayClient("http://127.0.0.1:9/coop", "coop", KEY, use_jwt=True)


def test_batch_limits_are_checked_before_sending() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/relaysms", assert_all_called=False) as mock, RelayClient(
        "http://127.0.0.1:9/relaysms", "relaysms", KEY, sender="+1987654321"
    ) as client:
        route = mock.post("/api/v1/sms/batch").respond(202, json={})
        with pytest.raises(RelayValidationError, match="at most 1000") as too_many:
            client.send_batch([OutboundMessage(to="+1234567890", text="x")] * 1001)
        with pytest.raises(RelayValidationError, match="at least one"):
            client.send_batch([])
    assert too_many.value.field == "messages" and not route.called


def test_invalid_message_names_the_field_before_sending() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/phonerelay", assert_all_called=False) as mock, RelayClient(
        "http://127.0.0.1:9/phonerelay", "phonerelay", KEY
    ) as client:
        route = mock.post("/api/v1/messages").respond(202, json={})
        with pytest.raises(RelayValidationError) as caught:
            client.send(OutboundMessage(to="+15551234567", text="hello"))  # no phone_id anywhere
    assert caught.value.field == "phone_id" and not route.called


def test_unreadable_answers_become_relay_errors() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/coop") as mock, RelayClient(
        "http://127.0.0.1:9/coop", "coop", KEY
    ) as client:
        mock.post("/api/v1/messages").respond(201, text="<html>proxy page</html>")
        with pytest.raises(RelayError, match="send answer has no id"):
            client.send(OutboundMessage(to="+15551234567", text="x"))


def test_health_on_relays_without_a_health_endpoint_is_an_authenticated_list() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock, RelayClient(
        "http://127.0.0.1:9/smsgate", "smsgate", KEY, login="u"
    ) as client:
        route = mock.get("/api/3rdparty/v1/messages").respond(200, json=[])
        health = client.health()
    assert health["ok"] is True and health["checked"] == "GET /api/3rdparty/v1/messages"
    assert route.calls.last.request.url.params["limit"] == "1"
    assert route.calls.last.request.headers["Authorization"].startswith("Basic ")


def test_expired_jwt_is_refreshed_once() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock, RelayClient(
        "http://127.0.0.1:9/smsgate", "smsgate", KEY, login="u", use_jwt=True
    ) as client:
        token = mock.post("/api/3rdparty/v1/auth/token").mock(side_effect=[
            httpx.Response(201, json={"access_token": "jwt-1"}), httpx.Response(201, json={"access_token": "jwt-2"}),
        ])

        def answer(request: httpx.Request) -> httpx.Response:
            if request.headers["Authorization"] == "Bearer jwt-1":
                return httpx.Response(401, json={"message": "token expired"})
            return httpx.Response(200, json={"id": "m1", "state": "Sent"})

        status = mock.get("/api/3rdparty/v1/messages/m1").mock(side_effect=answer)
        assert client.get_status("m1").message_id == "m1"
    assert token.call_count == 2
    assert [c.request.headers["Authorization"] for c in status.calls] == ["Bearer jwt-1", "Bearer jwt-2"]


def test_wrong_basic_credentials_are_not_retried_as_jwt_refresh() -> None:
    from relay_integrations import RelayAuthError

    with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock, RelayClient(
        "http://127.0.0.1:9/smsgate", "smsgate", KEY, login="u", use_jwt=True
    ) as client:
        token = mock.post("/api/3rdparty/v1/auth/token").respond(401, json={"message": "bad credentials"})
        with pytest.raises(RelayAuthError, match="bad credentials"):
            client.get_status("m1")
    assert token.call_count == 1

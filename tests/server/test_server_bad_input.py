"""Bad input gets a 4xx in the dialect's error shape naming the field; never a 500. Auth failures likewise."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relay_server_helpers import auth_for

from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

SEND_PATHS = {
    "phonerelay": "/api/v1/messages",
    "relaysms": "/api/v1/sms/send",
    "coop": "/api/v1/messages",
    "smsgate": "/api/3rdparty/v1/messages",
}


def error_text(dialect: str, body: Any) -> str:
    """The error message, asserting the dialect's documented error shape on the way."""
    if dialect == "phonerelay":
        assert body["success"] is False and isinstance(body["error"], str)
        return str(body["error"])
    if dialect == "relaysms":
        assert set(body) == {"error", "timestamp", "unix_timestamp"}
        assert {"code", "message"} <= set(body["error"])
        return str(body["error"]["message"])
    if dialect == "coop":
        assert {"code", "message"} <= set(body["error"])
        return str(body["error"]["message"])
    assert isinstance(body["message"], str)
    return str(body["message"])


def post(relay: ReferenceRelayProcess, dialect: str, path: str, content: bytes | str | None = None,
         json_body: Any = None, **kw: Any) -> httpx.Response:
    with httpx.Client(base_url=relay.url(dialect), timeout=10, **auth_for(relay, dialect)) as c:
        if json_body is not None:
            return c.post(path, json=json_body, **kw)
        return c.post(path, content=content, headers={"Content-Type": "application/json"}, **kw)


BAD_BODIES: list[tuple[str, str, Any, str]] = [
    # dialect, path, body, field the message must name
    ("phonerelay", "/api/v1/messages", {"channel": "sms", "to": "+15551234567", "text": "x"}, "phone_id"),
    ("phonerelay", "/api/v1/messages", {"phone_id": "p", "channel": "fax", "to": "+15551234567", "text": "x"},
     "channel"),
    ("phonerelay", "/api/v1/messages", {"phone_id": "p", "channel": "sms", "to": "555-1234", "text": "x"}, "to"),
    ("phonerelay", "/api/v1/messages", {"phone_id": "p", "channel": "sms", "text": "x"}, "to"),
    ("phonerelay", "/api/v1/messages", {"phone_id": "p", "channel": "sms", "to": "+15551234567", "text": 5}, "text"),
    ("phonerelay", "/api/v1/messages", {"phone_id": "p", "channel": "email", "to": "me@example.com", "text": "x"},
     "subject"),
    ("phonerelay", "/api/v1/messages", {"phone_id": "p", "channel": "email", "to": "not-an-email", "subject": "s",
                                        "text": "x"}, "to"),
    ("phonerelay", "/api/v1/messages", {"phone_id": "p", "channel": "tg_bot", "to": "123", "text": "x"}, "bot_token"),
    ("phonerelay", "/api/v1/webchat/inbound/query", {"range": "forever"}, "range"),
    ("phonerelay", "/api/v1/webchat/inbound/query", {"sort": "random"}, "sort"),
    ("phonerelay", "/api/v1/webchat/inbound/query", {"limit": 0}, "limit"),
    ("phonerelay", "/api/v1/webchat/callbacks/inbound", {"callback_url": "ftp://x"}, "callback_url"),
    ("relaysms", "/api/v1/sms/send", {"from": "+1987654321", "body": "x"}, "to"),
    ("relaysms", "/api/v1/sms/send", {"to": "+1234567890", "from": "+1987654321", "body": "x" * 1601}, "body"),
    ("relaysms", "/api/v1/sms/send", {"to": "+1234567890", "from": "+1987654321", "body": ""}, "body"),
    ("relaysms", "/api/v1/sms/send", {"to": "+1234567890", "from": "+1555", "body": "x"}, "from"),
    ("relaysms", "/api/v1/sms/send", {"to": "+1234567890", "from": "+1987654321", "body": "x", "metadata": [1]},
     "metadata"),
    ("relaysms", "/api/v1/sms/send", {"to": "+1234567890", "from": "+1987654321", "body": "x",
                                      "status_callback": "not a url"}, "status_callback"),
    ("relaysms", "/api/v1/sms/batch", {"from": "+1987654321", "messages": []}, "messages"),
    ("relaysms", "/api/v1/sms/batch", {"from": "+1987654321",
                                       "messages": [{"to": "+1234567890", "body": "x"}] * 1001}, "messages"),
    ("relaysms", "/api/v1/sms/batch", {"messages": [{"to": "+1234567890", "body": "x"}]}, "from"),
    ("coop", "/api/v1/messages", {"body": "x"}, "to"),
    ("coop", "/api/v1/messages", {"to": "+15551234567"}, "body"),
    ("coop", "/api/v1/messages", {"to": "+15551234567", "body": "x", "priority": 101}, "priority"),
    ("coop", "/api/v1/messages", {"to": "+15551234567", "body": "x", "attachments": ["https://a/b"] * 11},
     "attachments"),
    ("coop", "/api/v1/messages", {"to": "someone", "body": "x"}, "to"),
    ("coop", "/api/v1/messages/bulk", {"messages": [{"to": "+15551234567", "body": "ok"}, {"to": "+1"}]},
     "messages[1].to"),
    ("coop", "/api/v1/messages/bulk", {"messages": "all"}, "messages"),
    ("smsgate", "/api/3rdparty/v1/messages", {"textMessage": {"text": "x"}}, "phoneNumbers"),
    ("smsgate", "/api/3rdparty/v1/messages", {"phoneNumbers": [], "textMessage": {"text": "x"}}, "phoneNumbers"),
    ("smsgate", "/api/3rdparty/v1/messages", {"phoneNumbers": ["+12025550100"] * 101, "textMessage": {"text": "x"}},
     "phoneNumbers"),
    ("smsgate", "/api/3rdparty/v1/messages", {"phoneNumbers": ["+12025550100", "12"], "textMessage": {"text": "x"}},
     "phoneNumbers[1]"),
    ("smsgate", "/api/3rdparty/v1/messages", {"phoneNumbers": ["+12025550100"]}, "textMessage.text"),
    ("smsgate", "/api/3rdparty/v1/messages", {"phoneNumbers": ["+12025550100"], "textMessage": {"text": "x"},
                                              "simNumber": 9}, "simNumber"),
]


@pytest.mark.parametrize(("dialect", "path", "body", "field"), BAD_BODIES,
                         ids=[f"{d}-{f}-{i}" for i, (d, _, _, f) in enumerate(BAD_BODIES)])
def test_bad_field_is_named(relay: ReferenceRelayProcess, dialect: str, path: str, body: Any, field: str) -> None:
    r = post(relay, dialect, path, json_body=body)
    assert r.status_code == 400, r.text
    message = error_text(dialect, r.json())
    assert message.startswith(field), message


@pytest.mark.parametrize("dialect", list(SEND_PATHS))
@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"null", b'"text"', b"", b"\xff\xfe",
                                     b'{"to": NaN, "text": Infinity, "body": -Infinity, "metadata": {"a": NaN}}'])
def test_malformed_bodies_are_400(relay: ReferenceRelayProcess, dialect: str, content: bytes) -> None:
    r = post(relay, dialect, SEND_PATHS[dialect], content=content)
    assert r.status_code == 400, r.text
    assert error_text(dialect, r.json())


@pytest.mark.parametrize("dialect", list(SEND_PATHS))
def test_oversized_body_is_413(relay: ReferenceRelayProcess, dialect: str) -> None:
    big = json.dumps({"text": "x" * (1024 * 1024 + 10)}).encode()
    r = post(relay, dialect, SEND_PATHS[dialect], content=big)
    assert r.status_code == 413
    assert "body" in error_text(dialect, r.json())


def test_oversized_streamed_body_is_413(relay: ReferenceRelayProcess) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    with httpx.Client(base_url=relay.url("coop"), **auth_for(relay, "coop")) as c:
        r = c.post("/api/v1/messages", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "body" in error_text("coop", r.json())


@pytest.mark.parametrize("dialect", list(SEND_PATHS))
def test_unknown_path_is_404_in_dialect_shape(relay: ReferenceRelayProcess, dialect: str) -> None:
    with httpx.Client(base_url=relay.url(dialect), **auth_for(relay, dialect)) as c:
        r = c.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert error_text(dialect, r.json())


def test_non_finite_numbers_are_never_stored(relay: ReferenceRelayProcess) -> None:
    r = post(relay, "relaysms", "/api/v1/sms/send", content=b'{"to": "+1234567890", "from": "+1987654321", '
             b'"body": "x", "metadata": {"a": NaN}}')
    assert r.status_code == 400 and error_text("relaysms", r.json()).startswith("metadata")
    with httpx.Client(base_url=relay.url("relaysms")) as anonymous:
        anonymous.post("/api/v1/status/bin", content=b'{"a": NaN}', headers={"Content-Type": "application/json"})
    with httpx.Client(base_url=relay.url("relaysms"), **auth_for(relay, "relaysms")) as c:
        assert c.get("/api/v1/status/bin").status_code == 200


def test_extreme_dates_are_not_500(relay: ReferenceRelayProcess) -> None:
    # A naive year-1 datetime has no Unix time in local time; it is taken as UTC (in the past: send now).
    for field, when in (("scheduleAt", "0001-01-01T00:00:00"), ("validUntil", "9999-12-31T23:59:59-12:00")):
        r = post(relay, "smsgate", "/api/3rdparty/v1/messages", json_body={
            "phoneNumbers": ["+12025550100"], "textMessage": {"text": "x"}, field: when})
        assert r.status_code == 200, r.text


def test_bad_query_parameters(relay: ReferenceRelayProcess) -> None:
    with httpx.Client(base_url=relay.url("relaysms"), **auth_for(relay, "relaysms")) as c:
        r = c.get("/api/v1/messages", params={"limit": "lots"})
        assert r.status_code == 400 and error_text("relaysms", r.json()).startswith("limit")
        r = c.get("/api/v1/messages", params={"limit": 101})
        assert r.status_code == 400 and error_text("relaysms", r.json()).startswith("limit")
        r = c.get("/api/v1/transactions", params={"page": 10**30})
        assert r.status_code == 400 and error_text("relaysms", r.json()).startswith("page")
        r = c.get("/api/v1/transactions", params={"page": 10**12})
        assert r.status_code == 400 and error_text("relaysms", r.json()).startswith("page")
    with httpx.Client(base_url=relay.url("phonerelay"), **auth_for(relay, "phonerelay")) as c:
        r = c.get("/api/v1/messages", params={"offset": 2**63})
        assert r.status_code == 400 and error_text("phonerelay", r.json()).startswith("offset")
    with httpx.Client(base_url=relay.url("smsgate"), **auth_for(relay, "smsgate")) as c:
        r = c.get("/api/3rdparty/v1/messages", params={"skip": -1})
        assert r.status_code == 400 and error_text("smsgate", r.json()).startswith("skip")


# --- fuzz: any JSON at every send endpoint is answered, never with a 5xx ---------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries({}, optional={
    "phone_id": json_values, "channel": st.sampled_from(["sms", "wa", "tg", "email", "tg_bot", "x"]) | json_values,
    "to": st.sampled_from(["+15551234567", "@name", "a@b.co", "123"]) | json_values, "text": json_values,
    "from": st.just("+1987654321") | json_values, "body": json_values, "priority": json_values,
    "attachments": json_values, "phoneNumbers": st.lists(st.text(max_size=16), max_size=3) | json_values,
    "textMessage": st.fixed_dictionaries({"text": json_values}) | json_values, "idempotency_key": json_values,
    "metadata": json_values, "messages": json_values,
})


@pytest.mark.parametrize("dialect", list(SEND_PATHS))
def test_fuzzed_sends_never_500(relay: ReferenceRelayProcess, dialect: str) -> None:
    client = httpx.Client(base_url=relay.url(dialect), timeout=10, **auth_for(relay, dialect))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=near_valid | json_values)
    def check(body: Any) -> None:
        r = client.post(SEND_PATHS[dialect], json=body)
        assert r.status_code < 500, (body, r.text)
        if r.status_code >= 400:
            error_text(dialect, r.json())

    try:
        check()
    finally:
        client.close()


# --- auth -------------------------------------------------------------------------------------------

AUTH_PROBES = [
    ("phonerelay", "GET", "/api/v1/messages"),
    ("phonerelay", "POST", "/api/v1/webchat/inbound/query"),
    ("relaysms", "GET", "/api/v1/balance"),
    ("relaysms", "POST", "/api/v1/sms/send"),
    ("coop", "GET", "/api/v1/messages/queue/stats"),
    ("coop", "POST", "/api/v1/messages"),
    ("smsgate", "GET", "/api/3rdparty/v1/messages"),
    ("smsgate", "POST", "/api/3rdparty/v1/messages"),
]
WRONG_CREDENTIALS = [
    {},
    {"headers": {"Authorization": "Bearer wrong-key"}},
    {"headers": {"X-API-Key": "wrong-key"}},
    {"auth": ("relay", "wrong-key")},
    {"headers": {"Authorization": "Basic !!!notbase64"}},
]


@pytest.mark.parametrize(("dialect", "method", "path"), AUTH_PROBES)
@pytest.mark.parametrize("credentials", range(len(WRONG_CREDENTIALS)))
def test_wrong_credentials_get_401_in_dialect_shape(relay: ReferenceRelayProcess, dialect: str, method: str,
                                                    path: str, credentials: int) -> None:
    with httpx.Client(base_url=relay.url(dialect), **WRONG_CREDENTIALS[credentials]) as c:  # type: ignore[arg-type]
        r = c.request(method, path, json={})
    assert r.status_code == 401, r.text
    assert error_text(dialect, r.json())
    assert relay.api_key not in r.text and "wrong-key" not in r.text


def test_smsgate_wrong_login_right_key_is_401(relay: ReferenceRelayProcess) -> None:
    with httpx.Client(base_url=relay.url("smsgate"), auth=("admin", relay.api_key)) as c:
        assert c.get("/api/3rdparty/v1/messages").status_code == 401


def test_key_of_one_scheme_does_not_open_another(relay: ReferenceRelayProcess) -> None:
    # phonerelay and coop take Bearer only; an X-API-Key header is not enough.
    with httpx.Client(base_url=relay.url("coop"), headers={"X-API-Key": relay.api_key}) as c:
        assert c.get("/api/v1/messages/queue/stats").status_code == 401
    # relaysms accepts Bearer as documented.
    with httpx.Client(base_url=relay.url("relaysms"), headers={"Authorization": f"Bearer {relay.api_key}"}) as c:
        assert c.get("/api/v1/balance").status_code == 200


def test_sim_endpoints_need_the_key(relay: ReferenceRelayProcess) -> None:
    assert httpx.get(relay.base_url + "/_sim/messages").status_code == 401
    assert httpx.post(relay.base_url + "/_sim/inbound", json={}).status_code == 401
    assert httpx.get(relay.base_url + "/health").status_code == 200

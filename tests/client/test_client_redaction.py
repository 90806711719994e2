"""Credentials never show: not in reprs, exception texts, tracebacks or log output (any logger, DEBUG)."""

from __future__ import annotations

import base64
import logging
import traceback

import httpx
import pytest
import respx
from client_socket_server import closed_port

from relay_integrations import (
    OutboundMessage,
    RelayAuthError,
    RelayClient,
    RelayError,
    RelayTimeoutError,
)

SECRET = "sk_live_SECRET_c0ffee_4242"
PASSWORD = "pw-SECRET-hunter2"
JWT = "eyJSECRET.jwt.token"


def forbidden() -> list[str]:
    basic = base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    return [SECRET, PASSWORD, JWT, basic]


def assert_clean(text: str) -> None:
    for value in forbidden():
        assert value not in text, f"{value!r} leaked into: {text[:300]}"


def full_text(error: BaseException) -> str:
    """What a user could ever see of an error: str, repr, and the whole printed traceback chain."""
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error))])


@pytest.fixture(autouse=True)
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    return caplog


def test_repr_and_str_of_clients_hide_the_key() -> None:
    from relay_integrations import AsyncRelayClient

    for client in (
        RelayClient("http://127.0.0.1:9/relaysms", "relaysms", SECRET),
        RelayClient("http://127.0.0.1:9/smsgate", "smsgate", PASSWORD, login="user"),
        AsyncRelayClient("http://127.0.0.1:9/coop", "coop", SECRET),
    ):
        assert_clean(repr(client))
        assert_clean(str(client))
        assert_clean(repr(vars(client)))


def test_credentials_in_base_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="must not contain credentials") as caught:
        RelayClient(f"http://user:{PASSWORD}@127.0.0.1:9/smsgate", "smsgate", PASSWORD, login="user")
    assert_clean(str(caught.value))


def test_error_answers_that_echo_the_key_are_scrubbed(debug_logs: pytest.LogCaptureFixture) -> None:
    with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock, RelayClient(
        "http://127.0.0.1:9/relaysms", "relaysms", SECRET, max_retries=0
    ) as client:
        mock.get("/api/v1/balance").respond(
            401, json={"error": {"code": "UNAUTHORIZED", "message": f"Invalid API key {SECRET}"}}
        )
        with pytest.raises(RelayAuthError) as caught:
            client.balance()
    assert caught.value.status_code == 401 and caught.value.code == "UNAUTHORIZED"
    assert "Invalid API key ***" in str(caught.value)
    assert_clean(full_text(caught.value))
    assert_clean(debug_logs.text)


def test_smsgate_basic_auth_and_jwt_never_logged(debug_logs: pytest.LogCaptureFixture) -> None:
    with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock, RelayClient(
        "http://127.0.0.1:9/smsgate", "smsgate", PASSWORD, login="user", use_jwt=True, backoff_factor=0
    ) as client:
        mock.post("/api/3rdparty/v1/auth/token").respond(201, json={"access_token": JWT})
        send = mock.post("/api/3rdparty/v1/messages").mock(side_effect=[
            httpx.Response(503, json={"message": "queue full"}), httpx.Response(202, json={"id": "m1"}),
        ])
        client.send(OutboundMessage(to="+12025550100", text="hi"))
        token = client.get_token()
    assert send.calls.last.request.headers["Authorization"] == f"Bearer {JWT}"
    assert token.get_secret_value() == JWT and JWT not in repr(token)
    assert "503" in debug_logs.text  # the retry was logged...
    assert_clean(debug_logs.text)  # ...without any credential


def test_transport_errors_are_clean(debug_logs: pytest.LogCaptureFixture) -> None:
    with RelayClient(
        f"http://127.0.0.1:{closed_port()}/phonerelay", "phonerelay", SECRET, phone_id="p", max_retries=1,
        backoff_factor=0,
    ) as client:
        with pytest.raises(RelayError) as caught:
            client.send(OutboundMessage(to="+15551234567", text="hi", bot_token=SECRET))
    assert_clean(full_text(caught.value))
    assert_clean(debug_logs.text)


def test_timeouts_and_parse_failures_are_clean(debug_logs: pytest.LogCaptureFixture) -> None:
    with respx.mock(base_url="http://127.0.0.1:9/coop") as mock, RelayClient(
        "http://127.0.0.1:9/coop", "coop", SECRET, max_retries=0
    ) as client:
        mock.post("/api/v1/messages").mock(side_effect=httpx.ReadTimeout("timed out"))
        mock.get("/api/v1/messages/m1/status").respond(200, json={"id": "m1", "status": "teleported"})
        with pytest.raises(RelayTimeoutError) as timeout:
            client.send(OutboundMessage(to="+15551234567", text="x"))
        with pytest.raises(RelayError) as unreadable:
            client.get_status("m1")
    assert "unexpected answer to GET /api/v1/messages/m1/status" in str(unreadable.value)
    assert "teleported" in str(unreadable.value)
    for error in (timeout.value, unreadable.value):
        assert_clean(full_text(error))
    assert_clean(debug_logs.text)


def test_regenerated_key_is_secret_and_redacted_afterwards(debug_logs: pytest.LogCaptureFixture) -> None:
    new_key = "sk_new_SECRET_ffff"
    with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock, RelayClient(
        "http://127.0.0.1:9/relaysms", "relaysms", SECRET, max_retries=0
    ) as client:
        mock.post("/api/v1/api-key/regenerate").respond(200, json={"data": {"api_key": new_key}})
        mock.get("/api/v1/balance").respond(403, json={"error": {"code": "FORBIDDEN", "message": f"key {new_key}"}})
        answer = client.regenerate_api_key()
        with pytest.raises(RelayAuthError) as caught:
            client.balance()
    assert new_key not in repr(answer) and new_key not in repr(client)
    assert new_key not in full_text(caught.value)
    assert new_key not in debug_logs.text

"""Retries: backoff and Retry-After, and above all that a retry never sends a message twice."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx
from client_socket_server import closed_port, scripted_server
from hypothesis import given
from hypothesis import strategies as st

from relay_integrations import (
    MessageState,
    OutboundMessage,
    RelayClient,
    RelayConnectionError,
    RelayRateLimitError,
    RelayServerError,
    RelayTimeoutError,
    RelayUnavailableError,
)
from relay_integrations._retry import NEVER_SENT_ERRORS, NOT_TAKEN_STATUSES, RetryPolicy, parse_retry_after

KEY = "sk_retry_31f0"
PHONERELAY_OK = {"success": True, "message_id": "msg_1", "status": "queued"}
RELAYSMS_OK = {"data": {"id": "ref-1", "client_reference_id": "ref-1", "status": "accepted"}}


def client_for(dialect: str, base_url: str, sleeps: list[float], **kwargs: Any) -> RelayClient:
    """A client whose waits are recorded instead of slept (no test waits on the clock)."""
    kwargs.setdefault("backoff_factor", 0.0)
    kwargs.setdefault("phone_id", "phone_main")
    kwargs.setdefault("sender", "+1987654321")
    if dialect == "smsgate":
        kwargs.setdefault("login", "user")
    client = RelayClient(base_url, dialect, KEY, **kwargs)
    client._sleep = sleeps.append
    return client


def bodies(route: respx.Route) -> list[Any]:
    return [json.loads(call.request.content) for call in route.calls]


# --- the policy on its own --------------------------------------------------------------------

def test_parse_retry_after_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_backoff_is_full_jitter_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_retries=10, backoff_factor=0.5, max_backoff=3.0)
    random.seed(7)
    for attempt in range(1, 8):
        ceiling = min(3.0, 0.5 * 2 ** (attempt - 1))
        draws = [policy.backoff(attempt) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # the whole range is used, not a fixed wait


@pytest.mark.parametrize(
    ("error", "retry_safe", "retried"),
    [
        (httpx.ConnectError("refused"), False, True),
        (httpx.ConnectTimeout("slow"), False, True),
        (httpx.PoolTimeout("busy"), False, True),
        (httpx.ReadTimeout("slow"), False, False),
        (httpx.ReadError("reset"), False, False),
        (httpx.RemoteProtocolError("closed"), False, False),
        (httpx.ReadTimeout("slow"), True, True),
        (httpx.RemoteProtocolError("closed"), True, True),
        (httpx.UnsupportedProtocol("ftp"), True, False),
    ],
)
def test_policy_after_transport_errors(error: httpx.TransportError, retry_safe: bool, retried: bool) -> None:
    policy = RetryPolicy(max_retries=2)
    assert (policy.delay_after_error(1, error, retry_safe=retry_safe) is not None) is retried
    assert policy.delay_after_error(3, error, retry_safe=True) is None  # retries used up


@pytest.mark.parametrize(
    ("status", "retry_safe", "retried"),
    [(429, False, True), (503, False, True), (502, False, False), (504, False, False),
     (502, True, True), (504, True, True), (500, True, False), (400, True, False), (409, True, False)],
)
def test_policy_after_statuses(status: int, retry_safe: bool, retried: bool) -> None:
    policy = RetryPolicy(max_retries=2)
    assert (policy.delay_after_status(1, status, None, retry_safe=retry_safe) is not None) is retried


def test_policy_honours_and_caps_retry_after() -> None:
    policy = RetryPolicy(max_retries=3, backoff_factor=0.5, max_retry_after=60)
    assert all(policy.delay_after_status(1, 429, 7.0, retry_safe=False) >= 7.0 for _ in range(50))  # type: ignore[operator]
    assert policy.delay_after_status(1, 429, 61.0, retry_safe=True) is None


# --- the client against answers that say "not now" --------------------------------------------

def test_503_with_retry_after_is_waited_for_then_succeeds() -> None:
    sleeps: list[float] = []
    with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock, client_for(
        "relaysms", "http://127.0.0.1:9/relaysms", sleeps
    ) as client:
        route = mock.post("/api/v1/sms/send").mock(side_effect=[
            httpx.Response(503, headers={"Retry-After": "2"}, json={"error": {"code": "QUEUE_FAILED"}}),
            httpx.Response(429, headers={"Retry-After": "0"}),
            httpx.Response(202, json=RELAYSMS_OK),
        ])
        receipt = client.send(OutboundMessage(to="+1234567890", text="hi"))
    assert receipt.message_id == "ref-1"
    assert route.call_count == 3
    assert sleeps == [2.0, 0.0]


def test_retry_after_http_date_is_honoured() -> None:
    sleeps: list[float] = []
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    with respx.mock(base_url="http://127.0.0.1:9/coop") as mock, client_for(
        "coop", "http://127.0.0.1:9/coop", sleeps
    ) as client:
        mock.get("/api/v1/messages/queue/stats").mock(side_effect=[
            httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)}),
            httpx.Response(200, json={"pending": 0}),
        ])
        assert client.queue_stats() == {"pending": 0}
    assert len(sleeps) == 1 and 25 < sleeps[0] <= 30


def test_retries_run_out_with_the_relays_error() -> None:
    sleeps: list[float] = []
    with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock, client_for(
        "smsgate", "http://127.0.0.1:9/smsgate", sleeps, max_retries=2, backoff_factor=0.01
    ) as client:
        route = mock.get("/api/3rdparty/v1/messages/m1").respond(503, json={"message": "device queue full"})
        with pytest.raises(RelayUnavailableError) as caught:
            client.get_status("m1")
    assert route.call_count == 3 and len(sleeps) == 2
    assert all(0 <= s <= 0.02 for s in sleeps)
    assert caught.value.status_code == 503 and "device queue full" in str(caught.value)


def test_too_long_retry_after_is_raised_not_slept() -> None:
    sleeps: list[float] = []
    with respx.mock(base_url="http://127.0.0.1:9/coop") as mock, client_for(
        "coop", "http://127.0.0.1:9/coop", sleeps
    ) as client:
        route = mock.get("/api/v1/messages/queue/stats").respond(429, headers={"Retry-After": "3600"})
        with pytest.raises(RelayRateLimitError) as caught:
            client.queue_stats()
    assert route.call_count == 1 and sleeps == []
    assert caught.value.retry_after == 3600


def test_500_and_4xx_are_not_retried() -> None:
    sleeps: list[float] = []
    with respx.mock(base_url="http://127.0.0.1:9/coop") as mock, client_for(
        "coop", "http://127.0.0.1:9/coop", sleeps
    ) as client:
        route = mock.get("/api/v1/messages/m1/status").respond(500, json={"error": "boom"})
        with pytest.raises(RelayServerError):
            client.get_status("m1")
    assert route.call_count == 1 and sleeps == []


def test_read_timeout_on_a_read_is_retried() -> None:
    sleeps: list[float] = []
    with respx.mock(base_url="http://127.0.0.1:9/coop") as mock, client_for(
        "coop", "http://127.0.0.1:9/coop", sleeps
    ) as client:
        route = mock.get("/api/v1/messages/m1/status").mock(side_effect=[
            httpx.ReadTimeout("slow"), httpx.Response(200, json={"id": "m1", "status": "sent"}),
        ])
        assert client.get_status("m1").state is MessageState.SENT
    assert route.call_count == 2


# --- idempotency keys: the same key on every attempt ------------------------------------------

def test_generated_key_is_repeated_on_every_retry_after_connection_drops() -> None:
    sleeps: list[float] = []
    with respx.mock(base_url="http://127.0.0.1:9/phonerelay") as mock, client_for(
        "phonerelay", "http://127.0.0.1:9/phonerelay", sleeps
    ) as client:
        route = mock.post("/api/v1/messages").mock(side_effect=[
            httpx.ReadError("connection reset by peer"),
            httpx.RemoteProtocolError("server disconnected without sending a response"),
            httpx.Response(200, json={**PHONERELAY_OK, "duplicate": True}),
        ])
        receipt = client.send(OutboundMessage(to="+15551234567", text="hello"))
    keys = [b["idempotency_key"] for b in bodies(route)]
    assert len(keys) == 3 and len(set(keys)) == 1
    assert uuid.UUID(keys[0]) and receipt.idempotency_key == keys[0]
    assert receipt.duplicate is True


def test_callers_key_is_kept_and_a_new_send_gets_a_new_key() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/phonerelay") as mock, client_for(
        "phonerelay", "http://127.0.0.1:9/phonerelay", []
    ) as client:
        route = mock.post("/api/v1/messages").respond(202, json=PHONERELAY_OK)
        client.send(OutboundMessage(to="+15551234567", text="a", idempotency_key="campaign-7-row-3"))
        client.send(OutboundMessage(to="+15551234567", text="b"))
        client.send(OutboundMessage(to="+15551234567", text="c"))
    keys = [b["idempotency_key"] for b in bodies(route)]
    assert keys[0] == "campaign-7-row-3" and len(set(keys)) == 3


def test_same_key_over_a_real_dropped_connection() -> None:
    """A real socket: the relay reads the send, hangs up without answering, then answers the repeat."""
    ok = ("respond", 202, PHONERELAY_OK, {})
    with scripted_server([("drop",), ("drop",), ok]) as server, client_for(
        "phonerelay", server.url + "/phonerelay", []
    ) as client:
        receipt = client.send(OutboundMessage(to="+15551234567", text="hello"))
    keys = [b["idempotency_key"] for b in server.bodies()]
    assert len(keys) == 3 and len(set(keys)) == 1 and receipt.message_id == "msg_1"


def test_smsgate_409_on_a_retry_returns_the_landed_message() -> None:
    """The first attempt landed but its answer was lost; the repeat gets 409 for our own id."""
    sleeps: list[float] = []
    with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock, client_for(
        "smsgate", "http://127.0.0.1:9/smsgate", sleeps
    ) as client:
        send = mock.post("/api/3rdparty/v1/messages").mock(side_effect=[
            httpx.ReadTimeout("no answer"),
            httpx.Response(409, json={"message": "message with this id already exists"}),
        ])
        fetch = mock.get(path__regex=r"/api/3rdparty/v1/messages/[^/]+$").mock(
            side_effect=lambda request: httpx.Response(200, json={
                "id": request.url.path.rsplit("/", 1)[-1], "state": "Processed",
                "recipients": [{"phoneNumber": "+12025550100", "state": "Processed"}],
            })
        )
        receipt = client.send(OutboundMessage(to="+12025550100", text="hi"))
    ids = [b["id"] for b in bodies(send)]
    assert len(ids) == 2 and ids[0] == ids[1]
    assert fetch.calls.last.request.url.path.endswith(ids[0])
    assert (receipt.message_id, receipt.duplicate, receipt.state) == (ids[0], True, MessageState.SENDING)


def test_smsgate_409_for_a_missing_message_stays_a_conflict() -> None:
    from relay_integrations import RelayConflictError

    with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock, client_for(
        "smsgate", "http://127.0.0.1:9/smsgate", []
    ) as client:
        mock.post("/api/3rdparty/v1/messages").respond(409, json={"message": "exists"})
        mock.get(path__regex=r"/api/3rdparty/v1/messages/[^/]+$").respond(404, json={"message": "nope"})
        with pytest.raises(RelayConflictError):
            client.send(OutboundMessage(to="+12025550100", text="hi", idempotency_key="k-1"))


# --- sends without a key: retried only when they surely never arrived --------------------------

@pytest.mark.parametrize("dialect", ["relaysms", "coop"])
def test_send_without_key_is_not_retried_after_a_read_timeout(dialect: str) -> None:
    sleeps: list[float] = []
    path = "/api/v1/sms/send" if dialect == "relaysms" else "/api/v1/messages"
    with respx.mock(base_url=f"http://127.0.0.1:9/{dialect}") as mock, client_for(
        dialect, f"http://127.0.0.1:9/{dialect}", sleeps
    ) as client:
        route = mock.post(path).mock(side_effect=[httpx.ReadTimeout("no answer"), httpx.Response(202, json={})])
        with pytest.raises(RelayTimeoutError) as caught:
            client.send(OutboundMessage(to="+1234567890", text="hi"))
    assert route.call_count == 1 and sleeps == []
    assert "may or may not have taken it" in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadError("reset"), httpx.RemoteProtocolError("closed"), httpx.Response(502), httpx.Response(504)],
    ids=["reset", "disconnect", "502", "504"],
)
def test_send_without_key_is_not_retried_when_it_may_have_arrived(failure: Any) -> None:
    with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock, client_for(
        "relaysms", "http://127.0.0.1:9/relaysms", []
    ) as client:
        route = mock.post("/api/v1/sms/send").mock(side_effect=[failure, httpx.Response(202, json=RELAYSMS_OK)])
        with pytest.raises((RelayConnectionError, RelayUnavailableError)):
            client.send(OutboundMessage(to="+1234567890", text="hi"))
    assert route.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.Response(503), httpx.Response(429)],
    ids=["connect-error", "connect-timeout", "503", "429"],
)
def test_send_without_key_is_retried_when_it_never_arrived(failure: Any) -> None:
    sleeps: list[float] = []
    with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock, client_for(
        "relaysms", "http://127.0.0.1:9/relaysms", sleeps
    ) as client:
        route = mock.post("/api/v1/sms/send").mock(side_effect=[failure, httpx.Response(202, json=RELAYSMS_OK)])
        assert client.send(OutboundMessage(to="+1234567890", text="hi")).message_id == "ref-1"
    assert route.call_count == 2 and len(sleeps) == 1


def test_relaysms_batch_is_not_retried_after_a_read_timeout() -> None:
    with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock, client_for(
        "relaysms", "http://127.0.0.1:9/relaysms", []
    ) as client:
        route = mock.post("/api/v1/sms/batch").mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(202)])
        with pytest.raises(RelayTimeoutError):
            client.send_batch([OutboundMessage(to="+1234567890", text="hi")])
    assert route.call_count == 1


def test_real_read_timeout_is_not_retried_for_a_send_without_key() -> None:
    """A real socket that takes the send and never answers: one attempt, a timeout error."""
    with scripted_server([("hang",), ("respond", 202, RELAYSMS_OK, {})]) as server, client_for(
        "relaysms", server.url + "/relaysms", [], timeout=0.2
    ) as client:
        with pytest.raises(RelayTimeoutError):
            client.send(OutboundMessage(to="+1234567890", text="hi"))
        assert len(server.received) == 1


def test_real_refused_connection_is_retried_then_reported() -> None:
    sleeps: list[float] = []
    with client_for("relaysms", f"http://127.0.0.1:{closed_port()}/relaysms", sleeps, max_retries=2) as client:
        with pytest.raises(RelayConnectionError) as caught:
            client.send(OutboundMessage(to="+1234567890", text="hi"))
    assert len(sleeps) == 2
    assert not isinstance(caught.value, RelayTimeoutError)
    assert "3 attempt(s)" in str(caught.value)


def test_smsgate_409_for_a_different_message_stays_a_conflict() -> None:
    """The key was used before for other recipients: this message must not be reported as sent."""
    from relay_integrations import RelayConflictError

    with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock, client_for(
        "smsgate", "http://127.0.0.1:9/smsgate", []
    ) as client:
        mock.post("/api/3rdparty/v1/messages").respond(409, json={"message": "exists"})
        mock.get("/api/3rdparty/v1/messages/k-2").respond(200, json={
            "id": "k-2", "state": "Sent", "recipients": [{"phoneNumber": "+19995550100", "state": "Sent"}],
        })
        with pytest.raises(RelayConflictError):
            client.send(OutboundMessage(to="+12025550100", text="hi", idempotency_key="k-2"))
        # the same recipients, written differently, are the same message
        mock.get("/api/3rdparty/v1/messages/k-3").respond(200, json={
            "id": "k-3", "state": "Sent", "recipients": [{"phoneNumber": "+12025550100", "state": "Sent"}],
        })
        receipt = client.send(OutboundMessage(to="+1 202-555-0100", text="hi", idempotency_key="k-3"))
    assert receipt.duplicate is True


# --- the rule as a property ---------------------------------------------------------------------

_ERRORS = [httpx.ConnectError("x"), httpx.ConnectTimeout("x"), httpx.PoolTimeout("x"), httpx.ReadTimeout("x"),
           httpx.WriteTimeout("x"), httpx.ReadError("x"), httpx.WriteError("x"), httpx.RemoteProtocolError("x"),
           httpx.LocalProtocolError("x"), httpx.ProxyError("x"), httpx.UnsupportedProtocol("x")]


@given(
    attempt=st.integers(min_value=1, max_value=8),
    max_retries=st.integers(min_value=0, max_value=5),
    status=st.integers(min_value=200, max_value=599),
    retry_after=st.none() | st.floats(min_value=0, max_value=120),
    error=st.sampled_from(_ERRORS),
)
def test_an_unsafe_request_is_only_repeated_when_it_never_arrived(
    attempt: int, max_retries: int, status: int, retry_after: float | None, error: httpx.TransportError
) -> None:
    policy = RetryPolicy(max_retries=max_retries, backoff_factor=0.1, max_retry_after=60)
    after_status = policy.delay_after_status(attempt, status, retry_after, retry_safe=False)
    after_error = policy.delay_after_error(attempt, error, retry_safe=False)
    if after_status is not None:
        assert status in NOT_TAKEN_STATUSES and attempt <= max_retries
        assert retry_after is None or after_status >= retry_after
    if after_error is not None:
        assert isinstance(error, NEVER_SENT_ERRORS) and attempt <= max_retries
    # a safe request is repeated at least whenever an unsafe one is
    if after_status is not None:
        assert policy.delay_after_status(attempt, status, retry_after, retry_safe=True) is not None
    if after_error is not None:
        assert policy.delay_after_error(attempt, error, retry_safe=True) is not None

"""End to end: both clients over real HTTP against the reference relay process (``relay`` fixture)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import anyio
import httpx
import pytest
from client_socket_server import lossy_proxy

from relay_integrations import (
    AsyncRelayClient,
    MessageState,
    OutboundMessage,
    RelayAuthError,
    RelayClient,
    RelayConnectionError,
    RelayValidationError,
    StatusReport,
)
from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

SENDER = "+1987654321"


def unique_number() -> str:
    """A fresh recipient per test (never ending in 0000, which the relay fails on purpose)."""
    return "+1555" + str(uuid.uuid4().int % 10**7).zfill(7)[:6] + "1"


def client_kwargs(relay: ReferenceRelayProcess, dialect: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"base_url": relay.url(dialect), "dialect": dialect, "api_key": relay.api_key,
                              "backoff_factor": 0.05}
    if dialect == "smsgate":
        kwargs["login"] = relay.login
    if dialect == "phonerelay":
        kwargs["phone_id"] = "phone_main"
    if dialect == "relaysms":
        kwargs["sender"] = SENDER
    return kwargs


def message_for(dialect: str, to: str, text: str = "hello from e2e") -> OutboundMessage:
    return OutboundMessage(to=[to] if dialect == "smsgate" else to, text=text)


def wait_final(client: RelayClient, message_id: str, timeout: float = 10.0) -> StatusReport:
    deadline = time.monotonic() + timeout
    while True:
        report = client.get_status(message_id)
        if report.state.is_final or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms", "coop", "smsgate"])
def test_send_and_track_to_delivered(relay: ReferenceRelayProcess, dialect: str) -> None:
    with RelayClient(**client_kwargs(relay, dialect)) as client:
        assert client.health()["ok"] is True
        receipt = client.send(message_for(dialect, unique_number()))
        assert receipt.state in (MessageState.QUEUED, MessageState.SENDING)
        report = wait_final(client, receipt.message_id)
        assert report.message_id == receipt.message_id
        assert report.state is MessageState.DELIVERED
        listed = [m.message_id for page in client.iter_messages(limit=100, max_pages=20) for m in page.messages]
        assert receipt.message_id in listed


@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms", "coop", "smsgate"])
def test_failing_number_ends_failed(relay: ReferenceRelayProcess, dialect: str) -> None:
    with RelayClient(**client_kwargs(relay, dialect)) as client:
        receipt = client.send(message_for(dialect, "+15550000000"))
        assert wait_final(client, receipt.message_id).state is MessageState.FAILED


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms", "coop", "smsgate"])
async def test_async_send_and_get_status(relay: ReferenceRelayProcess, dialect: str, anyio_backend: str) -> None:
    async with AsyncRelayClient(**client_kwargs(relay, dialect)) as client:
        receipt = await client.send(message_for(dialect, unique_number()))
        with anyio.fail_after(10):
            for _ in range(200):  # polling the relay is the point here; no event to wait on
                report = await client.get_status(receipt.message_id)
                if report.state.is_final:
                    break
                await anyio.sleep(0.05)
        assert report.message_id == receipt.message_id
        assert report.state is MessageState.DELIVERED


@pytest.mark.parametrize("dialect", ["phonerelay", "smsgate"])
def test_repeated_idempotency_key_returns_the_same_message(relay: ReferenceRelayProcess, dialect: str) -> None:
    """A second send with the same key (a retry, or a re-run) creates nothing new."""
    key = str(uuid.uuid4())
    to = unique_number()
    with RelayClient(**client_kwargs(relay, dialect)) as client:
        first = client.send(message_for(dialect, to).model_copy(update={"idempotency_key": key}))
        second = client.send(message_for(dialect, to).model_copy(update={"idempotency_key": key}))
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.message_id == first.message_id
    assert stored_for(relay, dialect, to) == 1


def test_smsgate_jwt_and_webhooks(relay: ReferenceRelayProcess) -> None:
    with RelayClient(**client_kwargs(relay, "smsgate"), use_jwt=True) as client:
        receipt = client.send(message_for("smsgate", unique_number()))
        assert client.get_status(receipt.message_id).message_id == receipt.message_id
        hook = client.register_webhook("http://127.0.0.1:9/hook", "sms:delivered")
        assert any(w["id"] == hook["id"] for w in client.list_webhooks())
        client.delete_webhook(hook["id"])
        assert all(w["id"] != hook["id"] for w in client.list_webhooks())


def test_relaysms_batch_and_log(relay: ReferenceRelayProcess) -> None:
    with RelayClient(**client_kwargs(relay, "relaysms")) as client:
        numbers = [unique_number() for _ in range(3)]
        receipt = client.send_batch([OutboundMessage(to=n, text=f"hi {i}") for i, n in enumerate(numbers)])
        assert receipt.batch_id and receipt.accepted == 3
        assert client.get_batch(receipt.batch_id).total == 3
        first = receipt.results[0].message_id
        assert first is not None
        wait_final(client, first)
        log = client.message_log(first)
        assert [e.state for e in log.timeline][-1] is MessageState.DELIVERED
        assert client.balance()["currency"]


def test_coop_bulk_job(relay: ReferenceRelayProcess) -> None:
    with RelayClient(**client_kwargs(relay, "coop")) as client:
        receipt = client.send_batch([OutboundMessage(to=unique_number(), text="bulk") for _ in range(2)])
        assert receipt.batch_id and receipt.total == 2
        assert client.get_batch(receipt.batch_id).batch_id == receipt.batch_id
        assert isinstance(client.queue_stats(), dict)


def test_phonerelay_inbound_stats_count_injected_events(relay: ReferenceRelayProcess) -> None:
    source = unique_number()
    response = httpx.post(
        f"{relay.base_url}/_sim/inbound",
        json={"dialect": "phonerelay", "channel": "sms", "from": source, "to": "+15550001111", "text": "support pls"},
        headers={"Authorization": f"Bearer {relay.api_key}"},
    )
    assert response.status_code < 300
    with RelayClient(**client_kwargs(relay, "phonerelay")) as client:
        stats = client.inbound_stats(source_contains=source, range="7d")
    assert stats.count >= 1
    assert any(e.get("source") == source for e in stats.events)


@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms", "coop", "smsgate"])
def test_wrong_key_is_an_auth_error_without_the_key(relay: ReferenceRelayProcess, dialect: str) -> None:
    kwargs = {**client_kwargs(relay, dialect), "api_key": "wrong-key-e2e-9d8c"}
    with RelayClient(**kwargs) as client, pytest.raises(RelayAuthError) as caught:
        client.send(message_for(dialect, unique_number()))
    assert caught.value.status_code in (401, 403)
    assert "wrong-key-e2e-9d8c" not in str(caught.value)


def test_relay_validation_error_names_the_field(relay: ReferenceRelayProcess) -> None:
    with RelayClient(**{**client_kwargs(relay, "relaysms"), "sender": "+15559999999"}) as client:
        with pytest.raises(RelayValidationError) as caught:
            client.send(OutboundMessage(to=unique_number(), text="from a number we do not own"))
    assert caught.value.status_code == 400 and caught.value.code == "INVALID_REQUEST"
    assert caught.value.field == "from" and "+15559999999" in str(caught.value)


def stored_for(relay: ReferenceRelayProcess, dialect: str, to: str) -> int:
    stored = httpx.get(f"{relay.base_url}/_sim/messages", params={"dialect": dialect},
                       headers={"Authorization": f"Bearer {relay.api_key}"}).json()
    items = stored if isinstance(stored, list) else next(v for v in stored.values() if isinstance(v, list))
    return sum(1 for m in items if to in str(m))


@pytest.mark.parametrize("dialect", ["phonerelay", "smsgate"])
def test_lost_answer_is_retried_with_the_same_key_and_sends_once(relay: ReferenceRelayProcess, dialect: str) -> None:
    """The relay takes the send but the answer is lost on the way back: the client repeats it with
    the same key and gets the landed message back (phonerelay duplicate:true, smsgate 409 + fetch)."""
    to = unique_number()
    with lossy_proxy(relay.base_url, lose_answers=1) as proxy:
        kwargs = {**client_kwargs(relay, dialect), "base_url": f"{proxy.url}/{dialect}"}
        with RelayClient(**kwargs) as client:
            receipt = client.send(message_for(dialect, to))
    sends = [body for method, _path, body in proxy.received if method == "POST"]
    key_field = "idempotency_key" if dialect == "phonerelay" else "id"
    assert len(sends) == 2 and sends[0][key_field] == sends[1][key_field]
    assert receipt.duplicate is True
    assert stored_for(relay, dialect, to) == 1


@pytest.mark.parametrize("dialect", ["relaysms", "coop"])
def test_lost_answer_without_key_is_not_repeated(relay: ReferenceRelayProcess, dialect: str) -> None:
    """No idempotency key: the client reports the unknown outcome instead of risking a second send."""
    to = unique_number()
    with lossy_proxy(relay.base_url, lose_answers=1) as proxy:
        kwargs = {**client_kwargs(relay, dialect), "base_url": f"{proxy.url}/{dialect}"}
        with RelayClient(**kwargs) as client, pytest.raises(RelayConnectionError):
            client.send(message_for(dialect, to))
    assert len(proxy.received) == 1
    assert stored_for(relay, dialect, to) == 1


def test_health_catches_a_wrong_key_even_where_health_is_public(relay: ReferenceRelayProcess) -> None:
    with RelayClient(**{**client_kwargs(relay, "phonerelay"), "api_key": "nope"}) as client:
        with pytest.raises(RelayAuthError):
            client.health()

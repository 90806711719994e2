"""Every task in sync and async flows, against a real reference relay process."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prefect import flow
from relay_prefect_helpers import (
    AnswerDroppingProxy,
    WebhookSetup,
    credentials_for,
    inject_inbound,
    sim_messages,
    task_runs_of,
    texts_sent_to,
    unique_number,
)

from prefect_blocks.tasks import (
    MessageNotDeliveredError,
    SendOutcomeUnknownError,
    get_message_status,
    query_inbound_stats,
    send_message,
    wait_for_message_status,
    wait_for_webhook_event,
)
from relay_integrations.errors import RelayValidationError
from relay_integrations.models import InboundStats, MessageState, SendReceipt, StatusReport, WebhookEvent
from relay_integrations.process import ReferenceRelayProcess
from relay_integrations.webhooks.inbox import WebhookWaitTimeout

# --- send_message + status ---------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms", "coop", "smsgate"])
def test_send_then_wait_in_a_sync_flow(relay: ReferenceRelayProcess, dialect: str) -> None:
    credentials = credentials_for(relay, dialect)
    to = unique_number()

    @flow
    def notify_customer() -> tuple[SendReceipt, StatusReport, StatusReport]:
        receipt = send_message(credentials, to=to, text=f"hello from {dialect}")
        status = get_message_status(credentials, receipt.message_id)
        final = wait_for_message_status(credentials, receipt.message_id, timeout=20, poll_interval=0.1)
        return receipt, status, final

    receipt, status, final = notify_customer()
    assert isinstance(receipt, SendReceipt) and receipt.message_id
    assert status.message_id == receipt.message_id
    assert isinstance(final, StatusReport) and final.state is MessageState.DELIVERED
    assert texts_sent_to(relay, dialect, to) == [f"hello from {dialect}"]


@pytest.mark.parametrize("dialect", ["phonerelay", "smsgate"])
def test_send_then_wait_in_an_async_flow(relay: ReferenceRelayProcess, dialect: str) -> None:
    credentials = credentials_for(relay, dialect)
    to = unique_number()

    @flow
    async def notify_customer() -> tuple[SendReceipt, StatusReport, list[StatusReport]]:
        receipt = await send_message(credentials, to=to, text="async hello")
        status = await get_message_status(credentials, receipt.message_id)
        final = await wait_for_message_status(credentials, [receipt.message_id], state="sent", timeout=20,
                                              poll_interval=0.1)
        return receipt, status, final  # type: ignore[return-value]

    import anyio

    receipt, status, final = anyio.run(notify_customer)  # type: ignore[arg-type]
    assert status.message_id == receipt.message_id
    assert [r.message_id for r in final] == [receipt.message_id]
    assert final[0].state in (MessageState.SENT, MessageState.DELIVERED)
    assert texts_sent_to(relay, dialect, to) == ["async hello"]


def test_idempotency_key_is_derived_from_the_run(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "phonerelay")
    to = unique_number()

    @flow
    def twice() -> list[SendReceipt]:
        # Two calls are two task runs: two messages, two keys.
        return [send_message(credentials, to=to, text="same text"), send_message(credentials, to=to, text="same text")]

    first, second = twice()
    assert first.idempotency_key and uuid.UUID(first.idempotency_key).version == 5  # idempotency.derive_key
    assert first.idempotency_key != second.idempotency_key
    stored = [m for m in sim_messages(relay, "phonerelay") if m["to"] == to]
    assert sorted(m["idempotency_key"] for m in stored) == sorted([first.idempotency_key, second.idempotency_key])


@pytest.mark.parametrize("dialect", ["phonerelay", "smsgate"])
def test_send_task_retry_after_a_lost_answer_sends_once(relay: ReferenceRelayProcess, dialect: str) -> None:
    """The relay takes the message but its answer is lost; the task fails and Prefect retries it with
    the same key: the relay keeps exactly one message."""
    to = unique_number()
    path = "/api/v1/messages" if dialect == "phonerelay" else "/api/3rdparty/v1/messages"
    with AnswerDroppingProxy(relay.base_url, path_suffix=path, drops=1) as proxy:
        credentials = credentials_for(relay, dialect, base_url=proxy.url(dialect), max_retries=0)

        @flow
        def send_once() -> SendReceipt:
            return send_message(credentials, to=to, text="exactly once")

        state = send_once(return_state=True)
        assert proxy.dropped == 1
    assert state.is_completed()
    receipt = state.result()
    assert receipt.duplicate is True
    assert texts_sent_to(relay, dialect, to) == ["exactly once"]
    (send_run,) = task_runs_of(state)
    assert send_run.run_count == 2


def test_bad_message_fails_without_retry(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "relaysms")

    @flow
    def bad() -> None:
        send_message(credentials, to="not-a-number", text="x")

    state = bad(return_state=True)
    assert state.is_failed()
    with pytest.raises(RelayValidationError):
        state.result()
    (send_run,) = task_runs_of(state)
    assert send_run.run_count == 1  # a validation error is not retried


# --- waiting -----------------------------------------------------------------------------------


def test_wait_for_a_message_that_fails(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "coop")

    @flow
    def doomed() -> tuple[str, StatusReport]:
        receipt = send_message(credentials, to="+15557770000", text="to a number the relay fails")
        settled = wait_for_message_status(credentials, receipt.message_id, timeout=20, poll_interval=0.1,
                                          raise_on_failure=False)
        return receipt.message_id, settled  # type: ignore[return-value]

    message_id, settled = doomed()
    assert settled.state is MessageState.FAILED

    @flow
    def strict() -> None:
        wait_for_message_status(credentials, message_id, timeout=20, poll_interval=0.1)

    state = strict(return_state=True)
    with pytest.raises(MessageNotDeliveredError, match=message_id):
        state.result()


def test_wait_times_out_naming_the_pending_message(start_relay: Callable[..., ReferenceRelayProcess]) -> None:
    slow = start_relay(delivery_latency=30.0)
    credentials = credentials_for(slow, "smsgate")

    @flow
    def impatient() -> None:
        receipt = send_message(credentials, to=unique_number(), text="slow")
        wait_for_message_status(credentials, receipt.message_id, timeout=0.3, poll_interval=0.1)

    state = impatient(return_state=True)
    with pytest.raises(TimeoutError, match=r"not delivered within 0\.3s"):
        state.result()


# --- inbound stats -----------------------------------------------------------------------------


def test_query_inbound_stats_sync_and_async(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "phonerelay")
    sender = unique_number()
    inject_inbound(relay, "phonerelay", sender, "a reply", phone_id="phone_main")
    inject_inbound(relay, "phonerelay", sender, None, event_type="missed", phone_id="phone_main")  # type: ignore[arg-type]

    @flow
    def stats_sync() -> InboundStats:
        return query_inbound_stats(credentials, {"range": "1d", "source_contains": sender[1:]})

    @flow
    async def stats_async() -> InboundStats:
        return await query_inbound_stats(credentials, {"range": "1d", "source_contains": sender[1:],
                                                       "event_types": ["missed"]})

    import anyio

    every = stats_sync()
    missed = anyio.run(stats_async)
    assert every.summary["inbound_total"] == 2
    assert {e["event_type"] for e in every.events} == {"message", "missed"}
    assert [e["event_type"] for e in missed.events] == ["missed"]


# --- webhooks ----------------------------------------------------------------------------------


def test_wait_for_webhook_event_sync_remote_and_local(webhook_setup: WebhookSetup) -> None:
    relay = webhook_setup.relay
    credentials = credentials_for(relay, "smsgate")
    remote = webhook_setup.remote_inbox
    customer = unique_number()

    @flow
    def converse() -> tuple[WebhookEvent, WebhookEvent, WebhookEvent]:
        receipt = send_message(credentials, to=customer, text="Reply YES to confirm")
        delivered = wait_for_webhook_event(remote, message_id=receipt.message_id, state="delivered", timeout=20,
                                           poll_interval=0.1)
        inject_inbound(relay, "smsgate", customer, "YES")
        reply = wait_for_webhook_event(remote, kind="inbound", sender=customer, timeout=20, poll_interval=0.1)
        from_file = wait_for_webhook_event(str(webhook_setup.inbox_path), {"kind": "inbound", "sender": customer},
                                           timeout=5, poll_interval=0.1)
        return delivered, reply, from_file

    delivered, reply, from_file = converse()
    assert delivered.state is MessageState.DELIVERED and delivered.dialect == "smsgate"
    assert reply.text == "YES" and reply.sender == customer
    assert from_file.event_id == reply.event_id


def test_wait_for_webhook_event_async_and_timeout(webhook_setup: WebhookSetup) -> None:
    relay = webhook_setup.relay
    remote = webhook_setup.remote_inbox
    customer = unique_number()
    inject_inbound(relay, "smsgate", customer, "STOP")

    @flow
    async def opt_out() -> WebhookEvent:
        return await wait_for_webhook_event(remote, kind="inbound", sender=customer, text_contains="stop",
                                            timeout=20, poll_interval=0.1)

    @flow
    async def nobody() -> Any:
        return await wait_for_webhook_event(remote, kind="inbound", sender="+15550000001", timeout=0.3,
                                            poll_interval=0.1)

    import anyio

    event = anyio.run(opt_out)
    assert event.text == "STOP"
    state = anyio.run(lambda: nobody(return_state=True))  # type: ignore[arg-type]
    with pytest.raises(WebhookWaitTimeout):
        state.result()


def test_wait_for_webhook_event_refuses_a_url_without_key() -> None:
    @flow
    def misconfigured() -> Any:
        return wait_for_webhook_event("http://127.0.0.1:9", kind="inbound", timeout=0.1)

    state = misconfigured(return_state=True)
    with pytest.raises(ValueError, match="RelayWebhookInbox"):
        state.result()


def test_receiver_rejects_unsigned_posts(webhook_setup: WebhookSetup) -> None:
    """The wait above is satisfied through verification, not around it."""
    answer = httpx.post(webhook_setup.receiver.url("smsgate"), json={"event": "sms:received", "payload": {}}, timeout=5)
    assert answer.status_code in (400, 401, 403)


def test_lost_answer_on_a_relay_without_keys_is_not_retried(relay: ReferenceRelayProcess) -> None:
    """relaysms cannot recognise a repeated send: the task fails, says so, and is not retried."""
    to = unique_number()
    with AnswerDroppingProxy(relay.base_url, path_suffix="/sms/send", drops=1) as proxy:
        credentials = credentials_for(relay, "relaysms", base_url=proxy.url("relaysms"), max_retries=3)

        @flow
        def send_once() -> SendReceipt:
            return send_message(credentials, to=to, text="at most once")

        state = send_once(return_state=True)
    assert state.is_failed()
    with pytest.raises(SendOutcomeUnknownError, match="cannot recognise a repeated send"):
        state.result()
    (send_run,) = task_runs_of(state)
    assert send_run.run_count == 1
    assert texts_sent_to(relay, "relaysms", to) == ["at most once"]

"""WebhookInbox, local (SQLite file) and remote (GET /events over HTTP): queries, waits and message state."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from webhook_payloads import (
    API_KEY,
    SECRET,
    ServedReceiver,
    coop_event,
    coop_received,
    encode,
    phonerelay_inbound,
    relaysms_inbound,
    relaysms_status,
    signed_headers,
    smsgate_received,
    smsgate_status,
)

from relay_integrations.models import MessageState
from relay_integrations.webhooks import EventFilter, WebhookInbox, WebhookInboxError, WebhookWaitTimeout


@pytest.fixture(params=["local", "remote"])
def inbox(request: pytest.FixtureRequest, receiver: ServedReceiver) -> Iterator[WebhookInbox]:
    if request.param == "local":
        box = WebhookInbox(receiver.db_path)
    else:
        box = WebhookInbox.remote(receiver.base_url, API_KEY)
    with box:
        yield box


@pytest.fixture
def populated(receiver: ServedReceiver) -> ServedReceiver:
    deliveries = [
        ("smsgate", smsgate_status("sg-1", "+15550000001", "sent")),
        ("smsgate", smsgate_status("sg-1", "+15550000001", "delivered")),
        ("smsgate", smsgate_received("sg-in-1", "+15550000009", "Yes, CONFIRM my booking")),
        ("coop", coop_event("co-1", "failed", error="unreachable")),
        ("coop", coop_received("co-in-1", "+15550000008", "stop")),
        ("relaysms", relaysms_status("rs-1", "delivered", to="+15550000007")),
        ("relaysms", relaysms_inbound("rs-in-1", "+15550000007", "thanks!")),
        ("phonerelay", phonerelay_inbound("in_1", "+15550000006", "call me", event_type="message")),
        ("phonerelay", phonerelay_inbound("in_2", "+15550000006", "", event_type="missed")),
    ]
    for dialect, body in deliveries:
        response = receiver.post(dialect, body)
        assert response.status_code == 200 and response.json()["stored"] == 1, response.text
    return receiver


def _ids(events: list) -> list[str | None]:  # type: ignore[type-arg]
    return [e.message_id for e in events]


def test_query_filters(populated: ServedReceiver, inbox: WebhookInbox) -> None:
    everything = inbox.query()
    assert len(everything) == 9
    cursors = [e.cursor for e in everything]
    assert cursors == sorted(cursors) and len(set(cursors)) == 9

    assert _ids(inbox.query(dialect="smsgate")) == ["sg-1", "sg-1", "sg-in-1"]
    assert _ids(inbox.query(kind="inbound", dialect="phonerelay")) == ["in_1", "in_2"]
    assert _ids(inbox.query(event_type="missed")) == ["in_2"]
    assert [e.state for e in inbox.query(message_id="sg-1")] == [MessageState.SENT, MessageState.DELIVERED]
    assert _ids(inbox.query(state="failed")) == ["co-1"]
    assert _ids(inbox.query(state=MessageState.DELIVERED)) == ["sg-1", "rs-1"]
    assert _ids(inbox.query(kind="inbound", sender="+15550000007")) == ["rs-in-1"]
    assert _ids(inbox.query(recipient="+15550000007")) == ["rs-1"]
    assert _ids(inbox.query(text_contains="confirm")) == ["sg-in-1"]
    assert _ids(inbox.query(after=cursors[6])) == ["in_1", "in_2"]
    assert _ids(inbox.query(limit=2)) == ["sg-1", "sg-1"]
    assert _ids(inbox.query(EventFilter(kind="inbound"), dialect="coop")) == ["co-in-1"]
    assert _ids(inbox.query({"kind": "status", "dialect": "relaysms"})) == ["rs-1"]
    assert inbox.query(message_id="nope") == []


def test_events_keep_raw_payload_and_timestamps(populated: ServedReceiver, inbox: WebhookInbox) -> None:
    [failed] = inbox.query(message_id="co-1")
    assert failed.error == "unreachable"
    assert failed.raw["data"]["error"] == "unreachable"  # the relay's own body, kept whole
    assert failed.received_at is not None and failed.occurred_at is not None


def test_bad_filter_names_the_field() -> None:
    with pytest.raises(ValueError, match="colour"):
        EventFilter.coerce({"colour": "red"})
    with pytest.raises(ValueError, match="state"):
        EventFilter.coerce(state="arrived")
    with pytest.raises(ValueError, match="limit"):
        EventFilter.coerce(limit=0)


def test_message_state(populated: ServedReceiver, inbox: WebhookInbox) -> None:
    assert inbox.message_state("sg-1") is MessageState.DELIVERED
    assert inbox.message_state("co-1") is MessageState.FAILED
    assert inbox.message_state("unknown") is None
    # Inbound events carry no delivery state.
    assert inbox.message_state("rs-in-1") is None


def test_message_state_survives_late_and_conflicting_events(receiver: ServedReceiver, inbox: WebhookInbox) -> None:
    for state in ("delivered", "sent", "queued", "failed"):
        assert receiver.post("coop", coop_event("co-late", state)).status_code == 200
    # Final states share a rank; the first final one reported stays.
    assert inbox.message_state("co-late") is MessageState.DELIVERED


def test_per_recipient_state(receiver: ServedReceiver, inbox: WebhookInbox) -> None:
    receiver.post("smsgate", smsgate_status("sg-multi", "+15550000001", "delivered"))
    receiver.post("smsgate", smsgate_status("sg-multi", "+15550000002", "sent"))
    assert inbox.message_state("sg-multi", recipient="+15550000002") is MessageState.SENT
    assert inbox.message_state("sg-multi", recipient="+15550000001") is MessageState.DELIVERED


def test_wait_for_times_out(receiver: ServedReceiver, inbox: WebhookInbox) -> None:
    receiver.post("coop", coop_event("co-other"))
    with pytest.raises(WebhookWaitTimeout) as info:
        inbox.wait_for({"message_id": "co-never"}, timeout=0.2, poll_interval=0.05)
    assert isinstance(info.value, TimeoutError)
    assert "co-never" in str(info.value)


def test_wait_for_returns_an_event_posted_from_another_thread(receiver: ServedReceiver, inbox: WebhookInbox) -> None:
    start = inbox.query()
    after = start[-1].cursor if start else 0

    def post_later() -> None:
        time.sleep(0.15)
        with httpx.Client() as client:
            raw = encode(relaysms_inbound("rs-reply", "+15550000005", "Yes"))
            client.post(receiver.url("relaysms"), content=raw, headers=signed_headers("relaysms", raw, SECRET))

    poster = threading.Thread(target=post_later)
    poster.start()
    try:
        event = inbox.wait_for(EventFilter(kind="inbound", sender="+15550000005", after=after),
                               timeout=10, poll_interval=0.05)
    finally:
        poster.join()
    assert (event.message_id, event.text, event.dialect) == ("rs-reply", "Yes", "relaysms")
    assert event.cursor is not None and event.cursor > (after or 0)


def test_wait_for_sees_events_that_arrived_before_the_wait(populated: ServedReceiver, inbox: WebhookInbox) -> None:
    event = inbox.wait_for({"message_id": "sg-1", "state": "delivered"}, timeout=0)
    assert event.state is MessageState.DELIVERED


@pytest.mark.anyio
async def test_await_for_returns_event_posted_concurrently(receiver: ServedReceiver, inbox: WebhookInbox) -> None:
    async def post_later() -> None:
        await anyio.sleep(0.15)
        raw = encode(smsgate_status("sg-async", "+15550000001", "delivered"))
        async with httpx.AsyncClient() as client:
            await client.post(receiver.url("smsgate"), content=raw, headers=signed_headers("smsgate", raw, SECRET))

    async with anyio.create_task_group() as tg:
        tg.start_soon(post_later)
        event = await inbox.await_for({"message_id": "sg-async", "state": "delivered"}, timeout=10,
                                      poll_interval=0.05)
    assert event.dialect == "smsgate" and event.recipient == "+15550000001"
    assert await inbox.amessage_state("sg-async") is MessageState.DELIVERED
    assert len(await inbox.aquery(dialect="smsgate")) == 1


@pytest.mark.anyio
async def test_await_for_times_out(receiver: ServedReceiver, inbox: WebhookInbox) -> None:
    with pytest.raises(WebhookWaitTimeout):
        await inbox.await_for(EventFilter(message_id="never"), timeout=0.2, poll_interval=0.05)


def test_remote_inbox_with_wrong_key_raises_without_leaking_it(receiver: ServedReceiver) -> None:
    inbox = WebhookInbox.remote(receiver.base_url, "wrong-key-123")
    with pytest.raises(WebhookInboxError) as info:
        inbox.query()
    assert info.value.status_code == 401
    assert "wrong-key-123" not in str(info.value) and "wrong-key-123" not in repr(inbox)


def test_remote_inbox_unreachable() -> None:
    from relay_integrations.process import free_port

    inbox = WebhookInbox.remote(f"http://127.0.0.1:{free_port()}", API_KEY, timeout=1.0)
    with pytest.raises(WebhookInboxError, match="cannot reach") as info:
        inbox.wait_for({"kind": "inbound"}, timeout=0.1, poll_interval=0.05)
    assert info.value.status_code is None


def test_remote_message_state_pages_past_one_thousand_events(receiver: ServedReceiver) -> None:
    from relay_integrations.models import WebhookEvent
    from relay_integrations.webhooks.store import EventStore

    # Straight into the store: 1001 status events of one message, the last one "delivered".
    store = EventStore(receiver.db_path)
    events = [WebhookEvent(event_id=f"e{i}", dialect="coop", kind="status", event_type="message.sent",
                           message_id="co-many", state=MessageState.SENT, raw_state=f"sent-{i}") for i in range(1000)]
    events.append(WebhookEvent(event_id="last", dialect="coop", kind="status", event_type="message.delivered",
                               message_id="co-many", state=MessageState.DELIVERED))
    store.add(events)
    store.close()
    remote = WebhookInbox.remote(receiver.base_url, API_KEY)
    assert remote.message_state("co-many") is MessageState.DELIVERED


def test_remote_inbox_reuses_one_async_client_per_event_loop(receiver: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A triggerer polls every few seconds: one HTTP client (and TLS setup) per loop, not one per poll."""
    created: list[httpx.AsyncClient] = []

    class CountingAsyncClient(httpx.AsyncClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(httpx, "AsyncClient", CountingAsyncClient)

    async def poll_five_times() -> None:
        async with WebhookInbox.remote(receiver.base_url, API_KEY) as inbox:
            for _ in range(5):
                await inbox.aquery(limit=1)
        assert created[-1].is_closed  # closed with the inbox

    anyio.run(poll_five_times)
    assert len(created) == 1
    anyio.run(poll_five_times)  # a second event loop gets a client of its own
    assert len(created) == 2

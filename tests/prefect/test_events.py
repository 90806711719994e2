"""The webhook -> Prefect events bridge, fed by a real relay posting to a real receiver process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from prefect.settings import PREFECT_API_URL
from relay_prefect_helpers import INBOX_API_KEY, WebhookSetup, credentials_for, inject_inbound, unique_number

from prefect_blocks.events import (
    forward_webhook_events,
    prefect_event_id,
    prefect_event_name,
    to_prefect_event,
)
from relay_integrations.models import MessageState, OutboundMessage, WebhookEvent
from relay_integrations.webhooks.inbox import WebhookInbox


def prefect_events(resource_id: str, expected: int, wait: float = 20.0) -> list[dict[str, Any]]:
    """Events about ``resource_id`` stored by the Prefect server, once there are ``expected`` of them
    (the server persists events asynchronously)."""
    deadline = time.monotonic() + wait
    while True:
        answer = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", timeout=10, json={
            "filter": {"resource": {"id": [resource_id]}, "occurred": {"since": "2020-01-01T00:00:00Z"}},
            "limit": 50,
        })
        answer.raise_for_status()
        events: list[dict[str, Any]] = answer.json()["events"]
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_event_names_and_stable_ids() -> None:
    delivered = WebhookEvent(event_id="e1", dialect="smsgate", kind="status", event_type="sms:delivered",
                             message_id="m1", state=MessageState.DELIVERED)
    reply = WebhookEvent(event_id="e2", dialect="coop", kind="inbound", event_type="message.received",
                         sender="+15551112222", text="hi")
    missed = WebhookEvent(event_id="e3", dialect="phonerelay", kind="inbound", event_type="missed")
    other = WebhookEvent(event_id="e4", dialect="smsgate", kind="other", event_type="system:ping")
    assert [prefect_event_name(e) for e in (delivered, reply, missed, other)] == [
        "relay.message.delivered", "relay.message.received", "relay.call.missed", "relay.webhook.system-ping",
    ]
    assert prefect_event_id(delivered) == prefect_event_id(delivered.model_copy())
    assert prefect_event_id(delivered) != prefect_event_id(delivered.model_copy(update={"dialect": "coop"}))
    event = to_prefect_event(reply)
    assert event.resource.id == "relay.message.e2"
    assert event.resource["relay.sender"] == "+15551112222"
    assert event.payload["text"] == "hi" and "raw" not in event.payload


def test_forward_inbox_events_to_prefect(webhook_setup: WebhookSetup) -> None:
    relay = webhook_setup.relay
    customer = unique_number()
    with credentials_for(relay, "smsgate").get_client() as client:
        receipt = client.send(OutboundMessage(to=customer, text="Your parcel is on its way"))
    inject_inbound(relay, "smsgate", customer, "thanks!")
    with WebhookInbox(webhook_setup.inbox_path) as inbox:
        inbox.wait_for({"message_id": receipt.message_id, "state": "delivered"}, timeout=20, poll_interval=0.1)
        reply = inbox.wait_for({"kind": "inbound", "sender": customer}, timeout=20, poll_interval=0.1)
        cursor = forward_webhook_events(inbox, match={"sender": customer})
        again = forward_webhook_events(inbox, match={"sender": customer})
    assert cursor == reply.cursor == again

    (received,) = prefect_events(f"relay.message.{reply.message_id}", expected=1)
    assert received["event"] == "relay.message.received"
    assert received["id"] == str(prefect_event_id(reply))
    assert received["payload"]["text"] == "thanks!"
    assert received["resource"]["relay.sender"] == customer

    with WebhookInbox(webhook_setup.inbox_path) as inbox:
        status_cursor = forward_webhook_events(inbox, match={"message_id": receipt.message_id})
    assert status_cursor is not None
    names = {e["event"] for e in prefect_events(f"relay.message.{receipt.message_id}", expected=1)}
    assert "relay.message.delivered" in names


def test_forward_async_twin_from_a_remote_inbox(webhook_setup: WebhookSetup) -> None:
    customer = unique_number()
    inject_inbound(webhook_setup.relay, "smsgate", customer, "async hello")
    inbox = webhook_setup.remote_inbox
    with inbox.get_inbox() as opened:
        reply = opened.wait_for({"kind": "inbound", "sender": customer}, timeout=20, poll_interval=0.1)

    async def forward() -> int | None:
        return await forward_webhook_events(inbox, match={"kind": "inbound", "sender": customer})

    assert anyio.run(forward) == reply.cursor
    (received,) = prefect_events(f"relay.message.{reply.message_id}", expected=1)
    assert received["payload"]["text"] == "async hello"


def test_bridge_cli_once_keeps_its_cursor(webhook_setup: WebhookSetup, tmp_path: Path) -> None:
    customer = unique_number()
    inject_inbound(webhook_setup.relay, "smsgate", customer, "via the bridge")
    with WebhookInbox(webhook_setup.inbox_path) as inbox:
        reply = inbox.wait_for({"kind": "inbound", "sender": customer}, timeout=20, poll_interval=0.1)
    cursor_file = tmp_path / "bridge.cursor"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "RELAY_INBOX_API_KEY": INBOX_API_KEY}
    done = subprocess.run(
        [sys.executable, "-m", "prefect_blocks.events", "--inbox", webhook_setup.receiver.base_url,
         "--cursor-file", str(cursor_file), "--once"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert INBOX_API_KEY not in done.stdout + done.stderr
    # The bridge polls every second: no line per HTTP request (httpx logs them at INFO).
    assert "HTTP Request:" not in done.stdout + done.stderr, done.stderr[-2000:]
    assert int(cursor_file.read_text()) >= (reply.cursor or 0)
    (received,) = prefect_events(f"relay.message.{reply.message_id}", expected=1)
    assert received["event"] == "relay.message.received"


def test_bridge_forwards_an_event_at_the_nesting_bound_and_never_meets_a_deeper_one(
    webhook_setup: WebhookSetup,
) -> None:
    # Issue 14: an authentic event nested 199-254 levels was stored and then stopped the bridge for good.
    import uuid

    from relay_prefect_helpers import WEBHOOK_SECRET

    from relay_integrations.signing import derive_dialect_secret, sign_smsgate
    from relay_integrations.webhooks.bounds import MAX_JSON_DEPTH

    key = derive_dialect_secret(WEBHOOK_SECRET, "smsgate")

    def post(message_id: str, depth: int) -> int:
        inner = depth - 2
        nested = '{"x":' * (inner - 1) + "{}" + "}" * (inner - 1)
        raw = (f'{{"deviceId":"d","event":"sms:received","id":"evt_{uuid.uuid4().hex}","webhookId":"w",'
               f'"payload":{{"messageId":"{message_id}","phoneNumber":"+15550001234","message":"deep",'
               f'"receivedAt":"2026-01-01T00:00:00.000Z","extra":{nested}}}}}').encode()
        headers = {"Content-Type": "application/json", **sign_smsgate(raw, key)}
        return httpx.post(webhook_setup.receiver.url("smsgate"), content=raw, headers=headers, timeout=10).status_code

    at_bound, too_deep = f"bound-{uuid.uuid4().hex[:8]}", f"deep-{uuid.uuid4().hex[:8]}"
    assert post(at_bound, MAX_JSON_DEPTH) == 200
    assert post(too_deep, 230) == 400 and post(too_deep, 300) == 400
    with WebhookInbox(webhook_setup.inbox_path) as inbox:
        cursor = forward_webhook_events(inbox)  # everything stored, from the first event on
        (event,) = inbox.query(message_id=at_bound)
        assert inbox.query(message_id=too_deep) == []
    assert cursor is not None and cursor >= event.cursor
    (received,) = prefect_events(f"relay.message.{at_bound}", expected=1)
    assert received["event"] == "relay.message.received"

"""End to end: the reference relay's own outbound webhooks arrive at the receiver, verified, for every dialect.

A private relay process (same webhook secret as the receiver) and a receiver served on loopback; the
relay is told where to post with each dialect's own registration API (coop: the ``/_sim/webhooks``
hook, its API has none), then messages are sent with :class:`RelayClient` and inbound events injected
with ``POST /_sim/inbound``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from webhook_payloads import API_KEY, SECRET, ServedReceiver, serve_app

from relay_integrations.client import RelayClient
from relay_integrations.models import MessageState, OutboundMessage
from relay_integrations.process import ReferenceRelayProcess
from relay_integrations.signing import derive_dialect_secret, derive_relaysms_url_token
from relay_integrations.webhooks import EventFilter, WebhookInbox
from relay_integrations.webhooks.receiver import create_receiver_app

pytestmark = pytest.mark.e2e

RELAY_KEY = "e2e-relay-key-91"
WAIT = 20.0  # generous: CI runs two suites on two cores; success returns as soon as the event is there


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReferenceRelayProcess, ServedReceiver]]:
    tmp = tmp_path_factory.mktemp("e2e")
    receiver = serve_app(create_receiver_app(tmp / "webhooks.db", [SECRET], API_KEY), db_path=tmp / "webhooks.db")
    relay = ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=RELAY_KEY, delivery_latency=0.05,
                                  webhook_secret=SECRET, log_path=tmp / "relay.log")
    relay.start()
    try:
        yield relay, receiver
    finally:
        relay.stop()
        receiver.stop()


def _client(relay: ReferenceRelayProcess, dialect: str) -> RelayClient:
    return RelayClient(relay.url(dialect), dialect, relay.api_key, login=relay.login, max_retries=1)


def _inject(relay: ReferenceRelayProcess, dialect: str, sender: str, text: str, **extra: object) -> str:
    response = httpx.post(f"{relay.base_url}/_sim/inbound", headers={"Authorization": f"Bearer {relay.api_key}"},
                          json={"dialect": dialect, "channel": "sms", "from": sender, "text": text, **extra})
    assert response.status_code == 201, response.text
    message_id: str = response.json()["id"]
    return message_id


def _phone() -> str:
    # Never ending in 0000: the reference relay fails those numbers on purpose.
    return f"+1555{random.randrange(1_000_000):06d}{random.randrange(1, 10)}"


@pytest.fixture(scope="module")
def inbox(stack: tuple[ReferenceRelayProcess, ServedReceiver]) -> Iterator[WebhookInbox]:
    with WebhookInbox.remote(stack[1].base_url, API_KEY) as box:
        yield box


def test_smsgate_status_and_inbound_webhooks_arrive_verified(stack: tuple[ReferenceRelayProcess, ServedReceiver],
                                                           inbox: WebhookInbox) -> None:
    relay, receiver = stack
    with _client(relay, "smsgate") as client:
        for event in ("sms:sent", "sms:delivered", "sms:failed", "sms:received"):
            client.register_webhook(receiver.url("smsgate"), event)
        to = _phone()
        receipt = client.send(OutboundMessage(to=to, text="your code is 4242"))
        failing = client.send(OutboundMessage(to="+15550000000", text="this number fails"))
    delivered = inbox.wait_for({"dialect": "smsgate", "message_id": receipt.message_id, "state": "delivered"},
                               timeout=WAIT, poll_interval=0.05)
    assert delivered.recipient == to and delivered.kind == "status"
    inbox.wait_for({"dialect": "smsgate", "message_id": receipt.message_id, "state": "sent"}, timeout=WAIT,
                   poll_interval=0.05)
    assert inbox.message_state(receipt.message_id) is MessageState.DELIVERED
    failed = inbox.wait_for({"message_id": failing.message_id, "state": "failed"}, timeout=WAIT, poll_interval=0.05)
    assert failed.error

    sender = _phone()
    inbound_id = _inject(relay, "smsgate", sender, "STOP please")
    reply = inbox.wait_for(EventFilter(dialect="smsgate", kind="inbound", sender=sender), timeout=WAIT,
                           poll_interval=0.05)
    assert (reply.message_id, reply.text) == (inbound_id, "STOP please")


def test_relaysms_status_and_inbound_webhooks_arrive_at_the_secret_url(
    stack: tuple[ReferenceRelayProcess, ServedReceiver], inbox: WebhookInbox
) -> None:
    # relaysms.md documents no signature: the relay posts unsigned, to the receiver's secret URL.
    relay, receiver = stack
    secret_url = f"{receiver.base_url}/webhooks/relaysms/{derive_relaysms_url_token(SECRET)}"
    with _client(relay, "relaysms") as client:
        client.set_webhooks(status_url=secret_url, inbound_url=secret_url)
        receipt = client.send(OutboundMessage(to=_phone(), text="order shipped", sender="+1987654321"))
    inbox.wait_for({"dialect": "relaysms", "message_id": receipt.message_id, "state": "delivered"}, timeout=WAIT,
                   poll_interval=0.05)
    assert inbox.message_state(receipt.message_id) is MessageState.DELIVERED

    sender = _phone()
    inbound_id = _inject(relay, "relaysms", sender, "thanks", to="+1987654321")
    reply = inbox.wait_for({"dialect": "relaysms", "kind": "inbound", "sender": sender}, timeout=WAIT,
                           poll_interval=0.05)
    assert (reply.message_id, reply.text, reply.recipient) == (inbound_id, "thanks", "+1987654321")


def test_coop_status_and_inbound_webhooks_arrive_verified(stack: tuple[ReferenceRelayProcess, ServedReceiver],
                                                        inbox: WebhookInbox) -> None:
    relay, receiver = stack
    registered = httpx.post(f"{relay.base_url}/_sim/webhooks", headers={"Authorization": f"Bearer {relay.api_key}"},
                            json={"dialect": "coop", "url": receiver.url("coop")})
    assert registered.status_code == 201, registered.text
    with _client(relay, "coop") as client:
        receipt = client.send(OutboundMessage(to=_phone(), text="meeting at 10"))
        failing = client.send(OutboundMessage(to="+15550000000", text="fails"))
    inbox.wait_for({"dialect": "coop", "message_id": receipt.message_id, "state": "delivered"}, timeout=WAIT,
                   poll_interval=0.05)
    inbox.wait_for({"dialect": "coop", "message_id": failing.message_id, "state": "failed"}, timeout=WAIT,
                   poll_interval=0.05)
    assert inbox.message_state(receipt.message_id) is MessageState.DELIVERED
    assert inbox.message_state(failing.message_id) is MessageState.FAILED

    sender = _phone()
    _inject(relay, "coop", sender, "see you there")
    reply = inbox.wait_for({"dialect": "coop", "kind": "inbound", "text_contains": "SEE YOU"}, timeout=WAIT,
                           poll_interval=0.05)
    assert reply.sender == sender


def test_phonerelay_callback_token_arrives_verified_and_wrong_token_is_refused(
    stack: tuple[ReferenceRelayProcess, ServedReceiver], inbox: WebhookInbox
) -> None:
    relay, receiver = stack
    with _client(relay, "phonerelay") as client:
        # Configured as a user would: with phonerelay's own secret (`relay webhooks secrets`).
        client.create_inbound_callback(receiver.url("phonerelay"),
                                       callback_token=derive_dialect_secret(SECRET, "phonerelay"), channels=["sms"])
        # A second subscription whose token the receiver does not know: its deliveries must be refused.
        client.create_inbound_callback(receiver.url("phonerelay"), callback_token="not-the-receiver-secret",
                                       channels=["sms"])
    sender = _phone()
    inbound_id = _inject(relay, "phonerelay", sender, "call me back", phone_id="phone_main")
    reply = inbox.wait_for({"dialect": "phonerelay", "message_id": inbound_id}, timeout=WAIT, poll_interval=0.05)
    assert (reply.kind, reply.sender, reply.text) == ("inbound", sender, "call me back")

    # The relay's outbox shows the second delivery refused with 401; the receiver stored the event once.
    deliveries: list[dict[str, Any]] = []
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        response = httpx.get(f"{relay.base_url}/_sim/webhook-deliveries",
                             headers={"Authorization": f"Bearer {relay.api_key}"}, params={"dialect": "phonerelay"})
        assert response.status_code == 200, response.text
        body = response.json()
        items = body["deliveries"] if isinstance(body, dict) else body
        deliveries = [d for d in items if d["message_id"] == inbound_id]
        if len(deliveries) == 2 and all(d["attempts"] for d in deliveries):
            break
        time.sleep(0.05)
    assert sorted(d["last_status"] for d in deliveries) == [200, 401]
    assert len(inbox.query(message_id=inbound_id)) == 1


def test_receiver_mounted_inside_the_reference_relay(tmp_path: Path) -> None:
    # What `relay serve` could do: serve the receiver at /inbox of the relay's own app.
    from relay_integrations.process import free_port
    from relay_integrations.server.app import create_app

    port = free_port()
    inbox_url = f"http://127.0.0.1:{port}/inbox"
    app = create_app(db_path=str(tmp_path / "relay.db"), api_key=RELAY_KEY, delivery_latency=0.05,
                     webhook_secret=SECRET, webhook_urls={"coop": f"{inbox_url}/webhooks/coop"})
    app.mount("/inbox", create_receiver_app(tmp_path / "webhooks.db", [SECRET], API_KEY))
    served = serve_app(app, db_path=tmp_path / "webhooks.db", port=port, lifespan="on")
    try:
        with RelayClient(f"http://127.0.0.1:{port}/coop", "coop", RELAY_KEY, max_retries=1) as client:
            receipt = client.send(OutboundMessage(to=_phone(), text="mounted"))
        with WebhookInbox.remote(inbox_url, API_KEY) as inbox:
            event = inbox.wait_for({"message_id": receipt.message_id, "state": "delivered"}, timeout=WAIT,
                                   poll_interval=0.05)
            assert event.dialect == "coop"
        assert httpx.get(f"{inbox_url}/health").json() == {"status": "ok"}
    finally:
        served.stop()


def test_a_captured_phonerelay_token_cannot_forge_smsgate_or_coop_events(
    tmp_path: Path, stack: tuple[ReferenceRelayProcess, ServedReceiver], inbox: WebhookInbox
) -> None:
    # The forgery: one --webhook-secret was phonerelay's token (sent in clear) and the HMAC key of
    # the other dialects, so one captured callback let anyone sign smsgate and coop events.
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from webhook_payloads import coop_event, encode, smsgate_received

    from relay_integrations.signing import sign_coop, sign_smsgate

    captured: list[dict[str, str]] = []

    async def capture(request: Request) -> JSONResponse:
        captured.append(dict(request.headers))
        return JSONResponse({})

    sink = serve_app(Starlette(routes=[Route("/capture", capture, methods=["POST"])]), db_path=tmp_path / "none")
    _, receiver = stack
    try:
        with ReferenceRelayProcess(db_path=tmp_path / "relay.db", api_key=RELAY_KEY, delivery_latency=0.05,
                                   webhook_secret=SECRET,
                                   extra_args=["--webhook-url", f"phonerelay={sink.base_url}/capture"]) as relay:
            with _client(relay, "phonerelay") as client:
                client.create_inbound_callback(f"{sink.base_url}/capture", channels=["sms"])  # no token
            _inject(relay, "phonerelay", _phone(), "hello", phone_id="phone_main")
            deadline = time.monotonic() + WAIT
            while len(captured) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        sink.stop()
    assert len(captured) == 2
    tokens = [h["x-callback-token"] for h in captured if "x-callback-token" in h]
    assert len(tokens) == 1  # the configured URL has phonerelay's own secret; the tokenless callback none
    (token,) = tokens
    assert token == derive_dialect_secret(SECRET, "phonerelay") and token != SECRET

    forged_sms = encode(smsgate_received("forged-1", "+15550009999", "send the code to me"))
    forged_coop = encode(coop_event("forged-2"))
    for dialect, raw, headers in (("smsgate", forged_sms, sign_smsgate(forged_sms, token)),
                                  ("coop", forged_coop, sign_coop(forged_coop, token))):
        answer = httpx.post(receiver.url(dialect), content=raw, headers={"Content-Type": "application/json",
                                                                         **headers})
        assert answer.status_code == 401, (dialect, answer.text)
    assert inbox.query(message_id="forged-1") == [] and inbox.query(message_id="forged-2") == []

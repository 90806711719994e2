"""Webhook bodies shaped exactly like the reference relay's (see the team briefing), signed like it signs them,
and a uvicorn-in-a-thread server for receiver apps."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from relay_integrations.process import free_port
from relay_integrations.signing import derive_dialect_secret, sign_for

SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXdlYmhvb2tz"
OTHER_SECRET = "whsec_b3RoZXItc2VjcmV0LWZvci1yb3RhdGlvbg=="
API_KEY = "inbox-key-7d1e"
DIALECTS = ("smsgate", "coop", "relaysms", "phonerelay")


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def smsgate_status(message_id: str, phone: str, state: str = "delivered", *, envelope_id: str | None = None,
                   reason: str = "") -> dict[str, Any]:
    payload: dict[str, Any] = {"messageId": message_id, "phoneNumber": phone}
    payload[{"sent": "sentAt", "delivered": "deliveredAt", "failed": "failedAt"}[state]] = _now_iso()
    if state == "failed":
        payload["reason"] = reason or "Generic failure"
    return {"deviceId": "dev_ref_1", "event": f"sms:{state}", "id": envelope_id or f"evt_{uuid.uuid4().hex}",
            "webhookId": "wh_1", "payload": payload}


def smsgate_received(message_id: str, sender: str, text: str, *, envelope_id: str | None = None) -> dict[str, Any]:
    return {"deviceId": "dev_ref_1", "event": "sms:received", "id": envelope_id or f"evt_{uuid.uuid4().hex}",
            "webhookId": "wh_2", "payload": {"messageId": message_id, "phoneNumber": sender, "message": text,
                                              "receivedAt": _now_iso(), "simNumber": 1}}


def coop_event(message_id: str, state: str = "delivered", *, to: str = "+15550001111", sender: str = "+19870001111",
               text: str = "hello", error: str | None = None) -> dict[str, Any]:
    return {"event": f"message.{state}", "timestamp": _now_iso(),
            "data": {"id": message_id, "status": state, "to": to, "from": sender, "body": text, "error": error}}


def coop_received(message_id: str, sender: str, text: str, to: str = "+19870001111") -> dict[str, Any]:
    return {"event": "message.received", "timestamp": _now_iso(),
            "data": {"id": message_id, "status": "received", "to": to, "from": sender, "body": text, "error": None}}


def relaysms_status(message_id: str, state: str = "delivered", *, to: str = "+15550002222",
                    sender: str = "+1987654321") -> dict[str, Any]:
    return {"event": "message.status", "message_id": f"SM{message_id[:16]}", "client_reference_id": message_id,
            "status": state, "to": to, "from": sender, "direction": "outbound", "timestamp": _now_iso(),
            "unix_timestamp": int(time.time() * 1000), "error_code": None, "error_message": None,
            "metadata": {"order_id": "12345"}}


def relaysms_inbound(message_id: str, sender: str, text: str, to: str = "+1987654321") -> dict[str, Any]:
    return {"event": "message.inbound", "message_id": message_id, "from": sender, "to": to, "body": text,
            "timestamp": _now_iso(), "unix_timestamp": int(time.time() * 1000), "media_urls": []}


def phonerelay_inbound(message_id: str, source: str, text: str, *, event_type: str = "message",
                       destination: str = "+19870003333") -> dict[str, Any]:
    return {"event": "inbound",
            "subscription": {"id": "cb_1", "callback_url": "http://127.0.0.1/webhooks/phonerelay", "channels": ["sms"]},
            "events": [{"message_id": message_id, "event_type": event_type, "channel": "sms", "source": source,
                        "destination": destination, "text": text, "duration_sec": None, "tags": [],
                        "phone_id": "phone_main", "created_at": _now_iso()}]}


def sample_body(dialect: str, message_id: str) -> dict[str, Any]:
    """One typical delivery per dialect: a delivered status, or (phonerelay, inbound only) a reply."""
    if dialect == "smsgate":
        return smsgate_status(message_id, "+15550000001")
    if dialect == "coop":
        return coop_event(message_id, to="+15550000001")
    if dialect == "relaysms":
        return relaysms_status(message_id, to="+15550000001")
    return phonerelay_inbound(message_id, "+15550000001", "yes please")


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def signed_headers(dialect: str, raw: bytes, secret: str = SECRET, *, event_id: str | None = None,
                   timestamp: int | None = None, verbatim: bool = False) -> dict[str, str]:
    """Headers signed as the relay signs: with ``dialect``'s secret derived from the master ``secret``
    (``verbatim``: with ``secret`` itself, for a receiver given ``DIALECT=SECRET``)."""
    key = secret if verbatim else derive_dialect_secret(secret, dialect)
    headers = sign_for(dialect, raw, key, event_id or f"msg_{uuid.uuid4().hex}", timestamp)
    return {"Content-Type": "application/json", **headers}


@dataclass
class ServedReceiver:
    """An ASGI app served by uvicorn in a daemon thread on 127.0.0.1."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int
    db_path: Path
    api_key: str = API_KEY
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, dialect: str) -> str:
        return f"{self.base_url}/webhooks/{dialect}"

    def post(self, dialect: str, body: dict[str, Any] | bytes, secret: str = SECRET, *,
             event_id: str | None = None, timestamp: int | None = None,
             headers: dict[str, str] | None = None, verbatim: bool = False) -> httpx.Response:
        """POST ``body`` signed as the reference relay signs it (``headers`` replace the signed ones)."""
        raw = body if isinstance(body, bytes) else encode(body)
        sent = headers
        if sent is None:
            sent = signed_headers(dialect, raw, secret, event_id=event_id, timestamp=timestamp, verbatim=verbatim)
        return self.client.post(self.url(dialect), content=raw, headers=sent)

    def events(self, **params: Any) -> list[dict[str, Any]]:
        response = self.client.get(f"{self.base_url}/events", params=params,
                                   headers={"Authorization": f"Bearer {self.api_key}"})
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.client.close()


def serve_app(app: Any, *, db_path: Path, port: int | None = None, lifespan: str = "off") -> ServedReceiver:
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    return ServedReceiver(server=server, thread=thread, port=port, db_path=db_path)

"""Which webhooks a state change or an inbound event produces, with their exact bodies.

Bodies are fixed here, when the event is enqueued in the outbox within the same transaction as
the change it reports; only the signature headers are computed afresh on each delivery attempt.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from relay_integrations.server.common import iso_ms_z, iso_offset, iso_z, new_id
from relay_integrations.server.context import RelayContext, WebhookTarget
from relay_integrations.server.states import RAW_STATE, smsgate_recipients

# (event_id, dialect, url, event, message_id, body, token, next_attempt_at, created_at)
OutboxEntry = tuple[str, str, str, str, "str | None", bytes, "str | None", float, float]


def _body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _entry(dialect: str, url: str, event: str, message_id: str | None, body: bytes, at: float,
           *, event_id: str | None = None, token: str | None = None) -> OutboxEntry:
    return (event_id or new_id("evt_"), dialect, url, event, message_id, body, token, at, at)


def _extra(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    raw = row["extra"]
    return json.loads(raw) if raw else {}


# --- status changes -------------------------------------------------------------------------------


def status_events(ctx: RelayContext, rows: list[sqlite3.Row], at: float) -> list[OutboxEntry]:
    """Webhooks for messages whose state just became ``row["state"]`` (all rows share one dialect or not)."""
    entries: list[OutboxEntry] = []
    for row in rows:
        dialect = row["dialect"]
        if dialect == "relaysms":
            entries.extend(_relaysms_status(ctx, row, at))
        elif dialect == "coop":
            entries.extend(_coop_status(ctx, row, at))
        elif dialect == "smsgate":
            entries.extend(_smsgate_status(ctx, row, at))
    return entries


def _relaysms_status(ctx: RelayContext, row: sqlite3.Row, at: float) -> list[OutboxEntry]:
    state = row["state"]
    if state == "queued":  # "accepted" is the answer to the send itself, not a status change
        return []
    extra = _extra(row)
    url = extra.get("status_callback")
    if not url:
        url = next((t.url for t in ctx.targets("relaysms") if t.event in ("status", None) and t.number is None), None)
    if not url:
        return []
    failed = state == "failed"
    body = {
        "event": "message.status",
        "message_id": row["id"],
        "client_reference_id": row["client_ref"] or row["id"],
        "status": RAW_STATE["relaysms"][state],
        "to": row["to_addr"],
        "from": row["from_addr"],
        "direction": "outbound",
        "timestamp": iso_z(at),
        "unix_timestamp": int(at * 1000),
        "error_code": "DELIVERY_FAILED" if failed else None,
        "error_message": row["error"] if failed else None,
        "metadata": extra.get("metadata") or {},
    }
    return [_entry("relaysms", url, "message.status", row["id"], _body(body), at)]


def _coop_status(ctx: RelayContext, row: sqlite3.Row, at: float) -> list[OutboxEntry]:
    state = row["state"]
    event = {"queued": "message.queued", "sent": "message.sent", "delivered": "message.delivered",
             "failed": "message.failed"}.get(state)
    if event is None:
        return []
    targets = ctx.targets("coop")
    if not targets:
        return []
    body = _body({
        "event": event,
        "timestamp": iso_z(at),
        "data": {"id": row["id"], "status": RAW_STATE["coop"][state], "to": row["to_addr"],
                 "from": row["from_addr"], "body": row["body"], "error": row["error"] if state == "failed" else None},
    })
    return [_entry("coop", t.url, event, row["id"], body, at) for t in targets]


def _smsgate_status(ctx: RelayContext, row: sqlite3.Row, at: float) -> list[OutboxEntry]:
    state = row["state"]
    if state not in ("sent", "delivered", "failed"):
        return []
    targets = ctx.targets("smsgate")
    if not targets:
        return []
    entries: list[OutboxEntry] = []
    for recipient in smsgate_recipients(state, _extra(row)):
        if state == "sent":
            event, payload = "sms:sent", {"sentAt": iso_ms_z(at)}
        elif recipient["state"] == "Failed":
            event, payload = "sms:failed", {"failedAt": iso_ms_z(at), "reason": recipient["error"] or "failed"}
        else:
            event, payload = "sms:delivered", {"deliveredAt": iso_ms_z(at)}
        for t in targets:
            if t.event not in (None, event):
                continue
            event_id = new_id("evt_")
            body = _body({
                "deviceId": ctx.config.device_id, "event": event, "id": event_id, "webhookId": t.id,
                "payload": {"messageId": row["id"], "phoneNumber": recipient["phoneNumber"], **payload},
            })
            entries.append(_entry("smsgate", t.url, event, row["id"], body, at, event_id=event_id))
    return entries


# --- inbound --------------------------------------------------------------------------------------


def phonerelay_event(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    """One inbound event as phonerelay shows it (callbacks and the inbound query)."""
    extra = _extra(row)
    return {
        "message_id": row["id"],
        "event_type": extra.get("event_type", "message"),
        "channel": row["channel"],
        "source": row["from_addr"],
        "destination": row["to_addr"],
        "text": row["body"],
        "duration_sec": extra.get("duration_sec"),
        "tags": extra.get("tags", []),
        "phone_id": extra.get("phone_id"),
        "created_at": iso_offset(row["created_at"]),
    }


def callback_matches(target: WebhookTarget, event: Mapping[str, Any]) -> bool:
    """Whether a phonerelay inbound callback's filters select ``event``."""
    cfg = target.config
    if not cfg.get("active", True):
        return False
    # "Loop sources are auto-filtered": the phone hearing itself (source = destination) is never a callback.
    if event["source"] and event["source"] == event["destination"]:
        return False
    if cfg.get("channels") and event["channel"] not in cfg["channels"]:
        return False
    if cfg.get("event_types") and event["event_type"] not in cfg["event_types"]:
        return False
    if cfg.get("source_filter") and cfg["source_filter"] not in (event["source"] or ""):
        return False
    if cfg.get("keyword_filter") and cfg["keyword_filter"].lower() not in (event["text"] or "").lower():
        return False
    if cfg.get("phone_id") and event.get("phone_id") not in (None, cfg["phone_id"]):
        return False
    # Durations only constrain calls; a text message has none.
    duration = event.get("duration_sec")
    if duration is not None:
        if cfg.get("min_duration_sec") is not None and duration < cfg["min_duration_sec"]:
            return False
        if cfg.get("max_duration_sec") is not None and duration > cfg["max_duration_sec"]:
            return False
    return True


def public_callback(target: WebhookTarget) -> dict[str, Any]:
    """A phonerelay callback as the API shows it: every filter, never the token."""
    cfg = {k: v for k, v in target.config.items() if k != "callback_token"}
    return {"id": target.id, **cfg, "callback_url": target.url, "has_token": bool(target.config.get("callback_token")),
            "created_at": iso_offset(target.created_at)}


def inbound_events(ctx: RelayContext, row: sqlite3.Row | Mapping[str, Any], at: float) -> list[OutboxEntry]:
    dialect = row["dialect"]
    if dialect == "phonerelay":
        event = phonerelay_event(row)
        entries = []
        for t in ctx.targets("phonerelay"):
            if not callback_matches(t, event):
                continue
            body = _body({"event": "inbound", "subscription": public_callback(t), "events": [event]})
            # Only a callback created with a token sends one: its own, never another scheme's secret.
            token = t.config.get("callback_token") or None
            entries.append(_entry("phonerelay", t.url, "inbound", row["id"], body, at, token=token))
        return entries
    if dialect == "relaysms":
        number_url = next((t.url for t in ctx.targets("relaysms") if t.number == row["to_addr"]), None)
        url = number_url or next(
            (t.url for t in ctx.targets("relaysms") if t.event in ("inbound", None) and t.number is None), None)
        if not url:
            return []
        body = _body({
            "event": "message.inbound", "message_id": row["id"], "from": row["from_addr"], "to": row["to_addr"],
            "body": row["body"], "timestamp": iso_z(row["created_at"]),
            "unix_timestamp": int(row["created_at"] * 1000), "media_urls": _extra(row).get("media_urls", []),
        })
        return [_entry("relaysms", url, "message.inbound", row["id"], body, at)]
    if dialect == "coop":
        body = _body({
            "event": "message.received", "timestamp": iso_z(row["created_at"]),
            "data": {"id": row["id"], "status": "received", "to": row["to_addr"], "from": row["from_addr"],
                     "body": row["body"], "error": None},
        })
        return [_entry("coop", t.url, "message.received", row["id"], body, at) for t in ctx.targets("coop")]
    if dialect == "smsgate":
        entries = []
        for t in ctx.targets("smsgate"):
            if t.event not in (None, "sms:received"):
                continue
            event_id = new_id("evt_")
            body = _body({
                "deviceId": ctx.config.device_id, "event": "sms:received", "id": event_id, "webhookId": t.id,
                # As the real app sends it: phoneNumber (the sender, kept for older clients), sender,
                # recipient (the device's own number, when known); the official client needs sender.
                "payload": {k: v for k, v in {
                    "messageId": row["id"], "message": row["body"], "phoneNumber": row["from_addr"],
                    "sender": row["from_addr"], "recipient": row["to_addr"], "receivedAt": iso_ms_z(row["created_at"]),
                    "simNumber": _extra(row).get("sim_number", 1)}.items() if v is not None},
            })
            entries.append(_entry("smsgate", t.url, "sms:received", row["id"], body, at, event_id=event_id))
        return entries
    return []


INSERT_OUTBOX = (
    "INSERT INTO outbox(event_id, dialect, url, event, message_id, body, token, next_attempt_at, created_at) "
    "VALUES (?,?,?,?,?,?,?,?,?)"
)


def enqueue(conn: sqlite3.Connection, entries: list[OutboxEntry]) -> None:
    """Add webhook deliveries to the outbox inside the caller's transaction."""
    if entries:
        conn.executemany(INSERT_OUTBOX, entries)

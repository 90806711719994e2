"""Test hooks under ``/_sim`` (``Authorization: Bearer <configured API key>``).

* ``POST /_sim/inbound`` injects an inbound event (stored, counted by the phonerelay inbound query,
  sent to matching webhooks/callbacks).
* ``GET /_sim/messages`` lists everything stored, in every dialect.
* ``POST /_sim/webhooks`` / ``GET`` / ``DELETE /_sim/webhooks/{id}`` manage webhook targets for
  dialects whose API has no registration endpoint (coop), or any dialect.
* ``GET /_sim/webhook-deliveries`` shows the outbox: every webhook, its attempts and outcome.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from relay_integrations.server.common import (
    ApiError,
    WholeNumber,
    invalid,
    iso_z,
    new_id,
    new_message_id,
    now,
    require_url,
)
from relay_integrations.server.config import DIALECTS
from relay_integrations.server.context import RelayContext
from relay_integrations.server.events import enqueue, inbound_events
from relay_integrations.server.outbox import delivery_view
from relay_integrations.server.states import INBOUND_STATE, raw_state
from relay_integrations.server.store import dumps, insert_message, loads_extra, message_row

DialectName = Literal["phonerelay", "relaysms", "coop", "smsgate"]
_ID_PREFIX = {"phonerelay": "in_", "relaysms": "", "coop": "msg_", "smsgate": ""}


class InboundBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    dialect: DialectName
    channel: str = Field("sms", min_length=1, max_length=32)
    from_: str = Field(alias="from", min_length=1, max_length=320)
    to: str | None = Field(None, max_length=320)
    text: str | None = Field(None, max_length=100_000)
    event_type: Literal["message", "call", "missed", "answered"] = "message"
    duration_sec: float | None = Field(None, ge=0, allow_inf_nan=False)
    tags: list[str] = Field(default_factory=list)
    phone_id: str | None = None
    media_urls: list[str] = Field(default_factory=list)
    sim_number: WholeNumber | None = Field(None, ge=1, le=3)


class SimWebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dialect: DialectName
    url: str = Field(min_length=1, max_length=2000)
    event: str | None = None
    callback_token: str | None = None


def stored_view(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"], "dialect": row["dialect"], "direction": row["direction"], "channel": row["channel"],
        "state": row["state"], "raw_state": raw_state(row["dialect"], row["state"]),
        "to": row["to_addr"], "from": row["from_addr"], "text": row["body"],
        "idempotency_key": row["idem_key"], "client_reference_id": row["client_ref"], "batch_id": row["batch_id"],
        "batch_index": row["batch_index"], "priority": row["priority"], "attempts": row["attempts"],
        "error": row["error"], "segments": row["segments"], "created_at": iso_z(row["created_at"]),
        "sending_at": iso_z(row["sending_at"]), "sent_at": iso_z(row["sent_at"]), "final_at": iso_z(row["final_at"]),
        "updated_at": iso_z(row["updated_at"]), "extra": loads_extra(row),
    }


def build_router(ctx: RelayContext) -> APIRouter:
    router = APIRouter(prefix="/_sim", tags=["simulation"])
    store = ctx.store

    def auth(request: Request) -> None:
        ctx.require_bearer(request)

    @router.post("/inbound", status_code=201, summary="Inject an inbound event")
    async def inject_inbound(body: InboundBody, request: Request) -> JSONResponse:
        auth(request)
        if body.event_type == "message" and not body.text:
            raise invalid("text", "is required for event_type message")
        if body.event_type != "message" and body.dialect != "phonerelay":
            raise invalid("event_type", "calls (call/missed/answered) exist only on phonerelay")
        to = body.to
        if to is None and body.dialect == "relaysms":
            to = ctx.config.numbers[0]
        t = now()
        message_id = new_message_id(_ID_PREFIX[body.dialect])
        extra = {"event_type": body.event_type, "duration_sec": body.duration_sec, "tags": body.tags,
                 "phone_id": body.phone_id, "media_urls": body.media_urls, "sim_number": body.sim_number or 1}
        row = message_row(id=message_id, dialect=body.dialect, direction="inbound", channel=body.channel,
                          state=INBOUND_STATE, to_addr=to, from_addr=body.from_, body=body.text, created_at=t,
                          final_at=t, extra=extra)

        def _tx(conn: sqlite3.Connection) -> int:
            if not insert_message(conn, row):
                raise ApiError(503, "could not store the event, try again")
            stored = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
            entries = inbound_events(ctx, stored, t)
            enqueue(conn, entries)
            return len(entries)

        webhooks = store.write(_tx)
        stored = store.query_one("SELECT * FROM messages WHERE id = ?", (message_id,))
        assert stored is not None
        return JSONResponse({**stored_view(stored), "webhooks_enqueued": webhooks}, status_code=201)

    @router.get("/messages", summary="Everything stored")
    async def list_stored(request: Request, dialect: str | None = None, direction: str | None = None,
                          after: int = 0, limit: int = 100_000) -> JSONResponse:
        auth(request)
        if dialect is not None and dialect not in DIALECTS:
            raise invalid("dialect", f"must be one of {', '.join(DIALECTS)}")
        if direction is not None and direction not in ("inbound", "outbound"):
            raise invalid("direction", "must be inbound or outbound")
        if not 1 <= limit <= 100_000:
            raise invalid("limit", "must be between 1 and 100000")
        if not 0 <= after <= 2**62:
            raise invalid("after", "must be a cursor from next_after")
        where: list[str] = ["seq > ?"]
        params: list[Any] = [after]
        if dialect:
            where.append("dialect = ?")
            params.append(dialect)
        if direction:
            where.append("direction = ?")
            params.append(direction)
        rows = store.query(f"SELECT * FROM messages WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                           [*params, limit])
        items = [{**stored_view(r), "cursor": r["seq"]} for r in rows]
        return JSONResponse({"messages": items, "count": len(items),
                             "next_after": rows[-1]["seq"] if rows else after})

    @router.post("/webhooks", status_code=201, summary="Register a webhook target")
    async def add_webhook(body: SimWebhookBody, request: Request) -> JSONResponse:
        auth(request)
        require_url("url", body.url)
        target_id = new_id("sim_")
        config: dict[str, Any] = {}
        event = body.event
        if body.dialect == "phonerelay":
            config = {"callback_url": body.url, "active": True,
                      "callback_token": body.callback_token or ctx.config.webhook_secret_for("phonerelay")}
        t = now()
        store.write(lambda c: c.execute(
            "INSERT INTO webhooks(id, dialect, url, event, number, config, created_at) VALUES (?,?,?,?,NULL,?,?)",
            (target_id, body.dialect, body.url, event, dumps(config), t)))
        ctx.reload_targets()
        return JSONResponse({"id": target_id, "dialect": body.dialect, "url": body.url, "event": event},
                            status_code=201)

    @router.get("/webhooks", summary="List webhook targets")
    async def list_webhooks(request: Request, dialect: str | None = None) -> JSONResponse:
        auth(request)
        targets = [t for d in DIALECTS if dialect in (None, d) for t in ctx.targets(d)]
        return JSONResponse({"webhooks": [{"id": t.id, "dialect": t.dialect, "url": t.url, "event": t.event,
                                           "number": t.number} for t in targets]})

    @router.delete("/webhooks/{target_id}", summary="Remove a webhook target")
    async def delete_webhook(target_id: str, request: Request) -> JSONResponse:
        auth(request)
        deleted = store.write(lambda c: c.execute("DELETE FROM webhooks WHERE id = ?", (target_id,)).rowcount)
        if not deleted:
            raise ApiError(404, f"webhook target {target_id!r} not found")
        ctx.reload_targets()
        return JSONResponse({"deleted": target_id})

    @router.get("/webhook-deliveries", summary="The webhook outbox")
    async def deliveries(request: Request, dialect: str | None = None, status: str | None = None,
                         message_id: str | None = None, limit: int = 1000) -> JSONResponse:
        auth(request)
        if not 1 <= limit <= 100_000:
            raise invalid("limit", "must be between 1 and 100000")
        where, params = ["1 = 1"], []
        for column, value in (("dialect", dialect), ("status", status), ("message_id", message_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = store.query(f"SELECT * FROM outbox WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                           [*params, limit])
        counts = {r[0]: r[1] for r in store.query("SELECT status, COUNT(*) FROM outbox GROUP BY status")}
        return JSONResponse({"deliveries": [delivery_view(r) for r in rows], "count": len(rows), "totals": counts})

    return router

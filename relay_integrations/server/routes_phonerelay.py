"""phonerelay (phonerelay.md): send with idempotency keys, status, list, health, inbound query, callbacks."""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import JSONResponse

from relay_integrations.server.common import (
    CHAT_ID,
    MAX_OFFSET,
    USERNAME,
    ApiError,
    WholeNumber,
    invalid,
    is_e164,
    is_email,
    iso_offset,
    new_id,
    new_message_id,
    now,
    require_url,
)
from relay_integrations.server.context import RelayContext, WebhookTarget
from relay_integrations.server.delivery import decide_fail_mode, first_step_at
from relay_integrations.server.events import public_callback
from relay_integrations.server.states import internal_states_for, raw_state
from relay_integrations.server.stats import InboundQueryBody, inbound_query, query_from_params
from relay_integrations.server.store import dumps, insert_message, loads_extra, message_row

DIALECT = "phonerelay"
Channel = Literal["sms", "wa", "tg", "notify", "email", "tg_bot", "pchat"]
SERVER_SIDE_CHANNELS = ("email", "tg_bot")  # "may be delivered server-side and return status: sent immediately"


class SendBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    phone_id: str = Field(min_length=1, max_length=200, description="The phone device identifier you configured.")
    channel: Channel
    to: str | None = Field(None, max_length=320, description="Required for sms/wa/tg/email.")
    text: str = Field(min_length=1, max_length=100_000)
    source: str | None = Field(None, max_length=200)
    idempotency_key: str | None = Field(None, min_length=1, max_length=255)
    subject: str | None = Field(None, max_length=998)
    title: str | None = Field(None, max_length=998)
    bot_token: str | None = Field(None, max_length=200)
    tags: list[str] | None = None


class CallbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    callback_url: str = Field(min_length=1, max_length=2000)
    channels: list[Channel] | None = None
    source_filter: str | None = None
    event_types: list[Literal["message", "call", "missed", "answered"]] | None = None
    keyword_filter: str | None = None
    min_duration_sec: WholeNumber | None = Field(None, ge=0)
    max_duration_sec: WholeNumber | None = Field(None, ge=0)
    callback_token: str | None = Field(None, max_length=500)
    active: StrictBool = True
    phone_id: str | None = None


def _check_recipient(body: SendBody) -> None:
    ch, to = body.channel, body.to
    if ch in ("sms", "wa", "tg", "email") and not to:
        raise invalid("to", f"is required for channel {ch}")
    if to is None:
        if ch == "tg_bot":
            raise invalid("to", "is required for channel tg_bot (a chat id or @channel)")
        return
    if ch in ("sms", "wa") and not is_e164(to):
        raise invalid("to", f"{to!r} is not an E.164 phone number (+ and 7 to 15 digits)")
    if ch == "tg" and not (USERNAME.fullmatch(to) or is_e164(to) or CHAT_ID.fullmatch(to)):
        raise invalid("to", f"{to!r} is not a Telegram @username, phone number or chat id")
    if ch == "email" and not is_email(to):
        raise invalid("to", f"{to!r} is not an email address")
    if ch == "tg_bot" and not (CHAT_ID.fullmatch(to) or USERNAME.fullmatch(to)):
        raise invalid("to", f"{to!r} is not a Telegram chat id or @channel")
    if ch == "email" and not body.subject:
        raise invalid("subject", "is required for channel email")
    if ch == "tg_bot" and not body.bot_token:
        raise invalid("bot_token", "is required for channel tg_bot")


def message_view(row: sqlite3.Row) -> dict[str, Any]:
    extra = loads_extra(row)
    return {
        "message_id": row["id"],
        "status": raw_state(DIALECT, row["state"]),
        "last_error": row["error"],
        "created_at": iso_offset(row["created_at"]),
        "delivered_at": iso_offset(row["final_at"]) if row["state"] == "delivered" else None,
        "channel": row["channel"],
        "direction": row["direction"],
        "to": row["to_addr"],
        "from": row["from_addr"],
        "text": row["body"],
        "phone_id": extra.get("phone_id"),
        "source": extra.get("source"),
        "idempotency_key": row["idem_key"],
        "sent_at": iso_offset(row["sent_at"]),
        "failed_at": iso_offset(row["final_at"]) if row["state"] == "failed" else None,
        "updated_at": iso_offset(row["updated_at"]),
    }


def build_router(ctx: RelayContext) -> APIRouter:
    router = APIRouter(tags=["phonerelay"])
    store = ctx.store

    def auth(request: Request) -> None:
        ctx.require_bearer(request)

    @router.get("/health", summary="Health")
    async def health() -> JSONResponse:
        return JSONResponse({"success": True, "ok": True, "status": "ok", "service": DIALECT})

    @router.post("/api/v1/messages", status_code=202, summary="Send a message")
    async def send_message(body: SendBody, request: Request) -> JSONResponse:
        auth(request)
        _check_recipient(body)
        t = now()
        message_id = new_message_id("msg_")
        server_side = body.channel in SERVER_SIDE_CHANNELS
        extra = {"phone_id": body.phone_id, "source": body.source, "subject": body.subject, "title": body.title,
                 "tags": body.tags or []}
        row = message_row(
            id=message_id, dialect=DIALECT, channel=body.channel, state="sent" if server_side else "queued",
            to_addr=body.to, body=body.text, idem_key=body.idempotency_key,
            fail_mode=decide_fail_mode(ctx, message_id, body.to), created_at=t,
            sending_at=t if server_side else None, sent_at=t if server_side else None,
            attempts=1 if server_side else 0, next_at=first_step_at(ctx, t), extra=extra,
        )

        def _tx(conn: sqlite3.Connection) -> sqlite3.Row | None:
            if insert_message(conn, row):
                return None
            existing: sqlite3.Row | None = conn.execute(
                "SELECT * FROM messages WHERE dialect = ? AND idem_key = ?", (DIALECT, body.idempotency_key)
            ).fetchone()
            if existing is None:
                raise ApiError(503, "could not store the message, try again")
            return existing

        existing = store.write(_tx)
        if existing is not None:
            return JSONResponse({"success": True, "duplicate": True, "message_id": existing["id"],
                                 "status": raw_state(DIALECT, existing["state"]),
                                 "idempotency_key": existing["idem_key"]}, status_code=200)
        return JSONResponse({"success": True, "message_id": message_id,
                             "status": "sent" if server_side else "queued",
                             "idempotency_key": body.idempotency_key}, status_code=202)

    @router.get("/api/v1/messages/{message_id}", summary="Check status")
    async def get_message(message_id: str, request: Request) -> JSONResponse:
        auth(request)
        row = store.query_one("SELECT * FROM messages WHERE id = ? AND dialect = ?", (message_id, DIALECT))
        if row is None:
            raise ApiError(404, f"message {message_id!r} not found")
        return JSONResponse({"success": True, "message": message_view(row)})

    @router.get("/api/v1/messages", summary="List recent")
    async def list_messages(request: Request, limit: int = 50, offset: int = 0, status: str | None = None,
                            channel: str | None = None, direction: Literal["outbound", "inbound"] | None = None,
                            ) -> JSONResponse:
        auth(request)
        if not 1 <= limit <= 500:
            raise invalid("limit", "must be between 1 and 500")
        if not 0 <= offset <= MAX_OFFSET:
            raise invalid("offset", f"must be between 0 and {MAX_OFFSET}")
        where, params = ["dialect = ?"], [DIALECT]
        if status:
            states = internal_states_for(DIALECT, status)
            if not states:
                raise invalid("status", "must be one of queued, sending, sent, failed")
            where.append(f"state IN ({','.join('?' for _ in states)})")
            params.extend(states)
        if channel:
            where.append("channel = ?")
            params.append(channel)
        if direction:
            where.append("direction = ?")
            params.append(direction)
        sql = f"SELECT * FROM messages WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ? OFFSET ?"
        rows = store.query(sql, [*params, limit + 1, offset])
        views = [message_view(r) for r in rows[:limit]]
        return JSONResponse({"success": True, "messages": views, "count": len(views), "limit": limit,
                             "offset": offset, "has_more": len(rows) > limit})

    # --- inbound traffic ----------------------------------------------------------------------
    @router.post("/api/v1/webchat/inbound/query", summary="Query inbound stats")
    async def query_inbound_post(body: InboundQueryBody, request: Request) -> JSONResponse:
        auth(request)
        return JSONResponse(inbound_query(ctx, body))

    @router.get("/api/v1/webchat/inbound/query", summary="Query inbound stats (query string)")
    async def query_inbound_get(request: Request) -> JSONResponse:
        auth(request)
        return JSONResponse(inbound_query(ctx, query_from_params(request.query_params)))

    @router.get("/api/v1/webchat/callbacks/inbound", summary="List inbound callbacks")
    async def list_callbacks(request: Request) -> JSONResponse:
        auth(request)
        callbacks = [public_callback(t) for t in ctx.targets(DIALECT)]
        return JSONResponse({"success": True, "callbacks": callbacks, "count": len(callbacks)})

    @router.post("/api/v1/webchat/callbacks/inbound", status_code=201, summary="Create callback with filters")
    async def create_callback(body: CallbackBody, request: Request) -> JSONResponse:
        auth(request)
        require_url("callback_url", body.callback_url)
        t = now()
        target = WebhookTarget(id=new_id("cb_"), dialect=DIALECT, url=body.callback_url,
                               config=body.model_dump(exclude_none=True), created_at=t)
        store.write(lambda c: c.execute(
            "INSERT INTO webhooks(id, dialect, url, event, number, config, created_at) VALUES (?,?,?,?,?,?,?)",
            (target.id, DIALECT, target.url, "inbound", None, dumps(target.config), t)))
        ctx.reload_targets()
        return JSONResponse({"success": True, "callback": public_callback(target)}, status_code=201)

    @router.delete("/api/v1/webchat/callbacks/inbound", summary="Delete a callback")
    async def delete_callback(request: Request, id: str | None = None) -> JSONResponse:
        auth(request)
        callback_id = id
        if callback_id is None:
            try:
                payload = await request.json() if await request.body() else {}
            except ValueError:
                raise invalid("body", "malformed JSON") from None
            callback_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(callback_id, str) or not callback_id:
            raise invalid("id", "the callback id is required (query ?id= or JSON {\"id\": ...})")
        deleted = store.write(lambda c: c.execute(
            "DELETE FROM webhooks WHERE id = ? AND dialect = ?", (callback_id, DIALECT)).rowcount)
        if not deleted:
            raise ApiError(404, f"callback {callback_id!r} not found")
        ctx.reload_targets()
        return JSONResponse({"success": True, "deleted": callback_id})

    return router

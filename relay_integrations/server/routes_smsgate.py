"""smsgate (smsgate.md + the real SMS Gateway for Android API): messages with per-recipient states,
client ids that answer 409 when repeated, webhooks and JWT tokens.

Send and get answer with the full message state (``id``, ``deviceId``, ``state``, ``isHashed``,
``isEncrypted``, ``recipients``, ``states``), a superset of the doc's ``{"id"}``, like the real server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from relay_integrations.dialects.smsgate import rollup_state
from relay_integrations.server.common import (
    MAX_OFFSET,
    ApiError,
    invalid,
    is_e164,
    iso_ms_z,
    new_id,
    now,
    require_url,
    seeded_fraction,
)
from relay_integrations.server.context import RelayContext, WebhookTarget
from relay_integrations.server.delivery import PERMANENT_ERROR, TRANSIENT_ERROR, first_step_at, step_seconds
from relay_integrations.server.states import FINAL_STATES, internal_states_for, smsgate_recipients
from relay_integrations.server.store import MESSAGE_COLUMNS, dumps, insert_message, loads_extra, message_row

DIALECT = "smsgate"
MAX_RECIPIENTS = 100
WebhookEvent = Literal["sms:received", "sms:sent", "sms:delivered", "sms:failed", "system:ping"]


class TextMessage(BaseModel):
    text: str = Field(min_length=1, max_length=65_535)


class SendBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = Field(None, min_length=1, max_length=36, description="Client-chosen id; a repeat gets 409.")
    phoneNumbers: list[str] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    textMessage: TextMessage | None = None
    message: str | None = Field(None, min_length=1, description="Legacy plain text (use textMessage).")
    simNumber: int | None = Field(None, ge=1, le=3)
    withDeliveryReport: bool = True
    priority: int = Field(0, ge=-128, le=127)
    scheduleAt: datetime | None = None
    validUntil: datetime | None = None
    ttl: int | None = Field(None, ge=0)
    isEncrypted: bool = False
    deviceId: str | None = None


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=36)
    url: str = Field(min_length=1, max_length=2000)
    event: WebhookEvent
    deviceId: str | None = None


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl: int = Field(3600, ge=60, le=31 * 86400)
    scopes: list[str] = Field(default_factory=lambda: ["all:any"])


def _timestamp(field: str, value: datetime | None) -> float | None:
    """Unix seconds of a request datetime; one without a zone is taken as UTC."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    except (ValueError, OverflowError):
        raise invalid(field, "is out of range") from None


def message_state(row: sqlite3.Row | Mapping[str, Any], device_id: str) -> dict[str, Any]:
    extra = loads_extra(row)
    recipients = smsgate_recipients(row["state"], extra)
    state = rollup_state([r["state"] for r in recipients])
    states: dict[str, str | None] = {"Pending": iso_ms_z(row["created_at"])}
    if row["sending_at"]:
        states["Processed"] = iso_ms_z(row["sending_at"])
    if row["sent_at"]:
        states["Sent"] = iso_ms_z(row["sent_at"])
    if row["state"] in FINAL_STATES:
        rstates = {r["state"] for r in recipients}
        for name in ("Delivered", "Failed"):
            if name in rstates:
                states[name] = iso_ms_z(row["final_at"])
    return {
        "id": row["id"],
        "deviceId": device_id,
        "state": state,
        "isHashed": False,
        "isEncrypted": bool(extra.get("isEncrypted", False)),
        "recipients": recipients,
        "states": states,
        "createdAt": iso_ms_z(row["created_at"]),
    }


def webhook_view(t: WebhookTarget, device_id: str) -> dict[str, Any]:
    return {"id": t.id, "url": t.url, "event": t.event, "deviceId": t.config.get("deviceId") or device_id}


def build_router(ctx: RelayContext) -> APIRouter:
    router = APIRouter(tags=["smsgate"])
    store = ctx.store
    cfg = ctx.config

    def auth(request: Request) -> None:
        ctx.require_smsgate(request)

    @router.post("/api/3rdparty/v1/messages", summary="Queue an SMS")
    async def send_message(body: SendBody, request: Request, skipPhoneValidation: bool = False) -> JSONResponse:
        auth(request)
        text = body.textMessage.text if body.textMessage else body.message
        if not text:
            raise invalid("textMessage.text", "is required")
        if not skipPhoneValidation:
            for i, number in enumerate(body.phoneNumbers):
                if not is_e164(number):
                    raise invalid(f"phoneNumbers[{i}]", f"{number!r} is not an E.164 phone number (+ and 7 to 15 "
                                  "digits)")
        valid_until = _timestamp("validUntil", body.validUntil)
        schedule_at = _timestamp("scheduleAt", body.scheduleAt)
        if valid_until is not None and valid_until < now():
            raise invalid("validUntil", "is in the past")
        t = now()
        message_id = body.id or new_id()
        recipients = []
        for number in body.phoneNumbers:
            if number.endswith("0000"):
                recipients.append({"phoneNumber": number, "fail": True, "error": PERMANENT_ERROR})
            elif cfg.failure_rate > 0 and seeded_fraction(cfg.seed, f"{message_id}:{number}") < cfg.failure_rate:
                recipients.append({"phoneNumber": number, "fail": True, "error": TRANSIENT_ERROR})
            else:
                recipients.append({"phoneNumber": number, "fail": False})
        all_fail = all(r["fail"] for r in recipients)
        next_at = first_step_at(ctx, t)
        if schedule_at is not None:
            next_at = max(next_at, schedule_at + step_seconds(cfg.delivery_latency))
        row = message_row(
            id=message_id, dialect=DIALECT, state="queued", to_addr=",".join(body.phoneNumbers), body=text,
            client_ref=body.id, priority=body.priority, fail_mode=1 if all_fail else 0, created_at=t, next_at=next_at,
            extra={"recipients": recipients, "simNumber": body.simNumber, "isEncrypted": body.isEncrypted,
                   "withDeliveryReport": body.withDeliveryReport,
                   "scheduleAt": body.scheduleAt.isoformat() if body.scheduleAt else None,
                   "validUntil": body.validUntil.isoformat() if body.validUntil else None},
        )
        if not store.write(lambda c: insert_message(c, row)):
            raise ApiError(409, f"message with id {message_id!r} already exists", field="id")
        # The row as stored, without reading it back: a fresh message is Pending with no later stamps.
        fresh = dict(zip(MESSAGE_COLUMNS, row, strict=True))
        return JSONResponse(message_state(fresh, cfg.device_id), status_code=200)

    @router.get("/api/3rdparty/v1/messages", summary="List messages")
    async def list_messages(request: Request, skip: int = 0, limit: int = 20, state: str | None = None) -> Response:
        auth(request)
        if not 0 <= skip <= MAX_OFFSET:
            raise invalid("skip", f"must be between 0 and {MAX_OFFSET}")
        if not 1 <= limit <= 100:
            raise invalid("limit", "must be between 1 and 100")
        where, params = ["dialect = ?", "direction = 'outbound'"], [DIALECT]
        if state:
            if state not in ("Pending", "Processed", "Sent", "Delivered", "Failed"):
                raise invalid("state", "must be Pending, Processed, Sent, Delivered or Failed")
            states = internal_states_for(DIALECT, state)
            where.append(f"state IN ({','.join('?' for _ in states)})")
            params.extend(states)
        clause = " AND ".join(where)
        total = store.query_one(f"SELECT COUNT(*) AS n FROM messages WHERE {clause}", params)["n"]  # type: ignore[index]
        rows = store.query(f"SELECT * FROM messages WHERE {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
                           [*params, limit, skip])
        return JSONResponse([message_state(r, cfg.device_id) for r in rows], headers={"X-Total-Count": str(total)})

    @router.get("/api/3rdparty/v1/messages/{message_id}", summary="Get full status and recipient states")
    async def get_message(message_id: str, request: Request) -> JSONResponse:
        auth(request)
        row = store.query_one("SELECT * FROM messages WHERE id = ? AND dialect = ?", (message_id, DIALECT))
        if row is None:
            raise ApiError(404, f"message {message_id!r} not found")
        return JSONResponse(message_state(row, cfg.device_id))

    # --- webhooks (real product) ------------------------------------------------------------
    @router.get("/api/3rdparty/v1/webhooks", summary="List webhooks")
    async def list_webhooks(request: Request) -> JSONResponse:
        auth(request)
        return JSONResponse([webhook_view(t, cfg.device_id) for t in ctx.targets(DIALECT)])

    @router.post("/api/3rdparty/v1/webhooks", status_code=201, summary="Register a webhook")
    async def register_webhook(body: WebhookBody, request: Request) -> JSONResponse:
        auth(request)
        require_url("url", body.url)
        webhook_id = body.id or new_id()
        t = now()
        config = {"deviceId": body.deviceId} if body.deviceId else {}
        store.write(lambda c: c.execute(
            "INSERT INTO webhooks(id, dialect, url, event, number, config, created_at) VALUES (?,?,?,?,NULL,?,?) "
            "ON CONFLICT(id) DO UPDATE SET url = excluded.url, event = excluded.event, config = excluded.config",
            (webhook_id, DIALECT, body.url, body.event, dumps(config), t)))
        ctx.reload_targets()
        target = WebhookTarget(id=webhook_id, dialect=DIALECT, url=body.url, event=body.event, config=config)
        return JSONResponse(webhook_view(target, cfg.device_id), status_code=201)

    @router.delete("/api/3rdparty/v1/webhooks/{webhook_id}", status_code=204, summary="Delete a webhook")
    async def delete_webhook(webhook_id: str, request: Request) -> Response:
        auth(request)
        deleted = store.write(lambda c: c.execute(
            "DELETE FROM webhooks WHERE id = ? AND dialect = ?", (webhook_id, DIALECT)).rowcount)
        if not deleted:
            raise ApiError(404, f"webhook {webhook_id!r} not found")
        ctx.reload_targets()
        return Response(status_code=204)

    # --- JWT ----------------------------------------------------------------------------------
    @router.post("/api/3rdparty/v1/auth/token", status_code=201, summary="Issue a JWT (Basic auth)")
    async def issue_token(request: Request, body: TokenBody | None = None) -> JSONResponse:
        ctx.require_smsgate(request, basic_only=True)
        b = body or TokenBody.model_validate({})
        token, token_id, expires = ctx.issue_jwt(b.ttl, b.scopes)
        return JSONResponse({"id": token_id, "token_type": "Bearer", "access_token": token,
                             "expires_at": iso_ms_z(expires)}, status_code=201)

    return router

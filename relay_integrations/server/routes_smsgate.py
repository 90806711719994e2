"""smsgate (smsgate.md + the real SMS Gateway for Android API): messages with per-recipient states,
client ids that answer 409 when repeated, webhooks and JWT tokens.

Send and get answer with the full message state (``id``, ``deviceId``, ``state``, ``isHashed``,
``isEncrypted``, ``recipients``, ``states``), a superset of the doc's ``{"id"}``, like the real server.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.responses import JSONResponse, Response

from relay_integrations.dialects.smsgate import rollup_state
from relay_integrations.server.common import (
    MAX_OFFSET,
    ApiError,
    DateTimeString,
    WholeNumber,
    invalid,
    is_e164,
    iso_ms_z,
    new_id,
    new_message_id,
    now,
    require_url,
    seeded_fraction,
)
from relay_integrations.server.context import IssuedToken, RelayContext, WebhookTarget
from relay_integrations.server.delivery import PERMANENT_ERROR, TRANSIENT_ERROR, first_step_at, step_seconds
from relay_integrations.server.states import FINAL_STATES, internal_states_for, smsgate_recipients
from relay_integrations.server.store import MESSAGE_COLUMNS, dumps, insert_message, loads_extra, message_row

DIALECT = "smsgate"
MAX_RECIPIENTS = 100
CANCELLED_ERROR = "Cancelled by the API client"
WebhookEvent = Literal["sms:received", "sms:sent", "sms:delivered", "sms:failed", "system:ping"]


class TextMessage(BaseModel):
    text: str = Field(min_length=1, max_length=65_535)


class SendBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = Field(None, min_length=1, max_length=36, description="Client-chosen id; a repeat gets 409.")
    phoneNumbers: list[str] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    textMessage: TextMessage | None = None
    message: str | None = Field(None, min_length=1, description="Legacy plain text (use textMessage).")
    simNumber: WholeNumber | None = Field(None, ge=1, le=3)
    withDeliveryReport: StrictBool = True
    priority: WholeNumber = Field(0, ge=-128, le=127)
    scheduleAt: DateTimeString | None = None
    validUntil: DateTimeString | None = None
    ttl: WholeNumber | None = Field(None, ge=0)
    isEncrypted: StrictBool = False
    deviceId: str | None = None


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=36)
    url: str = Field(min_length=1, max_length=2000)
    event: WebhookEvent
    deviceId: str | None = None


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl: WholeNumber = Field(3600, ge=60, le=31 * 86400)
    scopes: list[str] = Field(default_factory=lambda: ["all:any"], max_length=64,
                              description="messages:send, messages:read, messages:list, messages:cancel, "
                                          "webhooks:list, webhooks:write, webhooks:delete, devices:list, "
                                          "tokens:manage, or all:any")


def _timestamp(field: str, value: datetime | None) -> float | None:
    """Unix seconds of a request datetime; one without a zone is taken as UTC."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    except (ValueError, OverflowError):
        raise invalid(field, "is out of range") from None


_LOOSE_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(field: str, value: str | None) -> float | None:
    """Unix seconds of an RFC 3339 query value (not a bare number, which pydantic would read as one)."""
    if value is None:
        return None
    if not _RFC3339.fullmatch(value):
        raise invalid(field, "must be an RFC 3339 date-time such as 2025-01-31T12:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise invalid(field, "must be an RFC 3339 date-time such as 2025-01-31T12:00:00Z") from None
    return _timestamp(field, parsed)


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
        for name in ("Delivered", "Failed", "Cancelled"):
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

    def auth(request: Request, scope: str | tuple[str, ...]) -> None:
        ctx.require_smsgate(request, scope=scope)

    @router.post("/api/3rdparty/v1/messages", summary="Queue an SMS",
                 description="phoneNumbers must be E.164. Like the real server, `?skipPhoneValidation=true` "
                             "lifts that to any 3 to 20 digits with an optional +; it is left out of the "
                             "parameters here because JSON Schema cannot make a body rule depend on it.")
    async def send_message(body: SendBody, request: Request,
                           skipPhoneValidation: bool = Query(False, include_in_schema=False)) -> JSONResponse:
        auth(request, "messages:send")
        text = body.textMessage.text if body.textMessage else body.message
        if not text:
            raise invalid("textMessage.text", "is required")
        for i, number in enumerate(body.phoneNumbers):
            if skipPhoneValidation and _LOOSE_NUMBER.fullmatch(number):
                continue
            if not is_e164(number):
                raise invalid(f"phoneNumbers[{i}]", f"{number!r} is not an E.164 phone number (+ and 7 to 15 "
                              "digits)")
        valid_until = _timestamp("validUntil", body.validUntil)
        schedule_at = _timestamp("scheduleAt", body.scheduleAt)
        t = now()
        # Like the app: a message whose validUntil has passed is not sent; it fails (it is not bad input).
        expired = valid_until is not None and valid_until < t
        message_id = body.id or new_message_id()
        recipients = []
        for number in body.phoneNumbers:
            if expired:
                recipients.append({"phoneNumber": number, "fail": True, "error": "Message expired (validUntil)"})
            elif number.endswith("0000"):
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
    async def list_messages(
        request: Request,
        offset: int | None = Query(None, ge=0, le=MAX_OFFSET, description="Messages to skip (the real server's name)."),
        skip: int | None = Query(None, ge=0, le=MAX_OFFSET, description="Older name of offset."),
        limit: int = Query(50, ge=1, le=100),
        sort: Literal["created_at", "-created_at"] = "-created_at",
        state: Literal["Pending", "Processed", "Sent", "Delivered", "Failed", "Cancelled"] | None = None,
        from_: str | None = Query(None, alias="from", description="Created at or after (RFC 3339).",
                                  json_schema_extra={"format": "date-time"}),
        to: str | None = Query(None, description="Created before (RFC 3339).",
                               json_schema_extra={"format": "date-time"}),
        deviceId: str | None = Query(None, max_length=64),
    ) -> Response:
        auth(request, ("messages:list", "messages:read"))
        start = offset if offset is not None else (skip or 0)
        order = "ASC" if sort == "created_at" else "DESC"
        where: list[str] = ["dialect = ?", "direction = 'outbound'"]
        params: list[Any] = [DIALECT]
        since, until = _rfc3339("from", from_), _rfc3339("to", to)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("created_at < ?")
            params.append(until)
        if deviceId is not None and deviceId != cfg.device_id:
            return JSONResponse([], headers={"X-Total-Count": "0"})
        if state is None:
            clause = " AND ".join(where)
            total = store.query_one(f"SELECT COUNT(*) AS n FROM messages WHERE {clause}", params)["n"]  # type: ignore[index]
            rows = store.query(f"SELECT * FROM messages WHERE {clause} ORDER BY created_at {order}, seq {order} "
                               "LIMIT ? OFFSET ?", [*params, limit, start])
            page = [message_state(r, cfg.device_id) for r in rows]
        else:
            # The state shown rolls up from the recipients (a delivered message with one failed
            # recipient is Sent), so filter on the rolled-up state, not the stored one.
            candidates = set(internal_states_for(DIALECT, state))
            if state in ("Sent", "Delivered", "Failed", "Cancelled"):
                candidates.update(FINAL_STATES)
            where.append(f"state IN ({','.join('?' for _ in candidates)})")
            params.extend(sorted(candidates))
            rows = store.query(f"SELECT * FROM messages WHERE {' AND '.join(where)} "
                               f"ORDER BY created_at {order}, seq {order}", params)
            matching = [m for m in (message_state(r, cfg.device_id) for r in rows) if m["state"] == state]
            total = len(matching)
            page = matching[start:start + limit]
        return JSONResponse(page, headers={"X-Total-Count": str(total)})

    @router.get("/api/3rdparty/v1/messages/{message_id}", summary="Get full status and recipient states")
    async def get_message(message_id: str, request: Request) -> JSONResponse:
        auth(request, "messages:read")
        row = store.query_one("SELECT * FROM messages WHERE id = ? AND dialect = ?", (message_id, DIALECT))
        if row is None:
            raise ApiError(404, f"message {message_id!r} not found")
        return JSONResponse(message_state(row, cfg.device_id))

    @router.delete("/api/3rdparty/v1/messages/{message_id}", status_code=204, summary="Cancel a pending message")
    async def cancel_message(message_id: str, request: Request) -> Response:
        auth(request, ("messages:cancel", "messages:send"))
        t = now()
        cancelled = store.write(lambda c: c.execute(
            "UPDATE messages SET state = 'failed', error = ?, final_at = ?, updated_at = ?, next_at = NULL, "
            "extra = json_set(extra, '$.cancelled', json('true')) "
            "WHERE id = ? AND dialect = ? AND direction = 'outbound' AND state = 'queued'",
            (CANCELLED_ERROR, t, t, message_id, DIALECT)).rowcount)
        if cancelled:
            return Response(status_code=204)
        row = store.query_one("SELECT state FROM messages WHERE id = ? AND dialect = ?", (message_id, DIALECT))
        if row is None:
            raise ApiError(404, f"message {message_id!r} not found")
        raise ApiError(409, f"message {message_id!r} is no longer Pending and cannot be cancelled")

    # --- devices and health (real product) ------------------------------------------------------
    @router.get("/api/3rdparty/v1/devices", summary="List devices (the relay's simulated device)")
    async def list_devices(request: Request) -> JSONResponse:
        auth(request, "devices:list")
        return JSONResponse([{"id": cfg.device_id, "name": "reference relay (simulated device)",
                              "createdAt": iso_ms_z(ctx.started_at), "updatedAt": iso_ms_z(ctx.started_at),
                              "lastSeen": iso_ms_z(now())}])

    def _health_route(path: str, summary: str) -> None:
        async def health(request: Request) -> JSONResponse:
            store.query_one("SELECT 1")
            return JSONResponse({"status": "pass", "version": "1", "releaseId": 1,
                                 "checks": {"db:ping": {"status": "pass", "description": "SQLite store answers",
                                                        "observedValue": 0, "observedUnit": "failed pings"}}})

        router.add_api_route(path, health, methods=["GET"], summary=summary)

    _health_route("/api/3rdparty/v1/health", "Health (readiness; no auth)")
    _health_route("/api/3rdparty/v1/health/live", "Liveness probe (no auth)")
    _health_route("/api/3rdparty/v1/health/ready", "Readiness probe (no auth)")
    _health_route("/api/3rdparty/v1/health/startup", "Startup probe (no auth)")

    # --- webhooks (real product) ------------------------------------------------------------
    @router.get("/api/3rdparty/v1/webhooks", summary="List webhooks")
    async def list_webhooks(request: Request) -> JSONResponse:
        auth(request, "webhooks:list")
        return JSONResponse([webhook_view(t, cfg.device_id) for t in ctx.targets(DIALECT)])

    @router.post("/api/3rdparty/v1/webhooks", status_code=201, summary="Register a webhook")
    async def register_webhook(body: WebhookBody, request: Request) -> JSONResponse:
        auth(request, "webhooks:write")
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
        auth(request, ("webhooks:delete", "webhooks:write"))
        deleted = store.write(lambda c: c.execute(
            "DELETE FROM webhooks WHERE id = ? AND dialect = ?", (webhook_id, DIALECT)).rowcount)
        if not deleted:
            raise ApiError(404, f"webhook {webhook_id!r} not found")
        ctx.reload_targets()
        return Response(status_code=204)

    # --- JWT ----------------------------------------------------------------------------------
    def token_view(issued: IssuedToken) -> dict[str, Any]:
        """camelCase, as the real server answers and the official client reads it."""
        return {"id": issued.id, "tokenType": "Bearer", "accessToken": issued.access_token,
                "expiresAt": iso_ms_z(issued.expires_at), "refreshToken": issued.refresh_token}

    @router.post("/api/3rdparty/v1/auth/token", status_code=201, summary="Issue a JWT (Basic auth)")
    async def issue_token(request: Request, body: TokenBody | None = None) -> JSONResponse:
        ctx.require_smsgate(request, basic_only=True)
        b = body or TokenBody.model_validate({})
        return JSONResponse(token_view(ctx.issue_jwt(b.ttl, b.scopes)), status_code=201)

    @router.post("/api/3rdparty/v1/auth/token/refresh", status_code=201,
                 summary="New tokens for a refresh token (sent as Bearer); the refresh token is used up")
    async def refresh_token(request: Request) -> JSONResponse:
        token = ctx.bearer(request)
        if token is None:
            raise ApiError(401, "Authorization required: Bearer <refresh token>")
        return JSONResponse(token_view(ctx.refresh_jwt(token)), status_code=201)

    @router.delete("/api/3rdparty/v1/auth/token/{jti}", status_code=204, summary="Revoke a token by its id (jti)")
    async def revoke_token(jti: str, request: Request) -> Response:
        auth(request, "tokens:manage")
        ctx.revoke_jwt(jti)
        return Response(status_code=204)

    return router

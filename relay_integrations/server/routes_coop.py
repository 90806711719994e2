"""coop (coop.md): send (201), status with attempts, list, attachments, queue stats and bulk jobs."""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from relay_integrations.server.common import (
    GROUP_GUID,
    MAX_PAGE,
    URL,
    ApiError,
    WholeNumber,
    invalid,
    is_e164,
    is_email,
    iso_z,
    new_id,
    new_message_id,
    new_message_ids,
    now,
)
from relay_integrations.server.context import RelayContext
from relay_integrations.server.delivery import decide_fail_mode, first_step_at
from relay_integrations.server.events import enqueue, status_events
from relay_integrations.server.states import FINAL_STATES, raw_state
from relay_integrations.server.store import (
    dumps,
    insert_message,
    insert_queued_messages,
    loads_extra,
    message_row,
    queued_row,
)

DIALECT = "coop"
MAX_ATTACHMENTS = 10
MAX_BULK = 10_000
MAX_TEXT = 20_000
_EMPTY_EXTRA = dumps({"attachments": []})  # most bulk rows: skip a json.dumps each


class SendBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    to: str = Field(description="Phone number (E.164), Apple ID email, or group GUID")
    body: str | None = Field(None, max_length=MAX_TEXT, description="Required unless attachments is provided.")
    attachments: list[str] | None = Field(None, description="Attachment URLs. Maximum 10.")
    priority: WholeNumber = Field(0, ge=0, le=100, description="0-100. Higher = processed first.")
    fromNumber: str | None = None


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    messages: list[Any] = Field(min_length=1, description="Array of {to, body} objects")


def check_recipient(field: str, to: str) -> None:
    if not (is_e164(to) or is_email(to) or GROUP_GUID.fullmatch(to)):
        raise invalid(field, f"{to!r} is not an E.164 phone number, Apple ID email or group GUID")


def check_message(prefix: str, to: Any, body: Any, attachments: Any, priority: Any = 0) -> None:
    field = f"{prefix}to" if prefix else "to"
    if not isinstance(to, str) or not to:
        raise invalid(field, "is required")
    check_recipient(field, to)
    if attachments is not None:
        if not isinstance(attachments, list) or not all(isinstance(a, str) for a in attachments):
            raise invalid(f"{prefix}attachments", "must be a list of URLs")
        if len(attachments) > MAX_ATTACHMENTS:
            raise invalid(f"{prefix}attachments", f"at most {MAX_ATTACHMENTS} attachments, got {len(attachments)}")
        for i, url in enumerate(attachments):
            if not URL.fullmatch(url):
                raise invalid(f"{prefix}attachments[{i}]", "must be an http(s) URL")
    if body is not None and not isinstance(body, str):
        raise invalid(f"{prefix}body", "must be a string")
    if isinstance(body, str) and len(body) > MAX_TEXT:
        raise invalid(f"{prefix}body", f"at most {MAX_TEXT} characters")
    if not body and not attachments:
        raise invalid(f"{prefix}body", "is required unless attachments is provided")
    if (isinstance(priority, bool) or not isinstance(priority, (int, float)) or not float(priority).is_integer()
            or not 0 <= priority <= 100):
        raise invalid(f"{prefix}priority", "must be a whole number from 0 to 100")


def message_view(row: sqlite3.Row) -> dict[str, Any]:
    extra = loads_extra(row)
    return {
        "id": row["id"],
        "status": raw_state(DIALECT, row["state"]),
        "to": row["to_addr"],
        "from": row["from_addr"],
        "body": row["body"],
        "priority": row["priority"],
        "attachments": extra.get("attachments", []),
        "direction": "received" if row["direction"] == "inbound" else "sent",
        "attempts": row["attempts"],
        "lastError": row["error"],
        "jobId": row["batch_id"],
        "createdAt": iso_z(row["created_at"]),
        "sentAt": iso_z(row["sent_at"]),
        "deliveredAt": iso_z(row["final_at"]) if row["state"] == "delivered" else None,
        "failedAt": iso_z(row["final_at"]) if row["state"] == "failed" else None,
    }


def build_router(ctx: RelayContext) -> APIRouter:
    router = APIRouter(tags=["coop"])
    store = ctx.store

    def auth(request: Request) -> None:
        ctx.require_bearer(request)

    def _row(message_id: str, *, to: str, body: str | None, attachments: list[str] | None, priority: int,
             from_number: str | None, t: float, batch_id: str | None = None, index: int | None = None
             ) -> tuple[Any, ...]:
        return message_row(
            id=message_id, dialect=DIALECT, channel="imessage", state="queued", to_addr=to, from_addr=from_number,
            body=body, priority=priority, batch_id=batch_id, batch_index=index,
            fail_mode=decide_fail_mode(ctx, message_id, to), created_at=t, next_at=first_step_at(ctx, t),
            extra={"attachments": attachments} if attachments else _EMPTY_EXTRA,
        )

    def _queued_events(conn: sqlite3.Connection, ids: list[str], t: float) -> None:
        """message.queued webhooks, in the same transaction as the insert."""
        if not ctx.has_targets(DIALECT) or not ids:
            return
        rows = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            rows.extend(conn.execute(f"SELECT * FROM messages WHERE id IN ({','.join('?' for _ in chunk)})",
                                     chunk).fetchall())
        enqueue(conn, status_events(ctx, rows, t))

    @router.post("/api/v1/messages", status_code=201, summary="Send a message")
    async def send_message(body: SendBody, request: Request) -> JSONResponse:
        auth(request)
        check_message("", body.to, body.body, body.attachments, body.priority)
        if body.fromNumber is not None and not is_e164(body.fromNumber):
            raise invalid("fromNumber", f"{body.fromNumber!r} is not an E.164 phone number")
        t = now()
        message_id = new_message_id("msg_")
        row = _row(message_id, to=body.to, body=body.body, attachments=body.attachments, priority=body.priority,
                   from_number=body.fromNumber, t=t)

        def _tx(conn: sqlite3.Connection) -> None:
            if not insert_message(conn, row):
                raise ApiError(503, "could not queue the message, try again")
            _queued_events(conn, [message_id], t)

        store.write(_tx)
        return JSONResponse({"id": message_id, "status": "queued", "to": body.to, "body": body.body,
                             "priority": body.priority, "attachments": body.attachments or [],
                             "fromNumber": body.fromNumber, "createdAt": iso_z(t)}, status_code=201)

    @router.get("/api/v1/messages", summary="List sent and received messages")
    async def list_messages(request: Request, direction: str | None = None, participant: str | None = None,
                            page: int = 1, limit: int = 20) -> JSONResponse:
        auth(request)
        if not 1 <= limit <= 100:
            raise invalid("limit", "must be between 1 and 100")
        if not 1 <= page <= MAX_PAGE:
            raise invalid("page", f"must be between 1 and {MAX_PAGE}")
        where, params = ["dialect = ?"], [DIALECT]
        if direction is not None:
            if direction not in ("sent", "received"):
                raise invalid("direction", "must be sent or received")
            where.append("direction = ?")
            params.append("outbound" if direction == "sent" else "inbound")
        if participant:
            where.append("(to_addr = ? OR from_addr = ?)")
            params.extend([participant, participant])
        clause = " AND ".join(where)
        total = store.query_one(f"SELECT COUNT(*) AS n FROM messages WHERE {clause}", params)["n"]  # type: ignore[index]
        rows = store.query(f"SELECT * FROM messages WHERE {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
                           [*params, limit, (page - 1) * limit])
        return JSONResponse({"messages": [message_view(r) for r in rows], "page": page, "limit": limit,
                             "total": total, "hasMore": page * limit < total})

    @router.get("/api/v1/messages/queue/stats", summary="Queue counts by state")
    async def queue_stats(request: Request) -> JSONResponse:
        auth(request)
        rows = store.query(
            "SELECT state, dead_letter, COUNT(*) AS n FROM messages WHERE dialect = ? AND direction = 'outbound' "
            "GROUP BY state, dead_letter", (DIALECT,))
        stats = {"pending": 0, "processing": 0, "failed": 0, "deadLetter": 0}
        for r in rows:
            if r["state"] == "queued":
                stats["pending"] += r["n"]
            elif r["state"] == "sending":
                stats["processing"] += r["n"]
            elif r["state"] == "failed":
                stats["deadLetter" if r["dead_letter"] else "failed"] += r["n"]
        return JSONResponse(stats)

    # --- bulk jobs ----------------------------------------------------------------------------
    @router.post("/api/v1/messages/bulk", status_code=201, summary="Create a bulk message job")
    async def create_bulk(body: BulkBody, request: Request) -> JSONResponse:
        auth(request)
        if len(body.messages) > MAX_BULK:
            raise invalid("messages", f"at most {MAX_BULK} messages per job, got {len(body.messages)}")
        t = now()
        job_id = new_id("bulk_")[:17]
        rows = []
        ids = new_message_ids(len(body.messages))
        next_at = first_step_at(ctx, t)
        for i, item in enumerate(body.messages):
            prefix = f"messages[{i}]."
            if not isinstance(item, dict):
                raise invalid(f"messages[{i}]", "must be an object with to and body")
            priority = item.get("priority", 0)
            check_message(prefix, item.get("to"), item.get("body"), item.get("attachments"), priority)
            message_id = ids[i]
            to, attachments = item["to"], item.get("attachments")
            rows.append(queued_row(message_id, DIALECT, "imessage", to, None, item.get("body"), job_id, i, priority,
                                   decide_fail_mode(ctx, message_id, to), 0, 1, t, next_at,
                                   dumps({"attachments": attachments}) if attachments else _EMPTY_EXTRA))

        def _tx(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO batches(id, dialect, kind, from_addr, total, created_at, extra) "
                         "VALUES (?,?,?,?,?,?,?)", (job_id, DIALECT, "bulk", None, len(rows), t, dumps({})))
            insert_queued_messages(conn, rows)
            _queued_events(conn, ids, t)

        await store.write_async(_tx)
        return JSONResponse({"jobId": job_id, "status": "processing", "totalRecipients": len(rows),
                             "createdAt": iso_z(t)}, status_code=201)

    def _job_view(batch: sqlite3.Row) -> dict[str, Any]:
        counts: dict[str, int] = {}
        last_final = None
        for r in store.query("SELECT state, COUNT(*) AS n, MAX(final_at) AS last FROM messages WHERE batch_id = ? "
                             "GROUP BY state", (batch["id"],)):
            counts[r["state"]] = r["n"]
            if r["state"] in FINAL_STATES and r["last"] is not None:
                last_final = max(last_final or 0.0, r["last"])
        delivered, failed = counts.get("delivered", 0), counts.get("failed", 0)
        total = batch["total"]
        done = delivered + failed >= total
        return {
            "jobId": batch["id"], "status": "completed" if done else "processing", "totalRecipients": total,
            "processed": delivered + failed, "pending": counts.get("queued", 0),
            "processing": counts.get("sending", 0), "sent": counts.get("sent", 0) + delivered,
            "delivered": delivered, "failed": failed,
            "progress": round((delivered + failed) / total, 4) if total else 1.0,
            "createdAt": iso_z(batch["created_at"]), "completedAt": iso_z(last_final) if done else None,
        }

    def _job(job_id: str) -> sqlite3.Row:
        batch = store.query_one("SELECT * FROM batches WHERE id = ? AND dialect = ?", (job_id, DIALECT))
        if batch is None:
            raise ApiError(404, f"bulk job {job_id!r} not found")
        return batch

    @router.get("/api/v1/messages/bulk", summary="List bulk jobs")
    async def list_bulk(request: Request, page: int = 1, limit: int = 20) -> JSONResponse:
        auth(request)
        if not 1 <= limit <= 100:
            raise invalid("limit", "must be between 1 and 100")
        if not 1 <= page <= MAX_PAGE:
            raise invalid("page", f"must be between 1 and {MAX_PAGE}")
        total = store.query_one("SELECT COUNT(*) AS n FROM batches WHERE dialect = ?", (DIALECT,))["n"]  # type: ignore[index]
        batches = store.query("SELECT * FROM batches WHERE dialect = ? ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                              (DIALECT, limit, (page - 1) * limit))
        return JSONResponse({"jobs": [_job_view(b) for b in batches], "page": page, "limit": limit, "total": total,
                             "hasMore": page * limit < total})

    @router.get("/api/v1/messages/bulk/{job_id}", summary="Get job details and progress")
    async def get_bulk(job_id: str, request: Request) -> JSONResponse:
        auth(request)
        return JSONResponse(_job_view(_job(job_id)))

    @router.get("/api/v1/messages/bulk/{job_id}/results", summary="Per-recipient delivery results")
    async def bulk_results(job_id: str, request: Request, page: int = 1, limit: int = 1000) -> JSONResponse:
        auth(request)
        batch = _job(job_id)
        if not 1 <= limit <= MAX_BULK:
            raise invalid("limit", f"must be between 1 and {MAX_BULK}")
        if not 1 <= page <= MAX_PAGE:
            raise invalid("page", f"must be between 1 and {MAX_PAGE}")
        rows = store.query("SELECT * FROM messages WHERE batch_id = ? ORDER BY batch_index LIMIT ? OFFSET ?",
                           (job_id, limit, (page - 1) * limit))
        results = [{"index": r["batch_index"], "to": r["to_addr"], "messageId": r["id"],
                    "status": raw_state(DIALECT, r["state"]), "attempts": r["attempts"], "error": r["error"],
                    "sentAt": iso_z(r["sent_at"]),
                    "deliveredAt": iso_z(r["final_at"]) if r["state"] == "delivered" else None} for r in rows]
        view = _job_view(batch)
        return JSONResponse({"jobId": job_id, "status": view["status"], "total": batch["total"], "page": page,
                             "limit": limit, "hasMore": page * limit < batch["total"], "results": results})

    # --- one message --------------------------------------------------------------------------
    def _message(message_id: str) -> sqlite3.Row:
        row = store.query_one("SELECT * FROM messages WHERE id = ? AND dialect = ?", (message_id, DIALECT))
        if row is None:
            raise ApiError(404, f"message {message_id!r} not found")
        return row

    @router.get("/api/v1/messages/{message_id}/status", summary="Check delivery status")
    async def message_status(message_id: str, request: Request) -> JSONResponse:
        auth(request)
        row = _message(message_id)
        v = message_view(row)
        return JSONResponse({"id": v["id"], "status": v["status"], "attempts": v["attempts"],
                             "lastError": v["lastError"], "queuedAt": v["createdAt"], "sentAt": v["sentAt"],
                             "deliveredAt": v["deliveredAt"], "failedAt": v["failedAt"],
                             "deadLetter": bool(row["dead_letter"])})

    @router.get("/api/v1/messages/{message_id}/attachments", summary="List attachments")
    async def attachments(message_id: str, request: Request) -> JSONResponse:
        auth(request)
        row = _message(message_id)
        urls = loads_extra(row).get("attachments", [])
        items = [{"index": i, "url": u, "downloadUrl": u, "filename": u.rstrip("/").rsplit("/", 1)[-1] or None}
                 for i, u in enumerate(urls)]
        return JSONResponse({"messageId": message_id, "attachments": items, "total": len(items)})

    return router

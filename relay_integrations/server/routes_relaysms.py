"""relaysms (relaysms.md): every endpoint, with the ``{data, timestamp, unix_timestamp}`` envelope.

Key regeneration rotates the relaysms key only (persisted, so it survives a restart); the other
dialects and ``/_sim`` keep the configured key.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from relay_integrations.server.bounds import require_bounded_json
from relay_integrations.server.common import (
    MAX_PAGE,
    ApiError,
    invalid,
    is_e164,
    iso_z,
    new_id,
    new_message_id,
    new_message_ids,
    now,
    parse_json_strict,
    require_e164,
    require_url,
    sms_segments,
)
from relay_integrations.server.context import BALANCE_SETTING, RelayContext
from relay_integrations.server.delivery import decide_fail_mode, first_step_at
from relay_integrations.server.states import FINAL_STATES, internal_states_for, raw_state
from relay_integrations.server.store import (
    dumps,
    insert_message,
    insert_queued_messages,
    loads_extra,
    message_row,
    queued_row,
)

DIALECT = "relaysms"
MAX_BODY = 1600
MAX_BATCH = 1000
MAX_BIN_ITEMS = 100
"""Entries each webhook test bin keeps (the newest); the bins take unauthenticated writes."""
_EMPTY_EXTRA = dumps({"metadata": {}, "status_callback": None})  # most batch rows: skip a json.dumps each


def envelope(data: Any, status_code: int = 200) -> JSONResponse:
    t = now()
    return JSONResponse({"data": data, "timestamp": iso_z(t), "unix_timestamp": int(t * 1000)},
                        status_code=status_code)


class SendBody(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    to: str = Field(description="Recipient phone number in E.164 format")
    from_: str = Field(alias="from", description="Sender phone number (must be owned by you)")
    body: str = Field(min_length=1, max_length=MAX_BODY)
    status_callback: str | None = Field(None, max_length=2000)
    metadata: dict[str, Any] | None = None
    client_reference_id: str | None = Field(None, min_length=1, max_length=255,
                                            description="Your own stable key; a repeat returns the same message")


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    from_: str = Field(alias="from")
    messages: list[Any] = Field(min_length=1)


class WebhooksBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status_url: str | None = None
    inbound_url: str | None = None


class NumberWebhooksBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inbound_callback: str | None = None


def _sms_view(row: sqlite3.Row) -> dict[str, Any]:
    extra = loads_extra(row)
    return {
        "id": row["id"],
        "client_reference_id": row["client_ref"] or row["id"],
        "status": raw_state(DIALECT, row["state"]),
        "to": row["to_addr"],
        "from": row["from_addr"],
        "body": row["body"],
        "direction": row["direction"],
        "segments": str(row["segments"]),
        "created_at": iso_z(row["created_at"]),
        "sent_at": iso_z(row["sent_at"]),
        "delivered_at": iso_z(row["final_at"]) if row["state"] == "delivered" else None,
        "failed_at": iso_z(row["final_at"]) if row["state"] == "failed" else None,
        "updated_at": iso_z(row["updated_at"]),
        "error_message": row["error"],
        "batch_id": row["batch_id"],
        "metadata": extra.get("metadata") or {},
    }


def _timeline(row: sqlite3.Row) -> list[dict[str, Any]]:
    steps = [("accepted", row["created_at"]), ("queued", row["sending_at"]), ("sent", row["sent_at"])]
    if row["state"] in FINAL_STATES:
        steps.append((row["state"], row["final_at"]))
    return [{"status": s, "timestamp": iso_z(ts)} for s, ts in steps if ts is not None]


def build_router(ctx: RelayContext) -> APIRouter:
    router = APIRouter(tags=["relaysms"])
    store = ctx.store
    cfg = ctx.config
    price_micros = round(cfg.price_per_segment * 1_000_000)

    def auth(request: Request) -> None:
        ctx.require_relaysms(request)

    def require_owned(field: str, number: str) -> None:
        require_e164(field, number)
        if number not in cfg.numbers:
            raise invalid(field, f"{number} is not a number you own (owned: {', '.join(cfg.numbers)})")

    def _find(conn: sqlite3.Connection, key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = conn.execute(
            "SELECT * FROM messages WHERE dialect = ? AND (id = ? OR client_ref = ?) LIMIT 1", (DIALECT, key, key)
        ).fetchone()
        return row

    def _debit(conn: sqlite3.Connection, charges: list[tuple[str, int]], t: float) -> None:
        """Debit ``(message_id, segments)`` pairs, or refuse the whole request with 402."""
        balance = int(conn.execute("SELECT value FROM settings WHERE key = ?", (BALANCE_SETTING,)).fetchone()[0])
        total = sum(seg for _, seg in charges) * price_micros
        if total > balance:
            raise ApiError(402, f"Account balance too low: {balance / 1e6:.3f} USD available, "
                                f"{total / 1e6:.3f} USD needed")
        rows = []
        for message_id, segments in charges:
            balance -= segments * price_micros
            rows.append((t, "debit", segments * price_micros,
                         f"SMS outbound ({segments} segment{'s' if segments != 1 else ''}, US)", balance, message_id))
        conn.executemany(
            "INSERT INTO transactions(ts, type, amount_micros, description, balance_after_micros, message_id) "
            "VALUES (?,?,?,?,?,?)", rows)
        conn.execute("UPDATE settings SET value = ? WHERE key = ?", (str(balance), BALANCE_SETTING))

    # --- send -----------------------------------------------------------------------------
    @router.post("/api/v1/sms/send", status_code=202, summary="Send SMS")
    async def send_sms(body: SendBody, request: Request) -> JSONResponse:
        auth(request)
        require_e164("to", body.to)
        require_owned("from", body.from_)
        require_url("status_callback", body.status_callback)
        require_bounded_json("metadata", body.metadata)
        t = now()
        message_id = new_message_id()
        segments = sms_segments(body.body)
        extra = {"metadata": body.metadata or {}, "status_callback": body.status_callback}
        row = message_row(
            id=message_id, dialect=DIALECT, state="queued", to_addr=body.to, from_addr=body.from_,
            body=body.body, client_ref=body.client_reference_id, segments=segments,
            notify=1 if body.status_callback else 0,
            fail_mode=decide_fail_mode(ctx, message_id, body.to), created_at=t, next_at=first_step_at(ctx, t),
            extra=extra,
        )

        def _tx(conn: sqlite3.Connection) -> sqlite3.Row | None:
            if body.client_reference_id:
                existing = _find(conn, body.client_reference_id)
                if existing is not None:
                    return existing
            if not insert_message(conn, row):
                raise ApiError(503, "Failed to queue message")
            _debit(conn, [(message_id, segments)], t)
            return None

        existing = store.write(_tx)
        if existing is not None:
            view = _sms_view(existing)
            return envelope({**{k: view[k] for k in ("id", "client_reference_id", "status", "to", "from",
                                                     "created_at")},
                             "duplicate": True,
                             "message": "Duplicate client_reference_id; returning the original message."})
        return envelope({
            "id": message_id, "client_reference_id": body.client_reference_id or message_id, "status": "accepted",
            "to": body.to, "from": body.from_, "created_at": iso_z(t), "segments": str(segments),
            "message": "Message queued for delivery. Poll GET /sms/{id} for status updates.",
        }, 202)

    @router.get("/api/v1/sms/{message_id}", summary="Get Message")
    async def get_sms(message_id: str, request: Request) -> JSONResponse:
        auth(request)
        row = store.read(lambda c: _find(c, message_id))
        if row is None:
            raise ApiError(404, f"Message {message_id} not found")
        return envelope(_sms_view(row))

    @router.get("/api/v1/messages/{message_id}/log", summary="Get Message Log")
    async def message_log(message_id: str, request: Request) -> JSONResponse:
        auth(request)
        row = store.read(lambda c: _find(c, message_id))
        if row is None:
            raise ApiError(404, f"Message {message_id} not found")
        view = _sms_view(row)
        return envelope({**{k: view[k] for k in ("id", "client_reference_id", "status", "direction", "to", "from",
                                                 "segments")}, "timeline": _timeline(row)})

    @router.get("/api/v1/messages", summary="List Messages")
    async def list_messages(request: Request, limit: int = 25, page: int = 1, direction: str | None = None,
                            status: str | None = None) -> JSONResponse:
        auth(request)
        if not 1 <= limit <= 100:
            raise invalid("limit", "must be between 1 and 100")
        if not 1 <= page <= MAX_PAGE:
            raise invalid("page", f"must be between 1 and {MAX_PAGE}")
        where, params = ["dialect = ?"], [DIALECT]
        if direction is not None:
            if direction not in ("inbound", "outbound"):
                raise invalid("direction", "must be inbound or outbound")
            where.append("direction = ?")
            params.append(direction)
        if status is not None:
            states = internal_states_for(DIALECT, status)
            if not states:
                raise invalid("status", "must be one of accepted, queued, sent, delivered, failed, received")
            where.append(f"state IN ({','.join('?' for _ in states)})")
            params.extend(states)
        rows = store.query(f"SELECT * FROM messages WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ? OFFSET ?",
                           [*params, limit + 1, (page - 1) * limit])
        items = []
        for r in rows[:limit]:
            v = _sms_view(r)
            items.append({k: v[k] for k in ("id", "client_reference_id", "status", "to", "from", "body", "direction",
                                             "created_at", "segments", "delivered_at", "error_message")})
        return envelope({"messages": items, "page": page, "limit": limit, "has_more": len(rows) > limit})

    # --- batch ----------------------------------------------------------------------------
    @router.post("/api/v1/sms/batch", status_code=202, summary="Send Batch SMS")
    async def send_batch(body: BatchBody, request: Request) -> JSONResponse:
        auth(request)
        require_owned("from", body.from_)
        if len(body.messages) > MAX_BATCH:
            raise invalid("messages", f"at most {MAX_BATCH} messages per batch, got {len(body.messages)}")
        t = now()
        batch_id = new_id("batch_")[:18]
        results: list[dict[str, Any]] = []
        rows: list[tuple[Any, ...]] = []
        charges: list[tuple[str, int]] = []
        next_at = first_step_at(ctx, t)
        ids = new_message_ids(len(body.messages))
        for index, item in enumerate(body.messages):
            error = _batch_item_error(index, item)
            to = item.get("to") if isinstance(item, dict) else None
            if error:
                results.append({"index": index, "to": to if isinstance(to, str) else None, "status": "rejected",
                                "error": error})
                continue
            message_id = ids[index]
            text = item["body"]
            segments = sms_segments(text)
            metadata, callback = item.get("metadata"), item.get("status_callback")
            rows.append(queued_row(
                message_id, DIALECT, "sms", to, body.from_, text, batch_id, index, 0,
                decide_fail_mode(ctx, message_id, to), 1 if callback else 0, segments, t, next_at,
                _EMPTY_EXTRA if not metadata and not callback else
                dumps({"metadata": metadata or {}, "status_callback": callback}),
            ))
            charges.append((message_id, segments))
            results.append({"index": index, "to": to, "client_reference_id": message_id, "id": message_id,
                            "status": "accepted"})

        def _tx(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO batches(id, dialect, kind, from_addr, total, created_at, extra) "
                         "VALUES (?,?,?,?,?,?,?)",
                         (batch_id, DIALECT, "batch", body.from_, len(rows), t,
                          dumps({"submitted": len(body.messages), "rejected": len(body.messages) - len(rows)})))
            insert_queued_messages(conn, rows)
            if charges:
                _debit(conn, charges, t)

        await store.write_async(_tx)
        return envelope({"batch_id": batch_id, "accepted": len(rows), "rejected": len(body.messages) - len(rows),
                         "total": len(body.messages), "results": results}, 202)

    def _batch(batch_id: str) -> sqlite3.Row:
        row = store.query_one("SELECT * FROM batches WHERE id = ? AND dialect = ?", (batch_id, DIALECT))
        if row is None:
            raise ApiError(404, f"Batch {batch_id} not found")
        return row

    @router.get("/api/v1/sms/batch/{batch_id}", summary="Get Batch Status")
    async def get_batch(batch_id: str, request: Request) -> JSONResponse:
        auth(request)
        batch = _batch(batch_id)
        counts: dict[str, int] = {r[0]: r[1] for r in store.query(
            "SELECT state, COUNT(*) FROM messages WHERE batch_id = ? GROUP BY state", (batch_id,))}
        completed, failed = counts.get("delivered", 0), counts.get("failed", 0)
        processed = completed + failed
        total = batch["total"]
        status = "completed" if processed >= total else ("processing" if processed or counts.get("sending") or
                                                          counts.get("sent") else "pending")
        extra = loads_extra(batch)
        return envelope({"job_id": batch_id, "status": status, "total": total, "processed": processed,
                         "completed": completed, "failed": failed, "from_number": batch["from_addr"],
                         "channel": "api", "created_at": iso_z(batch["created_at"]),
                         "rejected": extra.get("rejected", 0)})

    @router.get("/api/v1/sms/batch/{batch_id}/messages", summary="List Batch Messages")
    async def batch_messages(batch_id: str, request: Request, page: int = 1, limit: int = 50) -> JSONResponse:
        auth(request)
        batch = _batch(batch_id)
        if not 1 <= page <= MAX_PAGE:
            raise invalid("page", f"must be between 1 and {MAX_PAGE}")
        if not 1 <= limit <= 100:
            raise invalid("limit", "must be between 1 and 100")
        rows = store.query("SELECT * FROM messages WHERE batch_id = ? ORDER BY batch_index LIMIT ? OFFSET ?",
                           (batch_id, limit, (page - 1) * limit))
        items = [{"index": r["batch_index"], "id": r["id"], "client_reference_id": r["client_ref"] or r["id"],
                  "to": r["to_addr"], "status": raw_state(DIALECT, r["state"]), "created_at": iso_z(r["created_at"]),
                  "error_message": r["error"]} for r in rows]
        total = batch["total"]
        return envelope({"items": items, "page": page, "limit": limit, "total": total,
                         "has_more": page * limit < total})

    # --- numbers ---------------------------------------------------------------------------
    def _number_callback(phone: str) -> str | None:
        t = next((t for t in ctx.targets(DIALECT) if t.number == phone), None)
        return t.url if t else None

    def _account_created() -> float:
        row = store.query_one("SELECT MIN(ts) AS ts FROM transactions")
        return float(row["ts"]) if row and row["ts"] is not None else now()

    @router.get("/api/v1/numbers", summary="List Numbers")
    async def list_numbers(request: Request) -> JSONResponse:
        auth(request)
        created = iso_z(_account_created())
        numbers = [{"phone": n, "created_at": created, "inbound_callback": _number_callback(n)} for n in cfg.numbers]
        return envelope({"numbers": numbers, "total": len(numbers)})

    def _owned_path_number(number: str) -> str:
        if number not in cfg.numbers:
            # Any other path names nothing here: 404, E.164 or not (the path is not bad input).
            raise ApiError(404, f"Number {number!r} is not owned by this account")
        return number

    @router.get("/api/v1/numbers/{number}/spam-diagnosis", summary="Spam Diagnosis")
    async def spam_diagnosis(number: str, request: Request, hours: int = 72, limit: int = 50,
                             max_pages: int = 5) -> JSONResponse:
        auth(request)
        _owned_path_number(number)
        if not 1 <= hours <= 336:
            raise invalid("hours", "must be between 1 and 336")
        if not 1 <= limit <= 100:
            raise invalid("limit", "must be between 1 and 100")
        if not 1 <= max_pages <= 20:
            raise invalid("max_pages", "must be between 1 and 20")
        since = now() - hours * 3600
        rows = store.query(
            "SELECT state, created_at, updated_at FROM messages WHERE dialect = ? AND direction = 'outbound' "
            "AND from_addr = ? AND created_at >= ? ORDER BY seq DESC LIMIT ?",
            (DIALECT, number, since, limit * max_pages))
        if not rows:
            raise ApiError(404, "No outbound message found for this number in the requested window")
        latest = rows[0]
        status = {"failed": "delivery_failed", "delivered": "delivered"}.get(latest["state"],
                                                                           raw_state(DIALECT, latest["state"]))
        spam = latest["state"] == "failed"
        return envelope({
            "number": number, "spam_filtered": spam,
            "diagnosis_reason": "provider_spam_signal_detected" if spam else "no_spam_signal_detected",
            "delivery_status": status, "message_content_included": False, "checked_messages": len(rows),
            "scanned_pages": -(-len(rows) // limit), "window_hours": hours,
            "latest_message": {"status": status, "created_at": iso_z(latest["created_at"]),
                               "updated_at": iso_z(latest["updated_at"])},
        })

    @router.get("/api/v1/numbers/{phone}/webhooks", summary="Get Number Webhooks")
    async def get_number_webhooks(phone: str, request: Request) -> JSONResponse:
        auth(request)
        _owned_path_number(phone)
        return envelope({"phone": phone, "inbound_callback": _number_callback(phone)})

    @router.put("/api/v1/numbers/{phone}/webhooks", summary="Set Number Webhooks")
    async def set_number_webhooks(phone: str, body: NumberWebhooksBody, request: Request) -> JSONResponse:
        auth(request)
        _owned_path_number(phone)
        require_url("inbound_callback", body.inbound_callback)
        target_id = f"relaysms-number-{phone}"
        if body.inbound_callback:
            store.write(lambda c: c.execute(
                "INSERT INTO webhooks(id, dialect, url, event, number, config, created_at) "
                "VALUES (?, ?, ?, 'inbound', ?, '{}', ?) ON CONFLICT(id) DO UPDATE SET url = excluded.url",
                (target_id, DIALECT, body.inbound_callback, phone, now())))
        else:
            store.write(lambda c: c.execute("DELETE FROM webhooks WHERE id = ?", (target_id,)))
        ctx.reload_targets()
        return envelope({"phone": phone, "inbound_callback": body.inbound_callback})

    # --- money ----------------------------------------------------------------------------
    @router.get("/api/v1/balance", summary="Get Balance")
    async def balance(request: Request) -> JSONResponse:
        auth(request)
        micros = int(store.get_setting(BALANCE_SETTING) or 0)
        return envelope({"balance": round(micros / 1e6, 6), "currency": "USD"})

    @router.get("/api/v1/transactions", summary="List Transactions")
    async def transactions(request: Request, limit: int = 25, page: int = 1) -> JSONResponse:
        auth(request)
        if not 1 <= limit <= 100:
            raise invalid("limit", "must be between 1 and 100")
        if not 1 <= page <= MAX_PAGE:
            raise invalid("page", f"must be between 1 and {MAX_PAGE}")
        total = store.query_one("SELECT COUNT(*) AS n FROM transactions")["n"]  # type: ignore[index]
        rows = store.query("SELECT * FROM transactions ORDER BY seq DESC LIMIT ? OFFSET ?",
                           (limit, (page - 1) * limit))
        items = [{"timestamp": int(r["ts"]), "type": r["type"], "amount": round(r["amount_micros"] / 1e6, 6),
                  "description": r["description"], "balance_after": round(r["balance_after_micros"] / 1e6, 6),
                  "message_id": r["message_id"]} for r in rows]
        return envelope({"transactions": items, "page": page, "limit": limit, "total": total,
                         "has_more": page * limit < total})

    # --- webhooks --------------------------------------------------------------------------
    def _global_webhooks() -> dict[str, str | None]:
        urls: dict[str, str | None] = {"status_url": None, "inbound_url": None}
        for t in ctx.targets(DIALECT):
            if t.id == "relaysms-status":
                urls["status_url"] = t.url
            elif t.id == "relaysms-inbound":
                urls["inbound_url"] = t.url
        return urls

    @router.get("/api/v1/webhooks", summary="Get Webhooks")
    async def get_webhooks(request: Request) -> JSONResponse:
        auth(request)
        return envelope(_global_webhooks())

    @router.put("/api/v1/webhooks", summary="Set Webhooks")
    async def set_webhooks(body: WebhooksBody, request: Request) -> JSONResponse:
        auth(request)
        require_url("status_url", body.status_url)
        require_url("inbound_url", body.inbound_url)
        given = body.model_dump(exclude_unset=True)
        t = now()

        def _tx(conn: sqlite3.Connection) -> None:
            for key, kind in (("status_url", "status"), ("inbound_url", "inbound")):
                if key not in given:
                    continue
                target_id = f"relaysms-{kind}"
                if given[key]:
                    conn.execute(
                        "INSERT INTO webhooks(id, dialect, url, event, number, config, created_at) "
                        "VALUES (?, ?, ?, ?, NULL, '{}', ?) ON CONFLICT(id) DO UPDATE SET url = excluded.url",
                        (target_id, DIALECT, given[key], kind, t))
                else:
                    conn.execute("DELETE FROM webhooks WHERE id = ?", (target_id,))

        store.write(_tx)
        ctx.reload_targets()
        return envelope(_global_webhooks())

    @router.post("/api/v1/api-key/regenerate", summary="Regenerate API Key")
    async def regenerate(request: Request) -> JSONResponse:
        auth(request)
        return envelope({"api_key": ctx.rotate_relaysms_key(),
                         "message": "API key regenerated. Save this key - it will not be shown again."})

    # --- webhook test bins ------------------------------------------------------------------
    def _bin_routes(name: str, path: str) -> None:
        async def post_bin(request: Request) -> JSONResponse:
            raw = await request.body()
            text = raw.decode("utf-8", errors="replace")

            def _keep_newest(c: sqlite3.Connection) -> int:
                seq = c.execute("INSERT INTO bins(bin, received_at, content_type, body) VALUES (?,?,?,?)",
                                (name, now(), request.headers.get("content-type"), text)).lastrowid
                # Unauthenticated writes: keep only the newest MAX_BIN_ITEMS per bin (GET shows at most 100).
                c.execute("DELETE FROM bins WHERE bin = ? AND seq NOT IN "
                          "(SELECT seq FROM bins WHERE bin = ? ORDER BY seq DESC LIMIT ?)", (name, name, MAX_BIN_ITEMS))
                return int(seq or 0)

            seq = store.write(_keep_newest)
            return envelope({"received": True, "id": seq, "bin": name})

        async def get_bin(request: Request, limit: int = 50) -> JSONResponse:
            auth(request)
            if not 1 <= limit <= 100:
                raise invalid("limit", "must be between 1 and 100")
            rows = store.query("SELECT * FROM bins WHERE bin = ? ORDER BY seq DESC LIMIT ?", (name, limit))
            total = store.query_one("SELECT COUNT(*) AS n FROM bins WHERE bin = ?", (name,))["n"]  # type: ignore[index]
            items = []
            for r in rows:
                try:
                    payload: Any = parse_json_strict(r["body"])
                except (ValueError, RecursionError):
                    payload = r["body"]
                items.append({"id": r["seq"], "received_at": iso_z(r["received_at"]),
                              "content_type": r["content_type"], "payload": payload})
            return envelope({"bin": name, "items": items, "total": total})

        router.add_api_route(path, post_bin, methods=["POST"], summary=f"Send a test {name} webhook")
        router.add_api_route(path, get_bin, methods=["GET"], summary=f"Retrieve logged {name} webhooks")

    _bin_routes("status", "/api/v1/status/bin")
    _bin_routes("messages", "/api/v1/messages/bin")
    return router


def _batch_item_error(index: int, item: Any) -> str | None:
    prefix = f"messages[{index}]"
    if not isinstance(item, dict):
        return f"{prefix}: must be an object with to and body"
    to, text = item.get("to"), item.get("body")
    if not isinstance(to, str) or not to:
        return f"{prefix}.to: is required"
    if not is_e164(to):
        return f"{prefix}.to: {to!r} is not an E.164 phone number (+ and 7 to 15 digits)"
    if not isinstance(text, str) or not text:
        return f"{prefix}.body: is required"
    if len(text) > MAX_BODY:
        return f"{prefix}.body: at most {MAX_BODY} characters, got {len(text)}"
    if item.get("metadata") is not None:
        if not isinstance(item["metadata"], dict):
            return f"{prefix}.metadata: must be an object"
        try:
            require_bounded_json(f"{prefix}.metadata", item["metadata"])
        except ApiError as err:
            return err.message
    callback = item.get("status_callback")
    if callback is not None:
        try:
            require_url("status_callback", callback if isinstance(callback, str) else "")
        except ApiError:
            return f"{prefix}.status_callback: must be an http(s) URL"
    return None

"""Error answers in each dialect's own shape, so clients parse the reference relay like the real ones.

=============  =========================================================================================
phonerelay     ``{"success": false, "error": "<message>", "code": "<code>", "field": "<field>"|null}``
relaysms       ``{"error": {"code": "INVALID_REQUEST", "message": ..., "field": ...}, "timestamp", "unix_timestamp"}``
               (codes per the doc: UNAUTHORIZED, FORBIDDEN, NOT_FOUND, INVALID_REQUEST, INSUFFICIENT_BALANCE,
               QUEUE_FAILED, INTERNAL_ERROR; plus CONFLICT, PAYLOAD_TOO_LARGE)
coop           ``{"error": {"code": "VALIDATION_ERROR", "message": ..., "field": ...}}``
smsgate        ``{"message": ..., "code": <status>, "field": ...}`` (the real server answers ``{"message"}``)
=============  =========================================================================================

Validation errors are 400 everywhere, and the message starts with the field name
(``to: ...``, ``messages[3].body: ...``).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse

from relay_integrations.server.common import ApiError, iso_z

_RELAYSMS_CODES = {
    400: "INVALID_REQUEST", 401: "UNAUTHORIZED", 402: "INSUFFICIENT_BALANCE", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "INVALID_REQUEST", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "INVALID_REQUEST", 503: "QUEUE_FAILED",
}
_GENERIC_CODES = {
    400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 402: "INSUFFICIENT_BALANCE", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED", 503: "UNAVAILABLE",
}


def error_body(dialect: str | None, err: ApiError) -> dict[str, Any]:
    status = err.status
    if dialect == "relaysms":
        t = time.time()
        inner: dict[str, Any] = {"code": err.code or _RELAYSMS_CODES.get(status, "INTERNAL_ERROR"),
                                 "message": err.message}
        if err.field:
            inner["field"] = err.field
        return {"error": inner, "timestamp": iso_z(t), "unix_timestamp": int(t * 1000)}
    code = err.code or _GENERIC_CODES.get(status, "INTERNAL_ERROR")
    if dialect == "phonerelay":
        return {"success": False, "error": err.message, "code": code.lower(), "field": err.field}
    if dialect == "smsgate":
        body: dict[str, Any] = {"message": err.message, "code": status}
        if err.field:
            body["field"] = err.field
        return body
    inner = {"code": code, "message": err.message}
    if err.field:
        inner["field"] = err.field
    return {"error": inner}


def error_response(dialect: str | None, err: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Basic realm=\"smsgate\"" if dialect == "smsgate" else "Bearer"} \
        if err.status == 401 else None
    return JSONResponse(error_body(dialect, err), status_code=err.status, headers=headers)

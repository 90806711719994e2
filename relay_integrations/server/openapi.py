"""The relay's OpenAPI document with the error answers every route really gives, in each dialect's shape.

FastAPI documents only the success answer and a 422 the relay never sends (validation errors are
400s in the dialect's own shape, see :mod:`.errors`). This rewrites each operation's responses:
400 for bad input, 401 where credentials are needed, 403 where smsgate scopes apply, 404 where a
path names something, 402/409/413/503 where the route can answer them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

_ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "PhonerelayError": {
        "type": "object", "required": ["success", "error", "code"],
        "properties": {"success": {"type": "boolean", "enum": [False]}, "error": {"type": "string"},
                       "code": {"type": "string"}, "field": {"type": ["string", "null"]}},
    },
    "RelaysmsError": {
        "type": "object", "required": ["error", "timestamp", "unix_timestamp"],
        "properties": {
            "error": {"type": "object", "required": ["code", "message"],
                      "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                     "field": {"type": "string"}}},
            "timestamp": {"type": "string"}, "unix_timestamp": {"type": "integer"},
        },
    },
    "CoopError": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                                "field": {"type": "string"}}}},
    },
    "SmsgateError": {
        "type": "object", "required": ["message", "code"],
        "properties": {"message": {"type": "string"}, "code": {"type": "integer"}, "field": {"type": "string"}},
    },
}
_SCHEMA_OF = {"phonerelay": "PhonerelayError", "relaysms": "RelaysmsError", "coop": "CoopError",
              "smsgate": "SmsgateError", None: "CoopError"}
_DESCRIPTIONS = {
    400: "Bad input; the message starts with the field at fault", 401: "Missing or wrong credentials",
    402: "Insufficient balance", 403: "The token lacks the scope this route needs",
    404: "Not found", 409: "Conflict: the id or state does not allow this", 413: "Body larger than the limit",
    503: "Queue full or store busy; retry",
}
_SEND_PATH = re.compile(r"/(messages|sms/send|sms/batch|messages/bulk)$")


def error_statuses(path: str, method: str, dialect: str | None, public: bool) -> list[int]:
    """The error codes one route can answer."""
    method = method.upper()
    codes = [400]
    if not public:
        codes.append(401)
        if dialect == "smsgate":
            codes.append(403)
    if "{" in path or not public:
        codes.append(404)
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        codes += [409, 413]
    if method == "POST" and _SEND_PATH.search(path):
        codes.append(503)
        if dialect == "relaysms":
            codes.append(402)
    return sorted(set(codes))


def document_errors(schema: dict[str, Any], dialect_of_path: Callable[[str], str | None],
                    is_public: Callable[[str], bool]) -> dict[str, Any]:
    """``schema`` with the relay's real error answers on every operation (a copy; ``schema`` is unchanged)."""
    out = copy.deepcopy(schema)
    components = out.setdefault("components", {}).setdefault("schemas", {})
    components.update(copy.deepcopy(_ERROR_SCHEMAS))
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, operations in out.get("paths", {}).items():
        dialect = dialect_of_path(path)
        public = is_public(path)
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)
            ref = {"$ref": f"#/components/schemas/{_SCHEMA_OF.get(dialect, 'CoopError')}"}
            for code in error_statuses(path, method, dialect, public):
                responses.setdefault(str(code), {"description": _DESCRIPTIONS[code],
                                                 "content": {"application/json": {"schema": ref}}})
    return out

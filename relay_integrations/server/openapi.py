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

from relay_integrations.server.common import MAX_OFFSET, MAX_PAGE

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
_SCHEMA_OF: dict[str | None, str] = {"phonerelay": "PhonerelayError", "relaysms": "RelaysmsError", "coop": "CoopError",
              "smsgate": "SmsgateError", None: "CoopError"}
_DESCRIPTIONS = {
    400: "Bad input; the message starts with the field at fault", 401: "Missing or wrong credentials",
    402: "Insufficient balance", 403: "The token lacks the scope this route needs",
    404: "Not found", 409: "Conflict: the id or state does not allow this", 413: "Body larger than the limit",
    503: "Queue full or store busy; retry",
}
# What the handlers check by hand (to give the dialect's own messages), stated in the document too,
# so that a request the document calls valid is one the relay accepts. Patterns are anchored for
# ECMA regex (JSON Schema); the handlers use fullmatch.
E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"
URL_PATTERN = r"^https?://[^\x00-\x20\x7f/]+(/[^\x00-\x20\x7f]*)?$"
COOP_TO_PATTERN = (r"^(\+[1-9][0-9]{6,14}|[^@\x00-\x20]+@[^@\x00-\x20]+\.[^@\x00-\x20]+"
                   r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
_PAGE = {"minimum": 1, "maximum": MAX_PAGE}
_QUERY_RULES: list[tuple[str, str, dict[str, Any]]] = [
    # (path regex, parameter, schema additions)
    (r"^/phonerelay/api/v1/messages$", "limit", {"minimum": 1, "maximum": 500}),
    (r"^/phonerelay/api/v1/messages$", "offset", {"minimum": 0, "maximum": MAX_OFFSET}),
    (r"^/phonerelay/api/v1/messages$", "status", {"enum": ["queued", "sending", "sent", "failed"]}),
    (r"^/phonerelay/api/v1/webchat/callbacks/inbound$", "id", {"minLength": 1, "required": True}),
    (r"^/relaysms/api/v1/messages$", "status",
     {"enum": ["accepted", "queued", "sent", "delivered", "failed", "received"]}),
    (r"^/coop/api/v1/messages/bulk/\{[^}]+\}/results$", "limit", {"minimum": 1, "maximum": 10_000}),
    (r"^/(relaysms|coop)/", "limit", {"minimum": 1, "maximum": 100}),
    (r"^/(relaysms|coop)/", "page", _PAGE),
    (r"^/relaysms/", "direction", {"enum": ["inbound", "outbound"]}),
    (r"^/coop/", "direction", {"enum": ["sent", "received"]}),
    (r"^/relaysms/api/v1/numbers/", "hours", {"minimum": 1, "maximum": 336}),
    (r"^/relaysms/api/v1/numbers/", "max_pages", {"minimum": 1, "maximum": 20}),
    (r"^/_sim/", "limit", {"minimum": 1, "maximum": 100_000}),
    (r"^/_sim/", "after", {"minimum": 0, "maximum": 2**62}),
    (r"^/_sim/messages$", "dialect", {"enum": ["phonerelay", "relaysms", "coop", "smsgate"]}),
    (r"^/_sim/messages$", "direction", {"enum": ["inbound", "outbound"]}),
]
_BODY_RULES: dict[str | None, dict[str, dict[str, Any]]] = {
    # component schema -> property -> schema additions (on the string branch of an optional)
    "relaysms": {"to": {"pattern": E164_PATTERN}, "from": {"pattern": E164_PATTERN},
                 "status_callback": {"pattern": URL_PATTERN}, "status_url": {"pattern": URL_PATTERN},
                 "inbound_url": {"pattern": URL_PATTERN}, "inbound_callback": {"pattern": URL_PATTERN}},
    "phonerelay": {"callback_url": {"pattern": URL_PATTERN}},
    "coop": {"fromNumber": {"pattern": E164_PATTERN}, "to": {"pattern": COOP_TO_PATTERN},
             "attachments": {"items": {"type": "string", "pattern": URL_PATTERN}, "maxItems": 10}},
    "smsgate": {"url": {"pattern": URL_PATTERN},
                "phoneNumbers": {"items": {"type": "string", "pattern": E164_PATTERN}}},
    None: {"url": {"pattern": URL_PATTERN}},
}
_COOP_ITEM = {
    "type": "object", "required": ["to", "body"],
    "properties": {"to": {"type": "string", "pattern": COOP_TO_PATTERN},
                   "body": {"type": "string", "minLength": 1, "maxLength": 20_000},
                   "priority": {"type": "integer", "minimum": 0, "maximum": 100}},
}
# Whole-schema additions: rules across fields.
_COMPONENT_RULES: dict[tuple[str | None, str], dict[str, Any]] = {
    # coop: text is required unless attachments are given.
    ("coop", "SendBody"): {"anyOf": [
        {"required": ["body"], "properties": {"body": {"type": "string", "minLength": 1}}},
        {"required": ["attachments"], "properties": {"attachments": {"type": "array", "minItems": 1}}},
    ]},
    # (At most 10000 messages; not stated as maxItems, since so many items also pass the body limit: 413.)
    ("coop", "BulkBody"): {"properties": {"messages": {"type": "array", "minItems": 1, "items": _COOP_ITEM}}},
    # smsgate: textMessage.text or the legacy message.
    ("smsgate", "SendBody"): {"anyOf": [
        {"required": ["textMessage"], "properties": {"textMessage": {"$ref": "#/components/schemas/TextMessage"}}},
        {"required": ["message"], "properties": {"message": {"type": "string", "minLength": 1}}},
    ]},
    # phonerelay: who "to" is depends on the channel; email needs a subject, tg_bot a bot token.
    ("phonerelay", "SendBody"): {"allOf": [
        {"if": {"properties": {"channel": {"enum": ["sms", "wa"]}}},
         "then": {"required": ["to"], "properties": {"to": {"type": "string", "pattern": E164_PATTERN}}}},
        {"if": {"properties": {"channel": {"const": "tg"}}},
         "then": {"required": ["to"], "properties": {"to": {"type": "string", "pattern":
                  r"^(@[A-Za-z0-9_]{3,64}|\+[1-9][0-9]{6,14}|-?[0-9]{1,20})$"}}}},
        {"if": {"properties": {"channel": {"const": "tg_bot"}}},
         "then": {"required": ["to", "bot_token"], "properties": {
             "to": {"type": "string", "pattern": r"^(@[A-Za-z0-9_]{3,64}|-?[0-9]{1,20})$"},
             "bot_token": {"type": "string", "minLength": 1}}}},
        {"if": {"properties": {"channel": {"const": "email"}}},
         "then": {"required": ["to", "subject"], "properties": {
             "to": {"type": "string", "pattern": r"^[^@\x00-\x20]+@[^@\x00-\x20]+\.[^@\x00-\x20]+$"},
             "subject": {"type": "string", "minLength": 1}}}},
    ]},
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
                    is_public: Callable[[str], bool], owned_numbers: list[str] | None = None) -> dict[str, Any]:
    """``schema`` with the relay's real error answers on every operation (a copy; ``schema`` is unchanged)."""
    out = copy.deepcopy(schema)
    components = out.setdefault("components", {}).setdefault("schemas", {})
    components.update(copy.deepcopy(_ERROR_SCHEMAS))
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    _standard_bounds(components)
    constrained: set[str] = set()
    for path, operations in out.get("paths", {}).items():
        dialect = dialect_of_path(path)
        public = is_public(path)
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for parameter in operation.get("parameters", []):
                for pattern, name, extra in _QUERY_RULES:
                    if parameter.get("name") == name and re.search(pattern, path):
                        extra = dict(extra)
                        if extra.pop("required", False):
                            parameter["required"] = True
                        _constrain(parameter.setdefault("schema", {}), extra)
                        break
            body_ref = (operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                        .get("schema", {}))
            for ref in _refs(body_ref):
                name = ref.rsplit("/", 1)[-1]
                if name in components and name not in constrained:
                    constrained.add(name)
                    for key, value in _COMPONENT_RULES.get((dialect, name.split("__")[-1]), {}).items():
                        if key == "properties":
                            components[name].setdefault("properties", {}).update(copy.deepcopy(value))
                        else:
                            components[name][key] = copy.deepcopy(value)
                    rules: dict[str, dict[str, Any]] = dict(_BODY_RULES.get(dialect, {}))
                    if dialect == "relaysms" and owned_numbers:
                        rules["from"] = {"enum": list(owned_numbers)}  # relaysms sends from owned numbers only
                    for prop, extra in rules.items():
                        prop_schema = components[name].get("properties", {}).get(prop)
                        if prop_schema is not None:
                            _constrain(prop_schema, extra)
            responses = operation["responses"]
            responses.pop("422", None)
            if method.upper() == "POST" and "202" in responses and _SEND_PATH.search(path):
                # A repeated idempotency key / client reference answers 200 with the original message.
                responses.setdefault("200", {**copy.deepcopy(responses["202"]),
                                             "description": "Duplicate: the original message"})
            error_schema = {"$ref": f"#/components/schemas/{_SCHEMA_OF.get(dialect, 'CoopError')}"}
            for code in error_statuses(path, method, dialect, public):
                responses.setdefault(str(code), {"description": _DESCRIPTIONS[code],
                                                 "content": {"application/json": {"schema": error_schema}}})
    return out


def _refs(schema: Any) -> list[str]:
    """Every ``$ref`` in ``schema`` (a body may be ``anyOf: [{$ref}, {type: null}]``)."""
    if isinstance(schema, dict):
        found = [schema["$ref"]] if isinstance(schema.get("$ref"), str) else []
        for value in schema.values():
            found += _refs(value)
        return found
    if isinstance(schema, list):
        return [r for item in schema for r in _refs(item)]
    return []


def _constrain(schema: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add ``extra`` to ``schema``, or to its non-null branch when it is an optional (``anyOf``)."""
    branches = [b for b in schema.get("anyOf", []) if isinstance(b, dict) and b.get("type") != "null"]
    for target in branches or [schema]:
        if "pattern" in extra and target.get("type") not in (None, "string"):
            continue
        target.update(extra)


_BOUND_NAMES = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _standard_bounds(schema: Any) -> None:
    """pydantic writes the bounds of an annotated (validator-wrapped) number as ge/le: JSON Schema names them."""
    if isinstance(schema, dict):
        if schema.get("type") in ("integer", "number"):
            for short, name in _BOUND_NAMES.items():
                if short in schema:
                    schema[name] = schema.pop(short)
        for value in schema.values():
            _standard_bounds(value)
    elif isinstance(schema, list):
        for item in schema:
            _standard_bounds(item)

"""The receiver's OpenAPI 3.1 document, served at ``GET /openapi.json`` (Starlette builds none).

It lists every route and every answer the receiver gives, errors included, so that generic
clients and fuzzers (schemathesis in ``tests/reliability``) know exactly what to expect.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from relay_integrations.dialects import DIALECT_NAMES
from relay_integrations.models import MessageState, WebhookEvent
from relay_integrations.webhooks.bounds import MAX_ID_CHARS
from relay_integrations.webhooks.inbox import MAX_TEXT_FILTER_CHARS
from relay_integrations.webhooks.store import MAX_CURSOR, MAX_LIMIT

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: dict[str, Any], headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad input: not JSON, nested too deep, too many events, a field out of bounds, an unknown or "
             "invalid query parameter. `field` names it.",
        401: "Missing or wrong signature (webhooks) or API key (queries).",
        404: "No such dialect, no such secret URL, or no such route.",
        405: "Method not allowed on this route.",
        413: "Body larger than the receiver's limit.",
    }
    out: dict[str, Any] = {}
    for code in codes:
        headers = None
        if code == 405:
            headers = {"Allow": {"description": "Methods the route takes.", "schema": {"type": "string"}}}
        if code == 401:
            headers = {"WWW-Authenticate": {"description": "Bearer, on queries.", "schema": {"type": "string"}}}
        out[str(code)] = _answer(text[code], _ref("Error"), headers)
    return out


_WEBHOOK_BODY = {
    "required": True,
    "description": "The relay's webhook body, exactly as it sent it (verified on the raw bytes).",
    "content": {_JSON: {"schema": {"type": "object"}}},
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


@cache
def openapi_document() -> dict[str, Any]:
    """The document (built once; the same for every receiver)."""
    event_schema = WebhookEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = event_schema.pop("$defs", {})
    no_nul = "^[^\u0000]*$"  # the stores cannot hold NUL
    id_string = {"type": "string", "maxLength": MAX_ID_CHARS, "pattern": no_nul}
    filters = [
        _query("dialect", id_string, "Relay dialect."),
        _query("kind", {"type": "string", "enum": ["status", "inbound", "other"]}, "Event kind."),
        _query("event_type", id_string, "The relay's own event name."),
        _query("message_id", id_string, "The message the event is about."),
        _query("state", {"type": "string", "enum": [s.value for s in MessageState]}, "Canonical state."),
        _query("sender", id_string, "Who sent it."),
        _query("recipient", id_string, "Who it was for."),
        _query("text_contains", {"type": "string", "maxLength": MAX_TEXT_FILTER_CHARS, "pattern": no_nul},
               "Case-insensitive substring of the text."),
        _query("after", {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR}, "Only events after this cursor."),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Most events returned."),
    ]
    stored = {
        "type": "object",
        "required": ["stored", "duplicates", "cursors"],
        "properties": {
            "stored": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "cursors": {"type": "array", "items": {"type": "integer"}},
        },
    }
    signed: list[dict[str, list[str]]] = [
        {"smsgateSignature": []}, {"coopSignature": []}, {"callbackToken": []}, {"standardWebhooks": []},
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "relay-integrations webhook receiver",
            "version": "1",
            "description": "Verifies, de-duplicates and stores relay webhooks; serves them to inboxes.",
        },
        "paths": {
            "/webhooks/{dialect}": {
                "post": {
                    "operationId": "receiveWebhook",
                    "summary": "One signed delivery from a relay",
                    "parameters": [{"name": "dialect", "in": "path", "required": True,
                                    "schema": {"type": "string", "enum": list(DIALECT_NAMES)}}],
                    "security": signed,
                    "requestBody": _WEBHOOK_BODY,
                    "responses": {"200": _answer("Stored (or a duplicate, stored once before).", stored),
                                  **_errors(400, 401, 404, 405, 413)},
                }
            },
            "/webhooks/relaysms/{token}": {
                "post": {
                    "operationId": "receiveRelaysmsAtSecretUrl",
                    "summary": "A relaysms delivery at the secret URL (unsigned, or Standard Webhooks)",
                    "parameters": [{"name": "token", "in": "path", "required": True,
                                    "schema": {"type": "string", "minLength": 1}}],
                    "requestBody": _WEBHOOK_BODY,
                    "responses": {"200": _answer("Stored (or a duplicate).", stored),
                                  **_errors(400, 401, 404, 405, 413)},
                }
            },
            "/events": {
                "get": {
                    "operationId": "queryEvents",
                    "summary": "Stored events, oldest first",
                    "security": [{"apiKey": []}],
                    "parameters": filters,
                    "responses": {"200": _answer("Matching events.", {"type": "array", "items": _ref("WebhookEvent")}),
                                  **_errors(400, 401, 405)},
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness",
                    "responses": {"200": _answer("Up.", {"type": "object", "required": ["status"],
                                                         "properties": {"status": {"const": "ok"}}}),
                                  **_errors(405)},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _answer("The OpenAPI document.", {"type": "object"}), **_errors(405)},
                }
            },
        },
        "components": {
            "schemas": {
                **defs,
                "WebhookEvent": event_schema,
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
                },
            },
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "The receiver's --api-key."},
                "smsgateSignature": {"type": "apiKey", "in": "header", "name": "X-Signature",
                                     "description": "smsgate: hex HMAC-SHA256 of body + X-Timestamp."},
                "coopSignature": {"type": "apiKey", "in": "header", "name": "X-Webhook-Signature",
                                  "description": "coop: hex HMAC-SHA256 of the body."},
                "callbackToken": {"type": "apiKey", "in": "header", "name": "X-Callback-Token",
                                  "description": "phonerelay: the callback's own token."},
                "standardWebhooks": {"type": "apiKey", "in": "header", "name": "webhook-signature",
                                     "description": "relaysms: Standard Webhooks v1 signature."},
            },
        },
    }

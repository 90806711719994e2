"""phonerelay dialect against every example in relay-docs/phonerelay.md."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from dialect_replay import API_KEY, replay
from pydantic import SecretStr

from relay_integrations.dialects import get_dialect
from relay_integrations.dialects.phonerelay import DIALECT, PhoneRelayDialect
from relay_integrations.errors import (
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayRateLimitError,
    RelayServerError,
    RelayUnavailableError,
    RelayValidationError,
    UnsupportedOperationError,
)
from relay_integrations.models import InboundQuery, MessageState, OutboundMessage

SEND_PATH = "/api/v1/messages"

# --- the doc's examples, verbatim ---------------------------------------------------------------
DOC_SEND_REQUEST = {
    "phone_id": "phone_main",
    "channel": "sms",
    "to": "+15551234567",
    "text": "hello",
    "source": "my-app",
    "idempotency_key": "my-unique-id-001",
}
DOC_SEND_202 = {"success": True, "message_id": "msg_...", "status": "queued", "idempotency_key": "..."}
DOC_SEND_200_DUPLICATE = {
    "success": True,
    "duplicate": True,
    "message_id": "msg_...",
    "status": "queued",
    "idempotency_key": "...",
}
DOC_VARIANTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # (canonical message, the doc's "Quick Variants" body)
    (
        {"phone_id": "phone_main", "channel": "wa", "to": "+15551234567", "text": "hello"},
        {"phone_id": "phone_main", "channel": "wa", "to": "+15551234567", "text": "hello"},
    ),
    (
        {"phone_id": "phone_main", "channel": "tg", "to": "@name", "text": "hello"},
        {"phone_id": "phone_main", "channel": "tg", "to": "@name", "text": "hello"},
    ),
    (
        {"phone_id": "phone_main", "channel": "notify", "title": "Alert", "text": "hello"},
        {"phone_id": "phone_main", "channel": "notify", "title": "Alert", "text": "hello"},
    ),
    (
        {"phone_id": "phone_main", "channel": "email", "to": "me@example.com", "subject": "Hi", "text": "hello"},
        {"phone_id": "phone_main", "channel": "email", "to": "me@example.com", "subject": "Hi", "text": "hello"},
    ),
    (
        {"phone_id": "phone_main", "channel": "tg_bot", "to": "123456789", "bot_token": "...", "text": "hello"},
        {"phone_id": "phone_main", "channel": "tg_bot", "to": "123456789", "bot_token": "...", "text": "hello"},
    ),
]
DOC_STATUS = {
    "success": True,
    "message": {
        "message_id": "msg_...",
        "status": "queued | sending | sent | failed",
        "last_error": None,
        "created_at": "2026-02-17T19:40:00+00:00",
        "delivered_at": None,
    },
}
DOC_INBOUND_QUERY = {
    "phone_id": "phone_main",
    "range": "7d",
    "channels": ["sms", "wa", "tg"],
    "event_types": ["call", "missed", "answered"],
    "tags": ["vip", "support"],
    "tag_mode": "any",
    "source_contains": "+1555",
    "min_duration_sec": 10,
    "has_response": True,
    "sort": "slowest",
    "limit": 200,
}
DOC_INBOUND_STATS = {
    "success": True,
    "summary": {
        "inbound_total": 120,
        "calls_total": 54,
        "messages_total": 66,
        "answered_calls": 31,
        "missed_calls": 15,
        "avg_call_duration_sec": 84,
        "median_response_min": 3,
        "channels": {"sms": 40, "wa": 58, "tg": 22},
    },
    "sent_summary": {"sent_total": 210, "channels": {"sms": 70, "wa": 100, "tg": 40}},
    "sent_by_channel": {"sms": 70, "wa": 100, "tg": 40},
    "sent_by_day": [{"day": "2026-02-21", "count": 19}],
    "sent_by_person": [{"destination": "+1555...", "total": 12, "last_sent": "..."}],
    "sent_by_tag": [{"tag": "support", "count": 34}],
    "sent_events": [{"message_id": "msg_...", "destination": "+1555..."}],
    "email_report": {
        "inbound_total": 28,
        "sent_total": 41,
        "top_inbound_senders": [{"sender": "ops@vendor.com", "count": 8}],
        "top_sent_recipients": [{"recipient": "client@acme.com", "count": 11}],
        "domains": [{"domain": "vendor.com", "count": 19}],
        "by_day": [{"day": "2026-02-21", "count": 7}],
    },
    "hourly": [{"hour": 9, "count": 12}],
    "top_contacts": [{"source": "+1555...", "total": 14}],
    "events": [{"message_id": "in_...", "event_type": "missed"}],
    "count": 200,
}
DOC_CALLBACK = {
    "callback_url": "https://example.com/inbound-hook",
    "channels": ["sms", "wa"],
    "source_filter": "+1555",
    "event_types": ["call", "missed", "answered"],
    "keyword_filter": "support",
    "min_duration_sec": 5,
    "max_duration_sec": 900,
    "callback_token": "secret-token",
    "active": True,
}


def test_module_exposes_dialect() -> None:
    assert isinstance(DIALECT, PhoneRelayDialect)
    assert get_dialect("phonerelay") is DIALECT
    assert DIALECT.name == "phonerelay"
    assert DIALECT.base_path == "/api/v1"


def test_capabilities() -> None:
    caps = DIALECT.capabilities
    assert caps.channels == {"sms", "wa", "tg", "notify", "email", "tg_bot", "pchat"}
    assert caps.client_idempotency_keys is True
    assert caps.webhooks is True and caps.webhook_scheme == "callback-token"
    assert caps.inbound_stats is True
    assert caps.batch == "none"


def test_every_documented_endpoint() -> None:
    routes = {(e.method, e.path) for e in DIALECT.endpoints.values()}
    assert routes == {
        ("POST", "/api/v1/messages"),
        ("GET", "/api/v1/messages/{message_id}"),
        ("GET", "/api/v1/messages"),
        ("GET", "/health"),
        ("GET", "/api/v1/webchat/inbound/query"),
        ("POST", "/api/v1/webchat/inbound/query"),
        ("GET", "/api/v1/webchat/callbacks/inbound"),
        ("POST", "/api/v1/webchat/callbacks/inbound"),
        ("DELETE", "/api/v1/webchat/callbacks/inbound"),
    }
    assert all(name == e.name for name, e in DIALECT.endpoints.items())


def test_auth_header_is_bearer() -> None:
    assert DIALECT.auth_headers("CLIENT_API_KEY") == {"Authorization": "Bearer CLIENT_API_KEY"}


# --- send ------------------------------------------------------------------------------------
def test_send_request_matches_doc_and_202_receipt() -> None:
    message = OutboundMessage(**{k: v for k, v in DOC_SEND_REQUEST.items()})
    request = DIALECT.build_send(message)
    assert request.retry_safe is True
    assert request.idempotency_key == "my-unique-id-001"
    wire = replay(DIALECT, request, status=202, body=DOC_SEND_202)
    assert wire.request.method == "POST"
    assert wire.path == SEND_PATH
    assert wire.sent_json == DOC_SEND_REQUEST
    assert wire.request.headers["Authorization"] == f"Bearer {API_KEY}"
    receipt = DIALECT.parse_send(wire.response.status_code, wire.response.json(), message)
    assert receipt.message_id == "msg_..."
    assert receipt.state is MessageState.QUEUED
    assert receipt.raw_state == "queued"
    assert receipt.duplicate is False
    assert receipt.idempotency_key == "..."
    assert receipt.dialect == "phonerelay"
    assert receipt.raw == DOC_SEND_202


def test_duplicate_200_keeps_the_same_id() -> None:
    message = OutboundMessage(**DOC_SEND_REQUEST)
    wire = replay(DIALECT, DIALECT.build_send(message), status=200, body=DOC_SEND_200_DUPLICATE)
    receipt = DIALECT.parse_send(wire.response.status_code, wire.response.json(), message)
    assert receipt.duplicate is True
    assert receipt.message_id == "msg_..."
    assert receipt.state is MessageState.QUEUED


@pytest.mark.parametrize("source", ["curl", "python", "cpp", "node", "go", "java", "csharp"])
def test_copy_paste_examples(source: str) -> None:
    """Every language example posts the same body with its own ``source`` and key ``sms-001``."""
    expected = {
        "phone_id": "phone_main",
        "channel": "sms",
        "to": "+15551234567",
        "text": "hello",
        "source": source,
        "idempotency_key": "sms-001",
    }
    wire = replay(DIALECT, DIALECT.build_send(OutboundMessage(**expected)), status=202, body=DOC_SEND_202)
    assert wire.path == SEND_PATH
    assert wire.sent_json == expected


@pytest.mark.parametrize(("canonical", "doc_body"), DOC_VARIANTS, ids=[v[1]["channel"] for v in DOC_VARIANTS])
def test_quick_variants(canonical: dict[str, Any], doc_body: dict[str, Any]) -> None:
    request = DIALECT.build_send(OutboundMessage(**canonical))
    # No idempotency key in the variants: the relay cannot de-duplicate a retry.
    assert request.retry_safe is False
    wire = replay(DIALECT, request, status=202, body=DOC_SEND_202)
    assert wire.sent_json == doc_body


def test_bot_token_only_in_the_request_body() -> None:
    message = OutboundMessage(
        phone_id="phone_main", channel="tg_bot", to="123456789", text="hi", bot_token=SecretStr("bot-Secr3t-42")
    )
    request = DIALECT.build_send(message)
    assert request.json["bot_token"] == "bot-Secr3t-42"
    assert "bot-Secr3t-42" not in repr(message)
    assert "bot-Secr3t-42" not in repr(request)
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send(message.model_copy(update={"text": None}))
    assert "bot-Secr3t-42" not in str(info.value) + repr(info.value)


def test_pchat_needs_no_recipient() -> None:
    request = DIALECT.build_send(OutboundMessage(phone_id="phone_main", channel="pchat", text="hi"))
    assert request.json == {"phone_id": "phone_main", "channel": "pchat", "text": "hi"}


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"channel": "fax", "to": "+15551234567"}, "channel"),
        ({"channel": "sms", "phone_id": None, "to": "+15551234567"}, "phone_id"),
        ({"channel": "sms"}, "to"),
        ({"channel": "wa"}, "to"),
        ({"channel": "tg"}, "to"),
        ({"channel": "email", "to": "me@example.com"}, "subject"),
        ({"channel": "email", "subject": "Hi"}, "to"),
        ({"channel": "tg_bot", "to": "123456789"}, "bot_token"),
        ({"channel": "sms", "to": "+15551234567", "text": None}, "text"),
        ({"channel": "sms", "to": ["+15551234567", "+15551234568"]}, "to"),
    ],
)
def test_send_validation_names_the_field(fields: dict[str, Any], bad_field: str) -> None:
    data: dict[str, Any] = {"phone_id": "phone_main", "text": "hello", **fields}
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send(OutboundMessage(**data))
    assert info.value.field == bad_field
    assert info.value.dialect == "phonerelay"


def test_no_batch_send() -> None:
    with pytest.raises(UnsupportedOperationError):
        DIALECT.build_send_batch([OutboundMessage(phone_id="p", to="+15551234567", text="x")])
    with pytest.raises(UnsupportedOperationError):
        DIALECT.build_get_batch("b1")


# --- status and list ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("queued", MessageState.QUEUED),
        ("sending", MessageState.SENDING),
        ("sent", MessageState.SENT),
        ("failed", MessageState.FAILED),
    ],
)
def test_status_example_each_documented_state(raw: str, state: MessageState) -> None:
    body = {**DOC_STATUS, "message": {**DOC_STATUS["message"], "status": raw}}  # type: ignore[dict-item]
    wire = replay(DIALECT, DIALECT.build_get_status("msg_..."), body=body)
    assert wire.request.method == "GET"
    assert wire.path == "/api/v1/messages/msg_..."
    report = DIALECT.parse_status(wire.response.json())
    assert report.message_id == "msg_..."
    assert report.state is state
    assert report.raw_state == raw
    assert report.error is None
    assert report.created_at == datetime(2026, 2, 17, 19, 40, tzinfo=timezone.utc)
    assert report.delivered_at is None


def test_sent_with_delivered_at_is_delivered() -> None:
    body = {"success": True, "message": {**DOC_STATUS["message"], "status": "sent"}}  # type: ignore[dict-item]
    body["message"]["delivered_at"] = "2026-02-17T19:40:05+00:00"
    report = DIALECT.parse_status(body)
    assert report.state is MessageState.DELIVERED
    assert report.raw_state == "sent"
    assert report.delivered_at == datetime(2026, 2, 17, 19, 40, 5, tzinfo=timezone.utc)


def test_failed_status_carries_last_error() -> None:
    body = {"success": True, "message": {**DOC_STATUS["message"], "status": "failed", "last_error": "no signal"}}  # type: ignore[dict-item]
    report = DIALECT.parse_status(body)
    assert report.state is MessageState.FAILED
    assert report.error == "no signal"


def test_message_id_is_path_quoted() -> None:
    assert DIALECT.build_get_status("a/b c").path == "/api/v1/messages/a%2Fb%20c"


def test_list_recent_example() -> None:
    request = DIALECT.build_list_messages(limit=50)
    answer = {
        "success": True,
        "messages": [
            {"message_id": "msg_1", "status": "sent", "delivered_at": "2026-02-17T19:40:05+00:00", "to": "+1555"},
            {"message_id": "msg_2", "status": "queued", "channel": "wa", "delivered_at": None},
        ],
    }
    wire = replay(DIALECT, request, body=answer)
    assert wire.request.method == "GET"
    assert wire.path == "/api/v1/messages"
    assert wire.query == {"limit": "50"}
    page = DIALECT.parse_message_page(wire.response.json())
    assert [m.message_id for m in page.messages] == ["msg_1", "msg_2"]
    assert [m.state for m in page.messages] == [MessageState.DELIVERED, MessageState.QUEUED]
    assert page.messages[1].channel == "wa"
    assert DIALECT.parse_message_page([answer["messages"][0]]).messages[0].to == "+1555"


def test_health_is_outside_the_base_path() -> None:
    wire = replay(DIALECT, DIALECT.build_health(), body={"ok": True})
    assert wire.path == "/health"
    assert wire.request.method == "GET"


# --- inbound query and callbacks -----------------------------------------------------------------
def test_inbound_query_post_matches_doc() -> None:
    request = DIALECT.build_inbound_query(InboundQuery(**DOC_INBOUND_QUERY))
    assert request.retry_safe is True
    wire = replay(DIALECT, request, body=DOC_INBOUND_STATS)
    assert wire.request.method == "POST"
    assert wire.path == "/api/v1/webchat/inbound/query"
    assert wire.sent_json == DOC_INBOUND_QUERY
    stats = DIALECT.parse_inbound_stats(wire.response.json())
    assert stats.summary["inbound_total"] == 120
    assert stats.summary["channels"] == {"sms": 40, "wa": 58, "tg": 22}
    assert stats.sent_summary["sent_total"] == 210
    assert stats.sent_by_channel == {"sms": 70, "wa": 100, "tg": 40}
    assert stats.sent_by_day == [{"day": "2026-02-21", "count": 19}]
    assert stats.sent_by_person[0]["total"] == 12
    assert stats.sent_by_tag == [{"tag": "support", "count": 34}]
    assert stats.sent_events[0]["message_id"] == "msg_..."
    assert stats.email_report["domains"] == [{"domain": "vendor.com", "count": 19}]
    assert stats.hourly == [{"hour": 9, "count": 12}]
    assert stats.top_contacts == [{"source": "+1555...", "total": 14}]
    assert stats.events == [{"message_id": "in_...", "event_type": "missed"}]
    assert stats.count == 200
    assert stats.raw == DOC_INBOUND_STATS


def test_inbound_query_get_sends_filters_as_query() -> None:
    request = DIALECT.build_inbound_query(
        InboundQuery(phone_id="phone_main", channels=["sms", "wa"], has_response=False, limit=5), method="GET"
    )
    wire = replay(DIALECT, request, body={"success": True, "count": 0})
    assert wire.request.method == "GET"
    assert wire.path == "/api/v1/webchat/inbound/query"
    assert wire.query == {"phone_id": "phone_main", "channels": "sms,wa", "has_response": "false", "limit": "5"}


@pytest.mark.parametrize(
    ("endpoint", "method"),
    [("create_callback", "POST"), ("list_callbacks", "GET"), ("delete_callback", "DELETE")],
)
def test_callback_endpoints(endpoint: str, method: str) -> None:
    body = DOC_CALLBACK if method == "POST" else None
    request = DIALECT.request(endpoint, json=body)
    wire = replay(DIALECT, request, body={"success": True})
    assert wire.request.method == method
    assert wire.path == "/api/v1/webchat/callbacks/inbound"
    assert wire.sent_json == body


def test_unknown_endpoint_is_unsupported() -> None:
    with pytest.raises(UnsupportedOperationError):
        DIALECT.request("balance")


# --- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "message"),
    [
        (401, {"success": False, "error": "invalid api key"}, RelayAuthError, None, "invalid api key"),
        (403, {"error": {"code": "FORBIDDEN", "message": "revoked"}}, RelayAuthError, "FORBIDDEN", "revoked"),
        (404, {"success": False, "error": "message not found"}, RelayNotFoundError, None, "message not found"),
        (
            422,
            {"detail": [{"loc": ["body", "phone_id"], "msg": "Field required"}]},
            RelayValidationError,
            None,
            "Field required",
        ),
        (500, "Internal Server Error", RelayServerError, None, "Internal Server Error"),
        (502, None, RelayUnavailableError, None, "phonerelay answered HTTP 502"),
    ],
)
def test_error_shapes(status: int, body: Any, cls: type[RelayError], code: str | None, message: str) -> None:
    error = DIALECT.parse_error(status, body, {})
    assert type(error) is cls
    assert error.status_code == status
    assert error.code == code
    assert error.message == message
    assert error.dialect == "phonerelay"
    assert API_KEY not in str(error) and API_KEY not in repr(error)


def test_validation_error_names_the_field() -> None:
    error = DIALECT.parse_error(400, {"success": False, "error": "bad channel", "field": "channel"}, {})
    assert isinstance(error, RelayValidationError)
    assert error.field == "channel"
    fastapi = DIALECT.parse_error(422, {"detail": [{"loc": ["body", "phone_id"], "msg": "Field required"}]}, {})
    assert isinstance(fastapi, RelayValidationError) and fastapi.field == "phone_id"


def test_retry_after_is_honoured() -> None:
    limited = DIALECT.parse_error(429, {"error": "slow down"}, {"Retry-After": "7"})
    assert isinstance(limited, RelayRateLimitError) and limited.retry_after == 7.0
    busy = DIALECT.parse_error(503, None, {"retry-after": "2.5"})
    assert isinstance(busy, RelayUnavailableError) and busy.retry_after == 2.5
    assert DIALECT.parse_error(429, None, {}).retry_after is None  # type: ignore[attr-defined]


def test_error_on_the_wire() -> None:
    """A real 401 answer through httpx (headers are case-insensitive there)."""
    wire = replay(
        DIALECT,
        DIALECT.build_get_status("msg_1"),
        status=429,
        body={"success": False, "error": "rate limited"},
        headers={"Retry-After": "3"},
    )
    error = DIALECT.parse_error(wire.response.status_code, wire.response.json(), wire.response.headers)
    assert isinstance(error, RelayRateLimitError)
    assert error.retry_after == 3.0


# --- webhooks --------------------------------------------------------------------------------------
CALLBACK_BODY = {
    "event": "inbound",
    "subscription": {"id": "sub_1", "callback_url": "http://127.0.0.1:9/hook", "channels": ["sms"]},
    "events": [
        {
            "message_id": "in_1",
            "event_type": "message",
            "channel": "sms",
            "source": "+15557654321",
            "destination": "+15551234567",
            "text": "STOP",
            "duration_sec": None,
            "tags": ["vip"],
            "phone_id": "phone_main",
            "created_at": "2026-02-21T09:00:00+00:00",
        },
        {
            "message_id": "in_2",
            "event_type": "missed",
            "channel": "call",
            "source": "+15557654321",
            "destination": "+15551234567",
            "text": None,
            "duration_sec": 0,
            "tags": [],
            "phone_id": "phone_main",
            "created_at": "2026-02-21T09:01:00+00:00",
        },
    ],
}


def test_parse_webhook_inbound_callback() -> None:
    events = DIALECT.parse_webhook(CALLBACK_BODY, {"X-Callback-Token": "secret-token"})
    assert [e.kind for e in events] == ["inbound", "inbound"]
    first, second = events
    assert first.dialect == "phonerelay"
    assert first.message_id == "in_1"
    assert first.event_type == "message"
    assert first.sender == "+15557654321"
    assert first.recipient == "+15551234567"
    assert first.text == "STOP"
    assert first.occurred_at == datetime(2026, 2, 21, 9, 0, tzinfo=timezone.utc)
    assert first.raw["subscription"]["id"] == "sub_1"
    assert second.event_type == "missed"
    assert first.event_id != second.event_id
    # Same delivery again (a retry): same ids, so the inbox dedupes it.
    assert [e.event_id for e in DIALECT.parse_webhook(CALLBACK_BODY, {})] == [first.event_id, second.event_id]
    assert "secret-token" not in first.event_id


def test_parse_webhook_tolerates_empty_and_bare_bodies() -> None:
    assert DIALECT.parse_webhook({"event": "inbound", "events": []}, {}) == []
    single = DIALECT.parse_webhook(CALLBACK_BODY["events"][0], {})  # type: ignore[index]
    assert len(single) == 1 and single[0].message_id == "in_1"


def test_list_keeps_inbound_rows_and_pages_by_offset() -> None:
    answer = {
        "success": True,
        "messages": [
            {"message_id": "msg_9", "status": "sent", "direction": "outbound", "delivered_at": None},
            {"message_id": "in_3", "status": "received", "direction": "inbound", "from": "+1555", "text": "hi"},
        ],
        "count": 2,
        "limit": 2,
        "offset": 4,
        "has_more": True,
    }
    page = DIALECT.parse_message_page(answer)
    assert [m.state for m in page.messages] == [MessageState.SENT, None]
    assert page.messages[1].raw_state == "received" and page.messages[1].direction == "inbound"
    assert page.total is None  # "count" is this page's size, not a total
    assert DIALECT.next_page_filters({"limit": 2}, page) == {"limit": 2, "offset": 6}
    last = DIALECT.parse_message_page({**answer, "has_more": False})
    assert DIALECT.next_page_filters({"limit": 2}, last) is None

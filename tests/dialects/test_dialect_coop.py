"""coop dialect against every example in relay-docs/coop.md."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from dialect_replay import API_KEY, replay

from relay_integrations.dialects import get_dialect
from relay_integrations.dialects.coop import DIALECT, CoopDialect
from relay_integrations.errors import (
    RelayAuthError,
    RelayError,
    RelayNotFoundError,
    RelayRateLimitError,
    RelayServerError,
    RelayValidationError,
)
from relay_integrations.models import MessageState, OutboundMessage

# --- the doc's examples, verbatim ---------------------------------------------------------------
DOC_SEND_201 = {
    "id": "msg_abc123",
    "status": "queued",
    "to": "+15551234567",
    "body": "Hello!",
    "priority": 0,
    "createdAt": "2025-01-15T10:30:00Z",
}
DOC_STATUS = {
    "id": "msg_abc123",
    "status": "delivered",
    "attempts": 1,
    "lastError": None,
    "queuedAt": "2025-01-15T10:30:00Z",
    "sentAt": "2025-01-15T10:30:02Z",
    "deliveredAt": "2025-01-15T10:30:05Z",
}
DOC_QUEUE_STATS = {"pending": 5, "processing": 2, "failed": 0, "deadLetter": 1}
DOC_BULK_201 = {
    "jobId": "bulk_xyz789",
    "status": "processing",
    "totalRecipients": 50,
    "createdAt": "2025-01-15T10:30:00Z",
}


def test_module_exposes_dialect() -> None:
    assert isinstance(DIALECT, CoopDialect)
    assert get_dialect("coop") is DIALECT
    assert DIALECT.base_path == "/api/v1"


def test_capabilities() -> None:
    caps = DIALECT.capabilities
    assert caps.channels == {"imessage", "sms"}
    assert caps.batch == "bulk" and caps.max_batch_size == 1000
    assert caps.client_idempotency_keys is False
    assert caps.webhooks is True and caps.webhook_scheme == "coop"
    assert caps.max_attachments == 10


def test_every_documented_endpoint() -> None:
    routes = {(e.method, e.path) for e in DIALECT.endpoints.values()}
    assert routes == {
        ("POST", "/api/v1/messages"),
        ("GET", "/api/v1/messages"),
        ("GET", "/api/v1/messages/{message_id}/status"),
        ("GET", "/api/v1/messages/{message_id}/attachments"),
        ("GET", "/api/v1/messages/queue/stats"),
        ("POST", "/api/v1/messages/bulk"),
        ("GET", "/api/v1/messages/bulk"),
        ("GET", "/api/v1/messages/bulk/{batch_id}"),
        ("GET", "/api/v1/messages/bulk/{batch_id}/results"),
    }


def test_auth_header_is_bearer() -> None:
    assert DIALECT.auth_headers("key") == {"Authorization": "Bearer key"}


# --- send ----------------------------------------------------------------------------------------
def test_send_example() -> None:
    message = OutboundMessage(to="+15551234567", text="Hello!")
    request = DIALECT.build_send(message)
    assert request.retry_safe is False
    wire = replay(DIALECT, request, status=201, body=DOC_SEND_201)
    assert wire.request.method == "POST"
    assert wire.path == "/api/v1/messages"
    assert wire.sent_json == {"to": "+15551234567", "body": "Hello!"}
    assert wire.request.headers["Authorization"] == f"Bearer {API_KEY}"
    receipt = DIALECT.parse_send(201, wire.response.json(), message)
    assert receipt.message_id == "msg_abc123"
    assert receipt.state is MessageState.QUEUED and receipt.raw_state == "queued"
    assert receipt.recipients == ["+15551234567"]
    assert receipt.raw == DOC_SEND_201


def test_send_every_field() -> None:
    message = OutboundMessage(
        to="user@icloud.com",
        channel="imessage",
        text="Hi",
        attachments=[f"https://cdn.example/{i}.png" for i in range(10)],
        priority=100,
        sender="+15550000001",
    )
    assert DIALECT.build_send(message).json == {
        "to": "user@icloud.com",
        "body": "Hi",
        "attachments": [f"https://cdn.example/{i}.png" for i in range(10)],
        "priority": 100,
        "fromNumber": "+15550000001",
    }


def test_attachments_without_body() -> None:
    message = OutboundMessage(to="+15551234567", attachments=["https://cdn.example/a.png"])
    assert DIALECT.build_send(message).json == {"to": "+15551234567", "attachments": ["https://cdn.example/a.png"]}


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"text": None}, "text"),
        ({"attachments": [f"https://x/{i}" for i in range(11)]}, "attachments"),
        ({"priority": 101}, "priority"),
        ({"priority": -1}, "priority"),
        ({"channel": "wa"}, "channel"),
        ({"to": None}, "to"),
        ({"to": ["+15551234567", "+15551234568"]}, "to"),
    ],
)
def test_send_validation(fields: dict[str, Any], bad_field: str) -> None:
    data: dict[str, Any] = {"to": "+15551234567", "text": "Hello!", **fields}
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send(OutboundMessage(**data))
    assert info.value.field == bad_field


# --- status, list, attachments, queue ------------------------------------------------------------
def test_status_example() -> None:
    wire = replay(DIALECT, DIALECT.build_get_status("msg_abc123"), body=DOC_STATUS)
    assert wire.request.method == "GET"
    assert wire.path == "/api/v1/messages/msg_abc123/status"
    report = DIALECT.parse_status(wire.response.json())
    assert report.message_id == "msg_abc123"
    assert report.state is MessageState.DELIVERED and report.raw_state == "delivered"
    assert report.attempts == 1
    assert report.error is None
    assert report.created_at == datetime(2025, 1, 15, 10, 30, tzinfo=timezone.utc)
    assert report.sent_at == datetime(2025, 1, 15, 10, 30, 2, tzinfo=timezone.utc)
    assert report.delivered_at == datetime(2025, 1, 15, 10, 30, 5, tzinfo=timezone.utc)
    assert [e.state for e in report.timeline] == [MessageState.QUEUED, MessageState.SENT, MessageState.DELIVERED]
    assert report.raw == DOC_STATUS


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("queued", MessageState.QUEUED),
        ("processing", MessageState.SENDING),
        ("sent", MessageState.SENT),
        ("delivered", MessageState.DELIVERED),
        ("failed", MessageState.FAILED),
    ],
)
def test_status_states(raw: str, state: MessageState) -> None:
    report = DIALECT.parse_status({**DOC_STATUS, "status": raw, "lastError": "boom" if raw == "failed" else None})
    assert report.state is state
    assert report.error == ("boom" if raw == "failed" else None)


def test_list_messages_request() -> None:
    request = DIALECT.build_list_messages(direction="outbound", participant="+15551234567", page=2, limit=20)
    answer = {
        "messages": [
            {
                "id": "msg_abc123",
                "status": "delivered",
                "to": "+15551234567",
                "body": "Hello!",
                "direction": "sent",
                "createdAt": "2025-01-15T10:30:00Z",
            },
            {
                "id": "msg_in_1",
                "status": "received",
                "from": "+15551234567",
                "body": "Hi back",
                "direction": "received",
            },
        ],
        "page": 2,
        "limit": 20,
        "total": 42,
    }
    wire = replay(DIALECT, request, body=answer)
    assert wire.path == "/api/v1/messages"
    assert wire.query == {"direction": "sent", "participant": "+15551234567", "page": "2", "limit": "20"}
    page = DIALECT.parse_message_page(wire.response.json())
    assert [m.message_id for m in page.messages] == ["msg_abc123", "msg_in_1"]
    assert [m.direction for m in page.messages] == ["outbound", "inbound"]
    assert page.messages[0].state is MessageState.DELIVERED
    assert page.messages[1].state is None and page.messages[1].raw_state == "received"
    assert page.messages[1].sender == "+15551234567"
    assert (page.page, page.limit, page.total, page.has_more) == (2, 20, 42, True)


@pytest.mark.parametrize(
    "body",
    [
        [{"id": "m1", "status": "sent"}],
        {"data": [{"id": "m1", "status": "sent"}], "pagination": {"page": 1, "totalPages": 1}},
        {"items": [{"id": "m1", "status": "sent"}], "hasMore": False},
    ],
)
def test_list_shapes_read_defensively(body: Any) -> None:
    page = DIALECT.parse_message_page(body)
    assert [m.message_id for m in page.messages] == ["m1"]
    assert page.messages[0].state is MessageState.SENT
    if isinstance(body, dict):
        assert page.has_more is False


def test_list_direction_must_be_known() -> None:
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_list_messages(direction="sideways")
    assert info.value.field == "direction"


def test_attachments_and_queue_stats() -> None:
    attachments = replay(
        DIALECT,
        DIALECT.request("list_attachments", path_params={"message_id": "msg_abc123"}),
        body=[{"url": "https://cdn.example/a.png"}],
    )
    assert attachments.path == "/api/v1/messages/msg_abc123/attachments"
    stats = replay(DIALECT, DIALECT.request("queue_stats"), body=DOC_QUEUE_STATS)
    assert stats.request.method == "GET"
    assert stats.path == "/api/v1/messages/queue/stats"
    assert DIALECT.unwrap(stats.response.json()) == DOC_QUEUE_STATS
    assert DIALECT.map_state("pending") is MessageState.QUEUED  # the queue's name for waiting


# --- bulk ------------------------------------------------------------------------------------------
def test_bulk_create_example() -> None:
    messages = [OutboundMessage(to=f"+1555000{i:04d}", text=f"Hello {i}") for i in range(50)]
    request = DIALECT.build_send_batch(messages)
    assert request.retry_safe is False
    wire = replay(DIALECT, request, status=201, body=DOC_BULK_201)
    assert wire.request.method == "POST"
    assert wire.path == "/api/v1/messages/bulk"
    assert wire.sent_json == {"messages": [{"to": f"+1555000{i:04d}", "body": f"Hello {i}"} for i in range(50)]}
    receipt = DIALECT.parse_send_batch(201, wire.response.json(), messages)
    assert receipt.batch_id == "bulk_xyz789"
    assert receipt.state == "processing"
    assert (receipt.total, receipt.accepted, receipt.rejected) == (50, 50, 0)
    assert receipt.raw == DOC_BULK_201


def test_bulk_validation_names_the_row() -> None:
    messages = [OutboundMessage(to="+15551234567", text="a"), OutboundMessage(to="+15551234568")]
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send_batch(messages)
    assert info.value.field == "messages[1].text"
    with_attachment = [OutboundMessage(to="+15551234567", text="a", attachments=["https://x/a"])]
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send_batch(with_attachment)
    assert info.value.field == "messages[0].attachments"
    with pytest.raises(RelayValidationError):
        DIALECT.build_send_batch([OutboundMessage(to="+15551234567", text="a")] * 1001)


def test_bulk_job_endpoints() -> None:
    listed = replay(DIALECT, DIALECT.request("list_bulk_jobs"), body=[DOC_BULK_201])
    assert listed.request.method == "GET" and listed.path == "/api/v1/messages/bulk"
    job = {**DOC_BULK_201, "status": "completed", "processed": 50, "completed": 48, "failed": 2}
    got = replay(DIALECT, DIALECT.build_get_batch("bulk_xyz789"), body=job)
    assert got.path == "/api/v1/messages/bulk/bulk_xyz789"
    progress = DIALECT.parse_batch_progress(got.response.json())
    assert progress.batch_id == "bulk_xyz789"
    assert progress.status == "completed"
    assert (progress.total, progress.processed, progress.completed, progress.failed) == (50, 50, 48, 2)
    results = replay(DIALECT, DIALECT.build_bulk_results("bulk_xyz789"), body={"results": []})
    assert results.path == "/api/v1/messages/bulk/bulk_xyz789/results"


# --- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "message"),
    [
        (401, {"error": "Unauthorized"}, RelayAuthError, None, "Unauthorized"),
        (
            400,
            {"error": {"code": "VALIDATION", "message": "to is required"}},
            RelayValidationError,
            "VALIDATION",
            "to is required",
        ),
        (404, {"message": "Message not found"}, RelayNotFoundError, None, "Message not found"),
        (429, {"error": "Too many requests"}, RelayRateLimitError, None, "Too many requests"),
        (500, {}, RelayServerError, None, "coop answered HTTP 500"),
    ],
)
def test_error_shapes(status: int, body: Any, cls: type[RelayError], code: str | None, message: str) -> None:
    wire = replay(
        DIALECT, DIALECT.build_get_status("msg_abc123"), status=status, body=body, headers={"Retry-After": "9"}
    )
    error = DIALECT.parse_error(wire.response.status_code, wire.response.json(), wire.response.headers)
    assert type(error) is cls
    assert (error.status_code, error.code, error.message) == (status, code, message)
    assert error.dialect == "coop"
    if isinstance(error, RelayRateLimitError):
        assert error.retry_after == 9.0
    assert API_KEY not in str(error) and API_KEY not in repr(error)


def test_validation_error_names_field() -> None:
    error = DIALECT.parse_error(400, {"error": {"code": "VALIDATION", "message": "bad", "field": "priority"}}, {})
    assert isinstance(error, RelayValidationError) and error.field == "priority"


# --- webhooks --------------------------------------------------------------------------------------
def coop_webhook(event: str, status: str, **data: Any) -> dict[str, Any]:
    return {
        "event": event,
        "timestamp": "2025-01-15T10:30:05Z",
        "data": {
            "id": "msg_abc123",
            "status": status,
            "to": "+15551234567",
            "from": "+15550000001",
            "body": "Hello!",
            "error": None,
            **data,
        },
    }


@pytest.mark.parametrize(
    ("event", "status", "state"),
    [
        ("message.queued", "queued", MessageState.QUEUED),
        ("message.sent", "sent", MessageState.SENT),
        ("message.delivered", "delivered", MessageState.DELIVERED),
        ("message.failed", "failed", MessageState.FAILED),
    ],
)
def test_status_webhooks(event: str, status: str, state: MessageState) -> None:
    extra = {"error": "Not registered with iMessage"} if status == "failed" else {}
    (parsed,) = DIALECT.parse_webhook(coop_webhook(event, status, **extra), {"X-Webhook-Signature": "ab"})
    assert parsed.kind == "status"
    assert parsed.event_type == event
    assert parsed.message_id == "msg_abc123"
    assert parsed.state is state and parsed.raw_state == status
    assert parsed.recipient == "+15551234567"
    assert parsed.occurred_at == datetime(2025, 1, 15, 10, 30, 5, tzinfo=timezone.utc)
    assert parsed.error == (extra.get("error"))


def test_event_ids_are_stable_and_distinct() -> None:
    sent = DIALECT.parse_webhook(coop_webhook("message.sent", "sent"), {})[0].event_id
    assert sent == DIALECT.parse_webhook(coop_webhook("message.sent", "sent"), {})[0].event_id
    delivered = DIALECT.parse_webhook(coop_webhook("message.delivered", "delivered"), {})[0].event_id
    assert sent != delivered


def test_inbound_webhook() -> None:
    body = coop_webhook("message.received", "received", id="msg_in_9", to="+15550000001", **{"from": "+15551234567"})
    (parsed,) = DIALECT.parse_webhook(body, {})
    assert parsed.kind == "inbound"
    assert parsed.message_id == "msg_in_9"
    assert parsed.sender == "+15551234567" and parsed.recipient == "+15550000001"
    assert parsed.text == "Hello!"
    assert parsed.state is None

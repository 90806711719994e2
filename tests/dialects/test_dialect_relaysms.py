"""relaysms dialect against every example in relay-docs/relaysms.md."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from dialect_replay import API_KEY, replay

from relay_integrations.dialects import get_dialect
from relay_integrations.dialects.relaysms import DIALECT, ERROR_CODES, RelaySmsDialect
from relay_integrations.errors import (
    RelayAuthError,
    RelayError,
    RelayInsufficientBalanceError,
    RelayNotFoundError,
    RelayServerError,
    RelayUnavailableError,
    RelayValidationError,
)
from relay_integrations.models import MessageState, OutboundMessage


def envelope(data: Any, ts: str = "2026-01-27T07:00:02Z", unix: int = 1769497202000) -> dict[str, Any]:
    return {"data": data, "timestamp": ts, "unix_timestamp": unix}


# --- the doc's examples, verbatim ---------------------------------------------------------------
DOC_SEND_REQUEST = {
    "to": "+1234567890",
    "from": "+1987654321",
    "body": "Hello from Relay!",
    "metadata": {"order_id": "12345"},
}
DOC_SEND_202 = envelope(
    {
        "id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "client_reference_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "status": "accepted",
        "to": "+1234567890",
        "from": "+1987654321",
        "created_at": "2026-01-27T07:00:00Z",
        "message": "Message queued for delivery. Poll GET /sms/{id} for status updates.",
    },
    "2026-01-27T07:00:00Z",
    1769497200000,
)
DOC_GET_MESSAGE = envelope(
    {
        "id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "client_reference_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "status": "delivered",
        "to": "+1234567890",
        "from": "+1987654321",
        "body": "Hello from Relay!",
        "direction": "outbound",
        "segments": "1",
        "created_at": "2026-01-27T07:00:00Z",
        "delivered_at": "2026-01-27T07:00:02Z",
        "metadata": {"order_id": "12345"},
    }
)
DOC_LIST = envelope(
    {
        "messages": [
            {
                "id": "SM...",
                "client_reference_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
                "status": "delivered",
                "to": "+1234567890",
                "from": "+1987654321",
                "body": "Hello!",
                "direction": "outbound",
                "created_at": "2026-01-27T07:00:00Z",
            }
        ],
        "page": 1,
        "limit": 25,
        "has_more": True,
    }
)
DOC_LOG = envelope(
    {
        "id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "client_reference_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
        "status": "delivered",
        "direction": "outbound",
        "to": "+1234567890",
        "from": "+1987654321",
        "segments": "1",
        "timeline": [
            {"status": "accepted", "timestamp": "2026-01-27T07:00:00Z"},
            {"status": "sent", "timestamp": "2026-01-27T07:00:01Z"},
            {"status": "delivered", "timestamp": "2026-01-27T07:00:02Z"},
        ],
    }
)
DOC_NUMBERS = envelope(
    {"numbers": [{"phone": "+1987654321", "created_at": "2026-01-01T00:00:00Z", "inbound_callback": None}], "total": 1}
)
DOC_SPAM_200 = envelope(
    {
        "number": "+18882034193",
        "spam_filtered": True,
        "diagnosis_reason": "provider_spam_signal_detected",
        "delivery_status": "delivery_failed",
        "message_content_included": False,
        "checked_messages": 2,
        "scanned_pages": 1,
        "window_hours": 72,
        "latest_message": {
            "status": "delivery_failed",
            "created_at": "2026-03-11T10:00:33Z",
            "updated_at": "2026-03-11T10:00:35Z",
        },
    },
    "2026-03-11T10:31:11Z",
    1773225071333,
)
DOC_SPAM_404 = {
    "error": {"code": "NOT_FOUND", "message": "No outbound message found for this number in the requested window"},
    "timestamp": "2026-03-11T10:32:22Z",
    "unix_timestamp": 1773225142764,
}
DOC_BALANCE = envelope({"balance": 125.50, "currency": "USD"})
DOC_TRANSACTIONS = envelope(
    {
        "transactions": [
            {
                "timestamp": 1706338800,
                "type": "debit",
                "amount": 0.015,
                "description": "SMS outbound delivered (US)",
                "balance_after": 125.485,
            }
        ],
        "page": 1,
        "limit": 25,
        "total": 1000,
        "has_more": True,
    }
)
DOC_WEBHOOKS = envelope(
    {"status_url": "https://example.com/webhooks/status", "inbound_url": "https://example.com/webhooks/inbound"}
)
DOC_NUMBER_WEBHOOKS = envelope(
    {"phone": "+1987654321", "inbound_callback": "https://example.com/webhooks/inbound/+1987654321"}
)
DOC_REGENERATE = envelope(
    {"api_key": "new_api_key_here", "message": "API key regenerated. Save this key - it will not be shown again."}
)
DOC_BATCH_REQUEST = {
    "from": "+1987654321",
    "messages": [
        {"to": "+1234567890", "body": "Hello Alice!"},
        {"to": "+1234567891", "body": "Hello Bob!"},
        {"to": "+1234567892", "body": "Hello Charlie!"},
    ],
}
DOC_BATCH_202 = envelope(
    {
        "batch_id": "batch_abc123def456",
        "accepted": 3,
        "rejected": 0,
        "total": 3,
        "results": [
            {"index": 0, "to": "+1234567890", "client_reference_id": "msg_uuid_1", "status": "accepted"},
            {"index": 1, "to": "+1234567891", "client_reference_id": "msg_uuid_2", "status": "accepted"},
            {"index": 2, "to": "+1234567892", "client_reference_id": "msg_uuid_3", "status": "accepted"},
        ],
    }
)
DOC_BATCH_STATUS = envelope(
    {
        "job_id": "batch_abc123def456",
        "status": "completed",
        "total": 3,
        "processed": 3,
        "completed": 3,
        "failed": 0,
        "from_number": "+1987654321",
        "channel": "api",
        "created_at": "2026-01-27T07:00:00Z",
    }
)
DOC_BATCH_MESSAGES = envelope(
    {
        "items": [
            {
                "index": 0,
                "id": "msg_uuid_1",
                "client_reference_id": "msg_uuid_1",
                "to": "+1234567890",
                "status": "delivered",
                "created_at": "2026-01-27T07:00:00Z",
            },
            {
                "index": 1,
                "id": "msg_uuid_2",
                "client_reference_id": "msg_uuid_2",
                "to": "+1234567891",
                "status": "delivered",
                "created_at": "2026-01-27T07:00:00Z",
            },
        ],
        "page": 1,
        "limit": 50,
        "total": 3,
        "has_more": False,
    }
)
DOC_STATUS_WEBHOOK = {
    "event": "message.status",
    "message_id": "SM1234567890abcdef",
    "client_reference_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
    "status": "delivered",
    "to": "+1234567890",
    "from": "+1987654321",
    "direction": "outbound",
    "timestamp": "2026-01-27T07:00:02Z",
    "unix_timestamp": 1769497202000,
    "error_code": None,
    "error_message": None,
    "metadata": {"order_id": "12345"},
}
DOC_INBOUND_WEBHOOK = {
    "event": "message.inbound",
    "message_id": "SM1234567890abcdef",
    "from": "+1234567890",
    "to": "+1987654321",
    "body": "Hello!",
    "timestamp": "2026-01-27T07:00:00Z",
    "unix_timestamp": 1769497200000,
    "media_urls": [],
}
MESSAGE_ID = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


def test_module_exposes_dialect() -> None:
    assert isinstance(DIALECT, RelaySmsDialect)
    assert get_dialect("relaysms") is DIALECT
    assert DIALECT.base_path == "/api/v1"


def test_capabilities() -> None:
    caps = DIALECT.capabilities
    assert caps.channels == {"sms"}
    assert caps.batch == "batch" and caps.max_batch_size == 1000
    assert caps.client_idempotency_keys is False
    assert caps.max_text_length == 1600
    assert caps.webhooks is True and caps.webhook_scheme == "standard-webhooks"
    assert caps.inbound_stats is False


def test_every_documented_endpoint() -> None:
    routes = {(e.method, e.path) for e in DIALECT.endpoints.values()}
    assert routes == {
        ("POST", "/api/v1/sms/send"),
        ("GET", "/api/v1/sms/{message_id}"),
        ("GET", "/api/v1/messages"),
        ("GET", "/api/v1/messages/{message_id}/log"),
        ("GET", "/api/v1/numbers"),
        ("GET", "/api/v1/numbers/{number}/spam-diagnosis"),
        ("GET", "/api/v1/balance"),
        ("GET", "/api/v1/transactions"),
        ("GET", "/api/v1/webhooks"),
        ("PUT", "/api/v1/webhooks"),
        ("GET", "/api/v1/numbers/{phone}/webhooks"),
        ("PUT", "/api/v1/numbers/{phone}/webhooks"),
        ("POST", "/api/v1/api-key/regenerate"),
        ("POST", "/api/v1/sms/batch"),
        ("GET", "/api/v1/sms/batch/{batch_id}"),
        ("GET", "/api/v1/sms/batch/{batch_id}/messages"),
        ("POST", "/api/v1/status/bin"),
        ("GET", "/api/v1/status/bin"),
        ("POST", "/api/v1/messages/bin"),
        ("GET", "/api/v1/messages/bin"),
    }


def test_auth_headers() -> None:
    assert DIALECT.auth_headers("your_api_key") == {"X-API-Key": "your_api_key"}
    assert DIALECT.auth_headers("k", token="your_api_key_here") == {"Authorization": "Bearer your_api_key_here"}


def test_unwrap_strips_the_envelope() -> None:
    assert DIALECT.unwrap(DOC_BALANCE) == {"balance": 125.50, "currency": "USD"}
    assert DIALECT.unwrap(DOC_SPAM_404) == DOC_SPAM_404  # errors are not "data"
    assert DIALECT.unwrap([1, 2]) == [1, 2]


# --- send ----------------------------------------------------------------------------------------
def test_send_request_matches_doc_and_202_receipt() -> None:
    message = OutboundMessage(
        to="+1234567890", sender="+1987654321", text="Hello from Relay!", metadata={"order_id": "12345"}
    )
    request = DIALECT.build_send(message)
    assert request.retry_safe is False  # no client idempotency key at relaysms
    wire = replay(DIALECT, request, status=202, body=DOC_SEND_202)
    assert wire.request.method == "POST"
    assert wire.path == "/api/v1/sms/send"
    assert wire.sent_json == DOC_SEND_REQUEST
    assert wire.request.headers["X-API-Key"] == API_KEY
    receipt = DIALECT.parse_send(wire.response.status_code, wire.response.json(), message)
    assert receipt.message_id == MESSAGE_ID
    assert receipt.client_reference_id == MESSAGE_ID
    assert receipt.state is MessageState.QUEUED
    assert receipt.raw_state == "accepted"
    assert receipt.recipients == ["+1234567890"]
    assert receipt.duplicate is False
    assert receipt.raw == DOC_SEND_202


def test_send_with_status_callback_and_from_alias() -> None:
    message = OutboundMessage.model_validate(
        {"to": "+1234567890", "from": "+1987654321", "text": "hi", "status_callback": "https://x/cb"}
    )
    assert DIALECT.build_send(message).json == {
        "to": "+1234567890",
        "from": "+1987654321",
        "body": "hi",
        "status_callback": "https://x/cb",
    }


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"sender": None}, "from"),
        ({"text": "x" * 1601}, "text"),
        ({"text": None}, "text"),
        ({"to": None}, "to"),
        ({"to": ["+1234567890", "+1234567891"]}, "to"),
        ({"channel": "wa"}, "channel"),
        ({"attachments": ["https://x/a.png"]}, "attachments"),
    ],
)
def test_send_validation(fields: dict[str, Any], bad_field: str) -> None:
    data: dict[str, Any] = {"to": "+1234567890", "sender": "+1987654321", "text": "hi", **fields}
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send(OutboundMessage(**data))
    assert info.value.field == bad_field


def test_send_accepts_exactly_1600_characters() -> None:
    message = OutboundMessage(to="+1234567890", sender="+1987654321", text="x" * 1600)
    assert len(DIALECT.build_send(message).json["body"]) == 1600


# --- status, log, list ---------------------------------------------------------------------------
def test_get_message_example() -> None:
    wire = replay(DIALECT, DIALECT.build_get_status(MESSAGE_ID), body=DOC_GET_MESSAGE)
    assert wire.request.method == "GET"
    assert wire.path == f"/api/v1/sms/{MESSAGE_ID}"
    report = DIALECT.parse_status(wire.response.json())
    assert report.message_id == MESSAGE_ID
    assert report.state is MessageState.DELIVERED
    assert report.raw_state == "delivered"
    assert report.created_at == datetime(2026, 1, 27, 7, 0, tzinfo=timezone.utc)
    assert report.delivered_at == datetime(2026, 1, 27, 7, 0, 2, tzinfo=timezone.utc)
    assert report.timeline == []
    assert report.raw == DOC_GET_MESSAGE


def test_message_log_timeline() -> None:
    wire = replay(DIALECT, DIALECT.build_get_log(MESSAGE_ID), body=DOC_LOG)
    assert wire.path == f"/api/v1/messages/{MESSAGE_ID}/log"
    report = DIALECT.parse_status(wire.response.json())
    assert report.state is MessageState.DELIVERED
    assert [(e.raw_state, e.state) for e in report.timeline] == [
        ("accepted", MessageState.QUEUED),
        ("sent", MessageState.SENT),
        ("delivered", MessageState.DELIVERED),
    ]
    assert [e.at for e in report.timeline] == [datetime(2026, 1, 27, 7, 0, s, tzinfo=timezone.utc) for s in (0, 1, 2)]
    # Timestamps the log lacks come from its timeline.
    assert report.created_at == datetime(2026, 1, 27, 7, 0, 0, tzinfo=timezone.utc)
    assert report.sent_at == datetime(2026, 1, 27, 7, 0, 1, tzinfo=timezone.utc)
    assert report.delivered_at == datetime(2026, 1, 27, 7, 0, 2, tzinfo=timezone.utc)


def test_failed_status_carries_the_error() -> None:
    body = envelope({"id": "m1", "status": "undelivered", "error_code": "30003", "error_message": "Unreachable"})
    report = DIALECT.parse_status(body)
    assert report.state is MessageState.FAILED
    assert report.error == "Unreachable"


def test_list_messages_example() -> None:
    request = DIALECT.build_list_messages(limit=25, page=1, direction="outbound", status=MessageState.DELIVERED)
    wire = replay(DIALECT, request, body=DOC_LIST)
    assert wire.path == "/api/v1/messages"
    assert wire.query == {"limit": "25", "page": "1", "direction": "outbound", "status": "delivered"}
    page = DIALECT.parse_message_page(wire.response.json())
    assert page.page == 1 and page.limit == 25 and page.has_more is True
    (summary,) = page.messages
    assert summary.message_id == MESSAGE_ID  # the stable client_reference_id, as the send returned
    assert summary.client_reference_id == MESSAGE_ID
    assert summary.raw["id"] == "SM..."
    assert summary.state is MessageState.DELIVERED
    assert summary.to == "+1234567890" and summary.sender == "+1987654321"
    assert summary.text == "Hello!"
    assert summary.direction == "outbound"
    assert summary.created_at == datetime(2026, 1, 27, 7, 0, tzinfo=timezone.utc)


# --- other documented endpoints ------------------------------------------------------------------
def test_numbers() -> None:
    wire = replay(DIALECT, DIALECT.request("list_numbers"), body=DOC_NUMBERS)
    assert wire.path == "/api/v1/numbers"
    assert DIALECT.unwrap(wire.response.json())["numbers"][0]["phone"] == "+1987654321"


def test_spam_diagnosis_example() -> None:
    request = DIALECT.request(
        "spam_diagnosis", path_params={"number": "+18882034193"}, params={"hours": 72, "limit": 50, "max_pages": 5}
    )
    assert request.path == "/api/v1/numbers/%2B18882034193/spam-diagnosis"
    wire = replay(DIALECT, request, body=DOC_SPAM_200)
    assert wire.raw_path == "/api/v1/numbers/%2B18882034193/spam-diagnosis"
    assert wire.query == {"hours": "72", "limit": "50", "max_pages": "5"}
    data = DIALECT.unwrap(wire.response.json())
    assert data["spam_filtered"] is True
    assert DIALECT.map_state(data["delivery_status"]) is MessageState.FAILED


def test_spam_diagnosis_404() -> None:
    request = DIALECT.request("spam_diagnosis", path_params={"number": "+18882034193"})
    wire = replay(DIALECT, request, status=404, body=DOC_SPAM_404)
    error = DIALECT.parse_error(wire.response.status_code, wire.response.json(), wire.response.headers)
    assert type(error) is RelayNotFoundError
    assert error.code == "NOT_FOUND"
    assert error.message == "No outbound message found for this number in the requested window"
    assert error.status_code == 404


@pytest.mark.parametrize(
    ("endpoint", "path", "doc_body", "key", "value"),
    [
        ("get_balance", "/api/v1/balance", DOC_BALANCE, "balance", 125.50),
        ("list_transactions", "/api/v1/transactions", DOC_TRANSACTIONS, "total", 1000),
        ("get_webhooks", "/api/v1/webhooks", DOC_WEBHOOKS, "status_url", "https://example.com/webhooks/status"),
        ("regenerate_api_key", "/api/v1/api-key/regenerate", DOC_REGENERATE, "api_key", "new_api_key_here"),
    ],
)
def test_account_endpoints(endpoint: str, path: str, doc_body: Any, key: str, value: Any) -> None:
    wire = replay(DIALECT, DIALECT.request(endpoint), body=doc_body)
    assert wire.path == path
    assert wire.request.method == DIALECT.endpoints[endpoint].method
    assert DIALECT.unwrap(wire.response.json())[key] == value


def test_transactions_paging_params() -> None:
    wire = replay(DIALECT, DIALECT.request("list_transactions", params={"limit": 25, "page": 2}), body=DOC_TRANSACTIONS)
    assert wire.query == {"limit": "25", "page": "2"}


@pytest.mark.parametrize(
    "body",
    [
        {
            "status_url": "https://your-server.com/webhooks/status",
            "inbound_url": "https://your-server.com/webhooks/inbound",
        },
        {"status_url": "https://example.com/webhooks/status", "inbound_url": "https://example.com/webhooks/inbound"},
    ],
)
def test_set_webhooks_examples(body: dict[str, str]) -> None:
    request = DIALECT.request("set_webhooks", json=body)
    wire = replay(DIALECT, request, body=envelope(body))
    assert wire.request.method == "PUT"
    assert wire.path == "/api/v1/webhooks"
    assert wire.sent_json == body


def test_number_webhooks() -> None:
    get = replay(
        DIALECT, DIALECT.request("get_number_webhooks", path_params={"phone": "+1987654321"}), body=DOC_NUMBER_WEBHOOKS
    )
    assert get.raw_path == "/api/v1/numbers/%2B1987654321/webhooks"
    assert DIALECT.unwrap(get.response.json())["inbound_callback"].endswith("/+1987654321")
    body = {"inbound_callback": "https://example.com/webhooks/inbound/+1987654321"}
    put = replay(
        DIALECT,
        DIALECT.request("set_number_webhooks", path_params={"phone": "+1987654321"}, json=body),
        body=DOC_NUMBER_WEBHOOKS,
    )
    assert put.request.method == "PUT" and put.sent_json == body


@pytest.mark.parametrize("kind", ["status", "messages"])
def test_webhook_test_bins(kind: str) -> None:
    posted = replay(DIALECT, DIALECT.request(f"post_{kind}_bin", json={"test": "status payload"}), body={"ok": True})
    assert posted.request.method == "POST"
    assert posted.path == f"/api/v1/{kind}/bin"
    assert posted.sent_json == {"test": "status payload"}
    read = replay(DIALECT, DIALECT.request(f"get_{kind}_bin"), body=envelope([{"test": "status payload"}]))
    assert read.request.method == "GET" and read.path == f"/api/v1/{kind}/bin"
    assert read.request.headers["X-API-Key"] == API_KEY


# --- batch ---------------------------------------------------------------------------------------
def doc_batch_messages() -> list[OutboundMessage]:
    return [
        OutboundMessage(to=m["to"], text=m["body"], sender="+1987654321", idempotency_key=f"k{i}")
        for i, m in enumerate(DOC_BATCH_REQUEST["messages"])  # type: ignore[arg-type]
    ]


def test_batch_send_example() -> None:
    messages = doc_batch_messages()
    request = DIALECT.build_send_batch(messages)
    assert request.retry_safe is False
    wire = replay(DIALECT, request, status=202, body=DOC_BATCH_202)
    assert wire.request.method == "POST"
    assert wire.path == "/api/v1/sms/batch"
    assert wire.sent_json == DOC_BATCH_REQUEST
    receipt = DIALECT.parse_send_batch(wire.response.status_code, wire.response.json(), messages)
    assert receipt.batch_id == "batch_abc123def456"
    assert (receipt.accepted, receipt.rejected, receipt.total) == (3, 0, 3)
    assert [r.message_id for r in receipt.results] == ["msg_uuid_1", "msg_uuid_2", "msg_uuid_3"]
    assert [r.index for r in receipt.results] == [0, 1, 2]
    assert [r.to for r in receipt.results] == ["+1234567890", "+1234567891", "+1234567892"]
    assert all(r.state is MessageState.QUEUED and r.raw_state == "accepted" for r in receipt.results)
    assert [r.idempotency_key for r in receipt.results] == ["k0", "k1", "k2"]
    assert receipt.raw == DOC_BATCH_202


def test_batch_with_a_rejected_row() -> None:
    messages = doc_batch_messages()[:2]
    body = envelope(
        {
            "batch_id": "b2",
            "accepted": 1,
            "rejected": 1,
            "total": 2,
            "results": [
                {"index": 0, "to": "+1234567890", "client_reference_id": "m1", "status": "accepted"},
                {
                    "index": 1,
                    "to": "bad",
                    "status": "rejected",
                    "error": {"code": "INVALID_REQUEST", "message": "bad to"},
                },
            ],
        }
    )
    receipt = DIALECT.parse_send_batch(202, body, messages)
    assert (receipt.accepted, receipt.rejected) == (1, 1)
    assert receipt.results[1].state is None
    assert receipt.results[1].message_id is None
    assert receipt.results[1].error == "bad to"
    assert receipt.results[0].error is None


def test_batch_items_keep_metadata_and_callback() -> None:
    messages = [
        OutboundMessage(to="+1234567890", text="a", sender="+1987654321", metadata={"row": 1}),
        OutboundMessage(to="+1234567891", text="b", sender="+1987654321", status_callback="https://x/cb"),
    ]
    assert DIALECT.build_send_batch(messages).json["messages"] == [
        {"to": "+1234567890", "body": "a", "metadata": {"row": 1}},
        {"to": "+1234567891", "body": "b", "status_callback": "https://x/cb"},
    ]


def test_batch_senders_must_agree() -> None:
    messages = doc_batch_messages()
    messages[2] = messages[2].model_copy(update={"sender": "+1000000000"})
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send_batch(messages)
    assert info.value.field == "messages[2].from"
    # A message without a sender takes the batch's.
    messages[2] = messages[2].model_copy(update={"sender": None})
    assert DIALECT.build_send_batch(messages).json["from"] == "+1987654321"
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send_batch([m.model_copy(update={"sender": None}) for m in messages])
    assert info.value.field == "from"


def test_batch_limits() -> None:
    one = OutboundMessage(to="+1234567890", text="x", sender="+1987654321")
    assert len(DIALECT.build_send_batch([one] * 1000).json["messages"]) == 1000
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send_batch([one] * 1001)
    assert info.value.field == "messages"
    with pytest.raises(RelayValidationError):
        DIALECT.build_send_batch([])
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send_batch([one, one.model_copy(update={"text": "y" * 1601})])
    assert info.value.field == "messages[1].text"


def test_batch_status_example() -> None:
    wire = replay(DIALECT, DIALECT.build_get_batch("batch_abc123def456"), body=DOC_BATCH_STATUS)
    assert wire.request.method == "GET"
    assert wire.path == "/api/v1/sms/batch/batch_abc123def456"
    progress = DIALECT.parse_batch_progress(wire.response.json())
    assert progress.batch_id == "batch_abc123def456"
    assert progress.status == "completed"
    assert (progress.total, progress.processed, progress.completed, progress.failed) == (3, 3, 3, 0)


def test_batch_messages_example() -> None:
    wire = replay(DIALECT, DIALECT.build_list_batch_messages("batch_abc123def456", page=1), body=DOC_BATCH_MESSAGES)
    assert wire.path == "/api/v1/sms/batch/batch_abc123def456/messages"
    assert wire.query == {"page": "1"}
    page = DIALECT.parse_message_page(wire.response.json())
    assert [m.message_id for m in page.messages] == ["msg_uuid_1", "msg_uuid_2"]
    assert all(m.state is MessageState.DELIVERED for m in page.messages)
    assert (page.page, page.limit, page.total, page.has_more) == (1, 50, 3, False)


# --- errors --------------------------------------------------------------------------------------
ERROR_CLASSES: dict[str, type[RelayError]] = {
    "UNAUTHORIZED": RelayAuthError,
    "FORBIDDEN": RelayAuthError,
    "NOT_FOUND": RelayNotFoundError,
    "INVALID_REQUEST": RelayValidationError,
    "INSUFFICIENT_BALANCE": RelayInsufficientBalanceError,
    "QUEUE_FAILED": RelayUnavailableError,
    "INTERNAL_ERROR": RelayServerError,
}


@pytest.mark.parametrize(("code", "status"), sorted(ERROR_CODES.items()))
def test_documented_error_codes(code: str, status: int) -> None:
    body = {"error": {"code": code, "message": f"{code.lower()} happened"}, "timestamp": "t", "unix_timestamp": 1}
    wire = replay(DIALECT, DIALECT.build_get_status("m1"), status=status, body=body, headers={"Retry-After": "4"})
    error = DIALECT.parse_error(wire.response.status_code, wire.response.json(), wire.response.headers)
    assert type(error) is ERROR_CLASSES[code]
    assert error.code == code
    assert error.status_code == status
    assert error.message == f"{code.lower()} happened"
    assert error.dialect == "relaysms"
    if status == 503:
        assert error.retry_after == 4.0  # type: ignore[attr-defined]
    assert f"code={code}" in str(error)
    assert API_KEY not in str(error) and API_KEY not in repr(error)


def test_validation_error_field() -> None:
    body = {"error": {"code": "INVALID_REQUEST", "message": "to must be E.164", "field": "to"}}
    error = DIALECT.parse_error(400, body, {})
    assert isinstance(error, RelayValidationError) and error.field == "to"


def test_rate_limit_with_http_date_retry_after() -> None:
    error = DIALECT.parse_error(
        429, {"error": {"code": "RATE_LIMITED", "message": "slow"}}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    )
    assert error.retry_after == 0.0  # type: ignore[attr-defined]  # a date in the past: retry now


# --- webhooks ------------------------------------------------------------------------------------
def test_status_webhook_example() -> None:
    (event,) = DIALECT.parse_webhook(DOC_STATUS_WEBHOOK, {"webhook-id": "msg_2a1b", "webhook-timestamp": "1"})
    assert event.event_id == "msg_2a1b"  # Standard Webhooks id: the same across retries
    assert event.kind == "status"
    assert event.event_type == "message.status"
    assert event.message_id == MESSAGE_ID  # matches the send receipt's id
    assert event.raw["message_id"] == "SM1234567890abcdef"
    assert event.state is MessageState.DELIVERED and event.raw_state == "delivered"
    assert event.recipient == "+1234567890" and event.sender == "+1987654321"
    assert event.error is None
    assert event.occurred_at == datetime(2026, 1, 27, 7, 0, 2, tzinfo=timezone.utc)


def test_status_webhook_without_id_header_gets_a_stable_id() -> None:
    first = DIALECT.parse_webhook(DOC_STATUS_WEBHOOK, {})[0].event_id
    assert first == DIALECT.parse_webhook(dict(DOC_STATUS_WEBHOOK), {})[0].event_id
    failed = {**DOC_STATUS_WEBHOOK, "status": "failed", "error_code": "30003", "error_message": "Unreachable"}
    (event,) = DIALECT.parse_webhook(failed, {})
    assert event.event_id != first
    assert event.state is MessageState.FAILED and event.error == "Unreachable"


def test_inbound_webhook_example() -> None:
    (event,) = DIALECT.parse_webhook(DOC_INBOUND_WEBHOOK, {"Webhook-Id": "msg_in_1"})
    assert event.event_id == "msg_in_1"
    assert event.kind == "inbound"
    assert event.event_type == "message.inbound"
    assert event.message_id == "SM1234567890abcdef"
    assert event.sender == "+1234567890" and event.recipient == "+1987654321"
    assert event.text == "Hello!"
    assert event.state is None
    assert event.occurred_at == datetime(2026, 1, 27, 7, 0, tzinfo=timezone.utc)


def test_list_keeps_rows_in_unmodelled_states() -> None:
    inbound = {**DOC_LIST["data"]["messages"][0], "status": "received", "direction": "inbound"}  # type: ignore[index]
    page = DIALECT.parse_message_page(envelope({"messages": [inbound], "page": 1, "limit": 25, "has_more": False}))
    assert page.messages[0].state is None and page.messages[0].raw_state == "received"
    with pytest.raises(ValueError, match="received"):
        DIALECT.map_state("received")

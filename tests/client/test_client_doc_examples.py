"""The docs' request/response examples, replayed through RelayClient (respx at the HTTP layer).

Each test checks what went over the wire (method, path, query, JSON body, auth header) against
the doc's example request and what the client made of the doc's example answer.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest
import respx

from relay_integrations import (
    BatchProgress,
    BatchReceipt,
    InboundQuery,
    MessagePage,
    MessageState,
    OutboundMessage,
    RelayClient,
    RelayNotFoundError,
    RelayValidationError,
    StatusReport,
)

KEY = "sk_docs_7c1e9a55"
ROOT = "http://127.0.0.1:8080"


def base(dialect: str) -> str:
    return f"{ROOT}/{dialect}"


def sent(route: respx.Route, index: int = -1) -> httpx.Request:
    return route.calls[index].request


def sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(sent(route, index).content)


def is_uuid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


# --- phonerelay ------------------------------------------------------------------------------

PHONERELAY_SEND_BODY = {
    "phone_id": "phone_main",
    "channel": "sms",
    "to": "+15551234567",
    "text": "hello",
    "source": "my-app",
    "idempotency_key": "my-unique-id-001",
}


@pytest.fixture
def phonerelay() -> Any:
    with respx.mock(base_url=base("phonerelay"), assert_all_called=True) as mock, RelayClient(
        base("phonerelay"), "phonerelay", KEY, phone_id="phone_main"
    ) as client:
        yield mock, client


def test_phonerelay_send(phonerelay: Any) -> None:
    mock, client = phonerelay
    route = mock.post("/api/v1/messages").respond(
        202, json={"success": True, "message_id": "msg_1", "status": "queued", "idempotency_key": "my-unique-id-001"}
    )
    receipt = client.send(
        OutboundMessage(to="+15551234567", text="hello", source="my-app", idempotency_key="my-unique-id-001")
    )
    request = sent(route)
    assert sent_json(route) == PHONERELAY_SEND_BODY
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("relay-integrations/")
    assert (receipt.message_id, receipt.state, receipt.duplicate) == ("msg_1", MessageState.QUEUED, False)
    assert receipt.idempotency_key == "my-unique-id-001"


def test_phonerelay_duplicate_answer(phonerelay: Any) -> None:
    mock, client = phonerelay
    mock.post("/api/v1/messages").respond(
        200,
        json={"success": True, "duplicate": True, "message_id": "msg_1", "status": "queued", "idempotency_key": "k1"},
    )
    receipt = client.send(OutboundMessage(to="+15551234567", text="hello", idempotency_key="k1"))
    assert receipt.duplicate is True and receipt.message_id == "msg_1"


@pytest.mark.parametrize(
    ("message", "doc_body"),
    [
        (
            {"channel": "wa", "to": "+15551234567", "text": "hello"},
            {"phone_id": "phone_main", "channel": "wa", "to": "+15551234567", "text": "hello"},
        ),
        (
            {"channel": "tg", "to": "@name", "text": "hello"},
            {"phone_id": "phone_main", "channel": "tg", "to": "@name", "text": "hello"},
        ),
        (
            {"channel": "notify", "title": "Alert", "text": "hello"},
            {"phone_id": "phone_main", "channel": "notify", "title": "Alert", "text": "hello"},
        ),
        (
            {"channel": "email", "to": "me@example.com", "subject": "Hi", "text": "hello"},
            {"phone_id": "phone_main", "channel": "email", "to": "me@example.com", "subject": "Hi", "text": "hello"},
        ),
        (
            {"channel": "tg_bot", "to": "123456789", "bot_token": "...", "text": "hello"},
            {"phone_id": "phone_main", "channel": "tg_bot", "to": "123456789", "bot_token": "...", "text": "hello"},
        ),
    ],
    ids=["wa", "tg", "notify", "email", "tg_bot"],
)
def test_phonerelay_quick_variants(phonerelay: Any, message: dict[str, Any], doc_body: dict[str, Any]) -> None:
    """The doc's quick variants, plus the idempotency key the client adds so retries are safe."""
    mock, client = phonerelay
    route = mock.post("/api/v1/messages").respond(202, json={"success": True, "message_id": "m", "status": "queued"})
    client.send(OutboundMessage(**message))
    body = sent_json(route)
    key = body.pop("idempotency_key")
    assert body == doc_body
    assert is_uuid(key)


def test_phonerelay_status_list_health(phonerelay: Any) -> None:
    mock, client = phonerelay
    mock.get("/api/v1/messages/msg_1").respond(
        200,
        json={
            "success": True,
            "message": {
                "message_id": "msg_1",
                "status": "sent",
                "last_error": None,
                "created_at": "2026-02-17T19:40:00+00:00",
                "delivered_at": None,
            },
        },
    )
    listing = mock.get("/api/v1/messages").respond(
        200, json={"success": True, "messages": [{"message_id": "msg_1", "status": "queued", "to": "+1555"}]}
    )
    mock.get("/health").respond(200, json={"status": "ok"})

    report = client.get_status("msg_1")
    assert isinstance(report, StatusReport)
    assert (report.message_id, report.state, report.raw_state) == ("msg_1", MessageState.SENT, "sent")
    assert report.created_at is not None and report.created_at.year == 2026

    page = client.list_messages(limit=50)
    assert dict(sent(listing).url.params) == {"limit": "50"}
    assert [m.message_id for m in page.messages] == ["msg_1"]

    health = client.health()
    assert health["ok"] is True and health["answer"] == {"status": "ok"}
    assert health["checked"] == "GET /health + GET /api/v1/messages"
    assert listing.call_count == 2 and listing.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


def test_phonerelay_inbound_query(phonerelay: Any) -> None:
    mock, client = phonerelay
    doc_filters = {
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
    answer = {
        "success": True,
        "summary": {"inbound_total": 120, "calls_total": 54, "channels": {"sms": 40, "wa": 58, "tg": 22}},
        "sent_summary": {"sent_total": 210, "channels": {"sms": 70, "wa": 100, "tg": 40}},
        "sent_by_channel": {"sms": 70, "wa": 100, "tg": 40},
        "sent_by_day": [{"day": "2026-02-21", "count": 19}],
        "hourly": [{"hour": 9, "count": 12}],
        "events": [{"message_id": "in_1", "event_type": "missed"}],
        "count": 200,
    }
    route = mock.post("/api/v1/webchat/inbound/query").respond(200, json=answer)
    # Half as a model, half as keyword filters: both end up in one body.
    stats = client.inbound_stats(InboundQuery(phone_id="phone_main", range="7d"), **{
        k: v for k, v in doc_filters.items() if k not in ("phone_id", "range")
    })
    assert sent_json(route) == doc_filters
    assert sent(route).headers["Authorization"] == f"Bearer {KEY}"
    assert stats.summary["inbound_total"] == 120
    assert stats.sent_by_channel == {"sms": 70, "wa": 100, "tg": 40}
    assert stats.count == 200 and stats.events[0]["event_type"] == "missed"


def test_phonerelay_inbound_query_rejects_unknown_filter(phonerelay: Any) -> None:
    mock, client = phonerelay
    mock.post("/api/v1/webchat/inbound/query").respond(200, json={})
    with pytest.raises(RelayValidationError, match="chanels") as caught:
        client.inbound_stats(chanels=["sms"])
    assert caught.value.field == "chanels"
    client.inbound_stats()  # the route is still called once, with no filters
    assert sent_json(mock.routes[0]) == {}


def test_phonerelay_inbound_callbacks(phonerelay: Any) -> None:
    mock, client = phonerelay
    doc_body = {
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
    create = mock.post("/api/v1/webchat/callbacks/inbound").respond(200, json={"success": True, "id": "cb_1"})
    listing = mock.get("/api/v1/webchat/callbacks/inbound").respond(
        200, json={"success": True, "callbacks": [{"id": "cb_1", "callback_url": "https://example.com/inbound-hook"}]}
    )
    delete = mock.delete("/api/v1/webchat/callbacks/inbound").respond(200, json={"success": True})
    filters = {k: v for k, v in doc_body.items() if k != "callback_url"}
    assert client.create_inbound_callback("https://example.com/inbound-hook", **filters)["id"] == "cb_1"
    assert sent_json(create) == doc_body
    assert client.list_inbound_callbacks()["callbacks"][0]["id"] == "cb_1"
    assert client.list_webhooks() == [{"id": "cb_1", "callback_url": "https://example.com/inbound-hook"}]
    assert listing.call_count == 2
    client.delete_inbound_callback("cb_1")
    assert dict(sent(delete).url.params) == {"id": "cb_1"}


# --- relaysms --------------------------------------------------------------------------------

def envelope(data: Any) -> dict[str, Any]:
    return {"data": data, "timestamp": "2026-01-27T07:00:02Z", "unix_timestamp": 1769497202000}


@pytest.fixture
def relaysms() -> Any:
    with respx.mock(base_url=base("relaysms"), assert_all_called=True) as mock, RelayClient(
        f"{base('relaysms')}/api/v1", "relaysms", KEY
    ) as client:
        yield mock, client


def test_relaysms_send_and_get(relaysms: Any) -> None:
    mock, client = relaysms
    ref = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
    route = mock.post("/api/v1/sms/send").respond(202, json=envelope({
        "id": ref, "client_reference_id": ref, "status": "accepted", "to": "+1234567890", "from": "+1987654321",
        "created_at": "2026-01-27T07:00:00Z",
        "message": "Message queued for delivery. Poll GET /sms/{id} for status updates.",
    }))
    mock.get(f"/api/v1/sms/{ref}").respond(200, json=envelope({
        "id": ref, "client_reference_id": ref, "status": "delivered", "to": "+1234567890", "from": "+1987654321",
        "body": "Hello from Relay!", "direction": "outbound", "segments": "1", "created_at": "2026-01-27T07:00:00Z",
        "delivered_at": "2026-01-27T07:00:02Z", "metadata": {"order_id": "12345"},
    }))
    receipt = client.send(OutboundMessage(
        to="+1234567890", sender="+1987654321", text="Hello from Relay!", metadata={"order_id": "12345"}
    ))
    assert sent_json(route) == {
        "to": "+1234567890", "from": "+1987654321", "body": "Hello from Relay!", "metadata": {"order_id": "12345"}
    }
    assert sent(route).headers["X-API-Key"] == KEY
    assert "Authorization" not in sent(route).headers
    assert (receipt.message_id, receipt.state, receipt.raw_state) == (ref, MessageState.QUEUED, "accepted")
    assert receipt.client_reference_id == ref
    report = client.get_status(ref)
    assert report.state is MessageState.DELIVERED and report.delivered_at is not None


def test_relaysms_sender_default_from_client() -> None:
    with respx.mock(base_url=base("relaysms")) as mock, RelayClient(
        base("relaysms"), "relaysms", KEY, sender="+1987654321"
    ) as client:
        route = mock.post("/api/v1/sms/send").respond(202, json=envelope({"id": "x", "status": "accepted"}))
        client.send(OutboundMessage(to="+1234567890", text="hi"))
        client.send(OutboundMessage(to="+1234567890", text="hi", sender="+1000000001"))
    assert [sent_json(route, i)["from"] for i in range(2)] == ["+1987654321", "+1000000001"]


def test_relaysms_list_log_numbers(relaysms: Any) -> None:
    mock, client = relaysms
    ref = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
    listing = mock.get("/api/v1/messages").respond(200, json=envelope({
        "messages": [{"id": "SM1", "client_reference_id": ref, "status": "delivered", "to": "+1234567890",
                      "from": "+1987654321", "body": "Hello!", "direction": "outbound",
                      "created_at": "2026-01-27T07:00:00Z"}],
        "page": 1, "limit": 25, "has_more": True,
    }))
    mock.get(f"/api/v1/messages/{ref}/log").respond(200, json=envelope({
        "id": ref, "client_reference_id": ref, "status": "delivered", "direction": "outbound",
        "to": "+1234567890", "from": "+1987654321", "segments": "1",
        "timeline": [
            {"status": "accepted", "timestamp": "2026-01-27T07:00:00Z"},
            {"status": "sent", "timestamp": "2026-01-27T07:00:01Z"},
            {"status": "delivered", "timestamp": "2026-01-27T07:00:02Z"},
        ],
    }))
    mock.get("/api/v1/numbers").respond(200, json=envelope({
        "numbers": [{"phone": "+1987654321", "created_at": "2026-01-01T00:00:00Z", "inbound_callback": None}],
        "total": 1,
    }))
    page = client.list_messages(limit=25, page=1, direction="outbound", status="delivered")
    assert dict(sent(listing).url.params) == {"limit": "25", "page": "1", "direction": "outbound",
                                              "status": "delivered"}
    assert isinstance(page, MessagePage) and page.has_more is True
    assert page.messages[0].client_reference_id == ref and page.messages[0].state is MessageState.DELIVERED

    log = client.message_log(ref)
    assert [e.raw_state for e in log.timeline] == ["accepted", "sent", "delivered"]
    assert [e.state for e in log.timeline] == [MessageState.QUEUED, MessageState.SENT, MessageState.DELIVERED]
    assert client.list_numbers()["numbers"][0]["phone"] == "+1987654321"


def test_relaysms_spam_diagnosis_found_and_not_found(relaysms: Any) -> None:
    mock, client = relaysms
    route = mock.get("/api/v1/numbers/%2B18882034193/spam-diagnosis").mock(side_effect=[
        httpx.Response(200, json=envelope({
            "number": "+18882034193", "spam_filtered": True, "diagnosis_reason": "provider_spam_signal_detected",
            "delivery_status": "delivery_failed", "message_content_included": False, "checked_messages": 2,
            "scanned_pages": 1, "window_hours": 72,
        })),
        httpx.Response(404, json={
            "error": {"code": "NOT_FOUND",
                      "message": "No outbound message found for this number in the requested window"},
            "timestamp": "2026-03-11T10:32:22Z", "unix_timestamp": 1773225142764,
        }),
    ])
    result = client.spam_diagnosis("+18882034193", hours=72, limit=50, max_pages=5)
    assert sent(route).url.raw_path == (
        b"/relaysms/api/v1/numbers/%2B18882034193/spam-diagnosis?hours=72&limit=50&max_pages=5"
    )
    assert result["spam_filtered"] is True
    with pytest.raises(RelayNotFoundError) as caught:
        client.spam_diagnosis("+18882034193")
    assert caught.value.status_code == 404 and caught.value.code == "NOT_FOUND"
    assert "No outbound message found" in str(caught.value)


def test_relaysms_account_and_webhooks(relaysms: Any) -> None:
    mock, client = relaysms
    mock.get("/api/v1/balance").respond(200, json=envelope({"balance": 125.50, "currency": "USD"}))
    tx = mock.get("/api/v1/transactions").respond(200, json=envelope({
        "transactions": [{"timestamp": 1706338800, "type": "debit", "amount": 0.015,
                          "description": "SMS outbound delivered (US)", "balance_after": 125.485}],
        "page": 1, "limit": 25, "total": 1000, "has_more": True,
    }))
    urls = {"status_url": "https://example.com/webhooks/status", "inbound_url": "https://example.com/webhooks/inbound"}
    mock.get("/api/v1/webhooks").respond(200, json=envelope(urls))
    put = mock.put("/api/v1/webhooks").respond(200, json=envelope(urls))
    mock.get("/api/v1/numbers/%2B1987654321/webhooks").respond(200, json=envelope(
        {"phone": "+1987654321", "inbound_callback": "https://example.com/webhooks/inbound/+1987654321"}
    ))
    put_number = mock.put("/api/v1/numbers/%2B1987654321/webhooks").respond(200, json=envelope({}))

    assert client.balance() == {"balance": 125.50, "currency": "USD"}
    assert client.transactions(page=1, limit=25)["total"] == 1000
    assert dict(sent(tx).url.params) == {"page": "1", "limit": "25"}
    assert client.get_webhooks() == urls
    client.set_webhooks(**urls)
    assert sent_json(put) == urls
    assert client.get_number_webhooks("+1987654321")["phone"] == "+1987654321"
    client.set_number_webhooks("+1987654321", inbound_callback="https://example.com/in")
    assert sent_json(put_number) == {"inbound_callback": "https://example.com/in"}
    assert sent(put_number).headers["X-API-Key"] == KEY


def test_relaysms_register_webhook_keeps_the_other_url(relaysms: Any) -> None:
    mock, client = relaysms
    mock.get("/api/v1/webhooks").respond(200, json=envelope(
        {"status_url": "https://old/status", "inbound_url": "https://old/inbound"}
    ))
    put = mock.put("/api/v1/webhooks").respond(200, json=envelope({}))
    client.register_webhook("https://new/inbound", "message.inbound")
    assert sent_json(put) == {"status_url": "https://old/status", "inbound_url": "https://new/inbound"}
    assert client.list_webhooks() == [{"event": "status", "url": "https://old/status"},
                                      {"event": "inbound", "url": "https://old/inbound"}]


def test_relaysms_regenerate_key_switches_client(relaysms: Any) -> None:
    mock, client = relaysms
    mock.post("/api/v1/api-key/regenerate").respond(200, json=envelope({
        "api_key": "new_api_key_here",
        "message": "API key regenerated. Save this key - it will not be shown again.",
    }))
    balance = mock.get("/api/v1/balance").respond(200, json=envelope({"balance": 1, "currency": "USD"}))
    answer = client.regenerate_api_key()
    assert answer["api_key"].get_secret_value() == "new_api_key_here"
    assert "new_api_key_here" not in repr(answer)
    client.balance()
    assert sent(balance).headers["X-API-Key"] == "new_api_key_here"


def test_relaysms_batch(relaysms: Any) -> None:
    mock, client = relaysms
    route = mock.post("/api/v1/sms/batch").respond(202, json=envelope({
        "batch_id": "batch_abc123def456", "accepted": 3, "rejected": 0, "total": 3,
        "results": [
            {"index": 0, "to": "+1234567890", "client_reference_id": "msg_uuid_1", "status": "accepted"},
            {"index": 1, "to": "+1234567891", "client_reference_id": "msg_uuid_2", "status": "accepted"},
            {"index": 2, "to": "+1234567892", "client_reference_id": "msg_uuid_3", "status": "accepted"},
        ],
    }))
    mock.get("/api/v1/sms/batch/batch_abc123def456").respond(200, json=envelope({
        "job_id": "batch_abc123def456", "status": "completed", "total": 3, "processed": 3, "completed": 3,
        "failed": 0, "from_number": "+1987654321", "channel": "api", "created_at": "2026-01-27T07:00:00Z",
    }))
    items = mock.get("/api/v1/sms/batch/batch_abc123def456/messages").respond(200, json=envelope({
        "items": [
            {"index": 0, "id": "msg_uuid_1", "client_reference_id": "msg_uuid_1", "to": "+1234567890",
             "status": "delivered", "created_at": "2026-01-27T07:00:00Z"},
        ],
        "page": 1, "limit": 50, "total": 3, "has_more": False,
    }))
    names = {"+1234567890": "Alice", "+1234567891": "Bob", "+1234567892": "Charlie"}
    receipt = client.send_batch([
        OutboundMessage(to=to, text=f"Hello {name}!", sender="+1987654321") for to, name in names.items()
    ])
    assert sent_json(route) == {
        "from": "+1987654321",
        "messages": [{"to": to, "body": f"Hello {name}!"} for to, name in names.items()],
    }
    assert isinstance(receipt, BatchReceipt)
    assert (receipt.batch_id, receipt.accepted, receipt.total) == ("batch_abc123def456", 3, 3)
    assert [r.message_id for r in receipt.results] == ["msg_uuid_1", "msg_uuid_2", "msg_uuid_3"]
    progress = client.get_batch("batch_abc123def456")
    assert isinstance(progress, BatchProgress) and (progress.status, progress.completed) == ("completed", 3)
    page = client.batch_messages("batch_abc123def456", page=1)
    assert dict(sent(items).url.params) == {"page": "1"}
    assert page.messages[0].message_id == "msg_uuid_1" and page.has_more is False


def test_relaysms_webhook_bins(relaysms: Any) -> None:
    mock, client = relaysms
    post = mock.post("/api/v1/status/bin").respond(200, json=envelope({"logged": True}))
    mock.get("/api/v1/status/bin").respond(200, json=envelope([{"test": "status payload"}]))
    client.post_webhook_bin("status", {"test": "status payload"})
    assert sent_json(post) == {"test": "status payload"}
    assert client.get_webhook_bin("status") == [{"test": "status payload"}]


# --- coop ------------------------------------------------------------------------------------

@pytest.fixture
def coop() -> Any:
    with respx.mock(base_url=base("coop"), assert_all_called=True) as mock, RelayClient(
        base("coop") + "/", "coop", KEY
    ) as client:
        yield mock, client


def test_coop_send_status_queue(coop: Any) -> None:
    mock, client = coop
    route = mock.post("/api/v1/messages").respond(201, json={
        "id": "msg_abc123", "status": "queued", "to": "+15551234567", "body": "Hello!", "priority": 0,
        "createdAt": "2025-01-15T10:30:00Z",
    })
    mock.get("/api/v1/messages/msg_abc123/status").respond(200, json={
        "id": "msg_abc123", "status": "delivered", "attempts": 1, "lastError": None,
        "queuedAt": "2025-01-15T10:30:00Z", "sentAt": "2025-01-15T10:30:02Z", "deliveredAt": "2025-01-15T10:30:05Z",
    })
    mock.get("/api/v1/messages/queue/stats").respond(
        200, json={"pending": 5, "processing": 2, "failed": 0, "deadLetter": 1}
    )
    mock.get("/api/v1/messages/msg_abc123/attachments").respond(200, json={"attachments": []})
    receipt = client.send(OutboundMessage(to="+15551234567", text="Hello!", priority=0))
    assert sent_json(route) == {"to": "+15551234567", "body": "Hello!", "priority": 0}
    assert sent(route).headers["Authorization"] == f"Bearer {KEY}"
    assert (receipt.message_id, receipt.state) == ("msg_abc123", MessageState.QUEUED)
    report = client.get_status("msg_abc123")
    assert (report.state, report.attempts) == (MessageState.DELIVERED, 1)
    assert client.queue_stats() == {"pending": 5, "processing": 2, "failed": 0, "deadLetter": 1}
    assert client.attachments("msg_abc123") == {"attachments": []}


def test_coop_bulk_jobs(coop: Any) -> None:
    mock, client = coop
    route = mock.post("/api/v1/messages/bulk").respond(201, json={
        "jobId": "bulk_xyz789", "status": "processing", "totalRecipients": 2, "createdAt": "2025-01-15T10:30:00Z",
    })
    mock.get("/api/v1/messages/bulk").respond(200, json=[{"jobId": "bulk_xyz789", "status": "processing"}])
    mock.get("/api/v1/messages/bulk/bulk_xyz789").respond(
        200, json={"jobId": "bulk_xyz789", "status": "completed", "totalRecipients": 2}
    )
    mock.get("/api/v1/messages/bulk/bulk_xyz789/results").respond(
        200, json={"results": [{"to": "+15550000001", "status": "delivered"}]}
    )
    receipt = client.send_batch([
        OutboundMessage(to="+15550000001", text="one"), OutboundMessage(to="+15550000002", text="two"),
    ])
    assert sent_json(route) == {"messages": [{"to": "+15550000001", "body": "one"},
                                             {"to": "+15550000002", "body": "two"}]}
    assert (receipt.batch_id, receipt.total) == ("bulk_xyz789", 2)
    assert client.list_bulk_jobs()[0]["jobId"] == "bulk_xyz789"
    assert client.get_bulk_job("bulk_xyz789")["status"] == "completed"
    assert client.get_batch("bulk_xyz789").status == "completed"
    assert client.bulk_results("bulk_xyz789")["results"][0]["status"] == "delivered"


# --- smsgate ---------------------------------------------------------------------------------

@pytest.fixture
def smsgate() -> Any:
    with respx.mock(base_url=base("smsgate"), assert_all_called=True) as mock, RelayClient(
        f"{base('smsgate')}/api/3rdparty/v1", "smsgate", "PASSWORD", login="LOGIN"
    ) as client:
        yield mock, client


def test_smsgate_send_list_get(smsgate: Any) -> None:
    mock, client = smsgate
    message_id = "c6f1f7cc-97c1-44a2-99fb-83c4b3f9ef4c"
    route = mock.post("/api/3rdparty/v1/messages").respond(200, json={"id": message_id})
    listing = mock.get("/api/3rdparty/v1/messages").respond(
        200, json=[{"id": message_id, "state": "Pending", "createdAt": "2026-05-17T09:32:11.421Z"}]
    )
    mock.get(f"/api/3rdparty/v1/messages/{message_id}").respond(200, json={
        "id": message_id, "state": "Delivered",
        "recipients": [{"phoneNumber": "+12025550100", "state": "Delivered", "error": None}],
    })
    receipt = client.send(OutboundMessage(to=["+12025550100"], text="Hello from API", delivery_report=True))
    body = sent_json(route)
    own_id = body.pop("id")  # the client's idempotency key, repeated on every retry
    assert body == {"phoneNumbers": ["+12025550100"], "textMessage": {"text": "Hello from API"},
                    "withDeliveryReport": True}
    assert is_uuid(own_id) and receipt.idempotency_key == own_id
    assert sent(route).headers["Authorization"] == "Basic " + base64.b64encode(b"LOGIN:PASSWORD").decode()
    assert receipt.message_id == message_id and receipt.state is MessageState.QUEUED

    page = client.list_messages(skip=0, limit=20)
    assert dict(sent(listing).url.params) == {"skip": "0", "limit": "20"}
    assert page.messages[0].state is MessageState.QUEUED

    report = client.get_status(message_id)
    assert report.state is MessageState.DELIVERED
    assert [(r.address, r.state) for r in report.recipients] == [("+12025550100", MessageState.DELIVERED)]


def test_smsgate_webhooks(smsgate: Any) -> None:
    mock, client = smsgate
    create = mock.post("/api/3rdparty/v1/webhooks").respond(
        201, json={"id": "wh1", "url": "https://example.com/hook", "event": "sms:delivered"}
    )
    mock.get("/api/3rdparty/v1/webhooks").respond(
        200, json=[{"id": "wh1", "url": "https://example.com/hook", "event": "sms:delivered"}]
    )
    delete = mock.delete("/api/3rdparty/v1/webhooks/wh1").respond(204)
    assert client.register_webhook("https://example.com/hook", "sms:delivered")["id"] == "wh1"
    assert sent_json(create) == {"url": "https://example.com/hook", "event": "sms:delivered"}
    assert client.list_webhooks()[0]["id"] == "wh1"
    assert client.delete_webhook("wh1") is None
    assert delete.called


def test_smsgate_jwt(smsgate: Any) -> None:
    mock, _ = smsgate
    token = mock.post("/api/3rdparty/v1/auth/token").respond(
        201,
        json={"id": "t1", "token_type": "Bearer", "access_token": "jwt.abc.def", "expires_at": "2099-01-01T00:00:00Z"},
    )
    get = mock.get("/api/3rdparty/v1/messages/m1").respond(200, json={"id": "m1", "state": "Sent"})
    with RelayClient(base("smsgate"), "smsgate", "PASSWORD", login="LOGIN", use_jwt=True) as client:
        assert client.get_status("m1").state is MessageState.SENT
        client.get_status("m1")
    assert token.call_count == 1  # fetched once, then reused
    assert sent(token).headers["Authorization"].startswith("Basic ")
    assert set(sent_json(token)["scopes"]) >= {"messages:send", "messages:read"}
    assert [c.request.headers["Authorization"] for c in get.calls] == ["Bearer jwt.abc.def"] * 2

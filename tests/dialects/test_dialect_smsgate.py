"""smsgate dialect against every example in relay-docs/smsgate.md and the real product's extras."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

import pytest
from dialect_replay import API_KEY, replay

from relay_integrations.dialects import get_dialect
from relay_integrations.dialects.smsgate import DIALECT, SmsGateDialect
from relay_integrations.errors import (
    RelayAuthError,
    RelayConflictError,
    RelayError,
    RelayUnavailableError,
    RelayValidationError,
    UnsupportedOperationError,
)
from relay_integrations.models import MessageState, OutboundMessage

MESSAGE_ID = "c6f1f7cc-97c1-44a2-99fb-83c4b3f9ef4c"

# --- the doc's examples, verbatim ---------------------------------------------------------------
DOC_CURL_REQUEST = {"phoneNumbers": ["+12025550100"], "textMessage": {"text": "Hello!"}}
DOC_SEND_REQUEST = {
    "phoneNumbers": ["+12025550100"],
    "textMessage": {"text": "Hello from API"},
    "withDeliveryReport": True,
}
DOC_SEND_200 = {"id": MESSAGE_ID}
DOC_LIST_200 = [{"id": MESSAGE_ID, "state": "Pending", "createdAt": "2026-05-17T09:32:11.421Z"}]
DOC_GET_200 = {
    "id": MESSAGE_ID,
    "state": "Delivered",
    "recipients": [{"phoneNumber": "+12025550100", "state": "Delivered", "error": None}],
}


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


def test_module_exposes_dialect() -> None:
    assert isinstance(DIALECT, SmsGateDialect)
    assert get_dialect("smsgate") is DIALECT
    assert DIALECT.base_path == "/api/3rdparty/v1"


def test_capabilities() -> None:
    caps = DIALECT.capabilities
    assert caps.channels == {"sms"}
    assert caps.batch == "recipients" and caps.max_batch_size == 100
    assert caps.client_idempotency_keys is True
    assert caps.webhooks is True and caps.webhook_scheme == "smsgate"


def test_every_endpoint() -> None:
    routes = {(e.method, e.path) for e in DIALECT.endpoints.values()}
    assert routes == {
        ("POST", "/api/3rdparty/v1/messages"),
        ("GET", "/api/3rdparty/v1/messages"),
        ("GET", "/api/3rdparty/v1/messages/{message_id}"),
        ("GET", "/api/3rdparty/v1/webhooks"),
        ("POST", "/api/3rdparty/v1/webhooks"),
        ("DELETE", "/api/3rdparty/v1/webhooks/{webhook_id}"),
        ("POST", "/api/3rdparty/v1/auth/token"),
    }


def test_auth_headers() -> None:
    assert DIALECT.auth_headers("PASSWORD", login="LOGIN") == {"Authorization": basic("LOGIN", "PASSWORD")}
    assert DIALECT.auth_headers("PASSWORD", login="LOGIN", token="jwt.abc") == {"Authorization": "Bearer jwt.abc"}
    with pytest.raises(RelayAuthError) as info:
        DIALECT.auth_headers("PASSWORD")
    assert "PASSWORD" not in str(info.value)


# --- send ----------------------------------------------------------------------------------------
def test_curl_example() -> None:
    message = OutboundMessage(to=["+12025550100"], text="Hello!")
    wire = replay(DIALECT, DIALECT.build_send(message), body=DOC_SEND_200, login="LOGIN", api_key="PASSWORD")
    assert wire.request.method == "POST"
    assert wire.path == "/api/3rdparty/v1/messages"
    assert wire.sent_json == DOC_CURL_REQUEST
    assert wire.request.headers["Authorization"] == basic("LOGIN", "PASSWORD")


def test_send_example_and_id_only_answer() -> None:
    message = OutboundMessage(to="+12025550100", text="Hello from API", delivery_report=True)
    request = DIALECT.build_send(message)
    assert request.retry_safe is False  # no id of ours: a retry could send twice
    wire = replay(DIALECT, request, body=DOC_SEND_200, login="LOGIN")
    assert wire.sent_json == DOC_SEND_REQUEST
    receipt = DIALECT.parse_send(200, wire.response.json(), message)
    assert receipt.message_id == MESSAGE_ID
    assert receipt.state is MessageState.QUEUED and receipt.raw_state == "Pending"
    assert receipt.recipients == ["+12025550100"]
    assert receipt.duplicate is False


def test_send_full_state_answer_of_the_real_product() -> None:
    message = OutboundMessage(to=["+12025550100", "+12025550101"], text="hi", idempotency_key="order-77")
    answer = {
        "id": "order-77",
        "state": "Processed",
        "isHashed": False,
        "recipients": [
            {"phoneNumber": "+12025550100", "state": "Processed"},
            {"phoneNumber": "+12025550101", "state": "Pending"},
        ],
    }
    receipt = DIALECT.parse_send(202, answer, message)
    assert receipt.message_id == "order-77"
    assert receipt.state is MessageState.SENDING and receipt.raw_state == "Processed"
    assert receipt.recipients == ["+12025550100", "+12025550101"]
    # Without "state", the roll-up from the recipients decides (any Pending -> Pending).
    del answer["state"]
    assert DIALECT.parse_send(202, answer, message).raw_state == "Pending"


def test_every_send_field_and_idempotency_id() -> None:
    message = OutboundMessage(
        to=["+12025550100", "+12025550101"],
        text="Hello",
        idempotency_key="campaign-1-row-7",
        sim_number=2,
        delivery_report=False,
        priority=100,
        schedule_at=datetime(2026, 5, 17, 9, 0, tzinfo=timezone.utc),
        valid_until=datetime(2026, 5, 18, 9, 0, tzinfo=timezone.utc),
    )
    request = DIALECT.build_send(message)
    assert request.retry_safe is True  # our own id: a repeat gets 409, never a second SMS
    assert request.idempotency_key == "campaign-1-row-7"
    assert request.json == {
        "id": "campaign-1-row-7",
        "phoneNumbers": ["+12025550100", "+12025550101"],
        "textMessage": {"text": "Hello"},
        "simNumber": 2,
        "withDeliveryReport": False,
        "priority": 100,
        "scheduleAt": "2026-05-17T09:00:00Z",
        "validUntil": "2026-05-18T09:00:00Z",
    }


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"to": None}, "to"),
        ({"to": [f"+1202555{i:04d}" for i in range(101)]}, "to"),
        ({"text": None}, "text"),
        ({"channel": "wa"}, "channel"),
        ({"priority": 128}, "priority"),
        ({"attachments": ["https://x/a"]}, "attachments"),
    ],
)
def test_send_validation(fields: dict[str, Any], bad_field: str) -> None:
    data: dict[str, Any] = {"to": "+12025550100", "text": "hi", **fields}
    with pytest.raises(RelayValidationError) as info:
        DIALECT.build_send(OutboundMessage(**data))
    assert info.value.field == bad_field


def test_hundred_recipients_fit() -> None:
    numbers = [f"+1202555{i:04d}" for i in range(100)]
    assert DIALECT.build_send(OutboundMessage(to=numbers, text="hi")).json["phoneNumbers"] == numbers


def test_no_batch_endpoint() -> None:
    with pytest.raises(UnsupportedOperationError):
        DIALECT.build_send_batch([OutboundMessage(to="+12025550100", text="hi")])


# --- list and status ------------------------------------------------------------------------------
def test_list_example() -> None:
    request = DIALECT.build_list_messages()
    wire = replay(DIALECT, request, body=DOC_LIST_200, login="LOGIN")
    assert wire.request.method == "GET"
    assert wire.path == "/api/3rdparty/v1/messages"
    assert wire.query == {"skip": "0", "limit": "20"}
    page = DIALECT.parse_message_page(wire.response.json())
    (summary,) = page.messages
    assert summary.message_id == MESSAGE_ID
    assert summary.state is MessageState.QUEUED and summary.raw_state == "Pending"
    assert summary.created_at == datetime(2026, 5, 17, 9, 32, 11, 421000, tzinfo=timezone.utc)
    assert page.raw == DOC_LIST_200


def test_list_paging() -> None:
    assert DIALECT.build_list_messages(page=3, limit=50).params == {"skip": 100, "limit": 50}
    assert DIALECT.build_list_messages(skip=40).params == {"skip": 40, "limit": 20}
    assert DIALECT.build_list_messages(state=MessageState.DELIVERED).params == {
        "skip": 0,
        "limit": 20,
        "state": "Delivered",
    }


def test_get_example() -> None:
    wire = replay(DIALECT, DIALECT.build_get_status(MESSAGE_ID), body=DOC_GET_200, login="LOGIN")
    assert wire.path == f"/api/3rdparty/v1/messages/{MESSAGE_ID}"
    report = DIALECT.parse_status(wire.response.json())
    assert report.message_id == MESSAGE_ID
    assert report.state is MessageState.DELIVERED and report.raw_state == "Delivered"
    (recipient,) = report.recipients
    assert recipient.address == "+12025550100"
    assert recipient.state is MessageState.DELIVERED and recipient.raw_state == "Delivered"
    assert recipient.error is None
    assert report.error is None


def test_status_rolls_up_without_state_and_reads_states_timeline() -> None:
    body = {
        "id": "m1",
        "recipients": [
            {"phoneNumber": "+1", "state": "Delivered", "error": None},
            {"phoneNumber": "+2", "state": "Failed", "error": "RESULT_ERROR_GENERIC_FAILURE"},
        ],
        "states": {
            "Pending": "2026-05-17T09:32:11Z",
            "Processed": "2026-05-17T09:32:12Z",
            "Sent": "2026-05-17T09:32:13Z",
            "Delivered": "2026-05-17T09:32:15Z",
        },
    }
    report = DIALECT.parse_status(body)
    assert report.raw_state == "Sent" and report.state is MessageState.SENT
    assert report.error == "RESULT_ERROR_GENERIC_FAILURE"
    assert [e.raw_state for e in report.timeline] == ["Pending", "Processed", "Sent", "Delivered"]
    assert report.sent_at == datetime(2026, 5, 17, 9, 32, 13, tzinfo=timezone.utc)
    assert report.delivered_at == datetime(2026, 5, 17, 9, 32, 15, tzinfo=timezone.utc)
    with pytest.raises(RelayError):
        DIALECT.parse_status({"id": "m1", "recipients": []})


# --- webhooks and token endpoints -----------------------------------------------------------------
def test_webhook_endpoints() -> None:
    created = replay(
        DIALECT,
        DIALECT.build_create_webhook("http://127.0.0.1:8000/webhooks/smsgate", "sms:delivered"),
        body={"id": "wh1", "url": "http://127.0.0.1:8000/webhooks/smsgate", "event": "sms:delivered"},
        login="LOGIN",
    )
    assert created.request.method == "POST" and created.path == "/api/3rdparty/v1/webhooks"
    assert created.sent_json == {"url": "http://127.0.0.1:8000/webhooks/smsgate", "event": "sms:delivered"}
    listed = replay(DIALECT, DIALECT.request("list_webhooks"), body=[], login="LOGIN")
    assert listed.request.method == "GET" and listed.path == "/api/3rdparty/v1/webhooks"
    deleted = replay(
        DIALECT, DIALECT.request("delete_webhook", path_params={"webhook_id": "wh1"}), status=204, login="LOGIN"
    )
    assert deleted.request.method == "DELETE" and deleted.path == "/api/3rdparty/v1/webhooks/wh1"


def test_token_endpoint() -> None:
    wire = replay(
        DIALECT,
        DIALECT.build_auth_token(["messages:send"], ttl=3600),
        body={"access_token": "jwt.abc", "token_type": "Bearer", "id": "t1"},
        login="LOGIN",
        api_key="PASSWORD",
    )
    assert wire.request.method == "POST" and wire.path == "/api/3rdparty/v1/auth/token"
    assert wire.sent_json == {"scopes": ["messages:send"], "ttl": 3600}
    assert wire.request.headers["Authorization"] == basic("LOGIN", "PASSWORD")


# --- errors ----------------------------------------------------------------------------------------
def test_conflict_on_a_repeated_id() -> None:
    message = OutboundMessage(to="+12025550100", text="hi", idempotency_key="order-77")
    wire = replay(
        DIALECT, DIALECT.build_send(message), status=409, body={"message": "message already exists"}, login="LOGIN"
    )
    error = DIALECT.parse_error(409, wire.response.json(), wire.response.headers)
    assert type(error) is RelayConflictError
    assert error.message == "message already exists"
    assert error.status_code == 409


def test_full_device_queue_is_unavailable_with_retry_after() -> None:
    error = DIALECT.parse_error(503, {"message": "queue is full"}, {"Retry-After": "30"})
    assert isinstance(error, RelayUnavailableError)
    assert error.retry_after == 30.0


def test_auth_and_validation_errors() -> None:
    error = DIALECT.parse_error(401, {"message": "Unauthorized"}, {})
    assert isinstance(error, RelayAuthError)
    assert API_KEY not in repr(error)
    invalid = DIALECT.parse_error(400, {"message": "phoneNumbers is empty", "field": "phoneNumbers"}, {})
    assert isinstance(invalid, RelayValidationError) and invalid.field == "phoneNumbers"


# --- outbound webhooks in ----------------------------------------------------------------------------
def envelope(event: str, payload: dict[str, Any], event_id: str = "dlv_1") -> dict[str, Any]:
    return {"deviceId": "dev_1", "event": event, "id": event_id, "webhookId": "wh1", "payload": payload}


@pytest.mark.parametrize(
    ("event", "extra", "state"),
    [
        ("sms:sent", {"sentAt": "2026-05-17T09:32:13Z"}, MessageState.SENT),
        ("sms:delivered", {"deliveredAt": "2026-05-17T09:32:13Z"}, MessageState.DELIVERED),
        ("sms:failed", {"failedAt": "2026-05-17T09:32:13Z", "reason": "RESULT_ERROR_NO_SERVICE"}, MessageState.FAILED),
    ],
)
def test_status_webhooks(event: str, extra: dict[str, Any], state: MessageState) -> None:
    body = envelope(event, {"messageId": MESSAGE_ID, "phoneNumber": "+12025550100", **extra})
    (parsed,) = DIALECT.parse_webhook(body, {"X-Signature": "ab", "X-Timestamp": "1"})
    assert parsed.event_id == "dlv_1"
    assert parsed.kind == "status"
    assert parsed.event_type == event
    assert parsed.message_id == MESSAGE_ID
    assert parsed.state is state
    assert parsed.recipient == "+12025550100"
    assert parsed.occurred_at == datetime(2026, 5, 17, 9, 32, 13, tzinfo=timezone.utc)
    assert parsed.error == extra.get("reason")


def test_received_webhook() -> None:
    body = envelope(
        "sms:received",
        {
            "messageId": "in_1",
            "message": "STOP",
            "phoneNumber": "+12025550100",
            "simNumber": 1,
            "receivedAt": "2026-05-17T09:40:00Z",
        },
    )
    (parsed,) = DIALECT.parse_webhook(body, {})
    assert parsed.kind == "inbound"
    assert parsed.sender == "+12025550100"
    assert parsed.text == "STOP"
    assert parsed.state is None
    assert parsed.occurred_at == datetime(2026, 5, 17, 9, 40, tzinfo=timezone.utc)


def test_ping_and_duplicate_envelopes() -> None:
    (ping,) = DIALECT.parse_webhook(envelope("system:ping", {}, "dlv_ping"), {})
    assert ping.kind == "other" and ping.event_id == "dlv_ping"
    # The app re-sends an event with a new envelope id: ids differ, message id and type agree.
    first = DIALECT.parse_webhook(envelope("sms:sent", {"messageId": "m", "phoneNumber": "+1"}, "a"), {})[0]
    second = DIALECT.parse_webhook(envelope("sms:sent", {"messageId": "m", "phoneNumber": "+1"}, "b"), {})[0]
    assert first.event_id != second.event_id
    assert (first.message_id, first.event_type) == (second.message_id, second.event_type)

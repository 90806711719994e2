"""The relaysms dialect (doc: relay-docs/relaysms.md): an SMS API with batch sends and a timeline.

Every answer is wrapped as ``{"data": ..., "timestamp", "unix_timestamp"}`` and every error as
``{"error": {"code", "message"}}``. Messages are identified by ``client_reference_id`` (the id the
send returns, the recommended key for ``GET /sms/{id}``); webhooks also carry the provider's
``message_id``. The relay takes no client idempotency key, so a send is never retried blindly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from relay_integrations.dialects._common import (
    address_problem,
    as_dict,
    as_int,
    build_error,
    drop_none,
    extract_error,
    header,
    lookup_state,
    lookup_state_or_none,
    parse_datetime,
    stable_event_id,
)
from relay_integrations.dialects.base import Capabilities, Dialect, Endpoint, RelayRequest
from relay_integrations.errors import RelayError, RelayValidationError
from relay_integrations.models import (
    BatchItemResult,
    BatchProgress,
    BatchReceipt,
    MessagePage,
    MessageState,
    MessageSummary,
    OutboundMessage,
    SendReceipt,
    StatusReport,
    TimelineEntry,
    WebhookEvent,
)

MAX_TEXT_LENGTH = 1600
MAX_BATCH_SIZE = 1000

STATES: Mapping[str, MessageState] = {
    "accepted": MessageState.QUEUED,
    "queued": MessageState.QUEUED,
    "sending": MessageState.SENDING,
    "sent": MessageState.SENT,
    "delivered": MessageState.DELIVERED,
    "failed": MessageState.FAILED,
    "undelivered": MessageState.FAILED,
    "delivery_failed": MessageState.FAILED,
    "canceled": MessageState.CANCELLED,
    "cancelled": MessageState.CANCELLED,
}

#: The doc's error codes and the HTTP status each comes with.
ERROR_CODES: Mapping[str, int] = {
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "INVALID_REQUEST": 400,
    "INSUFFICIENT_BALANCE": 402,
    "QUEUE_FAILED": 503,
    "INTERNAL_ERROR": 500,
}

_BASE = "/api/v1"

ENDPOINTS: Mapping[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("send", "POST", f"{_BASE}/sms/send", "Send SMS (202)"),
        Endpoint("get_status", "GET", f"{_BASE}/sms/{{message_id}}", "Get one message (by client_reference_id)"),
        Endpoint("list_messages", "GET", f"{_BASE}/messages", "List messages (limit, page, direction, status)"),
        Endpoint("message_log", "GET", f"{_BASE}/messages/{{message_id}}/log", "Delivery timeline of a message"),
        Endpoint("list_numbers", "GET", f"{_BASE}/numbers", "Phone numbers owned by the account"),
        Endpoint("spam_diagnosis", "GET", f"{_BASE}/numbers/{{number}}/spam-diagnosis", "Spam filtering risk"),
        Endpoint("get_balance", "GET", f"{_BASE}/balance", "Account balance"),
        Endpoint("list_transactions", "GET", f"{_BASE}/transactions", "Transaction history (limit, page)"),
        Endpoint("get_webhooks", "GET", f"{_BASE}/webhooks", "Global webhook configuration"),
        Endpoint("set_webhooks", "PUT", f"{_BASE}/webhooks", "Set status_url / inbound_url"),
        Endpoint("get_number_webhooks", "GET", f"{_BASE}/numbers/{{phone}}/webhooks", "A number's inbound callback"),
        Endpoint("set_number_webhooks", "PUT", f"{_BASE}/numbers/{{phone}}/webhooks", "Set a number's callback"),
        Endpoint("regenerate_api_key", "POST", f"{_BASE}/api-key/regenerate", "New API key; old one dies now"),
        Endpoint("send_batch", "POST", f"{_BASE}/sms/batch", "Send up to 1000 messages from one number"),
        Endpoint("get_batch", "GET", f"{_BASE}/sms/batch/{{batch_id}}", "Batch job status and progress"),
        Endpoint("list_batch_messages", "GET", f"{_BASE}/sms/batch/{{batch_id}}/messages", "Messages of a batch"),
        Endpoint("post_status_bin", "POST", f"{_BASE}/status/bin", "Post a test status webhook payload"),
        Endpoint("get_status_bin", "GET", f"{_BASE}/status/bin", "Read logged test status payloads"),
        Endpoint("post_messages_bin", "POST", f"{_BASE}/messages/bin", "Post a test inbound webhook payload"),
        Endpoint("get_messages_bin", "GET", f"{_BASE}/messages/bin", "Read logged test inbound payloads"),
    )
}


class RelaySmsDialect(Dialect):
    """Mapping between canonical models and the relaysms API."""

    name: ClassVar[str] = "relaysms"
    base_path: ClassVar[str] = _BASE
    capabilities: ClassVar[Capabilities] = Capabilities(
        channels=frozenset({"sms"}),
        batch="batch",
        max_batch_size=MAX_BATCH_SIZE,
        client_idempotency_keys=False,
        webhooks=True,
        webhook_scheme="standard-webhooks",
        inbound_stats=False,
        max_text_length=MAX_TEXT_LENGTH,
    )
    endpoints: ClassVar[Mapping[str, Endpoint]] = ENDPOINTS

    # --- authentication -------------------------------------------------------------------
    def auth_headers(self, api_key: str, login: str | None = None, token: str | None = None) -> dict[str, str]:
        if token:
            return {"Authorization": f"Bearer {token}"}
        return {"X-API-Key": api_key}

    # --- states ---------------------------------------------------------------------------
    def map_state(self, raw: str) -> MessageState:
        return lookup_state(self.name, STATES, raw)

    def unwrap(self, body: Any) -> Any:
        """The ``data`` of the ``{data, timestamp, unix_timestamp}`` envelope (bodies without it pass through)."""
        if isinstance(body, Mapping) and "data" in body and "error" not in body:
            return body["data"]
        return body

    # --- validation -----------------------------------------------------------------------
    def _invalid(self, text: str, field: str) -> RelayValidationError:
        return RelayValidationError(text, field=field, dialect=self.name)

    def _item(self, message: OutboundMessage, prefix: str = "") -> dict[str, Any]:
        """``{to, body, status_callback?, metadata?}`` of one message, validated against the doc."""
        if message.channel != "sms":
            raise self._invalid(f"relaysms only sends sms, not {message.channel!r}", f"{prefix}channel")
        recipients = message.recipients
        if len(recipients) != 1:
            raise self._invalid("relaysms sends to exactly one recipient per message", f"{prefix}to")
        problem = address_problem(recipients[0])
        if problem:
            raise self._invalid(problem, f"{prefix}to")
        if not message.text:
            raise self._invalid("text is required", f"{prefix}text")
        if len(message.text) > MAX_TEXT_LENGTH:
            raise self._invalid(
                f"text is {len(message.text)} characters; relaysms allows at most {MAX_TEXT_LENGTH}", f"{prefix}text"
            )
        if message.attachments:
            raise self._invalid("relaysms cannot send attachments", f"{prefix}attachments")
        return drop_none(
            {
                "to": recipients[0],
                "body": message.text,
                "status_callback": message.status_callback,
                "metadata": message.metadata or None,
            }
        )

    # --- messages -------------------------------------------------------------------------
    def build_send(self, message: OutboundMessage) -> RelayRequest:
        item = self._item(message)
        if not message.sender:
            raise self._invalid("'from' (sender) is required: a number the account owns", "from")
        body: dict[str, Any] = {"to": item["to"], "from": message.sender, "body": item["body"]}
        body.update({k: v for k, v in item.items() if k not in body})
        # No client idempotency key: a retried POST could send twice.
        return RelayRequest(
            method="POST",
            path=ENDPOINTS["send"].path,
            json=body,
            retry_safe=False,
            idempotency_key=message.idempotency_key,
            endpoint="send",
        )

    def _message_id(self, data: Mapping[str, Any]) -> str | None:
        value = data.get("client_reference_id") or data.get("id") or data.get("message_id")
        return str(value) if value else None

    def parse_send(self, status_code: int, body: Any, message: OutboundMessage) -> SendReceipt:
        data = as_dict(self.unwrap(body))
        message_id = self._message_id(data)
        if not message_id:
            raise RelayError(
                f"{self.name} send answer has no id", status_code=status_code, dialect=self.name, body=body
            )
        raw_state = data.get("status") or "accepted"
        return SendReceipt(
            message_id=message_id,
            state=self.map_state(raw_state),
            raw_state=raw_state,
            idempotency_key=message.idempotency_key,
            recipients=[data["to"]] if data.get("to") else message.recipients,
            client_reference_id=data.get("client_reference_id"),
            dialect=self.name,
            raw=as_dict(body),
        )

    def build_send_batch(self, messages: Sequence[OutboundMessage]) -> RelayRequest:
        """``POST /sms/batch``: 1 to 1000 messages, all from the same ``from`` number."""
        if not messages:
            raise self._invalid("a batch needs at least one message", "messages")
        if len(messages) > MAX_BATCH_SIZE:
            raise self._invalid(
                f"a relaysms batch holds at most {MAX_BATCH_SIZE} messages, got {len(messages)}", "messages"
            )
        senders = {m.sender for m in messages if m.sender}
        if not senders:
            raise self._invalid("'from' (sender) is required: a number the account owns", "from")
        if len(senders) > 1:
            first = next(m.sender for m in messages if m.sender)
            row = next(i for i, m in enumerate(messages) if m.sender and m.sender != first)
            raise self._invalid(
                f"every message in a relaysms batch must share one sender; message {row} differs",
                f"messages[{row}].from",
            )
        items = [self._item(m, prefix=f"messages[{i}].") for i, m in enumerate(messages)]
        return RelayRequest(
            method="POST",
            path=ENDPOINTS["send_batch"].path,
            json={"from": senders.pop(), "messages": items},
            retry_safe=False,
            endpoint="send_batch",
        )

    def parse_send_batch(self, status_code: int, body: Any, messages: Sequence[OutboundMessage]) -> BatchReceipt:
        data = as_dict(self.unwrap(body))
        results: list[BatchItemResult] = []
        for position, item in enumerate(data.get("results") or []):
            if not isinstance(item, Mapping):
                continue
            index = as_int(item.get("index"))
            index = position if index is None else index
            raw_state = item.get("status")
            # "rejected" and the like map to None: no message was created for this row.
            state = lookup_state_or_none(STATES, raw_state)
            source = messages[index] if 0 <= index < len(messages) else None
            message_id = self._message_id(item)
            results.append(
                BatchItemResult(
                    index=index,
                    to=item.get("to"),
                    message_id=message_id,
                    state=state,
                    raw_state=raw_state,
                    idempotency_key=source.idempotency_key if source else None,
                    # Read only for refused rows: an accepted row carries no error, and this runs per row.
                    error=extract_error(item)[1] if (state is None or state is MessageState.FAILED) else None,
                )
            )
        total = as_int(data.get("total"))
        return BatchReceipt(
            batch_id=data.get("batch_id"),
            accepted=as_int(data.get("accepted")) or sum(1 for r in results if r.state is not None),
            rejected=as_int(data.get("rejected")) or 0,
            total=total if total is not None else len(messages),
            state=data.get("status"),
            results=results,
            dialect=self.name,
            raw=as_dict(body),
        )

    def build_get_batch(self, batch_id: str) -> RelayRequest:
        return self.request("get_batch", path_params={"batch_id": batch_id})

    def parse_batch_progress(self, body: Any) -> BatchProgress:
        data = as_dict(self.unwrap(body))
        return BatchProgress(
            batch_id=str(data.get("job_id") or data.get("batch_id") or ""),
            status=str(data.get("status") or ""),
            total=as_int(data.get("total")) or 0,
            processed=as_int(data.get("processed")) or 0,
            completed=as_int(data.get("completed")) or 0,
            failed=as_int(data.get("failed")) or 0,
            dialect=self.name,
            raw=as_dict(body),
        )

    def build_list_batch_messages(
        self, batch_id: str, page: int | None = None, limit: int | None = None
    ) -> RelayRequest:
        """``GET /sms/batch/{id}/messages``; :meth:`parse_message_page` reads it. ``limit`` (max 100, as on
        every relaysms list) keeps a 1000-message batch to ten pages."""
        return self.request(
            "list_batch_messages", path_params={"batch_id": batch_id}, params={"page": page, "limit": limit}
        )

    def build_get_status(self, message_id: str) -> RelayRequest:
        return self.request("get_status", path_params={"message_id": message_id})

    def build_get_log(self, message_id: str) -> RelayRequest:
        """``GET /messages/{id}/log``; :meth:`parse_status` reads its timeline."""
        return self.request("message_log", path_params={"message_id": message_id})

    def parse_status(self, body: Any) -> StatusReport:
        """A ``GET /sms/{id}`` or ``GET /messages/{id}/log`` answer (the latter fills ``timeline``)."""
        data = as_dict(self.unwrap(body))
        message_id = self._message_id(data)
        raw_state = data.get("status")
        if not message_id or not raw_state:
            raise RelayError(f"{self.name} status answer has no id or status", dialect=self.name, body=body)
        timeline: list[TimelineEntry] = []
        for entry in data.get("timeline") or []:
            if isinstance(entry, Mapping) and entry.get("status"):
                timeline.append(
                    TimelineEntry(
                        state=self.map_state(entry["status"]),
                        raw_state=entry["status"],
                        at=parse_datetime(entry.get("timestamp")),
                    )
                )

        def first_at(*states: MessageState) -> Any:
            return next((e.at for e in timeline if e.state in states), None)

        state = self.map_state(raw_state)
        error = data.get("error_message") or data.get("error_code")
        return StatusReport(
            message_id=message_id,
            state=state,
            raw_state=raw_state,
            recipients=[],
            error=str(error) if error else None,
            created_at=parse_datetime(data.get("created_at")) or first_at(MessageState.QUEUED),
            sent_at=parse_datetime(data.get("sent_at")) or first_at(MessageState.SENT),
            delivered_at=parse_datetime(data.get("delivered_at")) or first_at(MessageState.DELIVERED),
            updated_at=parse_datetime(data.get("updated_at")),
            timeline=timeline,
            dialect=self.name,
            raw=as_dict(body),
        )

    def build_list_messages(self, **filters: Any) -> RelayRequest:
        """``GET /messages``; filters ``limit`` (max 100), ``page``, ``direction``, ``status``."""
        state = filters.get("status")
        if isinstance(state, MessageState):
            filters["status"] = state.value
        return self.request("list_messages", params=filters)

    def parse_message_page(self, body: Any) -> MessagePage:
        """A ``GET /messages`` page, or a ``GET /sms/batch/{id}/messages`` page (``items``)."""
        data = as_dict(self.unwrap(body))
        items: list[Any] = next((data[k] for k in ("messages", "items") if isinstance(data.get(k), list)), [])
        messages = [self._summary(item) for item in items if isinstance(item, Mapping)]
        has_more = data.get("has_more")
        return MessagePage(
            messages=messages,
            page=as_int(data.get("page")),
            limit=as_int(data.get("limit")),
            total=as_int(data.get("total")),
            has_more=has_more if isinstance(has_more, bool) else None,
            dialect=self.name,
            raw=as_dict(body),
        )

    def _summary(self, item: Mapping[str, Any]) -> MessageSummary:
        raw_state = item.get("status")
        direction = item.get("direction")
        return MessageSummary(
            message_id=self._message_id(item) or "",
            state=lookup_state_or_none(STATES, raw_state),
            raw_state=raw_state,
            to=item.get("to"),
            sender=item.get("from"),
            text=item.get("body"),
            direction=direction if direction in ("outbound", "inbound") else None,
            channel="sms",
            created_at=parse_datetime(item.get("created_at")),
            client_reference_id=item.get("client_reference_id"),
            raw=dict(item),
        )

    # --- errors ---------------------------------------------------------------------------
    def parse_error(self, status_code: int, body: Any, headers: Mapping[str, str]) -> RelayError:
        """``{"error": {"code", "message"}}``: the class follows the HTTP status, ``code`` is kept."""
        code, message, field = extract_error(body)
        return build_error(self.name, status_code, body, headers, code=code, message=message, field=field)

    # --- webhooks in ----------------------------------------------------------------------
    def parse_webhook(self, payload: Any, headers: Mapping[str, str]) -> list[WebhookEvent]:
        """The doc's ``message.status`` and ``message.inbound`` payloads.

        The event id is the Standard Webhooks ``webhook-id`` header (kept across retries); without
        it, one derived from the message id, event and status.
        """
        data = as_dict(payload)
        if not data:
            return []
        event_type = str(data.get("event") or "")
        message_id = self._message_id(data)
        webhook_id = header(headers, "webhook-id")
        occurred_at = parse_datetime(data.get("timestamp")) or parse_datetime(data.get("unix_timestamp"))
        if event_type == "message.inbound" or data.get("direction") == "inbound":
            return [
                WebhookEvent(
                    event_id=webhook_id
                    or stable_event_id(
                        self.name, data.get("message_id"), event_type or "message.inbound", data.get("to")
                    ),
                    dialect=self.name,
                    kind="inbound",
                    event_type=event_type or "message.inbound",
                    message_id=str(data["message_id"]) if data.get("message_id") else message_id,
                    sender=data.get("from"),
                    recipient=data.get("to"),
                    text=data.get("body"),
                    occurred_at=occurred_at,
                    raw=data,
                )
            ]
        if event_type == "message.status" or data.get("status"):
            raw_state = data.get("status")
            state = lookup_state_or_none(STATES, raw_state)
            error = data.get("error_message") or data.get("error_code")
            return [
                WebhookEvent(
                    event_id=webhook_id
                    or stable_event_id(
                        self.name, message_id, event_type or "message.status", raw_state, data.get("to")
                    ),
                    dialect=self.name,
                    kind="status",
                    event_type=event_type or "message.status",
                    message_id=message_id,
                    state=state,
                    raw_state=raw_state,
                    sender=data.get("from"),
                    recipient=data.get("to"),
                    error=str(error) if error else None,
                    occurred_at=occurred_at,
                    raw=data,
                )
            ]
        return [
            WebhookEvent(
                event_id=webhook_id or stable_event_id(self.name, json.dumps(data, sort_keys=True, default=str)),
                dialect=self.name,
                kind="other",
                event_type=event_type or "unknown",
                message_id=message_id,
                occurred_at=occurred_at,
                raw=data,
            )
        ]


DIALECT = RelaySmsDialect()

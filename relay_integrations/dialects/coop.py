"""The coop dialect (doc: relay-docs/coop.md): an iMessage/SMS relay with priorities,
attachments and asynchronous bulk jobs.

``POST /api/v1/messages`` answers 201 with the message; ``GET /api/v1/messages/:id/status`` has
queued/processing/sent/delivered/failed with attempts and timestamps; ``POST /api/v1/messages/bulk``
starts a job (``jobId``) whose progress and per-recipient results can be read back. The doc gives no
error shape and no list shape, so both are read defensively.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from relay_integrations.dialects._common import (
    address_problem,
    as_dict,
    as_int,
    build_error,
    drop_none,
    extract_error,
    lookup_state,
    lookup_state_or_none,
    parse_datetime,
    stable_event_id,
)
from relay_integrations.dialects.base import Capabilities, Dialect, Endpoint, RelayRequest
from relay_integrations.errors import RelayError, RelayValidationError
from relay_integrations.models import (
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

MAX_ATTACHMENTS = 10
PRIORITY_RANGE = (0, 100)
# The doc sets no limit on a bulk job's size. 1000 matches the other batch relay (relaysms) and
# keeps one request body well under typical proxy limits; larger sends are split by the caller.
MAX_BULK_SIZE = 1000

STATES: Mapping[str, MessageState] = {
    "queued": MessageState.QUEUED,
    # The queue-stats counters name waiting messages "pending".
    "pending": MessageState.QUEUED,
    "processing": MessageState.SENDING,
    "sending": MessageState.SENDING,
    "sent": MessageState.SENT,
    "delivered": MessageState.DELIVERED,
    "failed": MessageState.FAILED,
}

#: Canonical list directions -> the doc's ``direction`` values.
_DIRECTIONS = {"outbound": "sent", "inbound": "received", "sent": "sent", "received": "received"}

_BASE = "/api/v1"

ENDPOINTS: Mapping[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("send", "POST", f"{_BASE}/messages", "Send a message (201)"),
        Endpoint("list_messages", "GET", f"{_BASE}/messages", "List sent and received messages"),
        Endpoint("get_status", "GET", f"{_BASE}/messages/{{message_id}}/status", "Delivery status of a message"),
        Endpoint("list_attachments", "GET", f"{_BASE}/messages/{{message_id}}/attachments", "Attachment URLs"),
        Endpoint("queue_stats", "GET", f"{_BASE}/messages/queue/stats", "Queue counts by state"),
        Endpoint("send_batch", "POST", f"{_BASE}/messages/bulk", "Create a bulk message job (201)"),
        Endpoint("list_bulk_jobs", "GET", f"{_BASE}/messages/bulk", "List bulk jobs"),
        Endpoint("get_batch", "GET", f"{_BASE}/messages/bulk/{{batch_id}}", "Bulk job details and progress"),
        Endpoint("bulk_results", "GET", f"{_BASE}/messages/bulk/{{batch_id}}/results", "Per-recipient results"),
    )
}

_WEBHOOK_STATES = {
    "message.queued": "queued",
    "message.sent": "sent",
    "message.delivered": "delivered",
    "message.failed": "failed",
}


class CoopDialect(Dialect):
    """Mapping between canonical models and the coop API."""

    name: ClassVar[str] = "coop"
    base_path: ClassVar[str] = _BASE
    capabilities: ClassVar[Capabilities] = Capabilities(
        channels=frozenset({"imessage", "sms"}),
        batch="bulk",
        max_batch_size=MAX_BULK_SIZE,
        client_idempotency_keys=False,
        webhooks=True,
        webhook_scheme="coop",
        inbound_stats=False,
        max_attachments=MAX_ATTACHMENTS,
    )
    endpoints: ClassVar[Mapping[str, Endpoint]] = ENDPOINTS

    # --- authentication -------------------------------------------------------------------
    def auth_headers(self, api_key: str, login: str | None = None, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or api_key}"}

    # --- states ---------------------------------------------------------------------------
    def map_state(self, raw: str) -> MessageState:
        return lookup_state(self.name, STATES, raw)

    # --- messages -------------------------------------------------------------------------
    def _invalid(self, text: str, field: str) -> RelayValidationError:
        return RelayValidationError(text, field=field, dialect=self.name)

    def _check_common(self, message: OutboundMessage, prefix: str = "") -> str:
        if message.channel not in self.capabilities.channels:
            raise self._invalid(f"coop sends imessage or sms, not {message.channel!r}", f"{prefix}channel")
        recipients = message.recipients
        if len(recipients) != 1:
            raise self._invalid("coop sends to exactly one recipient per message", f"{prefix}to")
        problem = address_problem(recipients[0])
        if problem:
            raise self._invalid(problem, f"{prefix}to")
        return recipients[0]

    def build_send(self, message: OutboundMessage) -> RelayRequest:
        to = self._check_common(message)
        if not message.text and not message.attachments:
            raise self._invalid("text is required unless attachments are given", "text")
        if len(message.attachments) > MAX_ATTACHMENTS:
            raise self._invalid(
                f"coop allows at most {MAX_ATTACHMENTS} attachments, got {len(message.attachments)}", "attachments"
            )
        low, high = PRIORITY_RANGE
        if message.priority is not None and not low <= message.priority <= high:
            raise self._invalid(f"priority must be between {low} and {high}", "priority")
        body = drop_none(
            {
                "to": to,
                "body": message.text or None,
                "attachments": list(message.attachments) or None,
                "priority": message.priority,
                "fromNumber": message.sender,
            }
        )
        return RelayRequest(
            method="POST",
            path=ENDPOINTS["send"].path,
            json=body,
            retry_safe=False,  # no client idempotency key: a retried POST could send twice
            idempotency_key=message.idempotency_key,
            endpoint="send",
        )

    def parse_send(self, status_code: int, body: Any, message: OutboundMessage) -> SendReceipt:
        data = as_dict(body)
        message_id = data.get("id") or data.get("messageId")
        if not message_id:
            raise RelayError(
                f"{self.name} send answer has no id", status_code=status_code, dialect=self.name, body=body
            )
        raw_state = data.get("status") or "queued"
        return SendReceipt(
            message_id=str(message_id),
            state=self.map_state(raw_state),
            raw_state=raw_state,
            idempotency_key=message.idempotency_key,
            recipients=[data["to"]] if data.get("to") else message.recipients,
            dialect=self.name,
            raw=data,
        )

    def build_send_batch(self, messages: Sequence[OutboundMessage]) -> RelayRequest:
        """``POST /messages/bulk`` with ``{"messages": [{to, body}]}`` -- the doc's only per-item fields."""
        if not messages:
            raise self._invalid("a bulk job needs at least one message", "messages")
        if len(messages) > MAX_BULK_SIZE:
            raise self._invalid(
                f"a coop bulk job holds at most {MAX_BULK_SIZE} messages here, got {len(messages)}", "messages"
            )
        items: list[dict[str, Any]] = []
        for i, message in enumerate(messages):
            prefix = f"messages[{i}]."
            to = self._check_common(message, prefix)
            if not message.text:
                raise self._invalid("text is required in a bulk job", f"{prefix}text")
            if message.attachments:
                raise self._invalid("bulk jobs carry {to, body} only; send attachments singly", f"{prefix}attachments")
            items.append({"to": to, "body": message.text})
        return RelayRequest(
            method="POST",
            path=ENDPOINTS["send_batch"].path,
            json={"messages": items},
            retry_safe=False,
            endpoint="send_batch",
        )

    def parse_send_batch(self, status_code: int, body: Any, messages: Sequence[OutboundMessage]) -> BatchReceipt:
        data = as_dict(body)
        job_id = data.get("jobId") or data.get("id")
        if not job_id:
            raise RelayError(
                f"{self.name} bulk answer has no jobId", status_code=status_code, dialect=self.name, body=body
            )
        total = as_int(data.get("totalRecipients"))
        total = len(messages) if total is None else total
        return BatchReceipt(
            batch_id=str(job_id),
            # A bulk job accepts its recipients as a whole; per-recipient results come later.
            accepted=total,
            rejected=0,
            total=total,
            state=data.get("status"),
            dialect=self.name,
            raw=data,
        )

    def build_get_batch(self, batch_id: str) -> RelayRequest:
        return self.request("get_batch", path_params={"batch_id": batch_id})

    def build_bulk_results(self, batch_id: str, page: int | None = None, limit: int | None = None) -> RelayRequest:
        """``GET /messages/bulk/:jobId/results``; ``page``/``limit`` as on coop's other lists."""
        return self.request("bulk_results", path_params={"batch_id": batch_id}, params={"page": page, "limit": limit})

    def parse_bulk_results(self, body: Any) -> MessagePage:
        """A bulk job's per-recipient results (``results[]``: ``messageId``, ``to``, ``status``) as a page."""
        data = as_dict(body)
        items: list[Any] = data["results"] if isinstance(data.get("results"), list) else []
        messages = []
        for item in items:
            if not isinstance(item, Mapping) or not (item.get("messageId") or item.get("message_id")):
                continue
            raw_state = item.get("status")
            messages.append(
                MessageSummary(
                    message_id=str(item.get("messageId") or item.get("message_id")),
                    state=lookup_state_or_none(STATES, raw_state),
                    raw_state=raw_state,
                    to=item.get("to"),
                    direction="outbound",
                    raw=dict(item),
                )
            )
        has_more = data.get("hasMore", data.get("has_more"))
        return MessagePage(
            messages=messages,
            page=as_int(data.get("page")),
            limit=as_int(data.get("limit")),
            total=as_int(data.get("total")),
            has_more=has_more if isinstance(has_more, bool) else None,
            dialect=self.name,
            raw=data,
        )

    def parse_batch_progress(self, body: Any) -> BatchProgress:
        # The doc names the endpoint but not its fields; read the create answer's names and the
        # obvious counters, whichever are present.
        data = as_dict(body)

        def count(*keys: str) -> int:
            return next((n for n in (as_int(data.get(k)) for k in keys) if n is not None), 0)

        return BatchProgress(
            batch_id=str(data.get("jobId") or data.get("id") or ""),
            status=str(data.get("status") or ""),
            total=count("totalRecipients", "total"),
            processed=count("processed", "processedCount"),
            completed=count("completed", "delivered", "sent", "completedCount"),
            failed=count("failed", "failedCount"),
            dialect=self.name,
            raw=data,
        )

    def build_get_status(self, message_id: str) -> RelayRequest:
        return self.request("get_status", path_params={"message_id": message_id})

    def parse_status(self, body: Any) -> StatusReport:
        data = as_dict(body)
        message_id = data.get("id")
        raw_state = data.get("status")
        if not message_id or not raw_state:
            raise RelayError(f"{self.name} status answer has no id or status", dialect=self.name, body=body)
        queued_at = parse_datetime(data.get("queuedAt") or data.get("createdAt"))
        sent_at = parse_datetime(data.get("sentAt"))
        delivered_at = parse_datetime(data.get("deliveredAt"))
        failed_at = parse_datetime(data.get("failedAt"))
        # The doc's timestamps are the message's progression; expose them as a timeline too.
        timeline = [
            TimelineEntry(state=state, raw_state=raw, at=at)
            for state, raw, at in (
                (MessageState.QUEUED, "queued", queued_at),
                (MessageState.SENT, "sent", sent_at),
                (MessageState.DELIVERED, "delivered", delivered_at),
                (MessageState.FAILED, "failed", failed_at),
            )
            if at is not None
        ]
        return StatusReport(
            message_id=str(message_id),
            state=self.map_state(raw_state),
            raw_state=raw_state,
            error=data.get("lastError") or data.get("error") or None,
            attempts=as_int(data.get("attempts")),
            created_at=queued_at,
            sent_at=sent_at,
            delivered_at=delivered_at,
            updated_at=parse_datetime(data.get("updatedAt")),
            timeline=timeline,
            dialect=self.name,
            raw=data,
        )

    def build_list_messages(self, **filters: Any) -> RelayRequest:
        """``GET /messages``; filters ``direction`` (sent/received, or outbound/inbound), ``participant``,
        ``page``, ``limit`` (1-100)."""
        direction = filters.get("direction")
        if direction is not None:
            try:
                filters["direction"] = _DIRECTIONS[str(direction).lower()]
            except KeyError:
                raise self._invalid("direction must be sent/received (or outbound/inbound)", "direction") from None
        return self.request("list_messages", params=filters)

    def parse_message_page(self, body: Any) -> MessagePage:
        # "Paginated list of messages" with no shape given: accept a bare list or common wrappers.
        data = as_dict(body)
        if isinstance(body, list):
            items: Any = body
        else:
            items = next(
                (data[k] for k in ("messages", "data", "items", "results") if isinstance(data.get(k), list)), []
            )
        pagination = data.get("pagination") if isinstance(data.get("pagination"), Mapping) else data
        assert isinstance(pagination, Mapping)
        has_more = pagination.get("hasMore", pagination.get("has_more"))
        page = as_int(pagination.get("page"))
        total = as_int(pagination.get("total"))
        limit = as_int(pagination.get("limit"))
        if not isinstance(has_more, bool):
            has_more = None
            total_pages = as_int(pagination.get("totalPages"))
            if page is not None and total_pages is not None:
                has_more = page < total_pages
            elif page is not None and limit and total is not None:
                has_more = page * limit < total
        return MessagePage(
            messages=[self._summary(item) for item in items if isinstance(item, Mapping)],
            page=page,
            limit=limit,
            total=total,
            has_more=has_more,
            dialect=self.name,
            raw=body if isinstance(body, list) else data,
        )

    def _summary(self, item: Mapping[str, Any]) -> MessageSummary:
        raw_state = item.get("status")
        # Received messages carry a state we do not model ("received"); it stays in raw_state.
        state = lookup_state_or_none(STATES, raw_state)
        direction_raw = str(item.get("direction") or "").lower()
        direction: Literal["outbound", "inbound"] | None = None
        if direction_raw in ("sent", "outbound"):
            direction = "outbound"
        elif direction_raw in ("received", "inbound"):
            direction = "inbound"
        return MessageSummary(
            message_id=str(item.get("id") or item.get("messageId") or ""),
            state=state,
            raw_state=raw_state,
            to=item.get("to"),
            sender=item.get("from") or item.get("fromNumber"),
            text=item.get("body"),
            direction=direction,
            channel=item.get("service") or item.get("channel"),
            created_at=parse_datetime(item.get("createdAt") or item.get("created_at")),
            raw=dict(item),
        )

    # --- errors ---------------------------------------------------------------------------
    def parse_error(self, status_code: int, body: Any, headers: Mapping[str, str]) -> RelayError:
        """Any of ``{"error": "text"}``, ``{"error": {"code", "message"}}``, ``{"message"}``."""
        code, message, field = extract_error(body)
        return build_error(self.name, status_code, body, headers, code=code, message=message, field=field)

    # --- webhooks in ----------------------------------------------------------------------
    def parse_webhook(self, payload: Any, headers: Mapping[str, str]) -> list[WebhookEvent]:
        """``{"event": "message.<state>|message.received", "timestamp", "data": {id, status, to, from, body, error}}``.

        The body has no event id; one is derived from the message id, event and recipient, so a
        retried delivery gets the same id.
        """
        envelope = as_dict(payload)
        if not envelope:
            return []
        event_type = str(envelope.get("event") or "")
        data = as_dict(envelope.get("data"))
        message_id = data.get("id") or data.get("messageId")
        occurred_at = parse_datetime(envelope.get("timestamp"))
        event_id = stable_event_id(self.name, message_id, event_type, data.get("to"))
        if not message_id:
            event_id = stable_event_id(self.name, json.dumps(envelope, sort_keys=True, default=str))
        if event_type == "message.received":
            return [
                WebhookEvent(
                    event_id=event_id,
                    dialect=self.name,
                    kind="inbound",
                    event_type=event_type,
                    message_id=str(message_id) if message_id else None,
                    sender=data.get("from"),
                    recipient=data.get("to"),
                    text=data.get("body"),
                    occurred_at=occurred_at,
                    raw=envelope,
                )
            ]
        raw_state = _WEBHOOK_STATES.get(event_type) or data.get("status")
        state = lookup_state_or_none(STATES, raw_state)
        kind: Literal["status", "other"] = "status" if event_type.startswith("message.") else "other"
        error = data.get("error")
        return [
            WebhookEvent(
                event_id=event_id,
                dialect=self.name,
                kind=kind,
                event_type=event_type or "unknown",
                message_id=str(message_id) if message_id else None,
                state=state,
                raw_state=data.get("status") if isinstance(data.get("status"), str) else raw_state,
                sender=data.get("from"),
                recipient=data.get("to"),
                text=data.get("body"),
                error=str(error) if error else None,
                occurred_at=occurred_at,
                raw=envelope,
            )
        ]


DIALECT = CoopDialect()


# --- bulk job results (``GET /messages/bulk/:jobId/results``, as the client returns it) ------------


def bulk_job_message_ids(answer: Any) -> list[str] | None:
    """The message ids a bulk job's results list, or ``None`` while the job has not listed them all
    (fewer results than its ``total``/``totalRecipients``, or none yet)."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("results"), list):
        return None
    ids = [
        str(mid)
        for item in answer["results"]
        if isinstance(item, Mapping) and (mid := item.get("messageId") or item.get("message_id"))
    ]
    total = answer.get("total") or answer.get("totalRecipients")
    if not ids or (isinstance(total, int) and len(ids) < total):
        return None
    return ids


def bulk_message_ids_by_index(answer: Any, addresses: Sequence[str | None]) -> dict[int, str]:
    """Position in the job -> message id, from a bulk job's per-recipient results (``index``, ``to``,
    ``messageId``). ``addresses`` are the job's recipients in order; a result whose ``to`` names another
    recipient than its position's is ignored rather than trusted."""
    items = answer.get("results") if isinstance(answer, Mapping) else None
    if not isinstance(items, list):
        return {}
    by_index: dict[int, str] = {}
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("index"), int):
            continue
        index, message_id = item["index"], item.get("messageId") or item.get("id")
        if message_id and 0 <= index < len(addresses) and item.get("to") in (None, addresses[index]):
            by_index[index] = str(message_id)
    return by_index

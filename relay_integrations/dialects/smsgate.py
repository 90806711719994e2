"""The smsgate dialect (doc: relay-docs/smsgate.md; the product is SMS Gateway for Android).

One message carries one text to up to 100 ``phoneNumbers``; each recipient has its own state
(Pending/Processed/Sent/Delivered/Failed) and the message's state rolls up from them. A
client-chosen message ``id`` that already exists is refused with 409, which makes it an idempotency
key. Auth is Basic ``login:password`` or a JWT from ``POST /auth/token``. The webhook endpoints and
the token endpoint come from the real product (the doc lists only the message endpoints).
"""

from __future__ import annotations

import base64
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
    iso,
    lookup_state,
    lookup_state_or_none,
    parse_datetime,
    stable_event_id,
)
from relay_integrations.dialects.base import Capabilities, Dialect, Endpoint, RelayRequest
from relay_integrations.errors import RelayAuthError, RelayError, RelayValidationError
from relay_integrations.models import (
    MessagePage,
    MessageState,
    MessageSummary,
    OutboundMessage,
    RecipientState,
    SendReceipt,
    StatusReport,
    TimelineEntry,
    WebhookEvent,
)

MAX_RECIPIENTS = 100
DEFAULT_PAGE_SIZE = 20
#: The real product's priority range (>= 100 bypasses the device's send limits).
PRIORITY_RANGE = (-128, 127)

STATES: Mapping[str, MessageState] = {
    "pending": MessageState.QUEUED,
    "processed": MessageState.SENDING,
    "sent": MessageState.SENT,
    "delivered": MessageState.DELIVERED,
    "failed": MessageState.FAILED,
    # A cancel (DELETE /messages/{id}) moves a Pending message through Cancelling to Cancelled.
    "cancelling": MessageState.SENDING,
    "cancelled": MessageState.CANCELLED,
}

#: Raw state names in the product's spelling, by lower-case name.
_RAW_NAMES = {name: name.capitalize() for name in STATES}

#: Webhook event -> (kind, raw state, payload timestamp key).
_WEBHOOK_EVENTS: Mapping[str, tuple[str, str | None, str]] = {
    "sms:sent": ("status", "Sent", "sentAt"),
    "sms:delivered": ("status", "Delivered", "deliveredAt"),
    "sms:failed": ("status", "Failed", "failedAt"),
    "sms:received": ("inbound", None, "receivedAt"),
}

_BASE = "/api/3rdparty/v1"

ENDPOINTS: Mapping[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("send", "POST", f"{_BASE}/messages", "Queue an SMS to one or more phoneNumbers"),
        Endpoint("list_messages", "GET", f"{_BASE}/messages", "List messages (skip, limit <= 100)"),
        Endpoint("get_status", "GET", f"{_BASE}/messages/{{message_id}}", "State and recipient states"),
        Endpoint("list_webhooks", "GET", f"{_BASE}/webhooks", "Registered webhooks"),
        Endpoint("create_webhook", "POST", f"{_BASE}/webhooks", "Register a webhook {id?, url, event}"),
        Endpoint("delete_webhook", "DELETE", f"{_BASE}/webhooks/{{webhook_id}}", "Delete a webhook"),
        Endpoint("auth_token", "POST", f"{_BASE}/auth/token", "Issue a JWT (Basic auth)"),
    )
}


def rollup_state(recipient_states: Sequence[str]) -> str:
    """The message's raw state from its recipients' raw states, as the product computes it.

    Any Pending -> Pending; else any Processed -> Processed; all Delivered -> Delivered;
    all Failed -> Failed; all Cancelled -> Cancelled; otherwise Sent. An empty list is Pending
    (nothing has happened yet).
    """
    names = [s.strip().lower() for s in recipient_states]
    for raw, name in zip(recipient_states, names, strict=True):
        if name not in STATES:
            raise ValueError(f"smsgate: unknown message state {raw!r}")
    if not names or "pending" in names:
        return "Pending"
    if "processed" in names:
        return "Processed"
    if all(n == "delivered" for n in names):
        return "Delivered"
    if all(n == "failed" for n in names):
        return "Failed"
    if all(n == "cancelled" for n in names):
        return "Cancelled"
    if "cancelling" in names:
        return "Cancelling"
    return "Sent"


class SmsGateDialect(Dialect):
    """Mapping between canonical models and the SMS Gateway for Android 3rd-party API."""

    name: ClassVar[str] = "smsgate"
    base_path: ClassVar[str] = _BASE
    capabilities: ClassVar[Capabilities] = Capabilities(
        channels=frozenset({"sms"}),
        batch="recipients",
        max_batch_size=MAX_RECIPIENTS,
        client_idempotency_keys=True,
        webhooks=True,
        webhook_scheme="smsgate",
        inbound_stats=False,
        scheduled_send=True,
    )
    endpoints: ClassVar[Mapping[str, Endpoint]] = ENDPOINTS

    # --- authentication -------------------------------------------------------------------
    def auth_headers(self, api_key: str, login: str | None = None, token: str | None = None) -> dict[str, str]:
        """``Bearer <JWT>`` when a token is given, else Basic ``login:api_key``."""
        if token:
            return {"Authorization": f"Bearer {token}"}
        if not login:
            raise RelayAuthError("smsgate needs a login for Basic auth (or a JWT token)", dialect=self.name)
        credentials = base64.b64encode(f"{login}:{api_key}".encode()).decode("ascii")
        return {"Authorization": f"Basic {credentials}"}

    # --- states ---------------------------------------------------------------------------
    def map_state(self, raw: str) -> MessageState:
        return lookup_state(self.name, STATES, raw)

    def _recipients(self, data: Mapping[str, Any]) -> list[RecipientState]:
        recipients: list[RecipientState] = []
        for item in data.get("recipients") or []:
            if isinstance(item, Mapping) and item.get("state"):
                recipients.append(
                    RecipientState(
                        address=str(item.get("phoneNumber") or ""),
                        state=self.map_state(item["state"]),
                        raw_state=item["state"],
                        error=item.get("error") or None,
                    )
                )
        return recipients

    def _raw_state(self, data: Mapping[str, Any], recipients: Sequence[RecipientState]) -> str | None:
        raw = data.get("state")
        if isinstance(raw, str) and raw:
            return raw
        if recipients:
            return rollup_state([r.raw_state or r.state.value for r in recipients])
        return None

    # --- messages -------------------------------------------------------------------------
    def _invalid(self, text: str, field: str) -> RelayValidationError:
        return RelayValidationError(text, field=field, dialect=self.name)

    def build_send(self, message: OutboundMessage) -> RelayRequest:
        """``{id?, phoneNumbers[], textMessage: {text}, ...}``; the idempotency key becomes ``id``."""
        if message.channel != "sms":
            raise self._invalid(f"smsgate only sends sms, not {message.channel!r}", "channel")
        recipients = message.recipients
        if not recipients:
            raise self._invalid("at least one recipient is required", "to")
        if len(recipients) > MAX_RECIPIENTS:
            raise self._invalid(
                f"smsgate takes at most {MAX_RECIPIENTS} phone numbers per message, got {len(recipients)}", "to"
            )
        for index, recipient in enumerate(recipients):
            problem = address_problem(recipient)
            if problem:
                raise self._invalid(problem, f"to[{index}]")
        if not message.text:
            raise self._invalid("text is required", "text")
        if message.attachments:
            raise self._invalid("smsgate text messages cannot carry attachments", "attachments")
        low, high = PRIORITY_RANGE
        if message.priority is not None and not low <= message.priority <= high:
            raise self._invalid(f"priority must be between {low} and {high}", "priority")
        body = drop_none(
            {
                "id": message.idempotency_key,
                "phoneNumbers": recipients,
                "textMessage": {"text": message.text},
                "simNumber": message.sim_number,
                "withDeliveryReport": message.delivery_report,
                "priority": message.priority,
                "scheduleAt": iso(message.schedule_at),
                "validUntil": iso(message.valid_until),
            }
        )
        return RelayRequest(
            method="POST",
            path=ENDPOINTS["send"].path,
            json=body,
            # With our own id a repeat is refused (409), never sent twice.
            retry_safe=message.idempotency_key is not None,
            idempotency_key=message.idempotency_key,
            endpoint="send",
        )

    def parse_send(self, status_code: int, body: Any, message: OutboundMessage) -> SendReceipt:
        """The doc's ``{"id"}`` or the real product's full message state."""
        data = as_dict(body)
        message_id = data.get("id") or message.idempotency_key
        if not message_id:
            raise RelayError(
                f"{self.name} send answer has no id", status_code=status_code, dialect=self.name, body=body
            )
        recipients = self._recipients(data)
        raw_state = self._raw_state(data, recipients) or "Pending"
        return SendReceipt(
            message_id=str(message_id),
            state=self.map_state(raw_state),
            raw_state=raw_state,
            idempotency_key=message.idempotency_key,
            recipients=[r.address for r in recipients] or message.recipients,
            dialect=self.name,
            raw=data,
        )

    def build_get_status(self, message_id: str) -> RelayRequest:
        return self.request("get_status", path_params={"message_id": message_id})

    def parse_status(self, body: Any) -> StatusReport:
        data = as_dict(body)
        message_id = data.get("id")
        if not message_id:
            raise RelayError(f"{self.name} status answer has no id", dialect=self.name, body=body)
        recipients = self._recipients(data)
        raw_state = self._raw_state(data, recipients)
        if raw_state is None:
            raise RelayError(f"{self.name} status answer has no state", dialect=self.name, body=body)
        # The real product adds "states": {"Pending": ts, "Processed": ts, ...}.
        timeline: list[TimelineEntry] = []
        states = data.get("states")
        if isinstance(states, Mapping):
            for raw, at in states.items():
                if isinstance(raw, str) and raw.lower() in STATES:
                    timeline.append(TimelineEntry(state=self.map_state(raw), raw_state=raw, at=parse_datetime(at)))
            timeline.sort(key=lambda e: (e.state.rank, e.at is None, e.at or 0))

        def at_of(state: MessageState) -> Any:
            return next((e.at for e in timeline if e.state is state), None)

        errors = sorted({r.error for r in recipients if r.error})
        return StatusReport(
            message_id=str(message_id),
            state=self.map_state(raw_state),
            raw_state=raw_state,
            recipients=recipients,
            error="; ".join(errors) or None,
            created_at=parse_datetime(data.get("createdAt")) or at_of(MessageState.QUEUED),
            sent_at=at_of(MessageState.SENT),
            delivered_at=at_of(MessageState.DELIVERED),
            updated_at=parse_datetime(data.get("updatedAt")),
            timeline=timeline,
            dialect=self.name,
            raw=data,
        )

    def build_list_messages(self, **filters: Any) -> RelayRequest:
        """``GET /messages?skip=&limit=`` (limit default 20, max 100). ``page`` (1-based) becomes ``skip``."""
        page = filters.pop("page", None)
        per_page = as_int(filters.get("limit")) or DEFAULT_PAGE_SIZE
        filters["limit"] = per_page
        if page is not None:
            filters["skip"] = (max(1, int(page)) - 1) * per_page
        # Always explicit (the doc's own example does it), so a pager can advance ``skip``.
        filters.setdefault("skip", 0)
        filters = {"skip": filters.pop("skip"), "limit": filters.pop("limit"), **filters}
        state = filters.get("state")
        if isinstance(state, MessageState):
            # Canonical -> the product's name (queued -> Pending, ...).
            filters["state"] = next(_RAW_NAMES[k] for k, v in STATES.items() if v is state)
        return self.request("list_messages", params=filters)

    def parse_message_page(self, body: Any) -> MessagePage:
        """A bare JSON list; there is no total or page size in it, so ``has_more`` is unknown (``None``)."""
        items = body if isinstance(body, list) else as_dict(body).get("messages") or []
        messages: list[MessageSummary] = []
        for item in items:
            if not isinstance(item, Mapping):
                continue
            recipients = self._recipients(item)
            raw_state = self._raw_state(item, recipients)
            numbers = [r.address for r in recipients] or list(item.get("phoneNumbers") or [])
            messages.append(
                MessageSummary(
                    message_id=str(item.get("id") or ""),
                    state=lookup_state_or_none(STATES, raw_state),
                    raw_state=raw_state,
                    to=", ".join(numbers) or None,
                    direction="outbound",
                    channel="sms",
                    created_at=parse_datetime(item.get("createdAt")),
                    raw=dict(item),
                )
            )
        return MessagePage(
            messages=messages,
            dialect=self.name,
            raw=body if isinstance(body, list) else as_dict(body),
        )

    def settled_state(self, item: Mapping[str, Any]) -> MessageState | None:
        """The state to track for one listed message: the roll-up, except that a message whose every
        recipient is final counts as final (``failed`` if any recipient failed), where the roll-up says
        ``Sent`` for a mix of Delivered and Failed."""
        recipients = self._recipients(item)
        if recipients and all(r.state.is_final for r in recipients):
            if all(r.state is MessageState.DELIVERED for r in recipients):
                return MessageState.DELIVERED
            return MessageState.FAILED
        return lookup_state_or_none(STATES, self._raw_state(item, recipients))

    # --- smsgate-only endpoints -------------------------------------------------------------
    def build_create_webhook(self, url: str, event: str, webhook_id: str | None = None) -> RelayRequest:
        """``POST /webhooks {id?, url, event}``; events ``sms:received|sent|delivered|failed``, ``system:ping``."""
        request = self.request("create_webhook", json=drop_none({"id": webhook_id, "url": url, "event": event}))
        return request

    def build_auth_token(self, scopes: Sequence[str] | None = None, ttl: int | None = None) -> RelayRequest:
        """``POST /auth/token`` (authenticate it with Basic auth); the answer's ``access_token`` is the JWT."""
        body = drop_none({"scopes": list(scopes) if scopes is not None else None, "ttl": ttl})
        return self.request("auth_token", json=body)

    # --- errors ---------------------------------------------------------------------------
    def parse_error(self, status_code: int, body: Any, headers: Mapping[str, str]) -> RelayError:
        """The product answers ``{"message": "..."}``; 409 = the client id exists, 503 = device queue full."""
        code, message, field = extract_error(body)
        return build_error(self.name, status_code, body, headers, code=code, message=message, field=field)

    # --- webhooks in ----------------------------------------------------------------------
    def parse_webhook(self, payload: Any, headers: Mapping[str, str]) -> list[WebhookEvent]:
        """``{"deviceId", "event", "id", "webhookId", "payload": {...}}``; the envelope ``id`` is the event id.

        The app may deliver the same event twice with different envelope ids; the inbox also
        dedupes on ``message_id`` + ``event_type``.
        """
        envelope = as_dict(payload)
        if not envelope:
            return []
        event_type = str(envelope.get("event") or "")
        data = as_dict(envelope.get("payload"))
        message_id = data.get("messageId") or data.get("id")
        event_id = envelope.get("id")
        if not event_id:
            event_id = stable_event_id(self.name, message_id, event_type, data.get("phoneNumber"))
        kind, raw_state, at_key = _WEBHOOK_EVENTS.get(event_type, ("other", None, "timestamp"))
        occurred_at = parse_datetime(data.get(at_key))
        common: dict[str, Any] = {
            "event_id": str(event_id),
            "dialect": self.name,
            "event_type": event_type or "unknown",
            "message_id": str(message_id) if message_id else None,
            "occurred_at": occurred_at,
            "raw": envelope,
        }
        if kind == "inbound":
            return [
                WebhookEvent(
                    kind="inbound",
                    # "sender" in today's app; older apps sent only "phoneNumber" (also the sender).
                    sender=data.get("sender") or data.get("phoneNumber"),
                    text=data.get("message"),
                    **common,
                )
            ]
        if kind == "status":
            assert raw_state is not None
            error = data.get("reason") or data.get("error")
            return [
                WebhookEvent(
                    kind="status",
                    state=self.map_state(raw_state),
                    raw_state=raw_state,
                    recipient=data.get("phoneNumber"),
                    error=str(error) if error else None,
                    **common,
                )
            ]
        if not envelope.get("id"):
            common["event_id"] = stable_event_id(self.name, json.dumps(envelope, sort_keys=True, default=str))
        return [WebhookEvent(kind="other", **common)]


DIALECT = SmsGateDialect()

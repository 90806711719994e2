"""The phonerelay dialect (doc: relay-docs/phonerelay.md): a phone that relays SMS, WhatsApp,
Telegram, notifications, email, Telegram bots and pChat.

``POST /api/v1/messages`` with a client ``idempotency_key`` (202, or 200 ``duplicate: true`` with the
same id), ``GET /api/v1/messages/<id>`` for queued/sending/sent/failed, inbound statistics and
inbound callbacks under ``/api/v1/webchat``. Health lives at ``/health``, outside the base path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from relay_integrations.dialects._common import (
    address_problem,
    as_dict,
    as_int,
    build_error,
    extract_error,
    lookup_state,
    lookup_state_or_none,
    parse_datetime,
    stable_event_id,
)
from relay_integrations.dialects.base import Capabilities, Dialect, Endpoint, RelayRequest
from relay_integrations.errors import RelayError, RelayValidationError
from relay_integrations.models import (
    InboundQuery,
    InboundStats,
    MessagePage,
    MessageState,
    MessageSummary,
    OutboundMessage,
    SendReceipt,
    StatusReport,
    WebhookEvent,
)

CHANNELS = frozenset({"sms", "wa", "tg", "notify", "email", "tg_bot", "pchat"})
#: Channels whose doc row says ``to`` is required.
CHANNELS_NEEDING_TO = frozenset({"sms", "wa", "tg", "email"})

STATES: Mapping[str, MessageState] = {
    "queued": MessageState.QUEUED,
    "sending": MessageState.SENDING,
    "sent": MessageState.SENT,
    "failed": MessageState.FAILED,
    # Not in the doc's list; tolerated because server-side channels (email, tg_bot) may report it
    # and refusing a clearly-named state would be worse than understanding it.
    "delivered": MessageState.DELIVERED,
}

_BASE = "/api/v1"

ENDPOINTS: Mapping[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("send", "POST", f"{_BASE}/messages", "Send a message (202; 200 duplicate:true)"),
        Endpoint("get_status", "GET", f"{_BASE}/messages/{{message_id}}", "Check status of one message"),
        Endpoint("list_messages", "GET", f"{_BASE}/messages", "List recent messages (?limit=50)"),
        Endpoint("health", "GET", "/health", "Relay health (outside the base path)"),
        Endpoint("inbound_query", "POST", f"{_BASE}/webchat/inbound/query", "Query inbound traffic/stats (JSON)"),
        Endpoint("inbound_query_get", "GET", f"{_BASE}/webchat/inbound/query", "Query inbound traffic (params)"),
        Endpoint("list_callbacks", "GET", f"{_BASE}/webchat/callbacks/inbound", "List inbound callbacks"),
        Endpoint("create_callback", "POST", f"{_BASE}/webchat/callbacks/inbound", "Create an inbound callback"),
        Endpoint("delete_callback", "DELETE", f"{_BASE}/webchat/callbacks/inbound", "Delete an inbound callback"),
    )
}

_STATS_SECTIONS = (
    "summary",
    "sent_summary",
    "sent_by_channel",
    "sent_by_day",
    "sent_by_person",
    "sent_by_tag",
    "sent_events",
    "email_report",
    "hourly",
    "top_contacts",
    "events",
)


class PhoneRelayDialect(Dialect):
    """Mapping between canonical models and the phonerelay HTTPS API."""

    name: ClassVar[str] = "phonerelay"
    base_path: ClassVar[str] = _BASE
    capabilities: ClassVar[Capabilities] = Capabilities(
        channels=CHANNELS,
        batch="none",
        max_batch_size=1,
        client_idempotency_keys=True,
        webhooks=True,
        webhook_scheme="callback-token",
        inbound_stats=True,
    )
    endpoints: ClassVar[Mapping[str, Endpoint]] = ENDPOINTS

    # --- authentication -------------------------------------------------------------------
    def auth_headers(self, api_key: str, login: str | None = None, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or api_key}"}

    # --- states ---------------------------------------------------------------------------
    def map_state(self, raw: str) -> MessageState:
        return lookup_state(self.name, STATES, raw)

    def _state(self, message: Mapping[str, Any]) -> MessageState:
        raw = message.get("status")
        if raw is None:
            raise RelayError(f"{self.name} answer has no status", dialect=self.name, body=dict(message))
        return self._delivered(self.map_state(raw), message)

    @staticmethod
    def _delivered(state: MessageState, message: Mapping[str, Any]) -> MessageState:
        # The relay reports delivery as a `sent` message with `delivered_at` set.
        if state is MessageState.SENT and message.get("delivered_at"):
            return MessageState.DELIVERED
        return state

    # --- messages -------------------------------------------------------------------------
    def _invalid(self, text: str, field: str) -> RelayValidationError:
        return RelayValidationError(text, field=field, dialect=self.name)

    def build_send(self, message: OutboundMessage) -> RelayRequest:
        channel = message.channel
        if channel not in CHANNELS:
            raise self._invalid(f"channel {channel!r} is not one of {', '.join(sorted(CHANNELS))}", "channel")
        if not message.phone_id:
            raise self._invalid("phone_id is required (the phone device identifier)", "phone_id")
        recipients = message.recipients
        if len(recipients) > 1:
            raise self._invalid("phonerelay sends to one recipient per message", "to")
        to = recipients[0] if recipients else None
        if channel in CHANNELS_NEEDING_TO and not to:
            raise self._invalid(f"'to' is required for channel {channel}", "to")
        problem = address_problem(to) if to else None
        if problem:
            raise self._invalid(problem, "to")
        if message.text is None or message.text == "":
            raise self._invalid("text is required", "text")
        if channel == "email" and not message.subject:
            raise self._invalid("subject is required for channel email", "subject")
        if channel == "tg_bot" and message.bot_token is None:
            raise self._invalid("bot_token is required for channel tg_bot", "bot_token")
        body: dict[str, Any] = {"phone_id": message.phone_id, "channel": channel}
        if to is not None:
            body["to"] = to
        if message.subject is not None:
            body["subject"] = message.subject
        if message.title is not None:
            body["title"] = message.title
        body["text"] = message.text
        if message.bot_token is not None:
            # The only place the token is revealed: the request body the relay needs.
            body["bot_token"] = message.bot_token.get_secret_value()
        if message.source is not None:
            body["source"] = message.source
        if message.idempotency_key is not None:
            body["idempotency_key"] = message.idempotency_key
        return RelayRequest(
            method="POST",
            path=ENDPOINTS["send"].path,
            json=body,
            retry_safe=message.idempotency_key is not None,
            idempotency_key=message.idempotency_key,
            endpoint="send",
        )

    def parse_send(self, status_code: int, body: Any, message: OutboundMessage) -> SendReceipt:
        data = as_dict(body)
        message_id = data.get("message_id")
        if not message_id:
            raise RelayError(
                f"{self.name} send answer has no message_id", status_code=status_code, dialect=self.name, body=body
            )
        raw_state = data.get("status") or "queued"
        return SendReceipt(
            message_id=str(message_id),
            state=self.map_state(raw_state),
            raw_state=raw_state,
            idempotency_key=data.get("idempotency_key") or message.idempotency_key,
            duplicate=data.get("duplicate") is True,
            recipients=message.recipients,
            dialect=self.name,
            raw=data,
        )

    def build_get_status(self, message_id: str) -> RelayRequest:
        return self.request("get_status", path_params={"message_id": message_id})

    def parse_status(self, body: Any) -> StatusReport:
        data = as_dict(body)
        message = data.get("message") if isinstance(data.get("message"), Mapping) else data
        assert isinstance(message, Mapping)
        message_id = message.get("message_id") or message.get("id")
        if not message_id:
            raise RelayError(f"{self.name} status answer has no message_id", dialect=self.name, body=body)
        return StatusReport(
            message_id=str(message_id),
            state=self._state(message),
            raw_state=message.get("status"),
            error=message.get("last_error") or None,
            created_at=parse_datetime(message.get("created_at")),
            sent_at=parse_datetime(message.get("sent_at")),
            delivered_at=parse_datetime(message.get("delivered_at")),
            updated_at=parse_datetime(message.get("updated_at")),
            dialect=self.name,
            raw=data,
        )

    def build_list_messages(self, **filters: Any) -> RelayRequest:
        """``GET /api/v1/messages``; ``limit`` (the doc's example uses 50) and any other filter as query."""
        return self.request("list_messages", params=filters)

    def parse_message_page(self, body: Any) -> MessagePage:
        # The doc gives no list shape; accept a bare list or the usual wrapper keys.
        items: Any
        data = as_dict(body)
        if isinstance(body, list):
            items = body
        else:
            items = next((data[k] for k in ("messages", "items", "data") if isinstance(data.get(k), list)), [])
        summaries = [self._summary(item) for item in items if isinstance(item, Mapping)]
        has_more = data.get("has_more")
        return MessagePage(
            messages=summaries,
            page=data.get("page"),
            limit=data.get("limit"),
            # "count" is the number of rows in this answer, not a total; only "total" is one.
            total=data.get("total") if isinstance(data.get("total"), int) else None,
            has_more=has_more if isinstance(has_more, bool) else None,
            dialect=self.name,
            raw=body if isinstance(body, list) else data,
        )

    def _summary(self, item: Mapping[str, Any]) -> MessageSummary:
        raw_state = item.get("status")
        direction = item.get("direction")
        state = lookup_state_or_none(STATES, raw_state)
        return MessageSummary(
            message_id=str(item.get("message_id") or item.get("id") or ""),
            state=self._delivered(state, item) if state is not None else None,
            raw_state=raw_state,
            to=item.get("to") or item.get("destination"),
            sender=item.get("source_number") or item.get("from"),
            text=item.get("text"),
            direction=direction if direction in ("outbound", "inbound") else None,
            channel=item.get("channel"),
            created_at=parse_datetime(item.get("created_at")),
            raw=dict(item),
        )

    def next_page_filters(self, filters: dict[str, Any], page: MessagePage) -> dict[str, Any] | None:
        """The filters of the page after ``page``: the doc shows only ``limit``, so there is a next page
        only when the relay says ``has_more`` (the reference relay also takes ``offset``)."""
        if page.has_more is not True or not page.messages:
            return None
        raw = page.raw if isinstance(page.raw, Mapping) else {}
        offset = as_int(raw.get("offset"))
        if offset is None:
            offset = as_int(filters.get("offset")) or 0
        return {**filters, "offset": offset + len(page.messages)}

    # --- phonerelay-only endpoints ----------------------------------------------------------
    def build_health(self) -> RelayRequest:
        """``GET /health`` (from the relay's root, not under ``/api/v1``)."""
        return self.request("health")

    def build_inbound_query(self, query: InboundQuery | None = None, *, method: str = "POST") -> RelayRequest:
        """The inbound traffic query with the doc's filters; POST sends them as JSON, GET as query params."""
        filters = (query or InboundQuery()).model_dump(exclude_none=True)
        if method.upper() == "GET":
            params = {k: ",".join(v) if isinstance(v, list) else v for k, v in filters.items()}
            params = {k: ("true" if v is True else "false" if v is False else v) for k, v in params.items()}
            return self.request("inbound_query_get", params=params)
        request = self.request("inbound_query", json=filters)
        # A query creates nothing, so repeating it is safe.
        return replace(request, retry_safe=True)

    def parse_inbound_stats(self, body: Any) -> InboundStats:
        data = as_dict(body)
        sections = {k: data[k] for k in _STATS_SECTIONS if data.get(k) is not None}
        count = data.get("count")
        return InboundStats(
            **sections,
            count=count if isinstance(count, int) else len(data.get("events") or []),
            raw=data,
        )

    # --- errors ---------------------------------------------------------------------------
    def parse_error(self, status_code: int, body: Any, headers: Mapping[str, str]) -> RelayError:
        # The doc gives no error shape; read {success:false, error}, {error:{code,message}}, {detail}.
        code, message, field = extract_error(body)
        return build_error(self.name, status_code, body, headers, code=code, message=message, field=field)

    # --- webhooks in ----------------------------------------------------------------------
    def parse_webhook(self, payload: Any, headers: Mapping[str, str]) -> list[WebhookEvent]:
        """Inbound callback deliveries: ``{"event": "inbound", "subscription", "events": [...]}``.

        Each matched inbound event becomes one ``inbound`` WebhookEvent whose id is derived from the
        inbound message id, so the same event delivered twice (or to two subscriptions) dedupes.
        """
        data = as_dict(payload)
        events = data.get("events")
        if not isinstance(events, list):
            # A single event posted without the wrapper.
            events = [data] if data.get("message_id") or data.get("event_type") else []
        parsed: list[WebhookEvent] = []
        for event in events:
            if not isinstance(event, Mapping):
                continue
            message_id = event.get("message_id")
            event_type = str(event.get("event_type") or data.get("event") or "inbound")
            destination = event.get("destination")
            if message_id:
                event_id = stable_event_id(self.name, message_id, event_type, destination)
            else:
                event_id = stable_event_id(self.name, json.dumps(dict(event), sort_keys=True, default=str))
            parsed.append(
                WebhookEvent(
                    event_id=event_id,
                    dialect=self.name,
                    kind="inbound",
                    event_type=event_type,
                    message_id=str(message_id) if message_id else None,
                    sender=event.get("source"),
                    recipient=destination,
                    text=event.get("text"),
                    occurred_at=parse_datetime(event.get("created_at")),
                    raw={**dict(event), "subscription": data.get("subscription")},
                )
            )
        return parsed


DIALECT = PhoneRelayDialect()

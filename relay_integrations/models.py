"""Relay-independent models: what users hand to a client and what they get back.

Every model that comes from a relay keeps the relay's own answer in ``raw`` and, where a state
is involved, the relay's own state name in ``raw_state``; the canonical ``state`` is what code
should branch on.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class MessageState(str, Enum):
    """Canonical message states shared by every dialect."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (MessageState.DELIVERED, MessageState.FAILED, MessageState.CANCELLED)

    @property
    def rank(self) -> int:
        """Position in the lifecycle; a message's state never moves to a lower rank."""
        return _STATE_RANK[self]

    def __str__(self) -> str:
        return self.value


_STATE_RANK = {
    MessageState.QUEUED: 0,
    MessageState.SENDING: 1,
    MessageState.SENT: 2,
    MessageState.DELIVERED: 3,
    MessageState.FAILED: 3,
    MessageState.CANCELLED: 3,
}


def later_state(current: MessageState | None, incoming: MessageState) -> MessageState:
    """The state to keep when ``incoming`` arrives after ``current`` (events come out of order)."""
    if current is None or incoming.rank > current.rank:
        return incoming
    return current


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class OutboundMessage(_Model):
    """One message to send. Fields a relay does not know are ignored by its dialect.

    ``to`` is one address, or several for relays that send one text to many recipients (smsgate).
    """

    to: str | list[str] | None = None
    text: str | None = None
    channel: str = "sms"
    subject: str | None = None
    title: str | None = None
    attachments: list[str] = Field(default_factory=list)
    priority: int | None = None
    idempotency_key: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    sender: str | None = Field(default=None, alias="from")
    phone_id: str | None = None
    sim_number: int | None = None
    schedule_at: datetime | None = None
    valid_until: datetime | None = None
    delivery_report: bool | None = None
    status_callback: str | None = None
    source: str | None = None
    bot_token: SecretStr | None = None

    @property
    def recipients(self) -> list[str]:
        if self.to is None:
            return []
        return [self.to] if isinstance(self.to, str) else list(self.to)


class RecipientState(_Model):
    address: str
    state: MessageState
    raw_state: str | None = None
    error: str | None = None


class TimelineEntry(_Model):
    state: MessageState
    raw_state: str
    at: datetime | None = None


class SendReceipt(_Model):
    """What a relay answered to one send."""

    message_id: str
    state: MessageState
    raw_state: str | None = None
    idempotency_key: str | None = None
    duplicate: bool = False
    recipients: list[str] = Field(default_factory=list)
    client_reference_id: str | None = None
    dialect: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class StatusReport(_Model):
    """A message's state as the relay reports it now."""

    message_id: str
    state: MessageState
    raw_state: str | None = None
    recipients: list[RecipientState] = Field(default_factory=list)
    error: str | None = None
    attempts: int | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    updated_at: datetime | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    dialect: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class BatchItemResult(_Model):
    index: int
    to: str | None = None
    message_id: str | None = None
    state: MessageState | None = None
    raw_state: str | None = None
    idempotency_key: str | None = None
    duplicate: bool = False
    error: str | None = None


class BatchReceipt(_Model):
    """What a relay answered to a batch or bulk send. ``batch_id`` is the job id where there is one."""

    batch_id: str | None = None
    accepted: int = 0
    rejected: int = 0
    total: int = 0
    state: str | None = None
    results: list[BatchItemResult] = Field(default_factory=list)
    dialect: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class BatchProgress(_Model):
    batch_id: str
    status: str
    total: int = 0
    processed: int = 0
    completed: int = 0
    failed: int = 0
    dialect: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class MessageSummary(_Model):
    message_id: str
    state: MessageState | None = None
    raw_state: str | None = None
    to: str | None = None
    sender: str | None = None
    text: str | None = None
    direction: Literal["outbound", "inbound"] | None = None
    channel: str | None = None
    created_at: datetime | None = None
    client_reference_id: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class MessagePage(_Model):
    messages: list[MessageSummary] = Field(default_factory=list)
    page: int | None = None
    limit: int | None = None
    total: int | None = None
    has_more: bool | None = None
    dialect: str | None = None
    raw: dict[str, Any] | list[Any] = Field(default_factory=dict)


class InboundStats(BaseModel):
    """The phonerelay inbound query answer; every documented section, plus anything else kept in raw."""

    model_config = ConfigDict(extra="allow")

    summary: dict[str, Any] = Field(default_factory=dict)
    sent_summary: dict[str, Any] = Field(default_factory=dict)
    sent_by_channel: dict[str, int] = Field(default_factory=dict)
    sent_by_day: list[dict[str, Any]] = Field(default_factory=list)
    sent_by_person: list[dict[str, Any]] = Field(default_factory=list)
    sent_by_tag: list[dict[str, Any]] = Field(default_factory=list)
    sent_events: list[dict[str, Any]] = Field(default_factory=list)
    email_report: dict[str, Any] = Field(default_factory=dict)
    hourly: list[dict[str, Any]] = Field(default_factory=list)
    top_contacts: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    count: int = 0
    raw: dict[str, Any] = Field(default_factory=dict)


class InboundQuery(_Model):
    """Filters of the phonerelay inbound query, as the doc names them."""

    phone_id: str | None = None
    range: str | None = None
    channels: list[str] | None = None
    event_types: list[str] | None = None
    tags: list[str] | None = None
    tag_mode: Literal["any", "all"] | None = None
    source_contains: str | None = None
    min_duration_sec: int | None = None
    max_duration_sec: int | None = None
    has_response: bool | None = None
    sort: str | None = None
    limit: int | None = None


EventKind = Literal["status", "inbound", "other"]


class WebhookEvent(_Model):
    """One verified webhook delivery, parsed into canonical fields."""

    event_id: str
    dialect: str
    kind: EventKind
    event_type: str
    message_id: str | None = None
    state: MessageState | None = None
    raw_state: str | None = None
    sender: str | None = None
    recipient: str | None = None
    text: str | None = None
    error: str | None = None
    occurred_at: datetime | None = None
    received_at: datetime | None = None
    cursor: int | None = None
    raw: dict[str, Any] = Field(default_factory=dict)

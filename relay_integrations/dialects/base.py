"""What every dialect module provides: a pure mapping between canonical models and one relay's HTTP API.

A dialect does no I/O. The clients turn a :class:`RelayRequest` into an HTTP request, hand the
answer back to the dialect to parse, and ask it to turn error answers into :mod:`relay_integrations.errors`.
Adding a fifth relay means adding one module that subclasses :class:`Dialect` and registering it
in :mod:`relay_integrations.dialects`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from relay_integrations.errors import RelayError, UnsupportedOperationError
from relay_integrations.models import (
    BatchProgress,
    BatchReceipt,
    MessagePage,
    MessageState,
    OutboundMessage,
    SendReceipt,
    StatusReport,
    WebhookEvent,
)

BatchKind = Literal["none", "batch", "bulk", "recipients"]
WebhookScheme = Literal["smsgate", "coop", "callback-token", "standard-webhooks", "none"]


@dataclass(frozen=True)
class Capabilities:
    """What a relay can do, so callers choose the best path without knowing the relay.

    :param batch: ``batch`` = many different messages in one request (relaysms ``/sms/batch``),
        ``bulk`` = an asynchronous bulk job (coop), ``recipients`` = one text to many recipients
        in one message (smsgate), ``none`` = one message per request (phonerelay).
    :param client_idempotency_keys: the relay de-duplicates on a key the client chooses, so a
        send can be retried safely.
    :param scheduled_send: the relay holds a message until a time the client gives (smsgate
        ``scheduleAt``), so a campaign's ``send_at`` can be handed to it.
    """

    channels: frozenset[str]
    batch: BatchKind = "none"
    max_batch_size: int = 1
    client_idempotency_keys: bool = False
    webhooks: bool = False
    webhook_scheme: WebhookScheme = "none"
    inbound_stats: bool = False
    max_text_length: int | None = None
    max_attachments: int = 0
    scheduled_send: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One documented endpoint. ``path`` is from the relay's root and may hold ``{name}`` fields."""

    name: str
    method: str
    path: str
    description: str = ""


@dataclass(frozen=True)
class RelayRequest:
    """An HTTP request a dialect wants made. ``path`` is from the relay's root (includes the base path).

    :param retry_safe: repeating it cannot create a second message (reads, and sends that carry a
        client idempotency key the relay honours).
    """

    method: str
    path: str
    # Kept out of repr: a body can hold a secret the relay needs (phonerelay's tg_bot bot_token).
    json: Any = field(default=None, repr=False)
    params: Mapping[str, Any] | None = None
    retry_safe: bool = True
    idempotency_key: str | None = None
    endpoint: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


class Dialect:
    """Base class of the dialect modules. Subclasses set the class variables and override the
    ``build_*``/``parse_*`` methods their relay supports; the rest raise
    :class:`UnsupportedOperationError`.
    """

    name: ClassVar[str]
    base_path: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    endpoints: ClassVar[Mapping[str, Endpoint]]

    # --- authentication -------------------------------------------------------------------
    def auth_headers(self, api_key: str, login: str | None = None, token: str | None = None) -> dict[str, str]:
        """Headers that authenticate a request. ``token`` is a bearer token obtained earlier (smsgate JWT)."""
        raise NotImplementedError

    # --- states ---------------------------------------------------------------------------
    def map_state(self, raw: str) -> MessageState:
        """The canonical state for one of the relay's state names (case-insensitive)."""
        raise NotImplementedError

    # --- generic access to every documented endpoint ---------------------------------------
    def request(
        self,
        endpoint: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> RelayRequest:
        """A request for any documented endpoint by name; path fields are URL-quoted."""
        from urllib.parse import quote

        try:
            ep = self.endpoints[endpoint]
        except KeyError:
            raise UnsupportedOperationError(
                f"{self.name} has no endpoint {endpoint!r}", dialect=self.name
            ) from None
        quoted = {k: quote(str(v), safe="") for k, v in (path_params or {}).items()}
        clean_params = {k: v for k, v in (params or {}).items() if v is not None} or None
        return RelayRequest(
            method=ep.method,
            path=ep.path.format(**quoted),
            json=json,
            params=clean_params,
            retry_safe=ep.method in ("GET", "HEAD", "PUT", "DELETE"),
            endpoint=endpoint,
        )

    def unwrap(self, body: Any) -> Any:
        """The payload inside the relay's response envelope (relaysms wraps everything in ``data``)."""
        return body

    # --- messages -------------------------------------------------------------------------
    def build_send(self, message: OutboundMessage) -> RelayRequest:
        raise UnsupportedOperationError(f"{self.name} cannot send", dialect=self.name)

    def parse_send(self, status_code: int, body: Any, message: OutboundMessage) -> SendReceipt:
        raise NotImplementedError

    def build_send_batch(self, messages: Sequence[OutboundMessage]) -> RelayRequest:
        raise UnsupportedOperationError(f"{self.name} has no batch send", dialect=self.name)

    def parse_send_batch(
        self, status_code: int, body: Any, messages: Sequence[OutboundMessage]
    ) -> BatchReceipt:
        raise UnsupportedOperationError(f"{self.name} has no batch send", dialect=self.name)

    def build_get_batch(self, batch_id: str) -> RelayRequest:
        raise UnsupportedOperationError(f"{self.name} has no batch jobs", dialect=self.name)

    def parse_batch_progress(self, body: Any) -> BatchProgress:
        raise UnsupportedOperationError(f"{self.name} has no batch jobs", dialect=self.name)

    def build_get_status(self, message_id: str) -> RelayRequest:
        raise NotImplementedError

    def parse_status(self, body: Any) -> StatusReport:
        raise NotImplementedError

    def build_list_messages(self, **filters: Any) -> RelayRequest:
        raise NotImplementedError

    def parse_message_page(self, body: Any) -> MessagePage:
        raise NotImplementedError

    # --- errors ---------------------------------------------------------------------------
    def parse_error(self, status_code: int, body: Any, headers: Mapping[str, str]) -> RelayError:
        """The exception for an error answer, in the relay's own error shape."""
        raise NotImplementedError

    # --- webhooks in ----------------------------------------------------------------------
    def parse_webhook(self, payload: Any, headers: Mapping[str, str]) -> list[WebhookEvent]:
        """Canonical events in one (already verified) webhook delivery."""
        raise UnsupportedOperationError(f"{self.name} sends no webhooks", dialect=self.name)

# Generated from relay_integrations/_async/client.py by scripts/generate_sync.py: do not edit.
"""The relay client, written once: the async client is this file, the sync one is generated from it.

::

    from relay_integrations import OutboundMessage, RelayClient

    with RelayClient("http://127.0.0.1:8080/phonerelay", "phonerelay", api_key, phone_id="phone_main") as client:
        receipt = client.send(OutboundMessage(to="+15551234567", text="hello"))
        print(client.get_status(receipt.message_id).state)

Both run the same flows (:mod:`relay_integrations._operations`): the dialect builds each request and
parses each answer, :class:`~relay_integrations._retry.RetryPolicy` decides about retries; the
clients only execute. ``scripts/generate_sync.py`` writes ``relay_integrations/_sync/client.py`` from
``relay_integrations/_async/client.py`` (as httpcore does); edit the async file only, then run
``make unasync``. A test fails when the two differ.
"""

from __future__ import annotations

from collections.abc import Iterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from relay_integrations._client_base import _PARSE_ERRORS, CookielessClient, _ClientBase, logger
from relay_integrations._operations import Flow, RelayResponse
from relay_integrations._primitives import Lock, Sleep, sleep
from relay_integrations._transports import default_transport
from relay_integrations.dialects.base import RelayRequest
from relay_integrations.errors import RelayAuthError, RelayError
from relay_integrations.models import (
    BatchProgress,
    BatchReceipt,
    InboundQuery,
    InboundStats,
    MessagePage,
    OutboundMessage,
    SendReceipt,
    StatusReport,
)

__all__ = ["RelayClient"]

T = TypeVar("T")


class RelayClient(_ClientBase):
    """A client for one relay. :class:`RelayClient` blocks; :class:`AsyncRelayClient` (asyncio or
    trio) takes the same arguments, and every method is a coroutine, with ``async with`` and
    ``aclose()``.

    :param base_url: the relay's address as its doc gives it, with or without the doc's base path
        (``http://127.0.0.1:8080/relaysms`` and ``http://127.0.0.1:8080/relaysms/api/v1`` both work).
    :param dialect: which documented API the relay speaks: ``phonerelay``, ``relaysms``, ``coop``,
        ``smsgate``, or a :class:`~relay_integrations.dialects.base.Dialect` instance.
    :param api_key: the API key (smsgate: the password). Kept as a ``SecretStr``; never shown.
    :param login: smsgate's login (user name for Basic auth).
    :param phone_id: default ``phone_id`` for sends that have none (phonerelay).
    :param sender: default sender number for sends that have none (relaysms ``from``, coop ``fromNumber``).
    :param timeout: seconds for a read (default 10); the connect timeout is at most 5 s. Or an
        ``httpx.Timeout``.
    :param max_retries: repeats after the first attempt on connection errors, 429, 502, 503 and 504.
        Sends the relay cannot de-duplicate are repeated only when they surely never arrived.
    :param backoff_factor: first backoff ceiling in seconds, doubling per attempt (full jitter).
    :param transport: an ``httpx.BaseTransport`` (``httpx.AsyncBaseTransport`` for the async client):
        tests, proxies, ``httpx.MockTransport``.
    :param max_backoff: ceiling of one computed wait in seconds.
    :param max_retry_after: a ``Retry-After`` longer than this is not waited for; the error is
        raised with ``retry_after`` set.
    :param use_jwt: smsgate: authenticate with a JWT from ``POST /auth/token`` instead of Basic auth.
    :param limits: connection pool limits.
    :param user_agent: replaces ``relay-integrations/<version>``.
    :param verify: TLS verification: ``True`` (a shared default context), ``False``, or an ``ssl.SSLContext``.
    """

    def _open(self, transport: httpx.BaseTransport | None) -> None:
        if transport is None:
            transport = default_transport(self._verify, self._limits)
        self._http = CookielessClient(
            timeout=self._timeout, headers=self._headers, transport=transport, follow_redirects=False,
        )
        self._sleep: Sleep = sleep
        # One JWT refresh at a time: the campaign's concurrent sends share this client.
        self._token_lock = Lock()

    # --- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> RelayClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- execution ------------------------------------------------------------------------
    def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                try:
                    response = self._request(request)
                except RelayError as error:
                    request = flow.throw(error)
                    continue
                try:
                    request = flow.send(response)
                except (StopIteration, RelayError):
                    raise
                except _PARSE_ERRORS as exc:  # the answer did not have the documented shape
                    raise self._parse_failed(request, exc) from exc
        except StopIteration as stop:
            result: T = stop.value
            return result
        finally:
            flow.close()

    def _request(self, request: RelayRequest) -> RelayResponse:
        if self._ops.needs_token(request):
            self._refresh_token(refused=None)
        token = self._credentials.token  # the JWT this request goes out with
        try:
            return self._attempts(request)
        except RelayAuthError:
            if token is None or not self._ops.can_refresh_token(request):
                raise
            logger.info("JWT refused; fetching a new one")
            self._refresh_token(refused=token)
            return self._attempts(request)

    def _refresh_token(self, refused: SecretStr | None) -> None:
        """Fetch a JWT, unless another request fetched one since ``refused`` (the token it saw)
        was given or found missing: many requests that meet an expired token fetch one new one."""
        with self._token_lock:
            current = self._credentials.token
            if current is not None and current is not refused:
                return
            self.get_token()

    def _attempts(self, request: RelayRequest) -> RelayResponse:
        url = self._url(request)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(request.method, url, **self._request_kwargs(request))
            except httpx.HTTPError as exc:
                self._sleep(self._transport_delay(request, attempt, exc))
                continue
            outcome = self._outcome(request, attempt, response)
            if isinstance(outcome, RelayResponse):
                return outcome
            self._sleep(outcome)

    # --- messages -------------------------------------------------------------------------
    def send(self, message: OutboundMessage) -> SendReceipt:
        """Send one message. Fills ``phone_id``/``sender`` from the client when missing; where the relay
        takes client idempotency keys, generates one if missing and repeats it on every retry."""
        return self._run(self._ops.send(message))

    def send_batch(self, messages: Sequence[OutboundMessage]) -> BatchReceipt:
        """Many different messages in one request (relaysms batch, coop bulk job)."""
        return self._run(self._ops.send_batch(messages))

    def get_batch(self, batch_id: str) -> BatchProgress:
        """Progress of a batch (relaysms) or bulk job (coop)."""
        return self._run(self._ops.get_batch(batch_id))

    def get_status(self, message_id: str) -> StatusReport:
        """The message's canonical state now, with the relay's raw state, recipients and timestamps."""
        return self._run(self._ops.get_status(message_id))

    def list_messages(self, **filters: Any) -> MessagePage:
        """One page of messages; ``filters`` as the relay documents them (``limit``, ``page``, ``skip``...)."""
        return self._run(self._ops.list_messages(filters))

    def iter_messages(self, *, max_pages: int | None = None, **filters: Any) -> Iterator[MessagePage]:
        """Every page of messages in turn, starting from ``filters`` (``async for`` on the async client)."""
        current: dict[str, Any] | None = dict(filters)
        pages = 0
        while current is not None and (max_pages is None or pages < max_pages):
            page = self.list_messages(**current)
            pages += 1
            yield page
            current = self._ops.next_page_filters(current, page)

    # --- inbound, health, any endpoint ----------------------------------------------------
    def inbound_stats(self, query: InboundQuery | None = None, **filters: Any) -> InboundStats:
        """phonerelay's inbound query (POST), filters as in :class:`InboundQuery`."""
        return self._run(self._ops.inbound_stats(query, filters))

    def health(self) -> dict[str, Any]:
        """``{"ok": True, "dialect", "checked", "status_code", "answer"}`` when the relay answers its health
        endpoint (where it has one) and an authenticated call; raises the relay's error otherwise
        (:class:`~relay_integrations.errors.RelayAuthError` for a wrong key)."""
        return self._run(self._ops.health())

    def call(
        self,
        endpoint: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Any documented endpoint by the dialect's name for it; returns the unwrapped JSON answer."""
        return self._run(self._ops.call(endpoint, path_params=path_params, json=json, params=params))

    def get_token(self, scopes: Iterable[str] | None = None, ttl: int | None = None) -> SecretStr:
        """smsgate: fetch a JWT (Basic auth) and use it for the following requests."""
        token = self._run(self._ops.get_token(scopes, ttl))
        return SecretStr(token)

    # --- relaysms -------------------------------------------------------------------------
    def message_log(self, message_id: str) -> StatusReport:
        """relaysms: the message's status with its delivery timeline (``GET /messages/{id}/log``)."""
        return self._run(self._ops.message_log(message_id))

    def list_numbers(self) -> Any:
        """relaysms: the phone numbers the account owns."""
        return self._run(self._ops.simple("numbers"))

    def spam_diagnosis(
        self, number: str, *, hours: int | None = None, limit: int | None = None, max_pages: int | None = None
    ) -> dict[str, Any]:
        params = {"hours": hours, "limit": limit, "max_pages": max_pages}
        return self._run(self._ops.simple("spam_diagnosis", number, params=params))

    def balance(self) -> dict[str, Any]:
        """relaysms: ``{"balance", "currency"}``."""
        return self._run(self._ops.simple("balance"))

    def transactions(self, *, page: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """relaysms: one page of the transaction history."""
        return self._run(self._ops.simple("transactions", params={"page": page, "limit": limit}))

    def get_webhooks(self) -> dict[str, Any]:
        """relaysms: the global ``status_url`` and ``inbound_url``."""
        return self._run(self._ops.simple("webhooks_get"))

    def set_webhooks(self, *, status_url: str | None = None, inbound_url: str | None = None) -> Any:
        """relaysms: set the global webhook URLs (only the ones given are sent)."""
        body = {k: v for k, v in (("status_url", status_url), ("inbound_url", inbound_url)) if v is not None}
        return self._run(self._ops.simple("webhooks_set", json=body))

    def get_number_webhooks(self, phone: str) -> dict[str, Any]:
        """relaysms: one number's inbound callback."""
        return self._run(self._ops.simple("number_webhooks_get", phone))

    def set_number_webhooks(self, phone: str, *, inbound_callback: str | None) -> Any:
        """relaysms: set (or clear with ``None``) one number's inbound callback."""
        body = {"inbound_callback": inbound_callback}
        return self._run(self._ops.simple("number_webhooks_set", phone, json=body))

    def regenerate_api_key(self) -> dict[str, Any]:
        """relaysms: a new key, used by this client from now on; ``api_key`` in the answer is a SecretStr."""
        return self._run(self._ops.regenerate_api_key())

    def post_webhook_bin(self, kind: str, payload: Any) -> Any:
        """relaysms test bins: ``kind`` is ``status`` or ``messages``."""
        return self._run(self._ops.webhook_bin(kind, payload, post=True))

    def get_webhook_bin(self, kind: str) -> Any:
        """relaysms: the payloads logged in the ``status`` or ``messages`` test bin."""
        return self._run(self._ops.webhook_bin(kind, post=False))

    def batch_messages(self, batch_id: str, *, page: int | None = None) -> MessagePage:
        """relaysms: one page of the messages of a batch."""
        return self._run(self._ops.batch_messages(batch_id, page))

    # --- phonerelay -----------------------------------------------------------------------
    def list_inbound_callbacks(self) -> Any:
        """phonerelay: the inbound callbacks registered."""
        return self._run(self._ops.simple("inbound_callbacks_list"))

    def create_inbound_callback(self, callback_url: str, **filters: Any) -> Any:
        """phonerelay inbound callback; ``filters`` as documented (channels, source_filter, event_types,
        keyword_filter, min/max_duration_sec, callback_token, active)."""
        body = {"callback_url": callback_url, **filters}
        return self._run(self._ops.simple("inbound_callbacks_create", json=body))

    def delete_inbound_callback(self, callback_id: str) -> Any:
        """phonerelay: remove an inbound callback by id."""
        return self._run(self._ops.delete_inbound_callback(callback_id))

    # --- coop -----------------------------------------------------------------------------
    def list_bulk_jobs(self) -> Any:
        """coop: the bulk jobs."""
        return self._run(self._ops.simple("bulk_list"))

    def get_bulk_job(self, job_id: str) -> dict[str, Any]:
        """coop: one bulk job's details as the relay gives them (:meth:`get_batch` parses them)."""
        return self._run(self._ops.simple("bulk_get", job_id))

    def bulk_results(self, job_id: str) -> Any:
        """coop: per-recipient delivery results of a completed bulk job."""
        return self._run(self._ops.simple("bulk_results", job_id))

    def attachments(self, message_id: str) -> Any:
        """coop: a message's attachments with download URLs."""
        return self._run(self._ops.simple("attachments", message_id))

    def queue_stats(self) -> dict[str, Any]:
        """coop: queue counts by state."""
        return self._run(self._ops.simple("queue_stats"))

    # --- webhooks (smsgate; mapped for relaysms and phonerelay) ----------------------------
    def list_webhooks(self) -> list[dict[str, Any]]:
        """smsgate webhooks; phonerelay inbound callbacks; relaysms global URLs as ``{"event", "url"}``."""
        return self._run(self._ops.list_webhooks())

    def register_webhook(self, url: str, event: str | None = None, *, webhook_id: str | None = None,
                         **extra: Any) -> Any:
        """Register ``url`` for ``event`` (smsgate ``sms:delivered``...; relaysms ``status``/``inbound``
        sets the matching global URL; phonerelay creates an inbound callback)."""
        return self._run(self._ops.register_webhook(url, event, webhook_id, extra))

    def delete_webhook(self, webhook_id: str) -> Any:
        """smsgate: delete a webhook; phonerelay: delete an inbound callback."""
        return self._run(self._ops.delete_webhook(webhook_id))

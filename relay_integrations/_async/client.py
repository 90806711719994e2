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

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from relay_integrations._client_base import _PARSE_ERRORS, CookielessAsyncClient, _ClientBase, logger
from relay_integrations._operations import Flow, RelayResponse
from relay_integrations._primitives import AsyncLock, AsyncSleep, async_sleep
from relay_integrations._transports import default_async_transport
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

__all__ = ["AsyncRelayClient"]

T = TypeVar("T")


class AsyncRelayClient(_ClientBase):
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

    def _open(self, transport: httpx.AsyncBaseTransport | None) -> None:
        if transport is None:
            transport = default_async_transport(self._verify, self._limits)
        self._http = CookielessAsyncClient(
            timeout=self._timeout, headers=self._headers, transport=transport, follow_redirects=False,
        )
        self._sleep: AsyncSleep = async_sleep
        # One JWT refresh at a time: the campaign's concurrent sends share this client.
        self._token_lock = AsyncLock()

    # --- lifecycle ------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRelayClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- execution ------------------------------------------------------------------------
    async def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                try:
                    response = await self._request(request)
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

    async def _request(self, request: RelayRequest) -> RelayResponse:
        if self._ops.needs_token(request):
            await self._refresh_token(refused=None)
        token = self._credentials.token  # the JWT this request goes out with
        try:
            return await self._attempts(request)
        except RelayAuthError:
            if token is None or not self._ops.can_refresh_token(request):
                raise
            logger.info("JWT refused; fetching a new one")
            await self._refresh_token(refused=token)
            return await self._attempts(request)

    async def _refresh_token(self, refused: SecretStr | None) -> None:
        """Fetch a JWT, unless another request fetched one since ``refused`` (the token it saw)
        was given or found missing: many requests that meet an expired token fetch one new one."""
        async with self._token_lock:
            current = self._credentials.token
            if current is not None and current is not refused:
                return
            await self.get_token()

    async def _attempts(self, request: RelayRequest) -> RelayResponse:
        url = self._url(request)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(request.method, url, **self._request_kwargs(request))
            except httpx.HTTPError as exc:
                await self._sleep(self._transport_delay(request, attempt, exc))
                continue
            outcome = self._outcome(request, attempt, response)
            if isinstance(outcome, RelayResponse):
                return outcome
            await self._sleep(outcome)

    # --- messages -------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> SendReceipt:
        """Send one message. Fills ``phone_id``/``sender`` from the client when missing; where the relay
        takes client idempotency keys, generates one if missing and repeats it on every retry."""
        return await self._run(self._ops.send(message))

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> BatchReceipt:
        """Many different messages in one request (relaysms batch, coop bulk job)."""
        return await self._run(self._ops.send_batch(messages))

    async def get_batch(self, batch_id: str) -> BatchProgress:
        """Progress of a batch (relaysms) or bulk job (coop)."""
        return await self._run(self._ops.get_batch(batch_id))

    async def get_status(self, message_id: str) -> StatusReport:
        """The message's canonical state now, with the relay's raw state, recipients and timestamps."""
        return await self._run(self._ops.get_status(message_id))

    async def list_messages(self, **filters: Any) -> MessagePage:
        """One page of messages; ``filters`` as the relay documents them (``limit``, ``page``, ``skip``...)."""
        return await self._run(self._ops.list_messages(filters))

    async def iter_messages(self, *, max_pages: int | None = None, **filters: Any) -> AsyncIterator[MessagePage]:
        """Every page of messages in turn, starting from ``filters`` (``async for`` on the async client)."""
        current: dict[str, Any] | None = dict(filters)
        pages = 0
        while current is not None and (max_pages is None or pages < max_pages):
            page = await self.list_messages(**current)
            pages += 1
            yield page
            current = self._ops.next_page_filters(current, page)

    # --- inbound, health, any endpoint ----------------------------------------------------
    async def inbound_stats(self, query: InboundQuery | None = None, **filters: Any) -> InboundStats:
        """phonerelay's inbound query (POST), filters as in :class:`InboundQuery`."""
        return await self._run(self._ops.inbound_stats(query, filters))

    async def health(self) -> dict[str, Any]:
        """``{"ok": True, "dialect", "checked", "status_code", "answer"}`` when the relay answers its health
        endpoint (where it has one) and an authenticated call; raises the relay's error otherwise
        (:class:`~relay_integrations.errors.RelayAuthError` for a wrong key)."""
        return await self._run(self._ops.health())

    async def call(
        self,
        endpoint: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Any documented endpoint by the dialect's name for it; returns the unwrapped JSON answer."""
        return await self._run(self._ops.call(endpoint, path_params=path_params, json=json, params=params))

    async def get_token(self, scopes: Iterable[str] | None = None, ttl: int | None = None) -> SecretStr:
        """smsgate: fetch a JWT (Basic auth) and use it for the following requests."""
        token = await self._run(self._ops.get_token(scopes, ttl))
        return SecretStr(token)

    # --- relaysms -------------------------------------------------------------------------
    async def message_log(self, message_id: str) -> StatusReport:
        """relaysms: the message's status with its delivery timeline (``GET /messages/{id}/log``)."""
        return await self._run(self._ops.message_log(message_id))

    async def list_numbers(self) -> Any:
        """relaysms: the phone numbers the account owns."""
        return await self._run(self._ops.simple("numbers"))

    async def spam_diagnosis(
        self, number: str, *, hours: int | None = None, limit: int | None = None, max_pages: int | None = None
    ) -> dict[str, Any]:
        params = {"hours": hours, "limit": limit, "max_pages": max_pages}
        return await self._run(self._ops.simple("spam_diagnosis", number, params=params))

    async def balance(self) -> dict[str, Any]:
        """relaysms: ``{"balance", "currency"}``."""
        return await self._run(self._ops.simple("balance"))

    async def transactions(self, *, page: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """relaysms: one page of the transaction history."""
        return await self._run(self._ops.simple("transactions", params={"page": page, "limit": limit}))

    async def get_webhooks(self) -> dict[str, Any]:
        """relaysms: the global ``status_url`` and ``inbound_url``."""
        return await self._run(self._ops.simple("webhooks_get"))

    async def set_webhooks(self, *, status_url: str | None = None, inbound_url: str | None = None) -> Any:
        """relaysms: set the global webhook URLs (only the ones given are sent)."""
        body = {k: v for k, v in (("status_url", status_url), ("inbound_url", inbound_url)) if v is not None}
        return await self._run(self._ops.simple("webhooks_set", json=body))

    async def get_number_webhooks(self, phone: str) -> dict[str, Any]:
        """relaysms: one number's inbound callback."""
        return await self._run(self._ops.simple("number_webhooks_get", phone))

    async def set_number_webhooks(self, phone: str, *, inbound_callback: str | None) -> Any:
        """relaysms: set (or clear with ``None``) one number's inbound callback."""
        body = {"inbound_callback": inbound_callback}
        return await self._run(self._ops.simple("number_webhooks_set", phone, json=body))

    async def regenerate_api_key(self) -> dict[str, Any]:
        """relaysms: a new key, used by this client from now on; ``api_key`` in the answer is a SecretStr."""
        return await self._run(self._ops.regenerate_api_key())

    async def post_webhook_bin(self, kind: str, payload: Any) -> Any:
        """relaysms test bins: ``kind`` is ``status`` or ``messages``."""
        return await self._run(self._ops.webhook_bin(kind, payload, post=True))

    async def get_webhook_bin(self, kind: str) -> Any:
        """relaysms: the payloads logged in the ``status`` or ``messages`` test bin."""
        return await self._run(self._ops.webhook_bin(kind, post=False))

    async def batch_messages(self, batch_id: str, *, page: int | None = None) -> MessagePage:
        """relaysms: one page of the messages of a batch."""
        return await self._run(self._ops.batch_messages(batch_id, page))

    # --- phonerelay -----------------------------------------------------------------------
    async def list_inbound_callbacks(self) -> Any:
        """phonerelay: the inbound callbacks registered."""
        return await self._run(self._ops.simple("inbound_callbacks_list"))

    async def create_inbound_callback(self, callback_url: str, **filters: Any) -> Any:
        """phonerelay inbound callback; ``filters`` as documented (channels, source_filter, event_types,
        keyword_filter, min/max_duration_sec, callback_token, active)."""
        body = {"callback_url": callback_url, **filters}
        return await self._run(self._ops.simple("inbound_callbacks_create", json=body))

    async def delete_inbound_callback(self, callback_id: str) -> Any:
        """phonerelay: remove an inbound callback by id."""
        return await self._run(self._ops.delete_inbound_callback(callback_id))

    # --- coop -----------------------------------------------------------------------------
    async def list_bulk_jobs(self) -> Any:
        """coop: the bulk jobs."""
        return await self._run(self._ops.simple("bulk_list"))

    async def get_bulk_job(self, job_id: str) -> dict[str, Any]:
        """coop: one bulk job's details as the relay gives them (:meth:`get_batch` parses them)."""
        return await self._run(self._ops.simple("bulk_get", job_id))

    async def bulk_results(self, job_id: str) -> Any:
        """coop: per-recipient delivery results of a completed bulk job."""
        return await self._run(self._ops.simple("bulk_results", job_id))

    async def attachments(self, message_id: str) -> Any:
        """coop: a message's attachments with download URLs."""
        return await self._run(self._ops.simple("attachments", message_id))

    async def queue_stats(self) -> dict[str, Any]:
        """coop: queue counts by state."""
        return await self._run(self._ops.simple("queue_stats"))

    # --- webhooks (smsgate; mapped for relaysms and phonerelay) ----------------------------
    async def list_webhooks(self) -> list[dict[str, Any]]:
        """smsgate webhooks; phonerelay inbound callbacks; relaysms global URLs as ``{"event", "url"}``."""
        return await self._run(self._ops.list_webhooks())

    async def register_webhook(self, url: str, event: str | None = None, *, webhook_id: str | None = None,
                         **extra: Any) -> Any:
        """Register ``url`` for ``event`` (smsgate ``sms:delivered``...; relaysms ``status``/``inbound``
        sets the matching global URL; phonerelay creates an inbound callback)."""
        return await self._run(self._ops.register_webhook(url, event, webhook_id, extra))

    async def delete_webhook(self, webhook_id: str) -> Any:
        """smsgate: delete a webhook; phonerelay: delete an inbound callback."""
        return await self._run(self._ops.delete_webhook(webhook_id))

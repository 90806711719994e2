"""Synchronous and asynchronous clients for the documented relays, on httpx.

::

    from relay_integrations import OutboundMessage, RelayClient

    with RelayClient("http://127.0.0.1:8080/phonerelay", "phonerelay", api_key, phone_id="phone_main") as client:
        receipt = client.send(OutboundMessage(to="+15551234567", text="hello"))
        print(client.get_status(receipt.message_id).state)

Both clients run the same flows (:mod:`relay_integrations._operations`): the dialect builds each
request and parses each answer, :class:`~relay_integrations._retry.RetryPolicy` decides about
retries; the clients only execute. Errors are always :class:`~relay_integrations.errors.RelayError`
subclasses, and no text this module produces (reprs, exceptions, logs) contains a credential.
"""

from __future__ import annotations

import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx
from pydantic import SecretStr

from relay_integrations._operations import Credentials, Flow, Operations, RelayResponse
from relay_integrations._retry import NEVER_SENT_ERRORS, RetryPolicy, retry_after_from
from relay_integrations.dialects import get_dialect
from relay_integrations.dialects.base import Capabilities, Dialect, RelayRequest
from relay_integrations.errors import (
    RelayAuthError,
    RelayConnectionError,
    RelayError,
    RelayRateLimitError,
    RelayTimeoutError,
    RelayUnavailableError,
    error_for_status,
)
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

__all__ = ["AsyncRelayClient", "RelayClient"]

logger = logging.getLogger("relay_integrations.client")

T = TypeVar("T")

DEFAULT_CONNECT_TIMEOUT = 5.0
_REDACTED = "***"


def _user_agent() -> str:
    from relay_integrations import __version__

    return f"relay-integrations/{__version__}"


@functools.lru_cache(maxsize=1)
def _default_ssl_context() -> ssl.SSLContext:
    """One verifying context for every client: building one costs ~0.1 s, a client should not."""
    return httpx.create_ssl_context()


def _normalise_base_url(base_url: str, dialect: Dialect) -> str:
    """The relay's root URL: trailing slashes and the doc's base path (``/api/v1``...) removed."""
    url = str(base_url).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("base_url must be an absolute http(s) URL, e.g. http://127.0.0.1:8080/phonerelay")
    if "@" in parts.netloc:
        # Not echoed back: the user-info part is a credential.
        raise ValueError("base_url must not contain credentials; pass api_key= (and login= for smsgate)")
    path = parts.path.rstrip("/")
    base_path = (dialect.base_path or "").rstrip("/")
    if base_path and path.endswith(base_path):
        path = path[: -len(base_path)].rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


class _ClientBase:
    """Configuration, authentication, error mapping and retry decisions shared by both clients."""

    def __init__(
        self,
        base_url: str,
        dialect: str | Dialect,
        api_key: str | SecretStr,
        *,
        login: str | None = None,
        phone_id: str | None = None,
        sender: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        use_jwt: bool = False,
        limits: httpx.Limits | None = None,
        user_agent: str | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._dialect = get_dialect(dialect)
        self._base_url = _normalise_base_url(base_url, self._dialect)
        self._credentials = Credentials(api_key, login)
        self._ops = Operations(self._dialect, self._credentials, phone_id=phone_id, sender=sender, use_jwt=use_jwt)
        self.retry_policy = RetryPolicy(
            max_retries=max_retries, backoff_factor=backoff_factor, max_backoff=max_backoff,
            max_retry_after=max_retry_after,
        )
        if isinstance(timeout, httpx.Timeout):
            self._timeout = timeout
        else:
            self._timeout = httpx.Timeout(timeout, connect=min(DEFAULT_CONNECT_TIMEOUT, timeout))
        self._limits = limits or httpx.Limits(max_connections=20, max_keepalive_connections=10)
        self._headers = {"User-Agent": user_agent or _user_agent(), "Accept": "application/json"}
        self._verify: ssl.SSLContext | bool = _default_ssl_context() if verify is True else verify

    # --- public properties ----------------------------------------------------------------
    @property
    def dialect(self) -> Dialect:
        return self._dialect

    @property
    def capabilities(self) -> Capabilities:
        return self._dialect.capabilities

    @property
    def base_url(self) -> str:
        """The relay's root URL requests are made against (the doc's base path removed)."""
        return self._base_url

    @property
    def login(self) -> str | None:
        return self._credentials.login

    @property
    def account_id(self) -> str:
        """A non-secret name for the account: the login where the relay has logins (smsgate), else a
        short hash of the API key (so a rotated key counts as another account)."""
        from relay_integrations.campaign.campaign_store import RelayIdentity

        login = self.login if self._dialect.name == "smsgate" else None
        return RelayIdentity.account_for(self._credentials.api_key.get_secret_value(), login)

    @property
    def phone_id(self) -> str | None:
        return self._ops.phone_id

    @property
    def sender(self) -> str | None:
        return self._ops.sender

    def __repr__(self) -> str:
        extra = "".join(
            f", {name}={value!r}"
            for name, value in (("login", self.login), ("phone_id", self.phone_id), ("sender", self.sender))
            if value is not None
        )
        return f"{type(self).__name__}(base_url={self._base_url!r}, dialect={self._dialect.name!r}{extra})"

    __str__ = __repr__

    # --- shared execution steps -----------------------------------------------------------
    def _redact(self, text: str) -> str:
        for secret in self._credentials.secrets():
            text = text.replace(secret, _REDACTED)
        return text

    def _clean(self, error: RelayError) -> RelayError:
        """The same error with any credential scrubbed from its texts (a relay may echo the key)."""
        error.message = self._redact(str(error.message))
        error.args = tuple(self._redact(a) if isinstance(a, str) else a for a in error.args)
        return error

    def _request_kwargs(self, request: RelayRequest) -> dict[str, Any]:
        headers = {**self._ops.auth_headers(request), **dict(request.headers)}
        kwargs: dict[str, Any] = {"headers": headers}
        if request.params:
            kwargs["params"] = {k: v for k, v in request.params.items() if v is not None}
        if request.json is not None:
            kwargs["json"] = request.json
        return kwargs

    def _error_for(self, request: RelayRequest, response: httpx.Response, body: Any) -> RelayError:
        """The dialect's exception for a non-2xx answer, with ``retry_after`` filled in where it applies."""
        status = response.status_code
        retry_after = retry_after_from(response.headers)
        try:
            error = self._dialect.parse_error(status, body, response.headers)
        except Exception as exc:  # a dialect that cannot read this answer still gets the right class
            # Only the exception's type: its text or traceback could quote the answer's body.
            logger.debug("%s could not read a %s error answer (%s)", self._dialect.name, status, type(exc).__name__)
            error = None
        if not isinstance(error, RelayError):
            cls = error_for_status(status)
            message = f"{request.method} {request.path} answered HTTP {status}"
            error = cls(message, status_code=status, dialect=self._dialect.name, body=body)
        if error.status_code is None:
            error.status_code = status
        if error.dialect is None:
            error.dialect = self._dialect.name
        if isinstance(error, RelayRateLimitError | RelayUnavailableError) and error.retry_after is None:
            error.retry_after = retry_after
        return self._clean(error)

    def _outcome(self, request: RelayRequest, attempt: int, response: httpx.Response) -> RelayResponse | float:
        """A 2xx answer, or the seconds to wait before the next attempt; raises the relay's error."""
        status = response.status_code
        body = _decode(response)
        if 200 <= status < 300:
            logger.debug("%s %s %s -> %s (attempt %d)", self._dialect.name, request.method, request.path, status,
                         attempt)
            return RelayResponse(status_code=status, body=body, headers=response.headers, attempts=attempt)
        retry_after = retry_after_from(response.headers)
        delay = self.retry_policy.delay_after_status(attempt, status, retry_after, retry_safe=request.retry_safe)
        if delay is not None:
            logger.warning("%s %s %s -> %s (attempt %d); retrying in %.2f s",
                           self._dialect.name, request.method, request.path, status, attempt, delay)
            return delay
        logger.info("%s %s %s -> %s (attempt %d); giving up",
                    self._dialect.name, request.method, request.path, status, attempt)
        raise self._error_for(request, response, body)

    def _transport_delay(self, request: RelayRequest, attempt: int, exc: httpx.HTTPError) -> float:
        """Seconds to wait after a transport failure, or raises the mapped error."""
        delay = None
        if isinstance(exc, httpx.TransportError):
            delay = self.retry_policy.delay_after_error(attempt, exc, retry_safe=request.retry_safe)
        kind = type(exc).__name__
        if delay is not None:
            logger.warning("%s %s %s failed: %s (attempt %d); retrying in %.2f s",
                           self._dialect.name, request.method, request.path, kind, attempt, delay)
            return delay
        logger.info("%s %s %s failed: %s (attempt %d); giving up",
                    self._dialect.name, request.method, request.path, kind, attempt)
        not_repeated = ""
        if not request.retry_safe and not isinstance(exc, NEVER_SENT_ERRORS):
            not_repeated = ("; the relay may or may not have taken it, and it was not repeated because that "
                            "could send it twice")
        cls = RelayTimeoutError if isinstance(exc, httpx.TimeoutException) else RelayConnectionError
        verb = "timed out" if cls is RelayTimeoutError else "failed"
        raise self._clean(cls(
            f"{request.method} {request.path} {verb} after {attempt} attempt(s) ({kind}){not_repeated}",
            dialect=self._dialect.name,
        )) from exc

    def _parse_failed(self, request: RelayRequest, exc: Exception) -> RelayError:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return self._clean(RelayError(
            f"unexpected answer to {request.method} {request.path}: {detail}", dialect=self._dialect.name
        ))

    def _url(self, request: RelayRequest) -> str:
        return self._base_url + request.path


_PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError)


class RelayClient(_ClientBase):
    """A blocking client for one relay.

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
    :param transport: an ``httpx.BaseTransport`` (tests, proxies, ``httpx.MockTransport``).
    :param max_backoff: ceiling of one computed wait in seconds.
    :param max_retry_after: a ``Retry-After`` longer than this is not waited for; the error is
        raised with ``retry_after`` set.
    :param use_jwt: smsgate: authenticate with a JWT from ``POST /auth/token`` instead of Basic auth.
    :param limits: connection pool limits.
    :param user_agent: replaces ``relay-integrations/<version>``.
    :param verify: TLS verification: ``True`` (a shared default context), ``False``, or an ``ssl.SSLContext``.
    """

    def __init__(
        self,
        base_url: str,
        dialect: str | Dialect,
        api_key: str | SecretStr,
        *,
        login: str | None = None,
        phone_id: str | None = None,
        sender: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        use_jwt: bool = False,
        limits: httpx.Limits | None = None,
        user_agent: str | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(
            base_url, dialect, api_key, login=login, phone_id=phone_id, sender=sender, timeout=timeout,
            max_retries=max_retries, backoff_factor=backoff_factor, max_backoff=max_backoff,
            max_retry_after=max_retry_after, use_jwt=use_jwt, limits=limits, user_agent=user_agent, verify=verify,
        )
        self._http = httpx.Client(timeout=self._timeout, limits=self._limits, headers=self._headers,
                                  transport=transport, follow_redirects=False, verify=self._verify)
        self._sleep: Callable[[float], None] = time.sleep

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
            self.get_token()
        try:
            return self._attempts(request)
        except RelayAuthError:
            if not self._ops.can_refresh_token(request):
                raise
            logger.info("JWT refused; fetching a new one")
            self._credentials.token = None
            self.get_token()
            return self._attempts(request)

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
        """Every page of messages in turn, starting from ``filters``."""
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
        return self._run(self._ops.simple("number_webhooks_set", phone, json={"inbound_callback": inbound_callback}))

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
        return self._run(self._ops.simple("inbound_callbacks_create", json={"callback_url": callback_url, **filters}))

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


class AsyncRelayClient(_ClientBase):
    """The asyncio/trio twin of :class:`RelayClient`: same constructor, every method a coroutine,
    ``async with`` and :meth:`aclose`. ``transport`` is an ``httpx.AsyncBaseTransport``."""

    def __init__(
        self,
        base_url: str,
        dialect: str | Dialect,
        api_key: str | SecretStr,
        *,
        login: str | None = None,
        phone_id: str | None = None,
        sender: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        use_jwt: bool = False,
        limits: httpx.Limits | None = None,
        user_agent: str | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        super().__init__(
            base_url, dialect, api_key, login=login, phone_id=phone_id, sender=sender, timeout=timeout,
            max_retries=max_retries, backoff_factor=backoff_factor, max_backoff=max_backoff,
            max_retry_after=max_retry_after, use_jwt=use_jwt, limits=limits, user_agent=user_agent, verify=verify,
        )
        self._http = httpx.AsyncClient(timeout=self._timeout, limits=self._limits, headers=self._headers,
                                       transport=transport, follow_redirects=False, verify=self._verify)
        self._sleep: Callable[[float], Any] = anyio.sleep

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
            await self.get_token()
        try:
            return await self._attempts(request)
        except RelayAuthError:
            if not self._ops.can_refresh_token(request):
                raise
            logger.info("JWT refused; fetching a new one")
            self._credentials.token = None
            await self.get_token()
            return await self._attempts(request)

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
        """See :meth:`RelayClient.send`."""
        return await self._run(self._ops.send(message))

    async def send_batch(self, messages: Sequence[OutboundMessage]) -> BatchReceipt:
        return await self._run(self._ops.send_batch(messages))

    async def get_batch(self, batch_id: str) -> BatchProgress:
        return await self._run(self._ops.get_batch(batch_id))

    async def get_status(self, message_id: str) -> StatusReport:
        return await self._run(self._ops.get_status(message_id))

    async def list_messages(self, **filters: Any) -> MessagePage:
        return await self._run(self._ops.list_messages(filters))

    async def iter_messages(self, *, max_pages: int | None = None, **filters: Any) -> AsyncIterator[MessagePage]:
        """Every page of messages in turn (an async iterator: ``async for page in client.iter_messages()``)."""
        current: dict[str, Any] | None = dict(filters)
        pages = 0
        while current is not None and (max_pages is None or pages < max_pages):
            page = await self.list_messages(**current)
            pages += 1
            yield page
            current = self._ops.next_page_filters(current, page)

    # --- inbound, health, any endpoint ----------------------------------------------------
    async def inbound_stats(self, query: InboundQuery | None = None, **filters: Any) -> InboundStats:
        return await self._run(self._ops.inbound_stats(query, filters))

    async def health(self) -> dict[str, Any]:
        return await self._run(self._ops.health())

    async def call(
        self,
        endpoint: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        return await self._run(self._ops.call(endpoint, path_params=path_params, json=json, params=params))

    async def get_token(self, scopes: Iterable[str] | None = None, ttl: int | None = None) -> SecretStr:
        token = await self._run(self._ops.get_token(scopes, ttl))
        return SecretStr(token)

    # --- relaysms -------------------------------------------------------------------------
    async def message_log(self, message_id: str) -> StatusReport:
        return await self._run(self._ops.message_log(message_id))

    async def list_numbers(self) -> Any:
        return await self._run(self._ops.simple("numbers"))

    async def spam_diagnosis(
        self, number: str, *, hours: int | None = None, limit: int | None = None, max_pages: int | None = None
    ) -> dict[str, Any]:
        params = {"hours": hours, "limit": limit, "max_pages": max_pages}
        return await self._run(self._ops.simple("spam_diagnosis", number, params=params))

    async def balance(self) -> dict[str, Any]:
        return await self._run(self._ops.simple("balance"))

    async def transactions(self, *, page: int | None = None, limit: int | None = None) -> dict[str, Any]:
        return await self._run(self._ops.simple("transactions", params={"page": page, "limit": limit}))

    async def get_webhooks(self) -> dict[str, Any]:
        return await self._run(self._ops.simple("webhooks_get"))

    async def set_webhooks(self, *, status_url: str | None = None, inbound_url: str | None = None) -> Any:
        body = {k: v for k, v in (("status_url", status_url), ("inbound_url", inbound_url)) if v is not None}
        return await self._run(self._ops.simple("webhooks_set", json=body))

    async def get_number_webhooks(self, phone: str) -> dict[str, Any]:
        return await self._run(self._ops.simple("number_webhooks_get", phone))

    async def set_number_webhooks(self, phone: str, *, inbound_callback: str | None) -> Any:
        json = {"inbound_callback": inbound_callback}
        return await self._run(self._ops.simple("number_webhooks_set", phone, json=json))

    async def regenerate_api_key(self) -> dict[str, Any]:
        return await self._run(self._ops.regenerate_api_key())

    async def post_webhook_bin(self, kind: str, payload: Any) -> Any:
        return await self._run(self._ops.webhook_bin(kind, payload, post=True))

    async def get_webhook_bin(self, kind: str) -> Any:
        return await self._run(self._ops.webhook_bin(kind, post=False))

    async def batch_messages(self, batch_id: str, *, page: int | None = None) -> MessagePage:
        return await self._run(self._ops.batch_messages(batch_id, page))

    # --- phonerelay -----------------------------------------------------------------------
    async def list_inbound_callbacks(self) -> Any:
        return await self._run(self._ops.simple("inbound_callbacks_list"))

    async def create_inbound_callback(self, callback_url: str, **filters: Any) -> Any:
        json = {"callback_url": callback_url, **filters}
        return await self._run(self._ops.simple("inbound_callbacks_create", json=json))

    async def delete_inbound_callback(self, callback_id: str) -> Any:
        return await self._run(self._ops.delete_inbound_callback(callback_id))

    # --- coop -----------------------------------------------------------------------------
    async def list_bulk_jobs(self) -> Any:
        return await self._run(self._ops.simple("bulk_list"))

    async def get_bulk_job(self, job_id: str) -> dict[str, Any]:
        return await self._run(self._ops.simple("bulk_get", job_id))

    async def bulk_results(self, job_id: str) -> Any:
        return await self._run(self._ops.simple("bulk_results", job_id))

    async def attachments(self, message_id: str) -> Any:
        return await self._run(self._ops.simple("attachments", message_id))

    async def queue_stats(self) -> dict[str, Any]:
        return await self._run(self._ops.simple("queue_stats"))

    # --- webhooks -------------------------------------------------------------------------
    async def list_webhooks(self) -> list[dict[str, Any]]:
        return await self._run(self._ops.list_webhooks())

    async def register_webhook(self, url: str, event: str | None = None, *, webhook_id: str | None = None,
                               **extra: Any) -> Any:
        return await self._run(self._ops.register_webhook(url, event, webhook_id, extra))

    async def delete_webhook(self, webhook_id: str) -> Any:
        return await self._run(self._ops.delete_webhook(webhook_id))

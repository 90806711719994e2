"""What the sync and async relay clients share: configuration, authentication, error mapping and
retry decisions, none of it doing I/O.

The clients themselves (:mod:`relay_integrations._async.client`, and its generated sync twin
:mod:`relay_integrations._sync.client`) only execute: they send the requests the dialect's flows
(:mod:`relay_integrations._operations`) ask for and sleep where
:class:`~relay_integrations._retry.RetryPolicy` says so.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from relay_integrations._operations import Credentials, Operations, RelayResponse
from relay_integrations._retry import NEVER_SENT_ERRORS, NOT_TAKEN_STATUSES, RetryPolicy, retry_after_from
from relay_integrations.dialects import get_dialect
from relay_integrations.dialects.base import Capabilities, Dialect, RelayRequest
from relay_integrations.errors import (
    RelayConnectionError,
    RelayError,
    RelayRateLimitError,
    RelayTimeoutError,
    RelayUnavailableError,
    error_for_status,
)
from relay_integrations.settings import check_base_url

logger = logging.getLogger("relay_integrations.client")

DEFAULT_CONNECT_TIMEOUT = 5.0
_REDACTED = "***"


def _user_agent() -> str:
    from relay_integrations import __version__

    return f"relay-integrations/{__version__}"


@functools.lru_cache(maxsize=1)
def default_ssl_context() -> ssl.SSLContext:
    """One verifying context for every client: building one costs ~0.1 s, a client should not."""
    return httpx.create_ssl_context()


@functools.lru_cache(maxsize=1)
def plain_http_context() -> ssl.SSLContext:
    """The context of a client whose relay is at an ``http://`` URL: it never opens TLS.

    Loading the CA bundle is ~20 ms of a ``relay`` command's start-up, spent for nothing on plain
    HTTP. This context trusts no certificate but still verifies, so a request that did reach TLS
    (redirects are never followed) would fail verification rather than skip it.
    """
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


class _NoCookies(httpx.Cookies):
    """Cookies a relay sets are neither kept nor sent back.

    Every request carries its own credentials, so a cookie has no use here, and a stored one would
    ride along on every later request. Skipping httpx's per-response cookie parsing also saves
    about a tenth of a single send's CPU (measured: 630-750 against 680-870 µs a message).
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


_NO_COOKIES = _NoCookies()


class _WithoutCookieJar:
    """Put before ``httpx.Client`` or ``httpx.AsyncClient``: the client's cookie jar is :class:`_NoCookies`."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        raise AttributeError("a relay client keeps no cookies")


class CookielessAsyncClient(_WithoutCookieJar, httpx.AsyncClient):
    """The HTTP pool of a relay client: an ``httpx.AsyncClient`` without a cookie jar."""


class CookielessClient(_WithoutCookieJar, httpx.Client):
    """The HTTP pool of a relay client: an ``httpx.Client`` without a cookie jar."""


def _normalise_base_url(base_url: str, dialect: Dialect) -> str:
    """The relay's root URL: trailing slashes and the doc's base path (``/api/v1``...) removed."""
    try:
        url = check_base_url(base_url)
    except ValueError as exc:
        raise ValueError(f"base_url {exc}") from None
    parts = urlsplit(url)
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
        transport: Any = None,
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
        # Room for the adaptive campaign limit's ceiling. The default transports (_transports) keep each
        # connection alive between requests, so a campaign does not reconnect.
        self._limits = limits or httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self._headers = {"User-Agent": user_agent or _user_agent(), "Accept": "application/json"}
        # Counted under a lock: the sync client is shared by a campaign's worker threads.
        self._overload_answers = 0
        self._overload_lock = threading.Lock()
        self._verify: ssl.SSLContext | bool = verify
        if verify is True:
            plain = urlsplit(self._base_url).scheme == "http"
            self._verify = plain_http_context() if plain else default_ssl_context()
        self._open(transport)

    def _open(self, transport: Any) -> None:
        """Create the HTTP pool (``self._http``), ``self._sleep`` and ``self._token_lock``: the I/O half."""
        raise NotImplementedError

    # --- public properties ----------------------------------------------------------------
    @property
    def dialect(self) -> Dialect:
        return self._dialect

    @property
    def max_connections(self) -> int | None:
        """Connections the client opens to the relay at most (``None``: no bound)."""
        return self._limits.max_connections

    @property
    def capabilities(self) -> Capabilities:
        return self._dialect.capabilities

    @property
    def overload_answers(self) -> int:
        """How many 429 (rate limited) and 503 (cannot queue) answers this client has had, retried or
        not. A caller that decides how many requests to keep in flight (a campaign's adaptive
        concurrency, the status waiter) reads it around a request to back off: a retry that succeeded
        hides the refusal from the result, not from this count."""
        return self._overload_answers

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
        if status in NOT_TAKEN_STATUSES:
            with self._overload_lock:
                self._overload_answers += 1
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
            dialect=self._dialect.name, maybe_sent=not isinstance(exc, NEVER_SENT_ERRORS),
        )) from exc

    def _parse_failed(self, request: RelayRequest, exc: Exception) -> RelayError:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return self._clean(RelayError(
            f"unexpected answer to {request.method} {request.path}: {detail}", dialect=self._dialect.name,
            maybe_sent=True,  # a 2xx the relay gave: it took the request
        ))

    def _url(self, request: RelayRequest) -> str:
        return self._base_url + request.path


_PARSE_ERRORS = (ValueError, KeyError, TypeError, IndexError)



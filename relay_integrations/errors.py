"""One exception hierarchy for everything a relay or a client can refuse.

Exceptions carry the HTTP status, the relay's error code and message; never a credential.

``maybe_sent`` is the one place retry safety is decided: True when the request may have been
taken by the relay (a 500/502/504, a read timeout or a dropped connection after the body left,
an unreadable 2xx answer), False when it surely was not (a connection never made, 4xx, 429, 503).
Task retries in Airflow and Prefect repeat a send only when it is False, or after reconciling.
"""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    """Base of every error this package raises about talking to a relay."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        dialect: str | None = None,
        body: Any = None,
        maybe_sent: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.dialect = dialect
        self.body = body
        self._maybe_sent = maybe_sent

    @property
    def maybe_sent(self) -> bool:
        """Whether the relay may have taken the request (see the module docstring)."""
        if self._maybe_sent is not None:
            return self._maybe_sent
        return self._default_maybe_sent()

    @maybe_sent.setter
    def maybe_sent(self, value: bool) -> None:
        self._maybe_sent = value

    def _default_maybe_sent(self) -> bool:
        status = self.status_code
        return status is not None and status >= 500 and status != 503

    def __str__(self) -> str:
        parts = [self.message]
        details = [f"{k}={v}" for k, v in (("status", self.status_code), ("code", self.code)) if v]
        if self.dialect:
            details.insert(0, self.dialect)
        if details:
            parts.append(f"({', '.join(str(d) for d in details)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r}, code={self.code!r})"


class RelayAuthError(RelayError):
    """401/403: wrong, missing or revoked credentials, or API access not enabled."""


class RelayValidationError(RelayError):
    """400/422, or a message the dialect cannot express; ``field`` names the offending field."""

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class RelayNotFoundError(RelayError):
    """404: no such message, job, number or webhook."""


class RelayConflictError(RelayError):
    """409: the relay already has this id (smsgate's answer to a repeated client id)."""


class RelayInsufficientBalanceError(RelayError):
    """402: the account cannot pay for the message."""


class RelayRateLimitError(RelayError):
    """429: slow down; ``retry_after`` is in seconds when the relay said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RelayUnavailableError(RelayError):
    """502/503/504 or a connection that failed: the relay could not take the request now."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RelayConnectionError(RelayUnavailableError):
    """The request never got an answer (refused, reset, or timed out).

    ``maybe_sent`` is False only when the connection was never made; True by default.
    """

    def _default_maybe_sent(self) -> bool:
        return True


class RelayTimeoutError(RelayConnectionError):
    """The relay did not answer in time; a send may or may not have been taken."""


class RelayServerError(RelayError):
    """500 and other unexpected 5xx answers."""


class UnsupportedOperationError(RelayError):
    """The relay's API has no such endpoint or feature (for example batch sends on phonerelay)."""


def error_for_status(status_code: int) -> type[RelayError]:
    """The exception class a relay's HTTP status maps to."""
    if status_code in (401, 403):
        return RelayAuthError
    if status_code in (400, 413, 415, 422):
        return RelayValidationError
    if status_code == 402:
        return RelayInsufficientBalanceError
    if status_code == 404:
        return RelayNotFoundError
    if status_code == 409:
        return RelayConflictError
    if status_code == 429:
        return RelayRateLimitError
    if status_code in (502, 503, 504):
        return RelayUnavailableError
    return RelayServerError if status_code >= 500 else RelayError

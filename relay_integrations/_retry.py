"""When to retry a relay request, and how long to wait first.

Pure decisions, no I/O: both clients ask :class:`RetryPolicy` after every attempt and do the waiting
themselves (``time.sleep`` or ``anyio.sleep``). The one rule that matters most: a request that could
create a second message (``retry_safe=False``) is repeated only when the relay surely never took it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

#: Answers that mean "not now": retried with backoff.
RETRY_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})

#: Answers that mean "I did not take it" even for a send: 429 rate limited, 503 cannot queue.
#: 502/504 come from a proxy that may have forwarded the request, so a send is not repeated after them.
NOT_TAKEN_STATUSES: frozenset[int] = frozenset({429, 503})

#: Transport errors raised before a single byte of the request left: safe to repeat anything.
NEVER_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

#: Transport errors after which the request may or may not have reached the relay.
MAYBE_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delta-seconds or an HTTP date).

    :param value: the header value, or ``None`` when the answer had none.
    :param now: the current time, for tests; defaults to the clock.
    :return: seconds (never negative), or ``None`` when absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / infinity
        return None
    return max(0.0, seconds)


def retry_after_from(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` of a response's headers, in seconds."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            return parse_retry_after(value)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, honouring ``Retry-After``.

    :param max_retries: repeats after the first attempt (0 = never retry).
    :param backoff_factor: the first wait is drawn from ``[0, backoff_factor]`` seconds, the n-th
        from ``[0, backoff_factor * 2**(n-1)]`` ("full jitter", so clients that failed together do
        not come back together).
    :param max_backoff: upper bound of one computed wait, in seconds.
    :param max_retry_after: a ``Retry-After`` longer than this is not waited for: the error is
        raised at once (carrying ``retry_after``) so the caller's scheduler can come back later
        instead of a worker sleeping for minutes.
    """

    max_retries: int = 3
    backoff_factor: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_factor < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("backoff_factor, max_backoff and max_retry_after must be >= 0")

    def backoff(self, attempt: int) -> float:
        """Jittered wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.max_backoff, self.backoff_factor * (2 ** (attempt - 1)))
        return random.uniform(0.0, ceiling) if ceiling > 0 else 0.0

    def delay_after_error(self, attempt: int, error: httpx.TransportError, *, retry_safe: bool) -> float | None:
        """Seconds to wait before repeating after a transport error, or ``None`` to give up.

        :param attempt: the attempt that just failed, counting from 1.
        :param retry_safe: repeating the request cannot create a second message.
        """
        if attempt > self.max_retries:
            return None
        if isinstance(error, NEVER_SENT_ERRORS):
            return self.backoff(attempt)
        if retry_safe and isinstance(error, MAYBE_SENT_ERRORS):
            return self.backoff(attempt)
        return None

    def delay_after_status(
        self, attempt: int, status_code: int, retry_after: float | None, *, retry_safe: bool
    ) -> float | None:
        """Seconds to wait before repeating after an HTTP answer, or ``None`` to give up (or not retry).

        :param retry_after: the answer's ``Retry-After`` in seconds, if it had one.
        """
        if status_code not in RETRY_STATUSES or attempt > self.max_retries:
            return None
        if not retry_safe and status_code not in NOT_TAKEN_STATUSES:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            # Never earlier than the relay asked; a little jitter so a crowd does not return at once.
            return retry_after + random.uniform(0.0, min(self.backoff_factor, 1.0))
        return self.backoff(attempt)

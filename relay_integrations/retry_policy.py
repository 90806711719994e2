"""Which failures another attempt can fix: one classification for every task runner.

The client already retried each request (:mod:`relay_integrations._retry`); these rules decide what
happens after it gave up, wherever the call ran: an Airflow task, a Prefect task, a wait.

* **transient**: the relay is busy or briefly unreachable (429, 502/503/504, a connection that
  failed). Waits keep waiting through these; task retries are worth it.
* **permanent**: bad input, bad credentials, no money, no such feature. No retry can fix them, so
  tasks fail at once instead of burning their retries.
* **could send twice**: the relay may have taken a send whose answer was lost
  (:attr:`~relay_integrations.errors.RelayError.maybe_sent`) and it cannot recognise a repeat (no
  client idempotency keys: relaysms, coop). Retrying is safe only when the retry looks the message up
  on the relay first.
"""

from __future__ import annotations

from relay_integrations.errors import (
    RelayAuthError,
    RelayError,
    RelayInsufficientBalanceError,
    RelayRateLimitError,
    RelayUnavailableError,
    RelayValidationError,
    UnsupportedOperationError,
)

#: Errors that another attempt cannot fix: bad input, bad credentials, no money, no such feature.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    RelayValidationError,
    RelayAuthError,
    RelayInsufficientBalanceError,
    UnsupportedOperationError,
    ValueError,
    TypeError,
)

#: Errors worth waiting through: the relay is busy or briefly unreachable.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (RelayUnavailableError, RelayRateLimitError)


def is_transient(error: BaseException) -> bool:
    """The relay is busy or briefly unreachable: asking again later can succeed."""
    return isinstance(error, TRANSIENT_ERRORS)


def is_permanent(error: BaseException) -> bool:
    """No retry can fix this (bad input, bad credentials, no money, no such feature)."""
    return isinstance(error, PERMANENT_ERRORS)


def could_send_twice(error: BaseException, *, relay_dedupes: bool, retry_looks_first: bool) -> bool:
    """Whether repeating the failed send could deliver the message a second time.

    :param relay_dedupes: the relay recognises a repeated send by its idempotency key.
    :param retry_looks_first: the retry looks for the message on the relay before sending again.
    """
    maybe_sent = error.maybe_sent if isinstance(error, RelayError) else False
    return maybe_sent and not relay_dedupes and not retry_looks_first


def worth_retrying(error: BaseException) -> bool:
    """A task retry can fix ``error`` and cannot send anything twice: not permanent, and not marked
    ``retry_safe = False`` (errors raised where :func:`could_send_twice` said so)."""
    return not is_permanent(error) and getattr(error, "retry_safe", True) is not False

"""The one polling loop: ask, stop when done or out of time, else sleep; sync and async.

Every wait in the package runs on it (the campaign waiter, the message waiter behind the Prefect
wait tasks, the Airflow status trigger), so they share one rule for time-outs and for errors: a
relay that is busy or briefly unreachable (:func:`~relay_integrations.retry_policy.is_transient`)
is waited through, anything else ends the wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio

from relay_integrations.retry_policy import is_transient

T = TypeVar("T")


class Log(Protocol):
    """What a wait logs to: a ``logging.Logger``, an Airflow task's ``self.log``, Prefect's run logger."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...

logger = logging.getLogger(__name__)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _pause(deadline: float | None, interval: float) -> float | None:
    """Seconds to sleep before the next round, or ``None`` when time is up."""
    if deadline is None:
        return interval
    remaining = deadline - time.monotonic()
    return None if remaining <= 0 else min(interval, remaining)


def poll_until(
    ask: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float | None,
    interval: float,
    log: Log | None = None,
) -> T | None:
    """Call ``ask`` until ``done(answer)`` or ``timeout`` seconds passed (``None``: no limit).

    Transient relay errors are logged and count as a round without an answer.

    :return: the last answer (check ``done`` for a time-out), ``None`` if no round answered.
    """
    deadline = _deadline(timeout)
    answer: T | None = None
    while True:
        try:
            answer = ask()
        except Exception as error:
            if not is_transient(error):
                raise
            (log or logger).warning("Relay busy or unreachable, still waiting: %s", error)
        else:
            if done(answer):
                return answer
        pause = _pause(deadline, interval)
        if pause is None:
            return answer
        time.sleep(pause)


async def apoll_until(
    ask: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    # Not anyio.fail_after: a round in flight finishes and its answer is returned, never cut off mid-way.
    timeout: float | None,  # noqa: ASYNC109
    interval: float,
    log: Log | None = None,
) -> T | None:
    """:func:`poll_until` on an event loop."""
    deadline = _deadline(timeout)
    answer: T | None = None
    while True:
        try:
            answer = await ask()
        except Exception as error:
            if not is_transient(error):
                raise
            (log or logger).warning("Relay busy or unreachable, still waiting: %s", error)
        else:
            if done(answer):
                return answer
        pause = _pause(deadline, interval)
        if pause is None:
            return answer
        await anyio.sleep(pause)

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
from typing import Any, Generic, Protocol, TypeVar, cast

import anyio

from relay_integrations.retry_policy import is_transient

T = TypeVar("T")


class Log(Protocol):
    """What a wait logs to: a ``logging.Logger``, an Airflow task's ``self.log``, Prefect's run logger."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...

logger = logging.getLogger(__name__)


class Rounds(Generic[T]):
    """The loop's decisions, free of I/O: after each round, stop or pause how long.

    The two loops below only perform: ask, hand the outcome to :meth:`after`, sleep.
    """

    def __init__(self, done: Callable[[T], bool], timeout: float | None, interval: float, log: Log | None) -> None:
        self.done = done
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.interval = interval
        self.log = log or logger
        #: The last answer (``None`` if no round answered).
        self.answer: T | None = None

    def after(self, outcome: tuple[T | None, Exception | None]) -> float | None:
        """Seconds to pause before the next round, or ``None`` when the wait is over (done or out of
        time). A transient relay error counts as a round without an answer; any other is raised."""
        answer, error = outcome
        if error is not None:
            if not is_transient(error):
                raise error
            self.log.warning("Relay busy or unreachable, still waiting: %s", error)
        else:
            self.answer = answer
            if self.done(cast(T, answer)):
                return None
        if self.deadline is None:
            return self.interval
        remaining = self.deadline - time.monotonic()
        return None if remaining <= 0 else min(self.interval, remaining)


def _outcome(ask: Callable[[], T]) -> tuple[T | None, Exception | None]:
    try:
        return ask(), None
    except Exception as error:
        return None, error


async def _aoutcome(ask: Callable[[], Awaitable[T]]) -> tuple[T | None, Exception | None]:
    try:
        return await ask(), None
    except Exception as error:
        return None, error


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
    rounds = Rounds(done, timeout, interval, log)
    while (pause := rounds.after(_outcome(ask))) is not None:
        time.sleep(pause)
    return rounds.answer


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
    rounds = Rounds(done, timeout, interval, log)
    # A poll, not a wait for an event: the relay is asked again after each pause.
    while (pause := rounds.after(await _aoutcome(ask))) is not None:  # noqa: ASYNC110
        await anyio.sleep(pause)
    return rounds.answer

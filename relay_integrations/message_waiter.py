"""Waiting on messages named by their ids (and on coop bulk jobs until they list theirs).

One :class:`MessageWaiter` serves every explicit-id wait: the Airflow sensor's poke (one round per
poke), the Airflow status trigger and the Prefect wait tasks (rounds on
:func:`~relay_integrations.polling.poll_until`). A round asks only about messages that have not
settled; what counts as settled, reached or failed is :mod:`relay_integrations.waiting`'s.

A whole campaign is waited on with :class:`~relay_integrations.tracking.CampaignWaiter` instead,
which reads its messages from the campaign store and asks the relay's aggregate views.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

import anyio

from relay_integrations.concurrency import concurrency_limiter
from relay_integrations.dialects.coop import bulk_job_message_ids
from relay_integrations.errors import RelayRateLimitError, RelayUnavailableError
from relay_integrations.models import MessageState, StatusReport
from relay_integrations.polling import Log, apoll_until, poll_until
from relay_integrations.retry_policy import is_transient
from relay_integrations.waiting import StatusVerdict, is_settled, judge_states

logger = logging.getLogger(__name__)

#: Status requests in flight at once on an async client: adaptive by default, as a campaign's sends
#: (one request at first, more while the relay's round trip holds, fewer on 429/503).
STATUS_CONCURRENCY: int | Literal["auto"] = "auto"


class MessageWaiter:
    """Watches messages until each reaches ``target`` or ends badly.

    :param message_ids: the messages to watch.
    :param target: the state to wait for (``delivered`` also satisfies ``sent``).
    :param batch_ids: bulk jobs (coop) whose messages are watched once the relay lists them.
    :param fail_fast: the wait is over as soon as one message failed or was cancelled.
    :param concurrency: status requests in flight at once (async rounds): ``"auto"`` adapts (the
        campaign's limiter, kept across rounds), a number is fixed.
    :param log: where to say that the relay was busy (a task's logger).
    """

    def __init__(
        self,
        message_ids: Iterable[str],
        target: MessageState,
        *,
        batch_ids: Iterable[str] = (),
        fail_fast: bool = False,
        concurrency: int | Literal["auto"] = STATUS_CONCURRENCY,
        log: Log | None = None,
    ) -> None:
        self.message_ids = list(dict.fromkeys(message_ids))
        self.batch_ids = list(dict.fromkeys(batch_ids))
        self.target = MessageState(target)
        self.fail_fast = fail_fast
        self.limiter = concurrency_limiter(concurrency)
        self.log = log or logger
        #: The latest report of every message asked about.
        self.reports: dict[str, StatusReport] = {}
        #: Bulk job id -> the message ids it listed.
        self.jobs: dict[str, list[str]] = {}

    # --- the state of the wait ---------------------------------------------------------------
    def watched(self) -> list[str]:
        """Every message id watched: the ones given, then the ones listed by bulk jobs."""
        return list(dict.fromkeys([*self.message_ids, *(m for b in self.batch_ids for m in self.jobs.get(b, []))]))

    def due(self) -> list[str]:
        """Messages to ask about in the next round: not known yet, or not settled."""
        known = self.reports
        return [m for m in self.watched() if m not in known or not is_settled(known[m].state, self.target)]

    def verdict(self) -> StatusVerdict:
        known = {m: (self.reports[m].state, self.reports[m].error) for m in self.watched() if m in self.reports}
        return judge_states(known, self.target, unknown=self.watched(),
                            unlisted_jobs=[b for b in self.batch_ids if b not in self.jobs])

    def is_over(self, verdict: StatusVerdict) -> bool:
        """Nothing left to wait for: all done, or one failed and ``fail_fast``."""
        return verdict.done or (self.fail_fast and bool(verdict.failed))

    def _skip(self, error: BaseException) -> None:
        """A transient error on one request: that message or job stays unknown until the next round."""
        if not is_transient(error):
            raise error
        self.log.warning("Relay busy or unreachable, will ask again: %s", error)

    def _list_job(self, batch_id: str, answer: Any) -> None:
        listed = bulk_job_message_ids(answer)
        if listed is not None:
            self.jobs[batch_id] = listed

    # --- sync ----------------------------------------------------------------------------------
    def poll(self, client: Any) -> StatusVerdict:
        """One round with a sync client: list the bulk jobs not listed yet, ask about every due message."""
        for batch_id in [b for b in self.batch_ids if b not in self.jobs]:
            try:
                self._list_job(batch_id, client.bulk_results(batch_id))
            except Exception as error:
                self._skip(error)
        for message_id in self.due():
            try:
                self.reports[message_id] = client.get_status(message_id)
            except Exception as error:
                self._skip(error)
        return self.verdict()

    def wait(self, client: Any, *, timeout: float | None, poll_interval: float) -> StatusVerdict:
        """Rounds until the wait is over or ``timeout`` seconds passed (check ``is_over`` of the result)."""
        poll_until(lambda: self.poll(client), self.is_over, timeout=timeout, interval=poll_interval, log=self.log)
        return self.verdict()

    # --- async ---------------------------------------------------------------------------------
    async def apoll(self, client: Any) -> StatusVerdict:
        """One round with an async client, ``concurrency`` requests in flight."""
        in_flight = 0
        slots = anyio.Condition()
        # Errors are collected, not raised inside the task group (which would wrap them in a group):
        # the round finishes, then the first one that is not transient is raised as itself.
        errors: list[Exception] = []

        async def limited(call: Callable[[], Awaitable[Any]]) -> Any:
            nonlocal in_flight
            async with slots:
                while in_flight >= self.limiter.limit:
                    await slots.wait()
                in_flight += 1
                at_send = in_flight
            started, overloaded = time.monotonic(), False
            refusals = client.overload_answers
            try:
                return await call()
            except (RelayRateLimitError, RelayUnavailableError):
                overloaded = True
                raise
            finally:
                finished = time.monotonic()
                # A 429/503 that a retry got past still says "fewer at once".
                overloaded = overloaded or client.overload_answers > refusals
                self.limiter.record(finished - started, at_send, overloaded=overloaded, now=finished)
                async with slots:
                    in_flight -= 1
                    slots.notify_all()

        async def list_job(batch_id: str) -> None:
            try:
                self._list_job(batch_id, await limited(lambda: client.bulk_results(batch_id)))
            except Exception as error:
                errors.append(error)

        async def ask(message_id: str) -> None:
            try:
                self.reports[message_id] = await limited(lambda: client.get_status(message_id))
            except Exception as error:
                errors.append(error)

        async with anyio.create_task_group() as group:
            for batch_id in [b for b in self.batch_ids if b not in self.jobs]:
                group.start_soon(list_job, batch_id)
        async with anyio.create_task_group() as group:
            for message_id in self.due():
                group.start_soon(ask, message_id)
        for error in sorted(errors, key=is_transient):
            self._skip(error)
        return self.verdict()

    async def await_over(
        self, client: Any, *, timeout: float | None, poll_interval: float  # noqa: ASYNC109 -- see apoll_until
    ) -> StatusVerdict:
        """:meth:`wait` on an event loop."""
        await apoll_until(lambda: self.apoll(client), self.is_over, timeout=timeout, interval=poll_interval,
                          log=self.log)
        return self.verdict()

"""A campaign's send pass, written once: a core of steps and two thin drivers.

The core (:class:`SendPass`, and :meth:`Campaign._steps <relay_integrations.campaign.campaign.Campaign>`
around it) decides everything: which rows it claims, what it reconciles, which request goes next
and how many are in flight, when a sending mark must be committed, what is recorded. It does no
I/O of its own: it is a generator that yields a *step* (a blocking store call, a request, a
pause, a concurrent branch) and gets the step's answer back. A driver performs the steps:

* :func:`drive` with a :class:`~relay_integrations.client.RelayClient`: steps run in the calling
  thread, concurrent branches in a thread pool;
* :func:`adrive` with an :class:`~relay_integrations.client.AsyncRelayClient`: branches are tasks,
  and every blocking call (the ledger, the validation pass) runs in a worker thread, never on the
  event loop.

So ``Campaign.send`` and ``Campaign.asend`` cannot drift apart: only how a step is performed
differs, in about thirty lines per driver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from relay_integrations.campaign.campaign_store import ACCEPTED as ENTRY_ACCEPTED
from relay_integrations.campaign.campaign_store import SENDING as ENTRY_SENDING
from relay_integrations.campaign.campaign_store import Accepted, CampaignStore, CampaignStoreError, RelayIdentity
from relay_integrations.campaign.group_commit import GroupCommit, LedgerWrite
from relay_integrations.campaign.reconcile import MAX_PAGES, Reconciliation, Wanted, _aware, areconcile, reconcile
from relay_integrations.campaign.report import (
    ACCEPTED,
    ALREADY_SENT,
    FAILED,
    IN_DOUBT,
    READY,
)
from relay_integrations.campaign.senders import Pacer, SendUnit, Sent, Strategy, arun_unit, run_unit
from relay_integrations.campaign.store import PlannedRow, RowResult, ScratchStore
from relay_integrations.concurrency import (
    DEFAULT_MAXIMUM,
    AdaptiveConcurrency,
    FixedConcurrency,
    LockedConcurrency,
    concurrency_limiter,
)
from relay_integrations.dialects.base import Dialect
from relay_integrations.errors import RelayAuthError

if TYPE_CHECKING:
    from relay_integrations.campaign.campaign import Campaign

T = TypeVar("T")
HELD = "held"  # internal: another live run holds the row's lease
LOOKUP_CHUNK = 500
# A run that claimed this many rows has the database refresh its statistics before sending
# (CampaignStore.refresh_statistics); smaller runs do not pay for it.
ANALYZE_AFTER_CLAIMING = 1000


# --- steps --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Blocking:
    """Call ``call()``, which blocks (the ledger, the validation pass); answers its result."""

    call: Callable[[], Any]


@dataclass(frozen=True)
class Committed:
    """Make a ledger write and wait until it committed; answers its result (the keys marked)."""

    ledger: GroupCommit
    write: LedgerWrite


@dataclass(frozen=True)
class Request:
    """Send one unit to the relay; answers what it gave (:class:`~relay_integrations.campaign.senders.Sent`)."""

    unit: SendUnit


@dataclass(frozen=True)
class Reconcile:
    """Look messages an earlier try may have sent up on the relay; answers a Reconciliation."""

    wanted: list[Wanted]
    since: datetime | None


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Branch:
    """Run ``steps`` concurrently; answers a handle (a future or task: ``done()``, ``result()``)."""

    steps: Generator[Any, Any, Any]


@dataclass(frozen=True)
class WaitAny:
    """Answers the set of ``handles`` that finished (at least one)."""

    handles: set[Any]


@dataclass(frozen=True)
class WaitAll:
    """Let ``handles`` finish (an async driver being cancelled cancels them instead)."""

    handles: set[Any]


Step = Blocking | Committed | Request | Reconcile | Pause | Branch | WaitAny | WaitAll
Steps = Generator[Step, Any, T]


# --- drivers ------------------------------------------------------------------------------
#: What the last step gave: its answer, or the error it raised.
Outcome = tuple[Any, "BaseException | None"]


@dataclass(frozen=True)
class Finished:
    """The steps are over; ``value`` is what they returned."""

    value: Any


def advance(steps: Steps[Any], outcome: Outcome) -> Step | Finished:
    """Hand the last step's outcome to the core; its next step, or :class:`Finished`."""
    answer, error = outcome
    try:
        return steps.throw(error) if error is not None else steps.send(answer)
    except StopIteration as stop:
        return Finished(stop.value)


def drive(steps: Steps[T], client: Any, *, workers: int = DEFAULT_MAXIMUM) -> T:
    """Run ``steps`` with a sync client: here, and branches in a pool of ``workers`` threads."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="relay-campaign")

    def run(steps: Steps[Any]) -> Any:
        outcome: Outcome = (None, None)
        while not isinstance(step := advance(steps, outcome), Finished):
            try:
                outcome = (perform(step), None)
            except BaseException as exc:  # handed to the core, which decides (and usually re-raises)
                outcome = (None, exc)
        return step.value

    def perform(step: Step) -> Any:
        if isinstance(step, Blocking):
            return step.call()
        if isinstance(step, Committed):
            return step.ledger.commit(step.write)
        if isinstance(step, Request):
            return run_unit(client, step.unit)
        if isinstance(step, Reconcile):
            return reconcile(client, step.wanted, since=step.since)
        if isinstance(step, Pause):
            return time.sleep(step.seconds)
        if isinstance(step, Branch):
            return pool.submit(run, step.steps)
        if isinstance(step, WaitAny):
            return wait(step.handles, return_when=FIRST_COMPLETED).done
        return wait(step.handles)

    try:
        result: T = run(steps)
        return result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


async def adrive(steps: Steps[T], client: Any) -> T:
    """Run ``steps`` with an async client: branches as tasks, blocking calls in worker threads."""
    cancelled = False

    async def run(steps: Steps[Any]) -> Any:
        nonlocal cancelled
        outcome: Outcome = (None, None)
        while not isinstance(step := advance(steps, outcome), Finished):
            try:
                outcome = (await perform(step), None)
            except BaseException as exc:
                cancelled = cancelled or isinstance(exc, asyncio.CancelledError)
                outcome = (None, exc)
        return step.value

    async def perform(step: Step) -> Any:
        if isinstance(step, Blocking):
            return await asyncio.to_thread(step.call)
        if isinstance(step, Committed):
            return await asyncio.wrap_future(step.ledger.submit(step.write))
        if isinstance(step, Request):
            return await arun_unit(client, step.unit)
        if isinstance(step, Reconcile):
            return await areconcile(client, step.wanted, since=step.since)
        if isinstance(step, Pause):
            return await asyncio.sleep(step.seconds)
        if isinstance(step, Branch):
            return asyncio.ensure_future(run(step.steps))
        if isinstance(step, WaitAny):
            done, _ = await asyncio.wait(step.handles, return_when=asyncio.FIRST_COMPLETED)
            return done
        if cancelled:
            for task in step.handles:
                task.cancel()
        return await asyncio.wait(step.handles)

    result: T = await run(steps)
    return result


# --- the send pass ------------------------------------------------------------------------
class SendPass:
    """One send pass: claims rows in the store, reconciles rows in doubt, sends, records.

    Rows another live run holds are ``held``: once the main pass is done the run waits for their
    leases to be renewed no more, takes them over and finishes them (reconciling the ones that
    may already be on the relay), so it never exits leaving a row unsent.
    """

    def __init__(self, campaign: Campaign, store: CampaignStore, relay: RelayIdentity, scratch: ScratchStore,
                 dialect: Dialect, strategy: Strategy, *, max_connections: int | None,
                 earlier_try_since: datetime | None = None) -> None:
        self.campaign = campaign
        self.campaign_id = campaign.campaign_id
        self.store = store
        self.relay = relay
        self.scratch = scratch
        self.dialect = dialect
        self.strategy = strategy
        self.pacer = Pacer(campaign.rate_limit)
        self.ledger = GroupCommit(store, relay, campaign.campaign_id)
        self.reconciled = 0
        self.progress = campaign._sending_progress(scratch)
        self.in_doubt_since: datetime | None = _aware(earlier_try_since) if earlier_try_since else None
        self.check_all = earlier_try_since is not None
        # The relay refuses a repeated client key: a second send of a row is harmless, so no mark
        # precedes the request (a run that dies leaves the row "claimed", to be sent again).
        self.marks_needed = not dialect.capabilities.client_idempotency_keys
        maximum = min(DEFAULT_MAXIMUM, max_connections or DEFAULT_MAXIMUM)
        inner = concurrency_limiter(campaign.concurrency, maximum=maximum)
        if isinstance(inner, AdaptiveConcurrency) and strategy in ("batch", "bulk"):
            # Pipelining: one batch is on the relay while the next is built and sent.
            inner = AdaptiveConcurrency(initial=min(2, maximum), maximum=maximum)
        self.limiter = LockedConcurrency(inner)
        self.peak_in_flight = 0
        self._pending: list[RowResult] = []

    @property
    def concurrency(self) -> dict[str, Any]:
        """What the run chose: ``mode`` (auto or fixed), ``peak`` requests in flight, ``final`` limit."""
        mode = "fixed" if isinstance(self.limiter.inner, FixedConcurrency) else "auto"
        return {"mode": mode, "peak": self.peak_in_flight, "final": self.limiter.limit}

    # --- the pass ----------------------------------------------------------------------------
    def steps(self) -> Steps[None]:
        failed = True
        self.store.start_heartbeat()
        try:
            yield Blocking(partial(self.claim, [READY, IN_DOUBT]))
            self.progress.total = self.scratch.count(READY) + self.scratch.count(IN_DOUBT)
            if self.progress.total >= ANALYZE_AFTER_CLAIMING:
                yield Blocking(self.store.refresh_statistics)
            while True:
                wanted = self.in_doubt()
                if wanted:
                    outcome = yield Reconcile(wanted, self.in_doubt_since)
                    yield Blocking(partial(self.settle, outcome))
                yield from self.send_units()
                if not self.scratch.count(HELD):
                    break
                self.check_store()
                yield Pause(max(0.05, min(1.0, self.store.lease_seconds / 4)))
                yield Blocking(partial(self.claim, [HELD]))
            failed = False
        finally:
            yield Blocking(partial(self.finish, failed))

    def send_units(self) -> Steps[None]:
        """Every unit, at most ``limiter.limit`` in flight; the next one is built while they are."""
        in_flight: set[Any] = set()
        try:
            for unit in self.units():
                while len(in_flight) >= self.limiter.limit:
                    in_flight -= (yield from self.collect(in_flight))
                in_flight.add((yield Branch(self.send_unit(unit, len(in_flight) + 1))))
                self.peak_in_flight = max(self.peak_in_flight, len(in_flight))
            while in_flight:
                in_flight -= (yield from self.collect(in_flight))
        finally:
            if in_flight:  # on an error, requests already running finish and reach the ledger
                yield WaitAll(in_flight)
            self.flush_results()

    def collect(self, in_flight: set[Any]) -> Steps[set[Any]]:
        done: set[Any] = yield WaitAny(in_flight)
        for handle in done:
            self.apply(handle.result())
        return done

    def send_unit(self, unit: SendUnit, at_send: int) -> Steps[list[RowResult]]:
        """One request: paced, marked as sending (committed) first where the relay needs it, recorded."""
        delay = self.pacer.delay_for(unit.size)
        if delay > 0:
            yield Pause(delay)
        self.check_store()
        keys = [p.idempotency_key or "" for p in unit.rows]
        if self.marks_needed:
            marked: set[str] = yield Committed(self.ledger, LedgerWrite(marks=keys))
            if len(marked) != len(set(keys)):  # a lease was lost: another run has these rows
                return [RowResult(p.row, HELD) for p in unit.rows]
        started = time.monotonic()
        try:
            sent: Sent = yield Request(unit)
        except RelayAuthError:
            yield Committed(self.ledger, LedgerWrite(settled=keys))
            raise
        finished = time.monotonic()
        self.limiter.record(finished - started, at_send, overloaded=sent.overloaded, now=finished)
        results = sent.results
        accepted, settled = self.ledger_entries(unit, results)
        yield Committed(self.ledger, LedgerWrite(accepted=accepted, settled=settled))
        return results

    # --- claiming and reconciling (blocking: run by the driver where blocking is allowed) -----
    def claim(self, states: list[str]) -> None:
        """Take the leases of the rows in ``states``; label each by what the store says."""
        for chunk in _chunks(self.scratch.iter_rows(states, with_message=False), LOOKUP_CHUNK):
            claims = {c.idempotency_key: c for c in self.store.claim(
                self.relay, self.campaign_id, [(p.idempotency_key or "", p.address or "", p.row) for p in chunk])}
            others = [p.idempotency_key or "" for p in chunk if (p.idempotency_key or "") not in claims]
            existing = self.store.lookup(self.relay, self.campaign_id, others) if others else {}
            results: list[RowResult] = []
            for p in chunk:
                key = p.idempotency_key or ""
                claim = claims.get(key)
                if claim is not None:
                    # With ``check_all`` the store may not know what an earlier try elsewhere sent.
                    if claim.status == ENTRY_SENDING or (self.check_all and p.state in (IN_DOUBT, HELD)):
                        results.append(RowResult(p.row, IN_DOUBT))
                        if claim.started_at is not None and (
                                self.in_doubt_since is None or claim.started_at < self.in_doubt_since):
                            self.in_doubt_since = claim.started_at
                    elif p.state != READY:
                        results.append(RowResult(p.row, READY))
                    continue
                entry = existing.get(key)
                if entry is not None and entry.status == ENTRY_ACCEPTED:
                    results.append(RowResult(p.row, ALREADY_SENT, message_id=entry.message_id, batch_id=entry.batch_id))
                    self.progress.already_sent += 1
                else:
                    results.append(RowResult(p.row, HELD))
            self.scratch.set_results(results)

    def in_doubt(self) -> list[Wanted]:
        if self.dialect.capabilities.client_idempotency_keys:
            # The relay refuses a repeated key: sending again is safe and settles the doubt.
            self.scratch.relabel(IN_DOUBT, READY)
            return []
        return [Wanted(p.idempotency_key or "", p.address or "", (p.message or {}).get("text"))
                for p in self.scratch.iter_rows([IN_DOUBT])]

    def settle(self, outcome: Reconciliation) -> None:
        """Rows found on the relay are recorded as sent; the rest go out again, unless unchecked."""
        rows = {p.idempotency_key: p for p in self.scratch.iter_rows([IN_DOUBT], with_message=False)}
        accepted = [Accepted(k, message_id=m, address=rows[k].address, row=rows[k].row)
                    for k, m in outcome.found.items() if k in rows]
        self.store.record_accepted(self.relay, self.campaign_id, accepted)
        results = [RowResult(rows[a.idempotency_key].row, ALREADY_SENT, message_id=a.message_id) for a in accepted]
        for key in outcome.missing:
            if key not in rows:
                continue
            if outcome.complete:
                results.append(RowResult(rows[key].row, READY))
            else:
                results.append(RowResult(rows[key].row, FAILED, in_doubt=True, error=(
                    f"may have been sent by an earlier try and the relay's list was too long to check "
                    f"({MAX_PAGES} pages); not sent again")))
        self.scratch.set_results(results)
        self.reconciled += len(accepted)
        self.progress.already_sent += len(accepted)
        self.progress.total = self.scratch.count(READY)

    def finish(self, failed: bool) -> None:
        try:
            self.ledger.close()
        finally:
            self.store.stop_heartbeat()
        try:
            self.store.release()
        except CampaignStoreError:
            if not failed:
                raise

    # --- helpers ----------------------------------------------------------------------------
    def check_store(self) -> None:
        if self.store.heartbeat_error is not None:
            raise self.store.heartbeat_error

    def units(self) -> Iterable[SendUnit]:
        return self.campaign._units(self.scratch, self.dialect, self.strategy)

    @staticmethod
    def ledger_entries(unit: SendUnit, results: list[RowResult]) -> tuple[list[Accepted], list[str]]:
        """What the ledger keeps of a unit's results: accepted rows, and refused rows to forget."""
        by_row = {p.row: p for p in unit.rows}
        accepted = [Accepted(by_row[r.row].idempotency_key or "", message_id=r.message_id, batch_id=r.batch_id,
                             address=by_row[r.row].address, row=r.row)
                    for r in results if r.state in (ACCEPTED, ALREADY_SENT)]
        # A refusal drops the entry (a re-run may try again); a failure in doubt keeps it "sending".
        settled = [by_row[r.row].idempotency_key or "" for r in results if r.state == FAILED and not r.in_doubt]
        return accepted, settled

    def apply(self, results: list[RowResult]) -> None:
        """Count a unit's results; they reach the scratch store a page at a time."""
        self._pending.extend(results)
        progress = self.progress
        for r in results:
            progress.processed += 1
            if r.state == ACCEPTED:
                progress.accepted += 1
            elif r.state == ALREADY_SENT:
                progress.already_sent += 1
            elif r.state == FAILED:
                progress.failed += 1
        if len(self._pending) >= 1000:
            self.flush_results()
        if self.campaign.progress:
            self.campaign.progress(progress)

    def flush_results(self) -> None:
        if self._pending:
            self.scratch.set_results(self._pending)
            self._pending = []


def _chunks(rows: Iterable[PlannedRow], size: int) -> Iterable[list[PlannedRow]]:
    chunk: list[PlannedRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

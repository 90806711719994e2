"""Group commit: the ledger writes of concurrent sends share transactions.

A ledger's cost is per transaction (a WAL commit, a round trip to PostgreSQL), not per row. With
one transaction per answered request, a campaign of single sends spends more time committing
than sending. Here the writes queued while a transaction runs become the next one, so requests
that finish together are recorded together.

Each write is answered once its transaction committed:

* a sending mark is waited for *before* its request goes out, so a run that dies mid-request
  leaves the row ``sending`` and the next run reconciles it with the relay (exactly once);
* a result is waited for before its rows count as accepted.

Who commits: one *leader* at a time takes everything queued and commits it. A thread that may
block (the sync driver's, :meth:`GroupCommit.commit`) leads itself when no one is committing, so
a run with one request in flight never hands its writes to another thread (each hand-off costs
a GIL switch around every sqlite3 call). Once its own write is in, it passes whatever queued
meanwhile to the writer thread rather than committing for others. Callers that must not block (an
async campaign on its event loop, :meth:`GroupCommit.submit`) always leave the work to the writer
thread and await a :class:`~concurrent.futures.Future` (``asyncio.wrap_future``).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

from relay_integrations.campaign.campaign_store import Accepted, CampaignStore, RelayIdentity


@dataclass
class LedgerWrite:
    """One write to the ledger: rows to mark as sending, accepted rows to record, refused rows to
    forget. Its ``future`` answers the keys marked (a missing one lost its lease)."""

    marks: list[str] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    future: Future[set[str]] = field(default_factory=Future)


class GroupCommit:
    """One campaign run's ledger writer (see the module docstring). Close it to stop the writer thread."""

    def __init__(self, store: CampaignStore, relay: RelayIdentity, campaign_id: str) -> None:
        self.store = store
        self.relay = relay
        self.campaign_id = campaign_id
        self.transactions = 0
        self._queued: list[LedgerWrite] = []
        self._leading = False  # someone (a caller or the writer thread) is committing what is queued
        self._lock = threading.Lock()
        self._wakeups: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def commit(self, write: LedgerWrite) -> set[str]:
        """Make ``write``, blocking until it committed: led from this thread when no one else is
        committing. Raises what the store raised."""
        if self._enqueue(write):
            self._lead(until=write)
        return write.future.result()

    def submit(self, write: LedgerWrite) -> Future[set[str]]:
        """Queue ``write`` without blocking; the future answers once it committed."""
        if self._enqueue(write):
            self._wake_writer()
        return write.future

    def close(self) -> None:
        """Stop the writer thread once it committed what it was handed."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._wakeups.put(False)
            thread.join()

    def _enqueue(self, write: LedgerWrite) -> bool:
        """Queue ``write``; True when no one is committing, so the caller must lead."""
        if not (write.marks or write.accepted or write.settled):
            write.future.set_result(set())
            return False
        with self._lock:
            self._queued.append(write)
            if self._leading:
                return False  # the leader takes it: it stops only when it finds nothing queued
            self._leading = True
            return True

    def _lead(self, until: LedgerWrite | None = None) -> None:
        """Commit what is queued, group after group, until nothing is; a caller leading for ``until``
        hands the rest to the writer thread once that write is done."""
        while True:
            with self._lock:
                group, self._queued = self._queued, []
                if not group:
                    self._leading = False
                    return
                if until is not None and until.future.done():
                    self._queued = group  # still ours to lead: the writer thread takes over
                    break
            self._commit(group)
        self._wake_writer()

    def _wake_writer(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._writer, name="relay-campaign-ledger", daemon=True)
                self._thread.start()
        self._wakeups.put(True)

    def _writer(self) -> None:
        while self._wakeups.get():
            self._lead()

    def _commit(self, group: list[LedgerWrite]) -> None:
        # A write whose waiter gave up (an async send cancelled before its mark) is not made.
        group = [w for w in group if w.future.set_running_or_notify_cancel()]
        if not group:
            return
        try:
            marked = self.store.write_together(
                self.relay, self.campaign_id, [w.marks for w in group],
                [a for w in group for a in w.accepted], [k for w in group for k in w.settled])
        except BaseException as exc:  # every waiter learns that its write did not happen
            for w in group:
                w.future.set_exception(exc)
            return
        self.transactions += 1
        for w, keys in zip(group, marked, strict=True):
            w.future.set_result(keys)

"""Group commit: the ledger writes of concurrent sends share transactions.

A ledger's cost is per transaction (a WAL commit, a round trip to PostgreSQL), not per row. With
one transaction per answered request, a campaign of single sends spends more time committing
than sending. Here one writer thread takes every write queued since its last commit and makes
them one transaction, so requests that finish together are recorded together.

Each write is a :class:`~concurrent.futures.Future` answered once its transaction committed:

* a sending mark is waited for *before* its request goes out, so a run that dies mid-request
  leaves the row ``sending`` and the next run reconciles it with the relay (exactly once);
* a result is waited for before its rows count as accepted.

The thread holds no lock of the caller's, so it also keeps the ledger off an event loop: an async
campaign awaits the futures (``asyncio.wrap_future``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Collection, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

from relay_integrations.campaign.campaign_store import Accepted, CampaignStore, RelayIdentity


@dataclass
class _Write:
    marks: list[str] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    future: Future[set[str]] = field(default_factory=Future)


class GroupCommit:
    """One campaign run's ledger writer (see the module docstring). Close it to flush."""

    def __init__(self, store: CampaignStore, relay: RelayIdentity, campaign_id: str) -> None:
        self.store = store
        self.relay = relay
        self.campaign_id = campaign_id
        self.transactions = 0
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def mark_sending(self, keys: Collection[str]) -> Future[set[str]]:
        """Mark rows as handed to the relay; answers the keys marked (a missing one lost its lease)."""
        return self._submit(_Write(marks=list(keys)))

    def record(self, accepted: Iterable[Accepted], settled: Iterable[str] = ()) -> Future[set[str]]:
        """Record accepted rows; ``settled`` rows (refused, not in doubt) lose their entry."""
        return self._submit(_Write(accepted=list(accepted), settled=list(settled)))

    def _submit(self, write: _Write) -> Future[set[str]]:
        if not (write.marks or write.accepted or write.settled):
            write.future.set_result(set())
            return write.future
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="relay-campaign-ledger", daemon=True)
                self._thread.start()
        self._queue.put(write)
        return write.future

    def close(self) -> None:
        """Commit what is queued and stop the writer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, stop = [first], False
            while True:
                try:
                    write = self._queue.get_nowait()
                except queue.Empty:
                    break
                if write is None:
                    stop = True
                    break
                group.append(write)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Write]) -> None:
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

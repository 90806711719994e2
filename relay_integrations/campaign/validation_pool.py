"""The validation pass on worker processes, so a large input is checked on more than one core.

A row's checks (its address, the templates, segments, its idempotency key) depend only on the row
and the campaign, so rows can be judged anywhere. What depends on the rows before it
(de-duplication) and the scratch store stay in the calling process, which reads the source,
hands out chunks of rows and takes the judged rows back in input order.

The workers are forked: they start in milliseconds with the campaign (templates, suppression
lists, the account's opt-outs) already in memory, and only rows travel. Fork is safe only in a
process with no other thread (a lock another thread holds at the fork stays held forever in the
child), so ``"auto"`` uses workers only then, only on Linux, only with two cores or more, and only
once the input has shown itself large.

Memory: a forked worker shares this process's pages until either writes to one. Objects alive at
the fork are frozen out of the garbage collector, so the workers' collections do not write to
them, and the workers are forked afresh every :data:`RECYCLE_ROWS` rows, because this process
keeps writing to its own pages. The 1,000,000-row dry run, its worker included, peaks near
87 MiB against 78 MiB in one process (``bench/campaign_throughput.py``).
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Literal

from relay_integrations.campaign.recipients import RowItem, RowReadError
from relay_integrations.campaign.store import RowValues

SERIAL_ROWS = 2_000
"""Rows judged in the calling process before workers are worth starting."""
CHUNK_ROWS = 500
CHUNKS_AHEAD_PER_WORKER = 3
"""Chunks handed to the workers and not yet taken back, per worker: enough to keep them busy, few
enough that memory stays flat however large the input."""
RECYCLE_ROWS = 10_000
"""Rows a set of workers judges before it is replaced by a new fork (see :class:`_Workers`)."""
LOCAL_CHUNKS_AHEAD = 4
"""Chunks this process may judge ahead of the workers' oldest one while it waits for it."""
MOST_AUTO_WORKERS = 2
"""The calling process's own share per row (reading, de-duplication, the store) is about two thirds
of a worker's, so more than two workers add nothing on any machine."""

Judged = tuple[RowValues, list[tuple[str, str]]]
Judge = Callable[[int, "Mapping[str, Any] | RowReadError"], Judged]
WorkersSetting = int | Literal["auto"]

_PR_SET_PDEATHSIG = 1  # linux/prctl.h

_judge_in_worker: Judge | None = None
"""In a worker: what it runs (set as it starts, from the memory it was forked with)."""


def check_workers(setting: WorkersSetting) -> None:
    """Raise ``ValueError`` for a setting :func:`workers_for` cannot honour."""
    if setting == "auto":
        return
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ValueError(f"validation_workers must be 'auto' or a whole number >= 0, got {setting!r}")
    if setting > 0 and not _fork_available():
        raise ValueError("validation_workers needs the fork start method (Linux); use 0 or 'auto' here")


def workers_for(setting: WorkersSetting) -> int:
    """Worker processes for one validation pass (0: the calling process judges every row)."""
    if setting != "auto":
        return int(setting)
    if not _fork_available() or threading.active_count() > 1:
        return 0
    # One core stays for this process, which judges rows itself whenever the workers are behind.
    return max(0, min(MOST_AUTO_WORKERS, len(os.sched_getaffinity(0)) - 1))


def _fork_available() -> bool:
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


class JudgedRows:
    """``judge(number, item)`` for every item, in input order: the first :data:`SERIAL_ROWS` here,
    the rest on ``workers`` forked processes if there are more (and ``workers`` is not 0).

    :attr:`workers_used` says, once iterated, how many worker processes took part.
    """

    def __init__(self, items: Iterable[RowItem], judge: Judge, workers: int) -> None:
        self._items = items
        self._judge = judge
        self._workers = workers
        self.workers_used = 0

    def __iter__(self) -> Iterator[Judged]:
        judge = self._judge
        rows = iter(self._items)
        for number, item in itertools.islice(rows, SERIAL_ROWS if self._workers else None):
            yield judge(number, item)
        first = next(rows, None)
        if first is None:
            return
        rows = itertools.chain((first,), rows)
        self.workers_used = self._workers
        yield from _judged_on_workers(rows, judge, self._workers)


class _Chunk:
    """Rows handed out together, and what became of them."""

    __slots__ = ("future", "judged", "rows")

    def __init__(self, rows: list[RowItem]) -> None:
        self.rows = rows
        self.future: Future[list[Judged]] | None = None  # None: judged in this process
        self.judged: list[Judged] | None = None


class _Workers:
    """The forked worker processes, forked afresh every :data:`RECYCLE_ROWS` rows.

    Why afresh: after a fork, this process and the workers share memory pages until one of them
    writes to a page, and this process writes all the time (it reads, de-duplicates and stores
    rows), so page by page the workers' memory becomes their own. A new fork shares this
    process's pages as they are now; the old workers' copies are freed.
    """

    def __init__(self, judge: Judge, count: int) -> None:
        self.judge = judge
        self.count = count
        self.outstanding = 0  # chunks handed out and not yet taken back
        self._pool: ProcessPoolExecutor | None = None
        self._rows = 0  # rows handed to the current pool

    def can_take(self) -> bool:
        """Whether a chunk may be handed out now: not while a worn pool finishes its last chunks."""
        if self._pool is not None and self._rows >= RECYCLE_ROWS:
            if self.outstanding:
                return False
            self._pool.shutdown(wait=True)  # its threads end too: the next fork happens beside none
            self._pool = None
        return True

    def submit(self, payload: bytes, rows: int) -> Future[list[Judged]]:
        if self._pool is None:
            # With fork, initargs reach the workers in the copied memory, not pickled.
            self._pool = ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_start_worker, initargs=(self.judge, os.getpid()))
            self._rows = 0
            was_frozen = gc.get_freeze_count() > 0
            gc.freeze()  # the workers' collections then leave the pages they share with this process alone
            try:  # the workers are forked at the first submit
                future = self._pool.submit(_judge_chunk, payload)
            finally:
                if not was_frozen:
                    gc.unfreeze()
        else:
            future = self._pool.submit(_judge_chunk, payload)
        self._rows += rows
        self.outstanding += 1
        return future

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _judged_on_workers(rows: Iterator[RowItem], judge: Judge, count: int) -> Iterator[Judged]:
    """Chunks go to the workers; while the oldest is not back, this process judges the next chunk of
    the source itself instead of waiting, so it never idles while rows remain."""
    workers = _Workers(judge, count)
    in_pool_target = count * CHUNKS_AHEAD_PER_WORKER
    most_pending = in_pool_target + LOCAL_CHUNKS_AHEAD
    pending: deque[_Chunk] = deque()  # in input order
    chunks = _chunks(rows)
    broken = False

    def hand_out() -> None:
        while workers.outstanding < in_pool_target and len(pending) < most_pending and workers.can_take():
            chunk_rows = next(chunks, None)
            if chunk_rows is None:
                return
            chunk = _Chunk(chunk_rows)
            pending.append(chunk)
            try:
                payload = pickle.dumps(chunk_rows, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # a row of objects pickle cannot copy: judged in this process
                continue
            chunk.future = workers.submit(payload, len(chunk_rows))

    try:
        hand_out()
        while pending:
            head = pending[0]
            if (not broken and head.future is not None and not head.future.done()
                    and len(pending) < most_pending):
                chunk_rows = next(chunks, None)
                if chunk_rows is not None:
                    chunk = _Chunk(chunk_rows)
                    chunk.judged = [judge(number, item) for number, item in chunk_rows]
                    pending.append(chunk)
                    continue
            pending.popleft()
            results = head.judged
            if results is None and head.future is not None:
                workers.outstanding -= 1
                if not broken:
                    try:
                        results = head.future.result()
                    except BrokenProcessPool:  # a worker died (killed, out of memory): the rest is judged here
                        broken = True
            if results is None:
                results = [judge(number, item) for number, item in head.rows]
            yield from results
            if not broken:
                hand_out()
        for chunk_rows in chunks:  # left only after a broken pool
            for number, item in chunk_rows:
                yield judge(number, item)
    finally:
        workers.close()


def _chunks(rows: Iterator[RowItem]) -> Iterator[list[RowItem]]:
    while chunk := list(itertools.islice(rows, CHUNK_ROWS)):
        yield chunk


def _start_worker(judge: Judge, parent: int) -> None:
    """Runs in a worker as it starts."""
    global _judge_in_worker
    _judge_in_worker = judge
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when the process that forked it dies, even by SIGKILL.

    Why: a worker waits for chunks on a pipe whose other end it also holds (both are inherited at
    the fork), so it never sees the parent go; it would live on, holding the pipes of a killed
    task's log, for ever.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        return
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(1)


def _judge_chunk(payload: bytes) -> list[Judged]:
    """Runs in a worker."""
    assert _judge_in_worker is not None, "validation workers start with _start_worker"
    judge = _judge_in_worker
    return [judge(number, item) for number, item in pickle.loads(payload)]

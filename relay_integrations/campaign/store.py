"""A campaign run's scratch store: one record per recipient row, in a temporary SQLite file.

The validation pass writes every row's outcome here (with the rendered message for rows to send);
the send pass reads the rows to send back in pages and writes their results; the report's rows are
a read-only view of the same table. Nothing grows in memory with the number of recipients.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

_SCHEMA = """
CREATE TABLE rows (
    row INTEGER PRIMARY KEY,
    address TEXT,
    state TEXT NOT NULL,
    error TEXT,
    segments INTEGER,
    idempotency_key TEXT,
    group_key TEXT,
    message BLOB,
    message_id TEXT,
    batch_id TEXT,
    reason TEXT,
    not_before TEXT
);
CREATE TABLE errors (row INTEGER, field TEXT NOT NULL, message TEXT NOT NULL);
CREATE TABLE seen (address TEXT PRIMARY KEY) WITHOUT ROWID;
"""

REPORT_COLUMNS = ("row", "address", "message_id", "state", "error", "segments", "idempotency_key", "batch_id",
                  "reason", "not_before")
PAGE_SIZE = 1000


@dataclass
class PlannedRow:
    """One recipient row as the validation pass left it."""

    row: int
    address: str | None
    state: str
    error: str | None = None
    segments: int | None = None
    idempotency_key: str | None = None
    group_key: str | None = None
    message: dict[str, Any] | None = None
    message_id: str | None = None
    batch_id: str | None = None
    # Why a row is not sent in this run (suppressed, deferred), and for deferred rows the earliest
    # moment it may go (ISO 8601, UTC).
    reason: str | None = None
    not_before: str | None = None


RowValues = tuple[Any, ...]
"""A planned row as the scratch store keeps it: the ``rows`` table's columns, the message pickled."""


def row_values(planned: PlannedRow) -> RowValues:
    message = pickle.dumps(planned.message, protocol=pickle.HIGHEST_PROTOCOL) if planned.message else None
    return (planned.row, planned.address, planned.state, planned.error, planned.segments,
            planned.idempotency_key, planned.group_key, message, planned.message_id, planned.batch_id,
            planned.reason, planned.not_before)


@dataclass(frozen=True)
class RowResult:
    """What happened to one row in the send pass."""

    row: int
    state: str
    message_id: str | None = None
    batch_id: str | None = None
    error: str | None = None
    # The request may have reached the relay although it failed (timeout, dropped connection, 5xx).
    in_doubt: bool = False


class ScratchStore:
    """The temporary SQLite file behind one run; removed when closed or garbage-collected."""

    def __init__(self) -> None:
        fd, path = tempfile.mkstemp(prefix="relay-campaign-", suffix=".sqlite")
        os.close(fd)
        self.path = path
        # One thread writes at a time (the campaign's main thread, or the event loop), but that
        # may not be the thread that created the store (async planning runs in a worker thread).
        self.conn = sqlite3.connect(path, check_same_thread=False)
        # Scratch data: losing it in a crash costs nothing, so skip journaling and syncing.
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-8000")
        self.conn.executescript(_SCHEMA)
        self._pending: list[tuple[Any, ...]] = []
        self._pending_errors: list[tuple[int, str, str]] = []
        self._finalizer = weakref.finalize(self, ScratchStore._cleanup, self.conn, path)

    @staticmethod
    def _cleanup(conn: sqlite3.Connection, path: str) -> None:
        conn.close()
        try:
            os.unlink(path)
        except OSError:
            pass

    def close(self) -> None:
        self._finalizer()

    # --- validation pass ----------------------------------------------------------------
    def first_time_seen(self, address: str) -> bool:
        """True the first time ``address`` is offered (de-duplication), False afterwards."""
        cur = self.conn.execute("INSERT OR IGNORE INTO seen (address) VALUES (?)", (address,))
        return cur.rowcount == 1

    def add(self, planned: PlannedRow, errors: Sequence[tuple[str, str]] = ()) -> None:
        self.add_values(row_values(planned), errors)

    def add_values(self, values: RowValues, errors: Sequence[tuple[str, str]] = ()) -> None:
        """Add a row as :func:`row_values` gives it (what a validation worker process sends back)."""
        self._pending.append(values)
        if errors:
            self._pending_errors.extend((values[0], field, text) for field, text in errors)
        if len(self._pending) >= PAGE_SIZE:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.conn.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self._pending)
            self._pending.clear()
        if self._pending_errors:
            self.conn.executemany("INSERT INTO errors VALUES (?, ?, ?)", self._pending_errors)
            self._pending_errors.clear()
        self.conn.commit()

    def finish_planning(self) -> None:
        self.flush()
        self.conn.execute("DELETE FROM seen")
        self.conn.execute("CREATE INDEX rows_group ON rows (group_key, row)")
        self.conn.commit()

    # --- send pass ----------------------------------------------------------------------
    def iter_rows(self, states: Sequence[str], *, by_group: bool = False,
                  with_message: bool = True) -> Iterator[PlannedRow]:
        """Rows in ``states``, in row order or grouped by content (``group_key``, then row), paged;
        ``with_message=False`` leaves the message out (cheaper when only keys and states matter)."""
        marks = ",".join("?" * len(states))
        body = "message" if with_message else "NULL"
        cols = f"row, address, state, error, segments, idempotency_key, group_key, {body}, message_id, batch_id"
        last: tuple[Any, ...] = ("", -1) if by_group else (-1,)
        while True:
            if by_group:
                sql = (f"SELECT {cols} FROM rows WHERE state IN ({marks}) AND (group_key, row) > (?, ?)"
                       f" ORDER BY group_key, row LIMIT {PAGE_SIZE}")
            else:
                sql = f"SELECT {cols} FROM rows WHERE state IN ({marks}) AND row > ? ORDER BY row LIMIT {PAGE_SIZE}"
            page = self.conn.execute(sql, (*states, *last)).fetchall()
            if not page:
                return
            for rec in page:
                message = pickle.loads(rec[7]) if rec[7] is not None else None
                yield PlannedRow(rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], message, rec[8], rec[9])
            tail = page[-1]
            last = (tail[6] or "", tail[0]) if by_group else (tail[0],)

    def set_results(self, results: Sequence[RowResult]) -> None:
        self.conn.executemany(
            # A deferred row (it has a not_before) that gets a result is deferred no more.
            "UPDATE rows SET state = ?, message_id = ?, batch_id = ?, error = ?,"
            " reason = CASE WHEN not_before IS NULL THEN reason END, not_before = NULL WHERE row = ?",
            [(r.state, r.message_id, r.batch_id, r.error, r.row) for r in results],
        )
        self.conn.commit()

    def relabel(self, old_state: str, new_state: str) -> None:
        self.conn.execute("UPDATE rows SET state = ? WHERE state = ?", (new_state, old_state))
        self.conn.commit()

    # --- reading back -------------------------------------------------------------------
    def count(self, state: str | None = None) -> int:
        if state is None:
            (n,) = self.conn.execute("SELECT COUNT(*) FROM rows").fetchone()
        else:
            (n,) = self.conn.execute("SELECT COUNT(*) FROM rows WHERE state = ?", (state,)).fetchone()
        return int(n)

    def segment_total(self, states: Sequence[str]) -> int:
        marks = ",".join("?" * len(states))
        (n,) = self.conn.execute(
            f"SELECT COALESCE(SUM(segments), 0) FROM rows WHERE state IN ({marks})", tuple(states)
        ).fetchone()
        return int(n)

    def errors(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT row, field, message FROM errors ORDER BY row, rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [{"row": r, "field": f, "message": m} for r, f, m in self.conn.execute(sql)]

    def earliest_not_before(self, state: str) -> str | None:
        """The earliest ``not_before`` of the rows in ``state`` (ISO 8601, UTC), or None."""
        (value,) = self.conn.execute("SELECT MIN(not_before) FROM rows WHERE state = ?", (state,)).fetchone()
        return str(value) if value is not None else None

    def error_count(self) -> int:
        (n,) = self.conn.execute("SELECT COUNT(*) FROM errors").fetchone()
        return int(n)

    def report_rows(self, offset: int = 0, limit: int = -1) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            f"SELECT {', '.join(REPORT_COLUMNS)} FROM rows ORDER BY row LIMIT ? OFFSET ?", (limit, offset)
        )
        return [dict(zip(REPORT_COLUMNS, rec, strict=True)) for rec in cur]

    def report_rows_after(self, last_row: int, limit: int) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            f"SELECT {', '.join(REPORT_COLUMNS)} FROM rows WHERE row > ? ORDER BY row LIMIT ?", (last_row, limit)
        )
        return [dict(zip(REPORT_COLUMNS, rec, strict=True)) for rec in cur]

    def message_ids(self) -> list[str]:
        cur = self.conn.execute(
            "SELECT message_id FROM rows WHERE message_id IS NOT NULL GROUP BY message_id ORDER BY MIN(row)"
        )
        return [m for (m,) in cur]


class ReportRows(Sequence[dict[str, Any]]):
    """The report's per-recipient rows, read from the run's store on demand (in row order)."""

    def __init__(self, store: ScratchStore) -> None:
        self._store = store
        self._len = store.count()

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._len)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._store.report_rows(start, max(0, stop - start))
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("report row index out of range")
        return self._store.report_rows(index, 1)[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        last = -1
        while True:
            page = self._store.report_rows_after(last, PAGE_SIZE)
            if not page:
                return
            yield from page
            last = page[-1]["row"]

    def __repr__(self) -> str:
        return f"<ReportRows {self._len} rows>"

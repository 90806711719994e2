"""The reference relay's durable store: one SQLite database in WAL mode.

Why it is safe to acknowledge after :meth:`Store.write` returns: every write runs in one
``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction and the HTTP answer is sent only afterwards.
With ``journal_mode=WAL`` and ``synchronous=NORMAL`` a committed transaction is in the WAL file
(in the OS page cache) before ``COMMIT`` returns; killing the process (``kill -9``) cannot lose
it, only an operating-system crash or power cut before the next checkpoint could. Pass
``synchronous="FULL"`` (``relay serve --synchronous full``) to fsync on every commit as well.

One connection, guarded by a lock, serves every thread: the relay is one process on a laptop,
SQLite serialises writers anyway, and a statement takes microseconds, so a connection pool would
add nothing but contention. Batch and bulk sends insert all their rows in one transaction, on
the store's writer thread (:meth:`Store.write_async`): SQLite releases the GIL while it works, so
the event loop parses and checks the next request meanwhile, and does not stall while the
delivery worker holds the lock for its tick. The answer still waits for the ``COMMIT``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    dialect TEXT NOT NULL,
    direction TEXT NOT NULL DEFAULT 'outbound',
    channel TEXT NOT NULL DEFAULT 'sms',
    state TEXT NOT NULL,
    to_addr TEXT,
    from_addr TEXT,
    body TEXT,
    idem_key TEXT,
    client_ref TEXT,
    batch_id TEXT,
    batch_index INTEGER,
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    fail_mode INTEGER NOT NULL DEFAULT 0,
    dead_letter INTEGER NOT NULL DEFAULT 0,
    notify INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    segments INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    sending_at REAL,
    sent_at REAL,
    final_at REAL,
    updated_at REAL NOT NULL,
    next_at REAL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_idem ON messages(dialect, idem_key) WHERE idem_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_ref ON messages(dialect, client_ref) WHERE client_ref IS NOT NULL;
-- The delivery worker's steps: due rows of one state, in next_at order, with the priority queued
-- rows leave by (see delivery.py). Keyed by state first, so a step reads only its own state's
-- rows instead of every due row; replaces an index on next_at alone.
CREATE INDEX IF NOT EXISTS messages_due_by_state ON messages(state, next_at, priority) WHERE next_at IS NOT NULL;
DROP INDEX IF EXISTS messages_due;
CREATE INDEX IF NOT EXISTS messages_batch ON messages(batch_id, batch_index) WHERE batch_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_dialect_seq ON messages(dialect, seq);

CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    dialect TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_addr TEXT,
    total INTEGER NOT NULL,
    created_at REAL NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    dialect TEXT NOT NULL,
    url TEXT NOT NULL,
    event TEXT,
    number TEXT,
    config TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    dialect TEXT NOT NULL,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    message_id TEXT,
    body BLOB NOT NULL,
    token TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(next_attempt_at) WHERE status = 'pending';

CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS transactions (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    amount_micros INTEGER NOT NULL,
    description TEXT NOT NULL,
    balance_after_micros INTEGER NOT NULL,
    message_id TEXT
);

CREATE TABLE IF NOT EXISTS bins (
    seq INTEGER PRIMARY KEY,
    bin TEXT NOT NULL,
    received_at REAL NOT NULL,
    content_type TEXT,
    body TEXT NOT NULL
);
"""


class Store:
    """Thread-safe access to the relay database.

    :param path: database file, or ``:memory:`` (state lives only as long as the process).
    :param synchronous: SQLite ``synchronous`` pragma, ``NORMAL`` (default) or ``FULL``.
    """

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = path
        self._lock = threading.RLock()
        # One thread, so request transactions run in the order they were submitted.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-store")
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly one write().
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._conn.execute("PRAGMA foreign_keys=OFF")
        self._conn.execute("PRAGMA temp_store=MEMORY")
        self._conn.executescript(SCHEMA)
        columns = {r["name"] for r in self._conn.execute("PRAGMA table_info(messages)")}
        if "notify" not in columns:  # databases from before per-message webhook flags
            self._conn.execute("ALTER TABLE messages ADD COLUMN notify INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        with self._lock:
            self._conn.close()

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one immediate transaction; committed when this returns."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    async def write_async(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """:meth:`write` on the writer thread, awaited: committed when this returns, as with ``write``.

        If the awaiting request is cancelled the transaction still completes (or rolls back) on
        its own; a caller that did not see the answer retries with its idempotency key.
        """
        return await asyncio.wrap_future(self._writer.submit(self.write, fn))

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self._conn)

    # --- small conveniences -----------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return self.read(lambda c: c.execute(sql, params).fetchall())

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.read(lambda c: c.execute(sql, params).fetchone())
        return row

    def get_setting(self, key: str) -> str | None:
        row = self.query_one("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_setting(self, key: str, value: str) -> None:
        self.write(lambda c: c.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        ))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads_extra(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    raw = row["extra"]
    if not raw:
        return {}
    try:
        value: dict[str, Any] = json.loads(raw)
    except RecursionError:
        # Written before the edge bounds existed (see .bounds): readable, if not in full.
        return {"unreadable": "stored JSON nested too deep to read back"}
    return value


MESSAGE_COLUMNS = (
    "id", "dialect", "direction", "channel", "state", "to_addr", "from_addr", "body", "idem_key",
    "client_ref", "batch_id", "batch_index", "priority", "attempts", "fail_mode", "notify", "error", "segments",
    "created_at", "sending_at", "sent_at", "final_at", "updated_at", "next_at", "extra",
)


def _insert_sql(columns: Sequence[str]) -> str:
    """An INSERT of a message with ``columns``; a repeat of a unique key (id, idempotency key, client
    reference) inserts nothing."""
    return (f"INSERT INTO messages ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
            "ON CONFLICT DO NOTHING")


_INSERT_MESSAGE = _insert_sql(MESSAGE_COLUMNS)


def message_row(**values: Any) -> tuple[Any, ...]:
    """A tuple for :func:`insert_message` from keyword values (missing columns default sensibly)."""
    g = values.get
    extra = g("extra", "{}")
    if isinstance(extra, dict):
        extra = dumps(extra)
    created_at = values["created_at"]
    return (
        values["id"], values["dialect"], g("direction", "outbound"), g("channel", "sms"), values["state"],
        g("to_addr"), g("from_addr"), g("body"), g("idem_key"), g("client_ref"), g("batch_id"), g("batch_index"),
        g("priority", 0), g("attempts", 0), g("fail_mode", 0), g("notify", 0), g("error"), g("segments", 1), created_at,
        g("sending_at"), g("sent_at"), g("final_at"), g("updated_at", created_at), g("next_at"), extra,
    )


QUEUED_COLUMNS = (
    "id", "dialect", "channel", "state", "to_addr", "from_addr", "body", "batch_id", "batch_index", "priority",
    "fail_mode", "notify", "segments", "created_at", "updated_at", "next_at", "extra",
)
"""The columns a newly queued message sets; the others keep their defaults (NULL, 0, ``outbound``)."""
_INSERT_QUEUED = _insert_sql(QUEUED_COLUMNS)


def queued_row(message_id: str, dialect: str, channel: str, to_addr: str | None, from_addr: str | None,
               body: str | None, batch_id: str | None, batch_index: int | None, priority: int, fail_mode: int,
               notify: int, segments: int, created_at: float, next_at: float | None, extra: str) -> tuple[Any, ...]:
    """A newly queued outbound message, for :func:`insert_queued_messages` (the row it stores is the
    one :func:`message_row` and :func:`insert_message` store).

    The batch paths build a thousand of these per request; ``message_row``'s keyword dict and
    lookups were a measurable share of that.
    """
    return (message_id, dialect, channel, "queued", to_addr, from_addr, body, batch_id, batch_index, priority,
            fail_mode, notify, segments, created_at, created_at, next_at, extra)


def insert_message(conn: sqlite3.Connection, row: tuple[Any, ...]) -> bool:
    """Insert one message; False when a unique key (id, idempotency key, client ref) already exists."""
    return conn.execute(_INSERT_MESSAGE, row).rowcount == 1


def insert_queued_messages(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert :func:`queued_row` rows (a batch or bulk send); a row whose id exists is skipped.

    Only the columns a new message sets are bound: the columns left to their defaults made a
    1,000-row batch's insert about a quarter slower when bound as NULLs and zeros.
    """
    conn.executemany(_INSERT_QUEUED, rows)

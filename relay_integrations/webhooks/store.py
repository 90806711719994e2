"""The durable event store behind the receiver and the inbox: one SQLite file in WAL mode.

The receiver commits every verified event here before it answers 2xx, so an acknowledged event
survives a crash of the receiver. Each stored event gets a cursor (the table's rowid with
``AUTOINCREMENT``, so cursors only ever grow and are never reused), which readers use to ask for
"everything after what I saw last".

Duplicates are stored once. A delivery is a duplicate when the store has already seen

* its delivery id (the Standard Webhooks ``webhook-id``, kept across a sender's retries), or
* an event with the same dialect and event id (the smsgate envelope id, a phonerelay inbound id), or
* an event with the same dialect, message id, event type, state and recipient (the real smsgate
  app re-sends the same status under a fresh envelope id).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from relay_integrations.models import MessageState, WebhookEvent, later_state

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    cursor       INTEGER PRIMARY KEY AUTOINCREMENT,
    dialect      TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    natural_key  TEXT,
    kind         TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    message_id   TEXT,
    state        TEXT,
    sender       TEXT,
    recipient    TEXT,
    text         TEXT,
    received_at  TEXT NOT NULL,
    event_json   TEXT NOT NULL,
    UNIQUE (dialect, event_id),
    UNIQUE (natural_key)
);
CREATE INDEX IF NOT EXISTS events_message ON events (message_id, cursor);
CREATE INDEX IF NOT EXISTS events_dialect_kind ON events (dialect, kind, cursor);
CREATE TABLE IF NOT EXISTS deliveries (
    dialect      TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    PRIMARY KEY (dialect, delivery_id)
);
"""

#: The largest page one query returns; callers page on with ``after``.
MAX_LIMIT = 1000


@dataclass(frozen=True)
class StoreResult:
    """What one delivery did to the store.

    :param stored: the events newly stored, with their cursors set.
    :param duplicates: how many events of the delivery were already stored (or the whole delivery,
        when its delivery id had been seen).
    """

    stored: list[WebhookEvent] = field(default_factory=list)
    duplicates: int = 0


@dataclass(frozen=True)
class EventQuery:
    """Column filters of one store query; ``None`` means "any". Text match is case-insensitive (ASCII)."""

    dialect: str | None = None
    kind: str | None = None
    event_type: str | None = None
    message_id: str | None = None
    state: str | None = None
    sender: str | None = None
    recipient: str | None = None
    text_contains: str | None = None
    after: int | None = None
    limit: int = 100


def _natural_key(event: WebhookEvent) -> str | None:
    if not event.message_id:
        return None
    state = event.state.value if event.state else (event.raw_state or "")
    # JSON keeps the parts apart whatever characters they hold.
    return json.dumps([event.dialect, event.message_id, event.event_type, state, event.recipient or ""])


class EventStore:
    """SQLite event store. Safe to share between threads; several processes may open the same file.

    :param db_path: the SQLite file (created with its directory if missing).
    :param synchronous: SQLite ``synchronous`` setting for writes. ``FULL`` (default) makes each
        acknowledged event survive a power loss, ``NORMAL`` only a crash of the process.
    """

    def __init__(self, db_path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self.db_path = Path(db_path)
        self._synchronous = synchronous.upper()
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._local = threading.local()
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"EventStore({str(self.db_path)!r})"

    # --- connections ------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    def _reader(self) -> sqlite3.Connection:
        # One read connection per thread: WAL readers never block the writer or each other.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            if self._writer is None:
                self._writer = self._connect()
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- writes -----------------------------------------------------------------------------------
    def add(self, events: Sequence[WebhookEvent], *, delivery_id: str | None = None) -> StoreResult:
        """Store one delivery's events in one transaction, committed when this returns.

        :param events: the parsed events (``dialect`` and ``event_id`` set).
        :param delivery_id: the delivery's own id from its headers, if the scheme has one.
        """
        return self.add_many([(events, delivery_id)])[0]

    def add_many(self, deliveries: Sequence[tuple[Sequence[WebhookEvent], str | None]]) -> list[StoreResult]:
        """Store several deliveries in one transaction (one fsync), committed when this returns.

        Each delivery is de-duplicated as if stored alone, in order, so a duplicate inside the same
        batch is caught too. Returns one :class:`StoreResult` per delivery.
        """
        now = datetime.now(timezone.utc)
        with self._transaction() as conn:
            return [self._insert(conn, events, delivery_id, now) for events, delivery_id in deliveries]

    def _insert(
        self, conn: sqlite3.Connection, events: Sequence[WebhookEvent], delivery_id: str | None, now: datetime
    ) -> StoreResult:
        if delivery_id is not None and events:
            cur = conn.execute(
                "INSERT OR IGNORE INTO deliveries (dialect, delivery_id, received_at) VALUES (?, ?, ?)",
                (events[0].dialect, delivery_id, now.isoformat()),
            )
            if cur.rowcount == 0:
                return StoreResult(stored=[], duplicates=len(events))
        stored: list[WebhookEvent] = []
        duplicates = 0
        for event in events:
            event = event.model_copy(update={"received_at": event.received_at or now, "cursor": None})
            cur = conn.execute(
                "INSERT OR IGNORE INTO events (dialect, event_id, natural_key, kind, event_type, message_id,"
                " state, sender, recipient, text, received_at, event_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.dialect,
                    event.event_id,
                    _natural_key(event),
                    event.kind,
                    event.event_type,
                    event.message_id,
                    event.state.value if event.state else None,
                    event.sender,
                    event.recipient,
                    event.text,
                    now.isoformat(),
                    event.model_dump_json(exclude={"cursor"}),
                ),
            )
            if cur.rowcount == 0:
                duplicates += 1
            else:
                stored.append(event.model_copy(update={"cursor": cur.lastrowid}))
        return StoreResult(stored=stored, duplicates=duplicates)

    # --- reads ------------------------------------------------------------------------------------
    def query(self, query: EventQuery) -> list[WebhookEvent]:
        """Events matching every given filter, oldest first (by cursor)."""
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("dialect", "kind", "event_type", "message_id", "state", "sender", "recipient"):
            value = getattr(query, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.text_contains:
            clauses.append("instr(lower(text), lower(?)) > 0")
            params.append(query.text_contains)
        if query.after is not None:
            clauses.append("cursor > ?")
            params.append(query.after)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = max(1, min(int(query.limit), MAX_LIMIT))
        rows = self._reader().execute(
            f"SELECT cursor, event_json FROM events {where} ORDER BY cursor LIMIT ?", (*params, limit)
        ).fetchall()
        return [WebhookEvent.model_validate_json(raw).model_copy(update={"cursor": cursor}) for cursor, raw in rows]

    def message_state(self, message_id: str, *, recipient: str | None = None) -> MessageState | None:
        """The latest state of a message over every stored status event; never moves backwards."""
        sql = "SELECT state FROM events WHERE message_id = ? AND kind = 'status' AND state IS NOT NULL"
        params: list[Any] = [message_id]
        if recipient is not None:
            sql += " AND recipient = ?"
            params.append(recipient)
        state: MessageState | None = None
        for (raw,) in self._reader().execute(sql + " ORDER BY cursor", params):
            state = later_state(state, MessageState(raw))
        return state

    def count(self) -> int:
        row = self._reader().execute("SELECT count(*) FROM events").fetchone()
        return int(row[0])

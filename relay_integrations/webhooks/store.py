"""The durable event store behind the receiver and the inbox: an SQLite file or a PostgreSQL database.

Both backends go through SQLAlchemy 2 with one schema, created on first use. ``EventStore(path)``
opens an SQLite file in WAL mode (as before); ``EventStore("postgresql://user:pass@host/db")``
opens PostgreSQL through psycopg 3, so several receiver processes behind one URL share one store
and any worker can read it.

The receiver commits every verified event here before it answers 2xx, so an acknowledged event
survives a crash of the receiver. Each stored event gets a cursor that only ever grows and is
never reused, which readers use to ask for "everything after what I saw last". On PostgreSQL,
writers take a transaction-level advisory lock before inserting, so cursors become visible in the
order they were handed out and a reader paging with ``after`` never skips a late commit.

Duplicates are stored once, decided by unique constraints (``INSERT ... ON CONFLICT DO NOTHING``),
never by read-then-write, so two processes storing the same event at once store it once.
A delivery is a duplicate when the store has already seen

* its delivery id (the Standard Webhooks ``webhook-id``, kept across a sender's retries), or
* an event with the same dialect and event id (the smsgate envelope id, a phonerelay inbound id), or
* an event with the same dialect, message id, event type, state and recipient (the real smsgate
  app re-sends the same status under a fresh envelope id).

Each delivery of a group commit runs in its own savepoint: one that fails is rolled back alone and
reported in its :class:`StoreResult`, the others commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from relay_integrations.models import MessageState, WebhookEvent, later_state

logger = logging.getLogger("relay_integrations.webhooks.store")

#: The largest page one query returns; callers page on with ``after``.
MAX_LIMIT = 1000
#: Cursors are 64-bit signed integers in both backends.
MAX_CURSOR = 2**63 - 1
SCHEMA_VERSION = 2
# Any fixed number: the advisory lock that orders PostgreSQL writers (see the module docstring).
_PG_WRITE_LOCK = 0x7E1A_7E1A

_metadata = MetaData()
_cursor_type = BigInteger().with_variant(Integer, "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite
events_table = Table(
    "events",
    _metadata,
    Column("cursor", _cursor_type, primary_key=True, autoincrement=True),
    Column("dialect", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("natural_key", Text),
    Column("kind", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("message_id", Text),
    Column("state", Text),
    Column("sender", Text),
    Column("recipient", Text),
    Column("text", Text),
    Column("received_at", Text, nullable=False),
    Column("event_json", Text, nullable=False),
    UniqueConstraint("dialect", "event_id", name="events_dialect_event_id_key"),
    UniqueConstraint("natural_key", name="events_natural_key_key"),
    Index("events_message", "message_id", "cursor"),
    Index("events_dialect_kind", "dialect", "kind", "cursor"),
    sqlite_autoincrement=True,  # cursors are never reused, even after the newest row is deleted
)
deliveries_table = Table(
    "deliveries",
    _metadata,
    Column("dialect", Text, primary_key=True),
    Column("delivery_id", Text, primary_key=True),
    Column("received_at", Text, nullable=False),
)
schema_table = Table(
    "relay_webhooks_schema",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)
_FILTER_COLUMNS = ("dialect", "kind", "event_type", "message_id", "state", "sender", "recipient")


class _DriverInsert:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING returning`` into every column of ``table`` but an
    autoincrement key, compiled once for one driver (its SQL text and parameter order) and run on
    the driver's own cursor.

    Only for columns of type Text given str or None: no SQLAlchemy type processing is applied.
    The driver's cursor, not ``Connection.exec_driver_sql``: SQLAlchemy builds an execution context
    and a result around every statement, five times the cost of the statement itself, and the
    receiver runs one or two of these per event. The statements still run inside the SQLAlchemy
    transaction (same connection), and driver errors are raised as SQLAlchemy's, as
    ``exec_driver_sql`` would.
    """

    def __init__(self, table: Table, returning: Any, dialect: Any) -> None:
        insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
        statement = insert(table).on_conflict_do_nothing().returning(returning)
        columns = [c.name for c in table.columns if c is not table.autoincrement_column]
        compiled = statement.compile(dialect=dialect, column_keys=columns)
        self.sql = str(compiled)
        # qmark/format drivers (sqlite3) take a tuple in this order; named ones (psycopg) a mapping.
        self.order: tuple[str, ...] | None = tuple(compiled.positiontup) if compiled.positiontup else None
        self._driver_error: type[Exception] = dialect.loaded_dbapi.Error

    def run(self, cursor: Any, values: Mapping[str, Any]) -> Any:
        """The inserted row's ``returning`` value, or ``None`` when a unique constraint kept it out."""
        params: Any = tuple(values[name] for name in self.order) if self.order else dict(values)
        try:
            cursor.execute(self.sql, params)
            row = cursor.fetchone()
        except self._driver_error as exc:
            # Parameters hidden: they hold message texts and addresses.
            raise DBAPIError.instance(self.sql, params, exc, self._driver_error, hide_parameters=True) from exc
        return None if row is None else row[0]


class StoreError(RuntimeError):
    """The store could not be opened or written; the message never contains a password."""


@dataclass(frozen=True)
class StoreResult:
    """What one delivery did to the store.

    :param stored: the events newly stored, with their cursors set.
    :param duplicates: how many events of the delivery were already stored (or the whole delivery,
        when its delivery id had been seen).
    :param error: why this delivery alone was rolled back (nothing of it stored), else ``None``.
    """

    stored: list[WebhookEvent] = field(default_factory=list)
    duplicates: int = 0
    error: str | None = None


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


def natural_key(event: WebhookEvent) -> str | None:
    """The key that recognises one status reported twice under different envelope ids (a SHA-256, so
    that the unique index stays small whatever the ids hold)."""
    if not event.message_id:
        return None
    state = event.state.value if event.state else (event.raw_state or "")
    # JSON keeps the parts apart whatever characters they hold.
    parts = json.dumps([event.dialect, event.message_id, event.event_type, state, event.recipient or ""])
    return hashlib.sha256(parts.encode()).hexdigest()


def is_database_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is a SQLAlchemy URL (``postgresql://...``, ``sqlite:///...``) rather than a path."""
    return isinstance(location, str) and "://" in location


def _normalise_url(location: str) -> URL:
    try:
        url = make_url(location)
    except Exception:
        raise StoreError("the event store URL is not a valid SQLAlchemy URL") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise StoreError(f"unsupported event store {url.get_backend_name()!r}: use a path, sqlite:/// or postgresql://")
    return url


def _refused(exc: DBAPIError) -> StoreResult:
    """The result of a delivery the database refused (rolled back alone; nothing of it stored)."""
    logger.warning("delivery not stored: %s", type(exc.orig).__name__)
    return StoreResult(error=f"the store refused this delivery ({type(exc.orig).__name__})")


def _decode_row(cursor: int, raw: str, row: Any = None) -> WebhookEvent:
    try:
        return WebhookEvent.model_validate_json(raw).model_copy(update={"cursor": cursor})
    except (ValidationError, ValueError, RecursionError):
        # Written by an older version without the receiver's bounds: still readable, from its columns.
        logger.warning("event %d: stored JSON unreadable; returning its indexed columns only", cursor)
        return WebhookEvent(
            event_id=row.event_id, dialect=row.dialect, kind=row.kind, event_type=row.event_type,
            message_id=row.message_id, state=row.state, sender=row.sender, recipient=row.recipient,
            text=row.text, cursor=cursor,
        )


class EventStore:
    """The event store. Safe to share between threads; several processes may open the same store.

    :param location: an SQLite file path (created with its directory if missing), or a SQLAlchemy
        URL: ``postgresql://user:password@host:5432/db`` (psycopg 3) or ``sqlite:///path``.
    :param synchronous: SQLite ``synchronous`` setting for writes. ``FULL`` (default) makes each
        acknowledged event survive a power loss, ``NORMAL`` only a crash of the process.
    :raises StoreError: the database cannot be reached or set up (the password is never shown).
    """

    def __init__(self, location: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        self._synchronous = synchronous.upper()
        self._write_lock = threading.Lock()
        if is_database_url(location):
            self.url = _normalise_url(str(location))
        else:
            path = Path(location)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.url = URL.create("sqlite", database=str(path))
        self.backend = self.url.get_backend_name()
        self.db_path = Path(self.url.database or "") if self.backend == "sqlite" else None
        self._where = self.url.render_as_string(hide_password=True)
        try:
            self._writer, self._reader = self._engines()
            self._create_schema()
        except SQLAlchemyError as exc:
            self.close()
            cause = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot open the event store {self._where}: {type(cause).__name__}") from None
        # The two statements every delivery runs, compiled once for this database's driver and then
        # run as plain driver SQL: Connection.execute rebuilds an execution context around each call
        # (most of the store's CPU for a delivery of one event); every value here is already text.
        self._event_sql = _DriverInsert(events_table, events_table.c.cursor, self._writer.dialect)
        self._delivery_sql = _DriverInsert(deliveries_table, deliveries_table.c.delivery_id, self._writer.dialect)

    def __repr__(self) -> str:
        return f"EventStore({self._where!r})"

    @property
    def where(self) -> str:
        """The store's URL with the password hidden."""
        return self._where

    # --- engines ----------------------------------------------------------------------------------
    def _engines(self) -> tuple[Engine, Engine]:
        if self.backend == "postgresql":
            engine = create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                                   connect_args={"connect_timeout": 10})
            return engine, engine
        writer = create_engine(self.url, connect_args={"timeout": 30.0, "check_same_thread": False})
        reader = create_engine(self.url, connect_args={"timeout": 30.0, "check_same_thread": False})
        for engine, begin in ((writer, "BEGIN IMMEDIATE"), (reader, "BEGIN")):
            self._sqlite_setup(engine, begin)
        return writer, reader

    def _sqlite_setup(self, engine: Engine, begin: str) -> None:
        synchronous = self._synchronous

        # pysqlite's own transaction handling breaks savepoints; SQLAlchemy's documented recipe:
        # the driver in autocommit mode, and BEGIN emitted by us (IMMEDIATE for writers, so two
        # writers queue on the busy timeout instead of failing on a lock upgrade).
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA journal_mode=WAL")  # persistent; outside any transaction here
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql(begin)

    def _create_schema(self) -> None:
        with self._write_lock:
            with self._writer.begin() as conn:
                if self.backend == "postgresql":
                    # Two receivers starting at once must not both run CREATE TABLE.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK})
                _metadata.create_all(conn)
                if conn.execute(select(schema_table.c.version)).first() is None:
                    conn.execute(schema_table.insert().values(id=1, version=SCHEMA_VERSION))

    def close(self) -> None:
        for name in ("_writer", "_reader"):
            engine = getattr(self, name, None)
            if engine is not None:
                engine.dispose()

    # --- writes -----------------------------------------------------------------------------------
    def add(self, events: Sequence[WebhookEvent], *, delivery_id: str | None = None) -> StoreResult:
        """Store one delivery's events in one transaction, committed when this returns.

        :param events: the parsed events (``dialect`` and ``event_id`` set).
        :param delivery_id: the delivery's own id from its headers, if the scheme has one.
        :raises StoreError: the delivery could not be stored.
        """
        result = self.add_many([(events, delivery_id)])[0]
        if result.error is not None:
            raise StoreError(result.error)
        return result

    def add_many(self, deliveries: Sequence[tuple[Sequence[WebhookEvent], str | None]]) -> list[StoreResult]:
        """Store several deliveries in one transaction (one fsync), committed when this returns.

        Each delivery is de-duplicated as if stored alone, in order, so a duplicate inside the same
        batch is caught too; a delivery the database refuses is rolled back alone (the batch is then
        written again with a savepoint per delivery) and gets a :class:`StoreResult` with ``error``
        set. Returns one result per delivery.

        :raises sqlalchemy.exc.SQLAlchemyError: the whole transaction failed (nothing committed).
        """
        now = datetime.now(timezone.utc)
        prepared = [(self._rows(events, now), delivery_id) for events, delivery_id in deliveries]
        # Deliveries almost never fail alone (duplicates are no error), so the batch is first written
        # without a savepoint per delivery; only if the database refuses one is it written again with
        # them, so the refused delivery is rolled back alone. A delivery written alone needs none:
        # its transaction is rolled back whole.
        isolate = False
        for attempt in range(5):
            try:
                with self._write_lock, self._writer.begin() as conn:
                    if self.backend == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK})
                    if isolate:
                        return [self._insert_isolated(conn, rows, delivery_id, now) for rows, delivery_id in prepared]
                    return [self._insert(conn, rows, delivery_id, now) for rows, delivery_id in prepared]
            except DBAPIError as exc:
                if not isinstance(exc, OperationalError):
                    if len(prepared) == 1:
                        return [_refused(exc)]
                    if isolate:
                        raise
                    isolate = True  # nothing committed: write the batch again, one savepoint per delivery
                    continue
                # A lost connection or a serialization failure: nothing was committed, so trying the
                # whole batch again cannot store anything twice.
                if attempt == 4:
                    raise
                logger.warning("event store write failed (%s); retrying the batch", type(exc.orig).__name__)
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    @staticmethod
    def _rows(events: Sequence[WebhookEvent], now: datetime) -> list[tuple[WebhookEvent, dict[str, Any]]]:
        rows = []
        for ev in events:
            ev = ev.model_copy(update={"received_at": ev.received_at or now, "cursor": None})
            rows.append((ev, {
                "dialect": ev.dialect, "event_id": ev.event_id, "natural_key": natural_key(ev), "kind": ev.kind,
                "event_type": ev.event_type, "message_id": ev.message_id,
                "state": ev.state.value if ev.state else None, "sender": ev.sender, "recipient": ev.recipient,
                "text": ev.text, "received_at": now.isoformat(), "event_json": ev.model_dump_json(exclude={"cursor"}),
            }))
        return rows

    def _insert_isolated(
        self, conn: Connection, rows: list[tuple[WebhookEvent, dict[str, Any]]], delivery_id: str | None,
        now: datetime,
    ) -> StoreResult:
        savepoint = conn.begin_nested()
        try:
            result = self._insert(conn, rows, delivery_id, now)
        except DBAPIError as exc:
            savepoint.rollback()
            if isinstance(exc, OperationalError):
                raise  # the connection or transaction itself is gone: the whole batch fails
            return _refused(exc)
        savepoint.commit()
        return result

    def _insert(
        self, conn: Connection, rows: list[tuple[WebhookEvent, dict[str, Any]]], delivery_id: str | None,
        now: datetime,
    ) -> StoreResult:
        cursor = conn.connection.cursor()
        try:
            if delivery_id is not None and rows:
                first = rows[0][0]
                seen = {"dialect": first.dialect, "delivery_id": delivery_id, "received_at": now.isoformat()}
                if self._delivery_sql.run(cursor, seen) is None:
                    return StoreResult(stored=[], duplicates=len(rows))
            stored: list[WebhookEvent] = []
            duplicates = 0
            for ev, values in rows:
                event_cursor = self._event_sql.run(cursor, values)
                if event_cursor is None:
                    duplicates += 1
                else:
                    stored.append(ev.model_copy(update={"cursor": int(event_cursor)}))
            return StoreResult(stored=stored, duplicates=duplicates)
        finally:
            cursor.close()

    # --- reads ------------------------------------------------------------------------------------
    def query(self, query: EventQuery) -> list[WebhookEvent]:
        """Events matching every given filter, oldest first (by cursor)."""
        t = events_table
        stmt = select(t)
        for column in _FILTER_COLUMNS:
            value = getattr(query, column)
            if value is not None:
                stmt = stmt.where(t.c[column] == value)
        if query.text_contains:
            position = func.instr if self.backend == "sqlite" else func.strpos
            stmt = stmt.where(position(func.lower(t.c.text), func.lower(query.text_contains)) > 0)
        if query.after is not None:
            stmt = stmt.where(t.c.cursor > min(int(query.after), MAX_CURSOR))
        limit = max(1, min(int(query.limit), MAX_LIMIT))
        stmt = stmt.order_by(t.c.cursor).limit(limit)
        with self._reader.connect() as conn:
            rows = conn.execute(stmt).fetchall()
        return [_decode_row(int(row.cursor), row.event_json, row) for row in rows]

    def message_state(self, message_id: str, *, recipient: str | None = None) -> MessageState | None:
        """The latest state of a message over every stored status event; never moves backwards."""
        t = events_table
        stmt = select(t.c.state).where(t.c.message_id == message_id, t.c.kind == "status", t.c.state.is_not(None))
        if recipient is not None:
            stmt = stmt.where(t.c.recipient == recipient)
        state: MessageState | None = None
        with self._reader.connect() as conn:
            for (raw,) in conn.execute(stmt.order_by(t.c.cursor)):
                state = later_state(state, MessageState(raw))
        return state

    def count(self) -> int:
        with self._reader.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())

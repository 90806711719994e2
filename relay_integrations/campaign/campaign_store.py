"""The campaign store: what every campaign run handed to which relay, shared by every worker.

One schema, through SQLAlchemy 2, on two backends: an SQLite file (the default, one per campaign
in the user cache) or PostgreSQL (``postgresql://user:pass@host:5432/db``, driven by psycopg 3),
which lets a retry on another machine see what the first try did.

Each entry is keyed by the relay (dialect, base URL, account: never a key, see
:class:`RelayIdentity`), the campaign id and the message's idempotency key, and moves through

* ``claimed``: a run holds the row's lease (owner, expiry) and has not sent it yet;
* ``sending``: the request carrying it was (or is about to be) made; the answer is not recorded.
  Left behind by a run that died, it means the relay may or may not have the message, so the
  next run reconciles it against the relay's outbound list before sending it again;
* ``accepted``: the relay took it (message id, batch id, accepted_at, later its delivery state).

Leases are claimed by single atomic statements (an ``UPDATE ... WHERE owner = me OR expired``
that returns what it took), so two runs of one campaign at once never both send a row; a
heartbeat thread renews the run's leases while it lives. Lease expiry uses the workers' clocks
(epoch seconds): keep them in sync (NTP) to well within the lease length.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError

from relay_integrations.models import MessageState

SCHEMA_VERSION = 1
DEFAULT_LEASE_SECONDS = 30.0
LEASE_ENV = "RELAY_CAMPAIGN_LEASE_SECONDS"
CHUNK = 500
CLAIM_CHUNK = 500  # rows per INSERT (11 parameters each: within SQLite's 32,766)

CLAIMED = "claimed"
SENDING = "sending"
ACCEPTED = "accepted"

_metadata = sa.MetaData()
_TABLE = "relay_campaign_entries"

schema_table = sa.Table(
    "relay_campaign_schema",
    _metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

entries_table = sa.Table(
    _TABLE,
    _metadata,
    sa.Column("relay_id", sa.String(64), primary_key=True),
    sa.Column("campaign_id", sa.String(512), primary_key=True),
    sa.Column("idempotency_key", sa.String(128), primary_key=True),
    sa.Column("dialect", sa.String(32), nullable=False),
    sa.Column("base_url", sa.Text, nullable=False),
    sa.Column("account", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("address", sa.Text),
    sa.Column("text", sa.Text),
    sa.Column("row", sa.Integer),
    sa.Column("message_id", sa.String(256)),
    sa.Column("batch_id", sa.String(256)),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("accepted_at", sa.DateTime(timezone=True)),
    sa.Column("state", sa.String(16)),
    sa.Column("state_at", sa.DateTime(timezone=True)),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires", sa.Float),
    sa.Index("relay_campaign_entries_owner", "lease_owner"),
    sa.Index("relay_campaign_entries_message", "relay_id", "campaign_id", "message_id"),
)

# The suppression list (see :mod:`relay_integrations.campaign.suppression`): one row per relay
# account and address. A lifted entry stays, unsuppressed, so a late copy of an older STOP cannot
# bring it back (``changed_at`` orders the changes).
suppressions_table = sa.Table(
    "relay_suppressions",
    _metadata,
    sa.Column("relay_id", sa.String(64), primary_key=True),
    sa.Column("address", sa.String(320), primary_key=True),
    sa.Column("suppressed", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("event_id", sa.String(256)),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("dialect", sa.String(32), nullable=False),
    sa.Column("base_url", sa.Text, nullable=False),
    sa.Column("account", sa.String(128), nullable=False),
    sa.Column("confirmation", sa.String(16)),
    sa.Column("confirmation_id", sa.String(256)),
)


class CampaignStoreError(RuntimeError):
    """The campaign store cannot be opened, read or written; names the store, never its password."""


@dataclass(frozen=True)
class RelayIdentity:
    """Which relay and account a campaign's entries belong to. Holds no secret.

    ``account`` is the login when the relay has one, else a short hash of the API key.
    """

    dialect: str
    base_url: str
    account: str

    @classmethod
    def from_client(cls, client: Any) -> RelayIdentity:
        """The identity of a :class:`~relay_integrations.client.RelayClient` (or async client)."""
        return cls(client.dialect.name, client.base_url.rstrip("/"), client.account_id)

    @staticmethod
    def account_for(api_key: str, login: str | None = None) -> str:
        if login:
            return f"login:{login}"
        return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]

    @functools.cached_property
    def relay_id(self) -> str:
        material = "\x1f".join((self.dialect, self.base_url.rstrip("/"), self.account))
        return hashlib.sha256(material.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LedgerEntry:
    """One accepted message as the store keeps it."""

    idempotency_key: str
    campaign_id: str
    address: str
    message_id: str | None = None
    batch_id: str | None = None
    dialect: str | None = None
    row: int | None = None
    accepted_at: datetime | None = None
    state: str | None = None
    state_at: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """A row this run now holds: ``status`` is ``claimed`` (never sent) or ``sending`` (in doubt)."""

    idempotency_key: str
    status: str
    started_at: datetime | None = None


@dataclass(frozen=True)
class Existing:
    """A row's entry as a lookup finds it."""

    idempotency_key: str
    status: str
    message_id: str | None
    batch_id: str | None
    lease_owner: str | None
    lease_expires: float | None


@dataclass(frozen=True)
class Accepted:
    """What to record for a row the relay accepted."""

    idempotency_key: str
    message_id: str | None = None
    batch_id: str | None = None
    address: str | None = None
    row: int | None = None


def lease_seconds_default() -> float:
    """``$RELAY_CAMPAIGN_LEASE_SECONDS`` when set, else 30."""
    value = os.environ.get(LEASE_ENV)
    if not value:
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{LEASE_ENV}={value!r}: not a number of seconds") from None
    if seconds <= 0:
        raise ValueError(f"{LEASE_ENV}={value!r}: must be positive")
    return seconds


StoreLocation = str | os.PathLike[str] | URL


def store_url(url_or_path: StoreLocation) -> URL:
    """A SQLAlchemy URL for a path or URL; ``postgresql://`` is mapped to the psycopg 3 driver."""
    if isinstance(url_or_path, URL):
        url = url_or_path
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url
    text = os.fspath(url_or_path)
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser().absolute()))
    try:
        url = make_url(text)
    except ArgumentError:
        raise CampaignStoreError(f"not a database URL or path: {hide_password(text)}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def display_url(url_or_path: StoreLocation) -> str:
    """The store's URL with the password hidden (safe for logs, reprs and errors)."""
    url = url_or_path if isinstance(url_or_path, URL) else store_url(url_or_path)
    return url.render_as_string(hide_password=True)


def hide_password(text: str) -> str:
    """``scheme://user:password@host...`` -> ``scheme://user:***@host...``; anything else unchanged.

    Works on the text as given (no parsing into a URL object, so the form is kept): for references
    that go into XComs and results, and for text that failed to parse as a URL."""
    head, sep, tail = text.partition("://")
    if sep and "@" in tail:
        creds, _, rest = tail.rpartition("@")
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{head}://{creds}@{rest}"
    return text


def _now_dt() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _state_rank(state: str | None) -> int:
    if state is None:
        return -1
    try:
        return MessageState(state).rank
    except ValueError:
        return -1


class CampaignStore:
    """The shared store of a campaign's entries (see the module docstring).

    :param url_or_path: an SQLite file path, or a SQLAlchemy URL (``postgresql://...``,
        ``sqlite:///...``).
    :param lease_seconds: how long a claim holds without renewal; the heartbeat renews every third.
    """

    def __init__(self, url_or_path: StoreLocation, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 read_only: bool = False) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.url = store_url(url_or_path)
        self.lease_seconds = float(lease_seconds)
        self.read_only = read_only
        self.owner = uuid.uuid4().hex
        self._engine: Engine | None = None
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        self.heartbeat_error: BaseException | None = None
        self._bind_timestamp: Any = None
        self._local_lock: threading.Lock | contextlib.nullcontext[None] = (
            threading.Lock() if self.url.get_backend_name() == "sqlite" else contextlib.nullcontext())

    @classmethod
    def open(cls, url_or_path: StoreLocation, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
             read_only: bool = False) -> CampaignStore:
        """Open (and on first use create) the store; raises :class:`CampaignStoreError` when unreachable."""
        store = cls(url_or_path, lease_seconds=lease_seconds, read_only=read_only)
        store._connect()
        return store

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def url_for_display(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def __repr__(self) -> str:
        return f"CampaignStore({self.url_for_display!r})"

    __str__ = __repr__

    def _where(self) -> str:
        if self.is_sqlite:
            return f"the campaign store {self.url.database}"
        return f"the campaign store at {self.url.host or 'localhost'}:{self.url.port or 5432} ({self.url_for_display})"

    def _error(self, action: str, exc: BaseException) -> CampaignStoreError:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        first = detail[0] if detail else type(exc).__name__
        if self.url.password:
            first = first.replace(str(self.url.password), "***")
        return CampaignStoreError(f"cannot {action} {self._where()}: {first}")

    def _connect(self) -> None:
        if self.is_sqlite:
            database = self.url.database or ""
            if self.read_only and not (database and Path(database).exists()):
                self._engine = None
                return
            if database and not self.read_only:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})
            _sqlite_immediate_transactions(engine)
        else:
            connect_args: dict[str, Any] = {}
            if self.url.get_driver_name() == "psycopg":
                connect_args["connect_timeout"] = 10
            engine = sa.create_engine(self.url, connect_args=connect_args, pool_pre_ping=True,
                                      hide_parameters=True)
        self._engine = engine
        # Two processes opening a new SQLite file at the same moment can get "database is locked"
        # at once, without SQLite's busy wait (switching a fresh file to WAL, WAL recovery): such an
        # open is tried again for as long as the busy timeout would have waited.
        deadline = time.monotonic() + 60
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                    exists = sa.inspect(conn).has_table(entries_table.name)
                if not self.read_only:
                    self._create_schema()
                elif not exists:  # a dry run against a store nothing was written to yet
                    engine.dispose()
                    self._engine = None
                return
            except SQLAlchemyError as exc:
                if self.is_sqlite and "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                engine.dispose()
                self._engine = None
                raise self._error("open", exc) from None

    def _create_schema(self) -> None:
        engine = self._require()
        for attempt in range(3):
            try:
                with engine.begin() as conn:
                    _metadata.create_all(conn, checkfirst=True)
                    version = conn.execute(sa.select(sa.func.max(schema_table.c.version))).scalar()
                    if version is None:
                        conn.execute(schema_table.insert().values(version=SCHEMA_VERSION, created_at=_now_dt()))
                    elif version > SCHEMA_VERSION:
                        raise CampaignStoreError(
                            f"{self._where()} has schema version {version}; this release reads up to {SCHEMA_VERSION}")
                return
            except (IntegrityError, DBAPIError):
                # Another process created the schema at the same moment; look again.
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def _require(self) -> Engine:
        if self._engine is None:
            raise CampaignStoreError(f"{self._where()} is not open")
        return self._engine

    def close(self) -> None:
        self.stop_heartbeat()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> CampaignStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, action: str, fn: Any) -> Any:
        """Run ``fn(conn)`` in one transaction; database errors become CampaignStoreError."""
        try:
            # SQLite takes one writer at a time: threads of this run queue here instead of in
            # SQLite's busy handler, whose growing sleeps would slow concurrent sends.
            with self._local_lock, self._require().begin() as conn:
                return fn(conn)
        except CampaignStoreError:
            raise
        except SQLAlchemyError as exc:
            raise self._error(action, exc) from None

    def _key(self, relay: RelayIdentity, campaign_id: str) -> Any:
        t = entries_table.c
        return sa.and_(t.relay_id == relay.relay_id, t.campaign_id == campaign_id)

    # --- the hot path: plain SQL on the driver ---------------------------------------------
    # Every row of a campaign passes through claim, mark_sending and record_accepted. SQLAlchemy's
    # per-row parameter processing costs more than SQLite's own work there, so these statements
    # are written once per backend and executed on the driver (``exec_driver_sql``).
    def _sql(self, text: str) -> str:
        return text if self.is_sqlite else text.replace("?", "%s")

    def _held_by_owner(self) -> str:
        """``lease_owner = ?`` for statements that find their rows by key.

        Without table statistics SQLite prefers the lease-owner index to the primary key's ``IN``
        list, and so visited every row this run holds for each chunk: a campaign's cost grew with
        the square of its size. Its unary ``+`` keeps the column out of index selection;
        PostgreSQL has statistics (and no ``+`` for text)."""
        return "+lease_owner = ?" if self.is_sqlite else "lease_owner = ?"

    def _timestamp(self, value: datetime) -> Any:
        if self._bind_timestamp is None:
            self._bind_timestamp = entries_table.c.started_at.type.dialect_impl(
                self._require().dialect).bind_processor(self._require().dialect) or (lambda v: v)
        return self._bind_timestamp(value)

    @staticmethod
    def _marks(n: int) -> str:
        return ",".join("?" * n)

    # --- lookups -------------------------------------------------------------------------
    def lookup(self, relay: RelayIdentity, campaign_id: str, keys: Sequence[str]) -> dict[str, Existing]:
        """The entries of ``keys`` that exist, by idempotency key."""
        if self._engine is None:
            return {}
        found: dict[str, Existing] = {}

        def read(conn: sa.Connection) -> None:
            for start in range(0, len(keys), CHUNK):
                chunk = list(keys[start:start + CHUNK])
                rows = conn.exec_driver_sql(self._sql(
                    f"SELECT idempotency_key, status, message_id, batch_id, lease_owner, lease_expires FROM {_TABLE}"
                    f" WHERE relay_id = ? AND campaign_id = ? AND idempotency_key IN ({self._marks(len(chunk))})"),
                    (relay.relay_id, campaign_id, *chunk))
                for r in rows:
                    found[r[0]] = Existing(*r)

        if keys:
            self._run("read", read)
        return found

    def count(self, relay: RelayIdentity, campaign_id: str, status: str = ACCEPTED) -> int:
        if self._engine is None:
            return 0
        t = entries_table.c
        return int(self._run("read", lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(entries_table)
            .where(self._key(relay, campaign_id), t.status == status)).scalar_one()))

    def accepted_count(self, campaign_id: str) -> int:
        """Accepted entries of ``campaign_id`` on every relay."""
        if self._engine is None:
            return 0
        t = entries_table.c
        return int(self._run("read", lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(entries_table)
            .where(t.campaign_id == campaign_id, t.status == ACCEPTED)).scalar_one()))

    # --- leases --------------------------------------------------------------------------
    def claim(self, relay: RelayIdentity, campaign_id: str, rows: Sequence[tuple[str, str, int | None]]) -> list[Claim]:
        """Take the leases of ``rows`` (idempotency key, address, row) that no live run holds.

        Missing rows are inserted as ``claimed`` by this run; existing ones are taken over when
        this run holds them or their lease expired, never when accepted. Returns what was taken,
        in the order of ``rows``, with its status (``sending`` ones were handed to the relay by a
        run that died).
        """
        now = time.time()
        expires = now + self.lease_seconds
        taken: dict[str, Claim] = {}
        fixed = (relay.relay_id, campaign_id, relay.dialect, relay.base_url, relay.account, CLAIMED,
                 self.owner, expires)

        def work(conn: sa.Connection) -> None:
            for start in range(0, len(rows), CLAIM_CHUNK):
                chunk = rows[start:start + CLAIM_CHUNK]
                # New rows: inserted as ours in one statement that says which it inserted.
                values = ",".join(["(?,?,?,?,?,?,?,?,?,?,?)"] * len(chunk))
                params: list[Any] = []
                for key, address, row in chunk:
                    params += (*fixed[:6], address, row, fixed[6], fixed[7], key)
                inserted = conn.exec_driver_sql(self._sql(
                    f'INSERT INTO {_TABLE} (relay_id, campaign_id, dialect, base_url, account, status, address, "row",'
                    f" lease_owner, lease_expires, idempotency_key) VALUES {values}"
                    " ON CONFLICT DO NOTHING RETURNING idempotency_key"), tuple(params))
                for (key,) in inserted:
                    taken[key] = Claim(key, CLAIMED, None)
                # Rows that were there: taken over when ours or their lease expired, never when accepted.
                others = [key for key, _, _ in chunk if key not in taken]
                if not others:
                    continue
                result = conn.exec_driver_sql(self._sql(
                    f"UPDATE {_TABLE} SET lease_owner = ?, lease_expires = ?"
                    f" WHERE relay_id = ? AND campaign_id = ? AND idempotency_key IN ({self._marks(len(others))})"
                    " AND status <> ? AND (lease_owner = ? OR lease_owner IS NULL OR lease_expires < ?)"
                    " RETURNING idempotency_key, status, started_at"),
                    (self.owner, expires, relay.relay_id, campaign_id, *others, ACCEPTED, self.owner, now))
                started_at = entries_table.c.started_at.type.dialect_impl(conn.dialect).result_processor(
                    conn.dialect, None)
                for key, status, started in result:
                    taken[key] = Claim(key, status, _aware(started_at(started) if started_at else started))

        if rows:
            self._run("claim rows in", work)
        return [taken[key] for key, _, _ in rows if key in taken]

    def mark_sending(self, relay: RelayIdentity, campaign_id: str, keys: Collection[str]) -> set[str]:
        """Mark rows this run holds as handed to the relay (committed before the request).

        Returns the keys marked; a key missing from the answer lost its lease and must not be sent.
        """
        if not keys:
            return set()
        return set(self._run("mark rows as sending in", self._mark_sending_work(relay, campaign_id, list(keys))))

    def _mark_sending_work(self, relay: RelayIdentity, campaign_id: str, keys: list[str]) -> Any:
        def work(conn: sa.Connection) -> set[str]:
            marked: set[str] = set()
            expires = time.time() + self.lease_seconds
            started = self._timestamp(_now_dt())
            for start in range(0, len(keys), CHUNK):
                chunk = keys[start:start + CHUNK]
                result = conn.exec_driver_sql(self._sql(
                    f"UPDATE {_TABLE} SET status = ?, lease_expires = ?, started_at = COALESCE(started_at, ?)"
                    f" WHERE relay_id = ? AND campaign_id = ? AND idempotency_key IN ({self._marks(len(chunk))})"
                    f" AND {self._held_by_owner()} AND status <> ? RETURNING idempotency_key"),
                    (SENDING, expires, started, relay.relay_id, campaign_id, *chunk, self.owner, ACCEPTED))
                marked.update(k for (k,) in result)
            return marked

        return work

    def record_accepted(self, relay: RelayIdentity, campaign_id: str, accepted: Iterable[Accepted],
                        *, settled: Iterable[str] = ()) -> None:
        """Record accepted rows (one transaction); ``settled`` rows (refused) lose their entry."""
        done, dropped = list(accepted), list(settled)
        if done or dropped:
            self._run("record accepted rows in", self._record_work(relay, campaign_id, done, dropped))

    def _record_work(self, relay: RelayIdentity, campaign_id: str, accepted: list[Accepted], settled: list[str]) -> Any:
        def work(conn: sa.Connection) -> None:
            now = self._timestamp(_now_dt())
            if accepted:
                conn.exec_driver_sql(self._sql(
                    f'UPDATE {_TABLE} SET status = ?, message_id = ?, batch_id = ?, address = COALESCE(?, address),'
                    ' "row" = COALESCE(?, "row"), accepted_at = ?, lease_owner = NULL, lease_expires = NULL'
                    " WHERE relay_id = ? AND campaign_id = ? AND idempotency_key = ?"),
                    [(ACCEPTED, a.message_id, a.batch_id, a.address, a.row, now, relay.relay_id, campaign_id,
                      a.idempotency_key) for a in accepted])
            for start in range(0, len(settled), CHUNK):
                chunk = settled[start:start + CHUNK]
                conn.exec_driver_sql(self._sql(
                    f"DELETE FROM {_TABLE} WHERE relay_id = ? AND campaign_id = ?"
                    f" AND idempotency_key IN ({self._marks(len(chunk))}) AND status <> ? AND {self._held_by_owner()}"),
                    (relay.relay_id, campaign_id, *chunk, ACCEPTED, self.owner))

        return work

    def write_together(self, relay: RelayIdentity, campaign_id: str, marks: Sequence[Collection[str]],
                       accepted: Iterable[Accepted], settled: Iterable[str] = ()) -> list[set[str]]:
        """Several runs' worth of :meth:`mark_sending` and :meth:`record_accepted` in one transaction
        (group commit); returns the keys marked for each entry of ``marks``."""
        wanted = [list(m) for m in marks]
        record = self._record_work(relay, campaign_id, list(accepted), list(settled))
        mark = self._mark_sending_work(relay, campaign_id, [k for m in wanted for k in m])

        def work(conn: sa.Connection) -> set[str]:
            marked: set[str] = mark(conn) if any(wanted) else set()
            record(conn)
            return marked

        marked = self._run("record sends in", work)
        return [marked.intersection(m) for m in wanted]

    def refresh_statistics(self) -> None:
        """Let PostgreSQL plan the by-key statements with what the table now holds.

        A ledger created moments ago has no statistics, and PostgreSQL then planned recording a
        row through the message index, reading every row of the campaign for each one: a
        10,000-row campaign took 1 to 3 s per 1,000 rows recorded instead of 30 to 50 ms. Run once
        a run has claimed its rows (they are in the table then). SQLite needs no statistics for
        these statements (see :meth:`_held_by_owner`); a role that may not analyze the table gets
        a warning from PostgreSQL, not an error.
        """
        if self._engine is None or self.is_sqlite:
            return
        self._run("analyze", lambda conn: conn.exec_driver_sql(f"ANALYZE {_TABLE}"))

    def renew(self) -> int:
        """Extend every lease this run holds; returns how many."""
        t = entries_table.c
        until = time.time() + self.lease_seconds
        return int(self._run("renew leases in", lambda conn: conn.execute(
            entries_table.update().where(t.lease_owner == self.owner, t.status != ACCEPTED)
            .values(lease_expires=until)).rowcount))

    def release(self) -> None:
        """Give up this run's leases: unsent rows go, rows in doubt stay for the next run to reconcile."""
        t = entries_table.c

        def work(conn: sa.Connection) -> None:
            conn.execute(entries_table.delete().where(t.lease_owner == self.owner, t.status == CLAIMED))
            conn.execute(entries_table.update().where(t.lease_owner == self.owner, t.status == SENDING)
                         .values(lease_owner=None, lease_expires=None))

        self._run("release leases in", work)

    def start_heartbeat(self) -> None:
        """Renew this run's leases every third of the lease in a daemon thread until stopped."""
        if self._heartbeat is not None:
            return
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self.lease_seconds / 3):
                try:
                    self.renew()
                except CampaignStoreError as exc:
                    self.heartbeat_error = exc

        self._heartbeat = threading.Thread(target=beat, name="relay-campaign-heartbeat", daemon=True)
        self._heartbeat.start()

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._stop.set()
            self._heartbeat.join(timeout=10)
            self._heartbeat = None

    # --- campaign-level tracking ---------------------------------------------------------
    def iter_accepted(self, relay: RelayIdentity, campaign_id: str, *,
                      states: Collection[str | None] | None = None, batch_size: int = 1000) -> Iterator[LedgerEntry]:
        """Every accepted entry of the campaign (by idempotency key), read ``batch_size`` at a time."""
        if self._engine is None:
            return
        t = entries_table.c
        last = ""
        while True:
            query = (sa.select(t.idempotency_key, t.campaign_id, t.address, t.message_id, t.batch_id, t.dialect,
                               t.row, t.accepted_at, t.state, t.state_at)
                     .where(self._key(relay, campaign_id), t.status == ACCEPTED, t.idempotency_key > last)
                     .order_by(t.idempotency_key).limit(batch_size))
            if states is not None:
                named = [s for s in states if s is not None]
                clauses = [t.state.in_(named)] if named else []
                if None in states:
                    clauses.append(t.state.is_(None))
                query = query.where(sa.or_(*clauses) if clauses else sa.false())
            page = self._run("read", lambda conn, q=query: conn.execute(q).all())
            if not page:
                return
            for r in page:
                yield LedgerEntry(r[0], r[1], r[2] or "", r[3], r[4], r[5], r[6], _aware(r[7]), r[8], _aware(r[9]))
            last = page[-1][0]

    def record_states(self, relay: RelayIdentity, campaign_id: str,
                      updates: Mapping[str, tuple[str, datetime]]) -> None:
        """Set the last known state of messages by message id; a state never moves backwards."""
        if not updates:
            return
        t = entries_table.c
        ids = list(updates)

        def work(conn: sa.Connection) -> None:
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start:start + CHUNK]
                current = conn.execute(
                    sa.select(t.idempotency_key, t.message_id, t.state)
                    .where(self._key(relay, campaign_id), t.status == ACCEPTED, t.message_id.in_(chunk))
                ).all()
                for key, message_id, state in current:
                    new_state, at = updates[message_id]
                    new_value = str(getattr(new_state, "value", new_state))
                    if _state_rank(new_value) > _state_rank(state):
                        conn.execute(entries_table.update()
                                     .where(self._key(relay, campaign_id), t.idempotency_key == key)
                                     .values(state=new_value, state_at=at))

        self._run("record states in", work)

    def count_states(self, relay: RelayIdentity, campaign_id: str) -> dict[str | None, int]:
        """How many accepted entries are in each last known state (None: not known yet)."""
        if self._engine is None:
            return {}
        t = entries_table.c
        rows = self._run("read", lambda conn: conn.execute(
            sa.select(t.state, sa.func.count()).where(self._key(relay, campaign_id), t.status == ACCEPTED)
            .group_by(t.state)).all())
        return {state: int(n) for state, n in rows}


WAL_CHECKPOINT_PAGES = 10_000


def _sqlite_immediate_transactions(engine: Engine) -> None:
    """Make every SQLite transaction take the write lock at BEGIN (no lock upgrades, no BUSY mid-way)."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        # A 1,000-row write touches up to 1,000 pages (the keys are random), so SQLite's default
        # (checkpoint once the WAL holds 1,000 pages) checkpointed, with an fsync, after nearly every
        # commit. Every 10,000 pages (about 40 MB of WAL) the ledger writes ~15% more rows/s
        # (bench/ledger_scaling.py); the WAL goes when the last connection closes.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

"""The local ledger: an SQLite file recording every message a relay accepted, by idempotency key.

A campaign writes an entry as soon as the relay accepts a message (or a batch), in its own
transaction, before it moves on; a re-run looks keys up here and reports those rows as already
sent. WAL journaling with ``synchronous=NORMAL`` keeps committed entries across a killed process.
Relays that de-duplicate on client keys (phonerelay, smsgate) are a second line of defence for
the one request that may be in flight when a process dies.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

LEDGER_DIR_ENV = "RELAY_CAMPAIGN_LEDGER_DIR"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accepted (
    idempotency_key TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    address TEXT NOT NULL,
    message_id TEXT,
    batch_id TEXT,
    dialect TEXT,
    row INTEGER,
    accepted_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS in_flight (
    idempotency_key TEXT PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    address TEXT NOT NULL,
    text TEXT,
    started_at TEXT NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class LedgerEntry:
    idempotency_key: str
    campaign_id: str
    address: str
    message_id: str | None = None
    batch_id: str | None = None
    dialect: str | None = None
    row: int | None = None
    accepted_at: str | None = None


@dataclass(frozen=True)
class InFlight:
    """A message handed to a relay that cannot de-duplicate, whose answer was never recorded.

    Written before the request; removed when the answer is recorded. One left over after a crash
    means the relay may or may not have the message: a re-run looks for it on the relay first.
    """

    idempotency_key: str
    campaign_id: str
    address: str
    text: str | None
    started_at: str


def default_ledger_path(campaign_id: str) -> Path:
    """Where a campaign's ledger lives unless told otherwise.

    ``$RELAY_CAMPAIGN_LEDGER_DIR``, else the user cache directory (``$XDG_CACHE_HOME`` or
    ``~/.cache``)``/relay-integrations/campaigns``. The file name is the campaign id made
    filesystem-safe plus a short hash of the exact id, so distinct ids never share a file.
    """
    base = os.environ.get(LEDGER_DIR_ENV)
    if base:
        directory = Path(base)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        directory = Path(cache) / "relay-integrations" / "campaigns"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", campaign_id).strip("-.")[:60] or "campaign"
    digest = hashlib.sha256(campaign_id.encode()).hexdigest()[:8]
    return directory / f"{slug}-{digest}.sqlite"


class Ledger:
    """The accepted-messages ledger.

    :param path: the SQLite file (created with its directory when missing).
    :param read_only: open without writing (dry runs); a missing file reads as empty.
    """

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None
        if read_only:
            if not self.path.exists():
                self._conn = None
                return
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Workers of a concurrent send record entries from their threads; the lock serialises them.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.commit()

    def get(self, idempotency_key: str) -> LedgerEntry | None:
        """The entry for ``idempotency_key``, or None when it was never accepted."""
        if self._conn is None:
            return None
        with self._lock:
            try:
                found = self._conn.execute(
                    "SELECT idempotency_key, campaign_id, address, message_id, batch_id, dialect, row, accepted_at"
                    " FROM accepted WHERE idempotency_key = ?",
                    (idempotency_key,),
                ).fetchone()
            except sqlite3.OperationalError:  # a read-only open of a file that has no table yet
                return None
        return LedgerEntry(*found) if found else None

    def _writable(self) -> sqlite3.Connection:
        if self._conn is None or self.read_only:
            raise RuntimeError("the ledger is open read-only")
        return self._conn

    def record(self, entries: Iterable[LedgerEntry], *, settled: Iterable[str] = ()) -> None:
        """Record accepted messages in one committed transaction (a batch is all or nothing).

        :param settled: further keys whose in-flight marks go (requests answered with a refusal);
            the accepted entries' own marks always go.
        """
        conn = self._writable()
        now = datetime.now(timezone.utc).isoformat()
        rows = [
            (e.idempotency_key, e.campaign_id, e.address, e.message_id, e.batch_id, e.dialect, e.row,
             e.accepted_at or now)
            for e in entries
        ]
        done = [(r[0],) for r in rows] + [(k,) for k in settled]
        with self._lock, conn:
            conn.executemany(
                "INSERT OR REPLACE INTO accepted"
                " (idempotency_key, campaign_id, address, message_id, batch_id, dialect, row, accepted_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany("DELETE FROM in_flight WHERE idempotency_key = ?", done)

    def begin(self, entries: Iterable[InFlight]) -> None:
        """Mark messages as handed to the relay, committed before the request goes out."""
        conn = self._writable()
        rows = [(e.idempotency_key, e.campaign_id, e.address, e.text, e.started_at) for e in entries]
        with self._lock, conn:
            conn.executemany(
                "INSERT OR REPLACE INTO in_flight (idempotency_key, campaign_id, address, text, started_at)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def settle(self, keys: Iterable[str]) -> None:
        """Drop in-flight marks without recording an acceptance (the relay refused, or has none)."""
        conn = self._writable()
        with self._lock, conn:
            conn.executemany("DELETE FROM in_flight WHERE idempotency_key = ?", [(k,) for k in keys])

    def in_flight(self, idempotency_key: str) -> InFlight | None:
        """The in-flight mark for ``idempotency_key`` left by an earlier run, if any."""
        if self._conn is None:
            return None
        with self._lock:
            try:
                found = self._conn.execute(
                    "SELECT idempotency_key, campaign_id, address, text, started_at FROM in_flight"
                    " WHERE idempotency_key = ?",
                    (idempotency_key,),
                ).fetchone()
            except sqlite3.OperationalError:
                return None
        return InFlight(*found) if found else None

    def count(self, campaign_id: str | None = None) -> int:
        if self._conn is None:
            return 0
        with self._lock:
            try:
                if campaign_id is None:
                    (n,) = self._conn.execute("SELECT COUNT(*) FROM accepted").fetchone()
                else:
                    (n,) = self._conn.execute(
                        "SELECT COUNT(*) FROM accepted WHERE campaign_id = ?", (campaign_id,)
                    ).fetchone()
            except sqlite3.OperationalError:  # a read-only open of a file that has no table yet
                return 0
        return int(n)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

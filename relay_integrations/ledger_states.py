"""Message states beside the local SQLite ledger: the :class:`~relay_integrations.tracking.TrackingStore`
over the ledger file a campaign already writes (:mod:`relay_integrations.campaign.ledger`).

The ledger's ``accepted`` table holds each accepted message's id and batch; a ``message_states`` table
in the same file keeps the last state learnt for each message id, never moved backwards. Entries are
filtered by the relay identity's dialect (the local ledger records no base URL or account).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from relay_integrations.models import MessageState

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
CREATE TABLE IF NOT EXISTS message_states (
    message_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    rank INTEGER NOT NULL,
    state_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS accepted_campaign_row ON accepted (campaign_id, row);
CREATE INDEX IF NOT EXISTS accepted_message ON accepted (message_id);
"""

_RANKS = {s.value: s.rank for s in MessageState}


@dataclass(frozen=True)
class StateEntry:
    """One accepted message with its last known state."""

    message_id: str | None
    batch_id: str | None
    address: str
    row: int | None
    accepted_at: str | None
    state: str | None
    state_at: str | None


class LedgerStateStore:
    """Tracking reads and writes on a ledger file (created when missing).

    :param path: the ledger's SQLite file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.commit()

    @staticmethod
    def _dialect(relay: Any) -> str | None:
        return getattr(relay, "dialect", None)

    def _where(self, relay: Any, campaign_id: str) -> tuple[str, list[Any]]:
        where, params = ["a.campaign_id = ?"], [campaign_id]
        dialect = self._dialect(relay)
        if dialect:
            where.append("(a.dialect = ? OR a.dialect IS NULL)")
            params.append(dialect)
        return " AND ".join(where), params

    def iter_accepted(
        self, relay: Any, campaign_id: str, *, states: Collection[str | None] | None = None, batch_size: int = 1000
    ) -> Iterator[StateEntry]:
        """Entries in row order, read ``batch_size`` at a time (memory stays flat for any campaign)."""
        where, params = self._where(relay, campaign_id)
        if states is not None:
            named = [s for s in states if s is not None]
            parts = []
            if None in states:
                parts.append("s.state IS NULL")
            if named:
                parts.append(f"s.state IN ({','.join('?' for _ in named)})")
                params += named
            where += f" AND ({' OR '.join(parts) or '0'})"
        last: tuple[int, str] = (-1, "")
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT a.message_id, a.batch_id, a.address, a.row, a.accepted_at, s.state, s.state_at,"
                    " a.idempotency_key FROM accepted a LEFT JOIN message_states s ON s.message_id = a.message_id"
                    f" WHERE {where} AND (COALESCE(a.row, -1), a.idempotency_key) > (?, ?)"
                    " ORDER BY COALESCE(a.row, -1), a.idempotency_key LIMIT ?",
                    [*params, *last, batch_size],
                ).fetchall()
            for r in rows:
                yield StateEntry(*r[:7])
            if len(rows) < batch_size:
                return
            last = (rows[-1][3] if rows[-1][3] is not None else -1, rows[-1][7])

    def record_states(self, relay: Any, campaign_id: str, states: Mapping[str, tuple[str, Any]]) -> int:
        """Store each message's state unless a later one is stored already. Returns rows written."""
        rows = []
        for message_id, (state, at) in states.items():
            value = MessageState(state).value
            rows.append((message_id, value, _RANKS[value], at.isoformat() if isinstance(at, datetime) else str(at)))
        with self._lock, self._conn:
            before = self._conn.total_changes
            self._conn.executemany(
                # Only messages of this ledger (webhook events name other campaigns' messages too).
                "INSERT INTO message_states (message_id, state, rank, state_at) SELECT ?, ?, ?, ?"
                " WHERE EXISTS (SELECT 1 FROM accepted WHERE message_id = ?1)"
                " ON CONFLICT (message_id) DO UPDATE SET state = excluded.state, rank = excluded.rank,"
                " state_at = excluded.state_at WHERE excluded.rank > message_states.rank",
                rows,
            )
            return self._conn.total_changes - before

    def count_states(self, relay: Any, campaign_id: str) -> dict[str | None, int]:
        """Messages per last known state (``None``: none learnt yet)."""
        where, params = self._where(relay, campaign_id)
        with self._lock:
            found = self._conn.execute(
                "SELECT s.state, COUNT(*) FROM accepted a LEFT JOIN message_states s ON s.message_id = a.message_id"
                f" WHERE {where} GROUP BY s.state",
                params,
            ).fetchall()
        return {state: int(n) for state, n in found}

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LedgerStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Simulated delivery: a background thread that moves every due message one step per tick.

Each tick is one transaction of three bulk ``UPDATE ... RETURNING`` statements (final step first,
so a message advances at most one step per tick), plus the webhooks those changes produce,
enqueued in the same transaction. No per-message loops with sleeps: 10,000 due messages cost
three statements.

Outcomes are decided when a message is accepted (``fail_mode``): recipients ending in ``0000``
fail permanently (1); a ``--failure-rate`` fraction, drawn by a seeded hash of the message id,
fails after retries (2, coop shows 3 attempts and dead-letters it).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from relay_integrations.server.common import fails_by_number, now, seeded_fraction
from relay_integrations.server.context import RelayContext
from relay_integrations.server.events import enqueue, status_events

log = logging.getLogger("relay_integrations.server.delivery")

MAX_COOP_ATTEMPTS = 3
PERMANENT_ERROR = "Recipient unreachable (simulated permanent failure: number ends in 0000)"
TRANSIENT_ERROR = "Carrier rejected the message (simulated failure)"

_FINAL_SQL = f"""
UPDATE messages SET
    state = CASE WHEN fail_mode > 0 THEN 'failed' ELSE 'delivered' END,
    error = CASE fail_mode WHEN 1 THEN '{PERMANENT_ERROR}' WHEN 2 THEN '{TRANSIENT_ERROR}' ELSE error END,
    attempts = CASE WHEN fail_mode = 2 AND dialect = 'coop' THEN {MAX_COOP_ATTEMPTS} ELSE attempts END,
    dead_letter = CASE WHEN fail_mode = 2 AND dialect = 'coop' THEN 1 ELSE 0 END,
    final_at = :now, updated_at = :now, next_at = NULL
WHERE state = 'sent' AND next_at IS NOT NULL AND next_at <= :now
RETURNING *
"""
_SENT_SQL = """
UPDATE messages SET state = 'sent', sent_at = :now, updated_at = :now, next_at = :next
WHERE state = 'sending' AND next_at IS NOT NULL AND next_at <= :now
RETURNING *
"""
_SENDING_SQL = """
UPDATE messages SET state = 'sending', sending_at = :now, updated_at = :now, next_at = :next,
    attempts = attempts + 1
WHERE state = 'queued' AND next_at IS NOT NULL AND next_at <= :now
RETURNING *
"""


def step_seconds(latency: float) -> float:
    """Time each of the three steps takes, so the final state comes ``latency`` after acceptance."""
    return latency / 3.0


class DeliveryWorker:
    """Advances messages in the background until :meth:`stop`.

    :param ctx: the relay's shared context.
    :param tick: seconds between passes; short enough that small latencies are honoured.
    """

    def __init__(self, ctx: RelayContext, *, tick: float | None = None) -> None:
        self.ctx = ctx
        latency = ctx.config.delivery_latency
        self.tick = tick if tick is not None else min(0.05, max(0.01, step_seconds(latency) / 2))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="relay-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self.advance()
            except sqlite3.Error:  # keep simulating; a transient lock or a closed DB at shutdown
                if self._stop.is_set():
                    return
                log.exception("delivery tick failed")

    def advance(self, at: float | None = None) -> int:
        """One pass: move every due message one step. Returns how many moved."""
        t = now() if at is None else at
        nxt = t + step_seconds(self.ctx.config.delivery_latency)
        params = {"now": t, "next": nxt}

        def _tx(conn: sqlite3.Connection) -> int:
            moved = 0
            for sql in (_FINAL_SQL, _SENT_SQL, _SENDING_SQL):
                rows = conn.execute(sql, params).fetchall()
                moved += len(rows)
                if rows:
                    enqueue(conn, status_events(self.ctx, rows, t))
            return moved

        # Skip the write lock entirely when nothing is due (the common idle case).
        due = self.ctx.store.query_one(
            "SELECT 1 FROM messages WHERE next_at IS NOT NULL AND next_at <= ? LIMIT 1", (t,))
        if due is None:
            return 0
        return self.ctx.store.write(_tx)


def decide_fail_mode(ctx: RelayContext, message_id: str, address: str | None) -> int:
    """0 = will be delivered, 1 = fails permanently (number ends in 0000), 2 = fails by the seeded failure rate."""
    if fails_by_number(address):
        return 1
    rate = ctx.config.failure_rate
    if rate > 0 and seeded_fraction(ctx.config.seed, message_id) < rate:
        return 2
    return 0


def first_step_at(ctx: RelayContext, created_at: float) -> float:
    return created_at + step_seconds(ctx.config.delivery_latency)

"""Simulated delivery: a background thread that moves every due message one step per tick.

Each tick is one transaction of bulk ``UPDATE`` statements, two per step (final step first, so a
message advances at most one step per tick): one ``RETURNING *`` for the few rows whose change
produces webhooks, enqueued in the same transaction, and one plain for the rest. No
per-message loops with sleeps: a tick moves up to 1,000 messages per step in a few statements.

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

# What each step sets, keyed by the state it starts from.
_SET_CLAUSES = {
    "sent": f"""
    state = CASE WHEN fail_mode > 0 THEN 'failed' ELSE 'delivered' END,
    error = CASE fail_mode WHEN 1 THEN '{PERMANENT_ERROR}' WHEN 2 THEN '{TRANSIENT_ERROR}' ELSE error END,
    attempts = CASE WHEN fail_mode = 2 AND dialect = 'coop' THEN {MAX_COOP_ATTEMPTS} ELSE attempts END,
    dead_letter = CASE WHEN fail_mode = 2 AND dialect = 'coop' THEN 1 ELSE 0 END,
    final_at = :now, updated_at = :now, next_at = NULL""",
    "sending": "state = 'sent', sent_at = :now, updated_at = :now, next_at = :next",
    "queued": "state = 'sending', sending_at = :now, updated_at = :now, next_at = :next, attempts = attempts + 1",
}
# Final step first, so a message advances at most one step per tick.
_STEP_ORDER = ("sent", "sending", "queued")


def _step_sql(from_state: str, notify_dialects: frozenset[str], *, with_events: bool) -> str:
    """One bulk step over at most ``:limit`` due rows.

    Rows that produce webhooks (per-message callback, or a dialect with registered targets) are
    updated ``RETURNING *`` so their events can be built; the rest without, which is much cheaper.
    Queued messages leave in priority order (coop: "higher = processed first").
    """
    order = "priority DESC, next_at" if from_state == "queued" else "next_at"
    dialects = ", ".join(f"'{d}'" for d in sorted(notify_dialects))  # fixed names, never user input
    wants_events = f"(notify = 1 OR dialect IN ({dialects}))" if dialects else "notify = 1"
    return (
        f"UPDATE messages SET {_SET_CLAUSES[from_state]} "
        f"WHERE seq IN (SELECT seq FROM messages WHERE next_at IS NOT NULL AND next_at <= :now "
        f"AND state = '{from_state}' ORDER BY {order} LIMIT :limit) "
        + (f"AND {wants_events} RETURNING *" if with_events else f"AND NOT {wants_events}")
    )


def step_seconds(latency: float) -> float:
    """Time each of the three steps takes, so the final state comes ``latency`` after acceptance."""
    return latency / 3.0


class DeliveryWorker:
    """Advances messages in the background until :meth:`stop`.

    :param ctx: the relay's shared context.
    :param tick: seconds between passes; short enough that small latencies are honoured.
    :param rows_per_step: most messages one pass moves through each step.
    """

    def __init__(self, ctx: RelayContext, *, tick: float | None = None, rows_per_step: int = 1000) -> None:
        self.ctx = ctx
        self.rows_per_step = rows_per_step
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
            except Exception:  # keep simulating: one bad tick must not stop delivery for good
                if self._stop.is_set():
                    return
                log.exception("delivery tick failed")

    def advance(self, at: float | None = None) -> int:
        """One pass: move due messages one step, at most ``rows_per_step`` per step. Returns how many moved.

        Capping the rows per pass keeps each transaction (and so the store's lock) short, so HTTP
        requests are never stalled behind a 10,000-message backlog; the next tick takes the rest.
        """
        t = now() if at is None else at
        nxt = t + step_seconds(self.ctx.config.delivery_latency)
        params = {"now": t, "next": nxt, "limit": self.rows_per_step}
        notify_dialects = self.ctx.status_webhook_dialects()

        def _tx(conn: sqlite3.Connection) -> int:
            moved = 0
            for from_state in _STEP_ORDER:
                rows = conn.execute(_step_sql(from_state, notify_dialects, with_events=True), params).fetchall()
                if rows:
                    enqueue(conn, status_events(self.ctx, rows, t))
                moved += len(rows)
                moved += conn.execute(_step_sql(from_state, notify_dialects, with_events=False), params).rowcount
            return moved

        # Skip the write lock entirely when nothing is due (the common idle case).
        # Only the states a step moves (the index is keyed by state first, so this is three seeks).
        due = self.ctx.store.query_one(
            "SELECT 1 FROM messages WHERE state IN ('queued', 'sending', 'sent') AND next_at IS NOT NULL "
            "AND next_at <= ? LIMIT 1", (t,))
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

"""Durable webhook outbox and its dispatcher.

Every webhook is a row in ``outbox`` written in the same transaction as the change it reports,
with its event id and body fixed at that moment. The dispatcher posts due rows, signs each attempt
afresh (timestamps must be current) with the same event id, and on failure schedules a retry with
exponential backoff and full jitter. Rows survive a restart, so pending deliveries resume.
Only loopback targets are contacted unless ``allow_external_webhooks`` is set; others are
recorded as ``skipped`` so nothing leaves the laptop by accident.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import sqlite3
from typing import Any
from urllib.parse import urlsplit

import httpx

from relay_integrations.server.common import iso_z, now
from relay_integrations.server.context import RelayContext
from relay_integrations.signing import sign_for

log = logging.getLogger("relay_integrations.server.outbox")

MAX_BACKOFF_SECONDS = 3600.0


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def backoff_delay(base: float, attempts: int, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [base/2, base * 2**(attempts-1)], capped."""
    r = rng or random
    ceiling = min(MAX_BACKOFF_SECONDS, base * (2 ** max(0, attempts - 1)))
    return r.uniform(min(base / 2, ceiling), ceiling)


class WebhookDispatcher:
    """Posts due outbox rows until cancelled. Run :meth:`run` as an asyncio task.

    :param ctx: the relay's shared context.
    :param poll_interval: seconds between looks at the outbox when idle.
    :param concurrency: deliveries in flight at once.
    :param timeout: seconds to wait for a receiver.
    """

    def __init__(self, ctx: RelayContext, *, poll_interval: float = 0.05, concurrency: int = 8,
                 timeout: float = 5.0) -> None:
        self.ctx = ctx
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.timeout = timeout

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                     headers={"User-Agent": "relay-integrations-reference-relay"}) as client:
            while True:
                try:
                    busy = await self.dispatch_once(client)
                except Exception:  # keep dispatching; the rows stay pending and are retried
                    log.exception("outbox pass failed")
                    busy = False
                if not busy:
                    await asyncio.sleep(self.poll_interval)

    def _due(self, limit: int) -> list[sqlite3.Row]:
        return self.ctx.store.query(
            "SELECT seq, event_id, dialect, url, event, message_id, body, token, attempts FROM outbox "
            "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?",
            (now(), limit),
        )

    async def dispatch_once(self, client: httpx.AsyncClient) -> bool:
        rows = self._due(self.concurrency * 8)
        if not rows:
            return False
        # Events about one message to one receiver go out in order (queued before sent before delivered);
        # different messages and receivers go out concurrently.
        groups: dict[tuple[str, str | None], list[sqlite3.Row]] = {}
        for row in rows:
            groups.setdefault((row["url"], row["message_id"]), []).append(row)
        semaphore = asyncio.Semaphore(self.concurrency)

        async def _group(members: list[sqlite3.Row]) -> list[tuple[int, str, int | None, str | None]]:
            async with semaphore:
                return [await self._deliver(client, r) for r in members]

        results = [res for group in await asyncio.gather(*(_group(g) for g in groups.values())) for res in group]
        self._record(rows, results)
        return True

    async def _deliver(self, client: httpx.AsyncClient, row: sqlite3.Row) -> tuple[int, str, int | None, str | None]:
        """Returns (seq, outcome, http status, error) with outcome delivered | retry | skipped."""
        url = row["url"]
        if not self.ctx.config.allow_external_webhooks and not is_loopback_url(url):
            return row["seq"], "skipped", None, "not delivered: the reference relay only posts to loopback hosts"
        body: bytes = row["body"]
        headers = {"Content-Type": "application/json"}
        # Each dialect signs with its own secret; phonerelay sends only the callback's own token.
        secret = row["token"] if row["dialect"] == "phonerelay" else self.ctx.config.webhook_secret_for(row["dialect"])
        if secret:
            headers.update(sign_for(row["dialect"], body, secret, row["event_id"]))
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return row["seq"], "retry", None, f"{type(exc).__name__}: could not reach receiver"
        if 200 <= response.status_code < 300:
            return row["seq"], "delivered", response.status_code, None
        return row["seq"], "retry", response.status_code, f"receiver answered {response.status_code}"

    def _record(self, rows: list[sqlite3.Row], results: list[tuple[int, str, int | None, str | None]]) -> None:
        t = now()
        cfg = self.ctx.config
        attempts_by_seq = {r["seq"]: r["attempts"] for r in rows}
        updates: list[tuple[Any, ...]] = []
        for seq, outcome, status, error in results:
            attempts = attempts_by_seq[seq] + (0 if outcome == "skipped" else 1)
            if outcome == "delivered":
                updates.append(("delivered", attempts, t, status, None, t, seq))
            elif outcome == "skipped":
                updates.append(("skipped", attempts, t, None, error, None, seq))
            elif attempts >= cfg.webhook_max_attempts:
                updates.append(("dead", attempts, t, status, error, None, seq))
            else:
                nxt = t + backoff_delay(cfg.webhook_retry_base, attempts)
                updates.append(("pending", attempts, nxt, status, error, None, seq))
        self.ctx.store.write(lambda c: c.executemany(
            "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ?, "
            "delivered_at = ? WHERE seq = ?", updates))


def delivery_view(row: sqlite3.Row) -> dict[str, Any]:
    """An outbox row for GET /_sim/webhook-deliveries: everything but the token."""
    return {
        "event_id": row["event_id"], "dialect": row["dialect"], "url": row["url"], "event": row["event"],
        "message_id": row["message_id"], "status": row["status"], "attempts": row["attempts"],
        "next_attempt_at": iso_z(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "last_status": row["last_status"], "last_error": row["last_error"], "created_at": iso_z(row["created_at"]),
        "delivered_at": iso_z(row["delivered_at"]), "body": row["body"].decode(),
    }

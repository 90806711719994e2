"""Finding out whether a relay already has messages an earlier try may have sent.

relaysms and coop take no client idempotency key. When a run died (or a request failed in a way
that may have reached the relay: a 5xx, a read timeout), the next run must not send those
messages blindly. It reads the relay's outbound list over the whole window since the first try
began and matches each message it looks for:

* on our idempotency key, wherever the relay echoes it (``metadata.idempotency_key`` or a client
  reference in the listed item);
* else on (address, exact text); each listed message matches at most one wanted one.

No list order is assumed (no relay doc promises newest first): every page is read until every
wanted message was found or the list ends, bounded by ``max_pages``. What the bound leaves
unchecked is reported as such (``complete`` False), never treated as "not sent".

One reconciler serves the campaign, the Airflow operators and the Prefect tasks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from relay_integrations.models import MessagePage, MessageSummary

# Relay and local clocks differ; look this far before the first try began.
CLOCK_MARGIN = timedelta(minutes=5)
# Bound on the pages read (100 messages each).
MAX_PAGES = 1000
LIST_FILTERS: dict[str, Any] = {"direction": "outbound", "limit": 100}


def _aware(moment: datetime) -> datetime:
    """A plain aware UTC datetime (naive ones are taken as UTC; subclasses such as Prefect's are unwrapped)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(moment.timestamp(), tz=timezone.utc)


@dataclass(frozen=True)
class Wanted:
    """A message an earlier try may have handed to the relay."""

    idempotency_key: str
    address: str
    text: str | None


@dataclass
class Reconciliation:
    """What a reconciliation found: ``found`` maps idempotency key to the relay's message id."""

    found: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    complete: bool = True
    pages: int = 0


def _echoed_key(summary: MessageSummary) -> str | None:
    raw = summary.raw or {}
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    if isinstance(metadata, dict) and metadata.get("idempotency_key"):
        return str(metadata["idempotency_key"])
    for name in ("idempotency_key", "idempotencyKey", "clientReference"):
        if isinstance(raw, dict) and raw.get(name):
            return str(raw[name])
    return None


class Reconciler:
    """Matches wanted messages against pages of a relay's outbound list (any order).

    :param since: when the first try began; listed messages created before it (less a clock
        margin) are not ours and are skipped.
    """

    def __init__(self, wanted: Iterable[Wanted], *, since: datetime | None = None) -> None:
        self.by_key: dict[str, Wanted] = {}
        self.by_content: dict[tuple[str, str], list[str]] = {}
        for w in wanted:
            self.by_key[w.idempotency_key] = w
            self.by_content.setdefault((w.address, w.text or ""), []).append(w.idempotency_key)
        self.cutoff = _aware(since) - CLOCK_MARGIN if since is not None else None
        self.result = Reconciliation()
        self._used: set[str] = set()

    @property
    def pending(self) -> bool:
        return len(self.result.found) < len(self.by_key)

    def _take(self, key: str, message_id: str) -> None:
        wanted = self.by_key[key]
        self.result.found[key] = message_id
        keys = self.by_content.get((wanted.address, wanted.text or ""), [])
        if key in keys:
            keys.remove(key)

    def feed(self, page: MessagePage) -> bool:
        """Take one page; True when every wanted message was found."""
        self.result.pages += 1
        for summary in page.messages:
            if summary.direction == "inbound" or summary.message_id in self._used:
                continue
            if self.cutoff is not None and summary.created_at is not None and _aware(summary.created_at) < self.cutoff:
                continue
            key = _echoed_key(summary)
            if key is not None:
                if key in self.by_key and key not in self.result.found:
                    self._take(key, summary.message_id)
                    self._used.add(summary.message_id)
                continue  # echoed another key: someone else's message, never a content match
            keys = self.by_content.get((summary.to or "", summary.text or ""))
            if keys:
                self._take(keys[0], summary.message_id)
                self._used.add(summary.message_id)
        return not self.pending

    def finish(self, *, exhausted: bool) -> Reconciliation:
        """The outcome; ``exhausted`` says whether the list was read to its end."""
        self.result.missing = [k for k in self.by_key if k not in self.result.found]
        self.result.complete = exhausted or not self.result.missing
        return self.result


def reconcile(client: Any, wanted: Iterable[Wanted], *, since: datetime | None = None,
              max_pages: int = MAX_PAGES) -> Reconciliation:
    """Look ``wanted`` messages up on the relay with a sync client."""
    reconciler = Reconciler(wanted, since=since)
    if not reconciler.by_key:
        return reconciler.finish(exhausted=True)
    pages = 0
    for page in client.iter_messages(max_pages=max_pages, **LIST_FILTERS):
        pages += 1
        if reconciler.feed(page):
            return reconciler.finish(exhausted=True)
    return reconciler.finish(exhausted=pages < max_pages)


async def areconcile(client: Any, wanted: Iterable[Wanted], *, since: datetime | None = None,
                     max_pages: int = MAX_PAGES) -> Reconciliation:
    """:func:`reconcile` with an async client."""
    reconciler = Reconciler(wanted, since=since)
    if not reconciler.by_key:
        return reconciler.finish(exhausted=True)
    pages = 0
    async for page in client.iter_messages(max_pages=max_pages, **LIST_FILTERS):
        pages += 1
        if reconciler.feed(page):
            return reconciler.finish(exhausted=True)
    return reconciler.finish(exhausted=pages < max_pages)

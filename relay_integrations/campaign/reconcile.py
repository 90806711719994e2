"""Settling messages an earlier run left in flight, on relays that cannot de-duplicate.

relaysms and coop take no client idempotency key. A campaign marks each message as in flight in
the ledger before the request and clears the mark with the answer; a mark left over means the
process died (or the connection broke) in between, so the relay may or may not have the message.
Before sending again, the campaign reads the relay's outbound messages, newest first, back to a
little before the earliest mark, and takes a stored message to the same address with the same
text as the one it sent. Only what is not found there is sent again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from relay_integrations.campaign.ledger import Ledger, LedgerEntry
from relay_integrations.campaign.report import ALREADY_SENT, IN_DOUBT, READY
from relay_integrations.campaign.store import PlannedRow, RowResult, ScratchStore
from relay_integrations.models import MessagePage

# Relay and local clocks differ; look this far before the earliest in-flight mark.
CLOCK_MARGIN = timedelta(minutes=5)
# Bound on the pages read (100 messages each) while looking for in-flight messages.
MAX_PAGES = 1000
LIST_FILTERS = {"direction": "outbound", "limit": 100}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class Reconciler:
    """Matches a campaign's in-doubt rows against pages of the relay's outbound messages."""

    def __init__(self, store: ScratchStore, ledger: Ledger, campaign_id: str, dialect: str) -> None:
        self.store = store
        self.ledger = ledger
        self.campaign_id = campaign_id
        self.dialect = dialect
        self.wanted: dict[tuple[str, str], list[PlannedRow]] = {}
        self.found: list[tuple[PlannedRow, str]] = []
        earliest: datetime | None = None
        for planned in store.iter_rows([IN_DOUBT]):
            assert planned.message is not None and planned.address is not None
            self.wanted.setdefault((planned.address, str(planned.message.get("text"))), []).append(planned)
            mark = ledger.in_flight(planned.idempotency_key or "")
            started = _aware(datetime.fromisoformat(mark.started_at)) if mark else datetime.now(timezone.utc)
            earliest = started if earliest is None else min(earliest, started)
        self.cutoff = (earliest or datetime.now(timezone.utc)) - CLOCK_MARGIN

    @property
    def pending(self) -> bool:
        return bool(self.wanted)

    def feed(self, page: MessagePage) -> bool:
        """Take one page; True when there is no need to read further."""
        oldest: datetime | None = None
        for summary in page.messages:
            if summary.direction == "inbound":
                continue
            if summary.created_at is not None:
                created = _aware(summary.created_at)
                oldest = created if oldest is None else min(oldest, created)
            key = (summary.to or "", summary.text or "")
            rows = self.wanted.get(key)
            if rows:
                self.found.append((rows.pop(0), summary.message_id))
                if not rows:
                    del self.wanted[key]
        return not self.wanted or (oldest is not None and oldest < self.cutoff)

    def finish(self) -> int:
        """Record what was found as already sent; put the rest back to be sent. Returns how many were found."""
        if self.found:
            self.ledger.record([
                LedgerEntry(idempotency_key=p.idempotency_key or "", campaign_id=self.campaign_id,
                            address=p.address or "", message_id=message_id, dialect=self.dialect, row=p.row)
                for p, message_id in self.found
            ])
        results = [RowResult(p.row, ALREADY_SENT, message_id=m) for p, m in self.found]
        missing: Iterable[PlannedRow] = (p for rows in self.wanted.values() for p in rows)
        results += [RowResult(p.row, READY) for p in missing]
        self.store.set_results(results)
        return len(self.found)

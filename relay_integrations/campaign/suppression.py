"""The suppression list: addresses a relay account must not message, kept in the campaign store.

Entries come from two places:

* replies: an inbound message whose text is an opt-out keyword (STOP, UNSUBSCRIBE, ... see
  :mod:`relay_integrations.replies`) suppresses its sender; START or UNSTOP lifts that opt-out.
  The webhook receiver records them as it stores the events (``relay webhooks serve --opt-outs``),
  and :meth:`SuppressionList.apply_replies` does the same for events read from an inbox;
* by hand: :meth:`SuppressionList.add` / :meth:`SuppressionList.remove` (``relay suppression
  add|remove``). A reply of START never lifts an entry added by hand.

Each account's list is keyed by the relay's identity (dialect, base URL, account; never a key,
see :class:`~relay_integrations.campaign.campaign_store.RelayIdentity`), so a STOP sent to one
relay account does not silence another. Changes are ordered by when they happened: events arrive
late and twice, and an older STOP delivered after a newer START changes nothing.

Where the list lives: :func:`suppression_location` (an explicit location, else
``$RELAY_SUPPRESSION_STORE``, else a campaign store that is a shared database, else one SQLite file
in the user cache shared by every campaign on the machine).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from relay_integrations.campaign.addresses import normalize_suppressed
from relay_integrations.campaign.campaign_store import (
    CampaignStore,
    CampaignStoreError,
    RelayIdentity,
    StoreLocation,
    store_url,
    suppressions_table,
)
from relay_integrations.models import WebhookEvent
from relay_integrations.replies import is_opt_in, is_opt_out
from relay_integrations.waiting import as_utc

SUPPRESSION_STORE_ENV = "RELAY_SUPPRESSION_STORE"

Source = Literal["reply", "manual"]
REPLY: Source = "reply"
MANUAL: Source = "manual"

# Confirmation of an opt-out: pending (to send), sending (handed to the relay), sent, failed.
PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"

_DETAIL_CHARS = 160


def default_suppression_path() -> Path:
    """The machine's shared suppression list: ``$XDG_CACHE_HOME`` (or ``~/.cache``)
    ``/relay-integrations/suppressions.sqlite``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "relay-integrations" / "suppressions.sqlite"


def suppression_location(explicit: StoreLocation | None = None, ledger: StoreLocation | None = None) -> StoreLocation:
    """Where the suppression list is: ``explicit``, else ``$RELAY_SUPPRESSION_STORE``, else ``ledger``
    when it is a shared database (PostgreSQL), else :func:`default_suppression_path`.

    A campaign's SQLite ledger is one file per campaign, so it never holds the list: every campaign
    on the machine, and the webhook receiver, must see the same entries.
    """
    if explicit not in (None, ""):
        assert explicit is not None
        return explicit
    from_env = os.environ.get(SUPPRESSION_STORE_ENV, "").strip()
    if from_env:
        return from_env
    if ledger not in (None, "") and store_url(ledger).get_backend_name() != "sqlite":
        assert ledger is not None
        return ledger
    return default_suppression_path()


@dataclass(frozen=True)
class Suppression:
    """One address on the list: why (``source``: reply or manual, ``detail``: the reply's text or the
    note given) and since when (``since``, UTC)."""

    address: str
    source: Source
    since: datetime
    detail: str | None = None
    event_id: str | None = None
    confirmation: str | None = None

    def describe(self) -> str:
        """``opted out by replying 'STOP' at 2026-12-04T10:00:00+00:00`` or ``added by hand at ...``."""
        when = self.since.isoformat()
        if self.source == REPLY:
            return f"opted out by replying {self.detail!r} at {when}"
        note = f" ({self.detail})" if self.detail else ""
        return f"suppressed by hand at {when}{note}"

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "source": self.source, "since": self.since.isoformat(),
                "detail": self.detail, "reason": self.describe(), "confirmation": self.confirmation}


@dataclass(frozen=True)
class Change:
    """What a reply did to the list: ``suppressed`` (True: opted out, False: opted in) and whether
    it is new (``changed``); ``confirm`` asks for the opt-out confirmation to be sent."""

    address: str
    suppressed: bool
    changed: bool
    event_id: str
    confirm: bool = False


@dataclass(frozen=True)
class _Wanted:
    """One change asked of the list: suppress (or lift) ``address``, why, and as of when."""

    address: str
    suppressed: bool
    source: Source
    detail: str | None
    event_id: str | None
    changed_at: datetime
    confirm: bool = False


def _insert(conn: sa.Connection) -> Any:
    """An INSERT that may meet a row another process inserted meanwhile (``on_conflict_do_nothing``)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(suppressions_table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(suppressions_table)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class SuppressionList:
    """One relay account's suppression list in a campaign store (SQLite or PostgreSQL).

    :param store: an open :class:`~relay_integrations.campaign.campaign_store.CampaignStore`.
    :param relay: the account (``RelayIdentity.from_client(client)``).
    :param channel: how addresses are normalised (``sms``: E.164), so entries compare equal to
        campaign rows; ``default_region`` for numbers written without ``+``.
    """

    def __init__(self, store: CampaignStore, relay: RelayIdentity, *, channel: str = "sms",
                 default_region: str | None = None) -> None:
        self.store = store
        self.relay = relay
        self.channel = channel
        self.default_region = default_region
        self._has_table: bool | None = None

    @classmethod
    def open(cls, location: StoreLocation | None, relay: RelayIdentity, *, read_only: bool = False,
             channel: str = "sms", default_region: str | None = None) -> SuppressionList:
        """Open the list at ``location`` (None: see :func:`suppression_location`)."""
        store = CampaignStore.open(suppression_location(location), read_only=read_only)
        return cls(store, relay, channel=channel, default_region=default_region)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> SuppressionList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SuppressionList({self.store.url_for_display!r}, {self.relay.dialect} {self.relay.base_url})"

    def normalize(self, address: str) -> str:
        return normalize_suppressed(address, self.channel, default_region=self.default_region)

    # --- reading ---------------------------------------------------------------------------
    def _readable(self) -> bool:
        if self.store._engine is None:  # a read-only open of a store nothing was written to
            return False
        if self._has_table is None:
            self._has_table = bool(self.store._run("read", lambda conn: sa.inspect(conn).has_table(
                suppressions_table.name)))
        return self._has_table

    def _select(self) -> Any:
        t = suppressions_table.c
        return (sa.select(t.address, t.source, t.changed_at, t.detail, t.event_id, t.confirmation)
                .where(t.relay_id == self.relay.relay_id, t.suppressed.is_(True)))

    @staticmethod
    def _entry(row: Any) -> Suppression:
        return Suppression(row[0], row[1], as_utc(row[2]), row[3], row[4], row[5])

    def lookup(self, addresses: Iterable[str]) -> dict[str, Suppression]:
        """The entries among ``addresses`` (already normalised), by address."""
        if not self._readable():
            return {}
        wanted = list(dict.fromkeys(addresses))
        found: dict[str, Suppression] = {}

        def read(conn: sa.Connection) -> None:
            for start in range(0, len(wanted), 500):
                query = self._select().where(suppressions_table.c.address.in_(wanted[start:start + 500]))
                for row in conn.execute(query):
                    found[row[0]] = self._entry(row)

        if wanted:
            self.store._run("read", read)
        return found

    def get(self, address: str) -> Suppression | None:
        """The entry of ``address`` (normalised here), or None."""
        normalized = self.normalize(address)
        return self.lookup([normalized]).get(normalized)

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and self.get(address) is not None

    def entries(self) -> Iterator[Suppression]:
        """Every entry, by address, read a page at a time."""
        if not self._readable():
            return
        last = ""
        while True:
            query = self._select().where(suppressions_table.c.address > last).order_by(
                suppressions_table.c.address).limit(1000)
            page = self.store._run("read", lambda conn, q=query: conn.execute(q).all())
            if not page:
                return
            yield from (self._entry(r) for r in page)
            last = page[-1][0]

    def count(self) -> int:
        if not self._readable():
            return 0
        t = suppressions_table.c
        return int(self.store._run("read", lambda conn: conn.execute(
            sa.select(sa.func.count()).where(t.relay_id == self.relay.relay_id, t.suppressed.is_(True))
        ).scalar_one()))

    # --- changing --------------------------------------------------------------------------
    def add(self, addresses: Iterable[str], *, note: str | None = None, at: datetime | None = None) -> int:
        """Suppress ``addresses`` by hand (normalised here); returns how many were not suppressed before."""
        when = as_utc(at) if at is not None else _now()
        changes = [_Wanted(self.normalize(a), True, MANUAL, note, None, when) for a in addresses if a.strip()]
        return sum(1 for c in self._write("add to the suppression list in", changes) if c.changed)

    def remove(self, addresses: Iterable[str], *, at: datetime | None = None) -> int:
        """Lift the entries of ``addresses`` (by hand or from replies); returns how many were lifted."""
        when = as_utc(at) if at is not None else _now()
        changes = [_Wanted(self.normalize(a), False, MANUAL, None, None, when) for a in addresses if a.strip()]
        return sum(1 for c in self._write("remove from the suppression list in", changes) if c.changed)

    def keyword_replies(self, events: Iterable[WebhookEvent]) -> list[WebhookEvent]:
        """The inbound ``events`` of this relay's dialect that opt out or back in (no I/O)."""
        return [e for e in events if e.kind == "inbound" and e.dialect == self.relay.dialect and e.sender
                and (is_opt_out(e.text) or is_opt_in(e.text))]

    def apply_replies(self, events: Iterable[WebhookEvent], *, confirm: bool = False) -> list[Change]:
        """Record the opt-outs (STOP, ...) and opt-ins (START, UNSTOP) among inbound ``events`` of this
        relay's dialect; other events are ignored. Safe to repeat: an event seen before changes nothing.

        :param confirm: new opt-outs are marked for a confirmation reply (see :meth:`claim_confirmation`).
        :return: one :class:`Change` per keyword event, in order.
        """
        wanted: list[_Wanted] = []
        for event in self.keyword_replies(events):
            assert event.sender is not None
            stop = is_opt_out(event.text)
            wanted.append(_Wanted(self.normalize(event.sender), stop, REPLY, (event.text or "").strip()[:_DETAIL_CHARS],
                                  event.event_id, as_utc(event.occurred_at or event.received_at or _now()),
                                  confirm=confirm and stop))
        return self._write("record replies in", wanted)

    def _write(self, action: str, changes: Sequence[_Wanted]) -> list[Change]:
        if not changes:
            return []
        t = suppressions_table.c
        relay = self.relay
        lock = not self.store.is_sqlite  # SQLite transactions here begin IMMEDIATE: already serial

        def work(conn: sa.Connection) -> list[Change]:
            done: list[Change] = []
            for c in changes:
                key = (t.relay_id == relay.relay_id, t.address == c.address)
                query = sa.select(t.suppressed, t.source, t.changed_at, t.event_id).where(*key)
                current = conn.execute(query.with_for_update() if lock else query).first()
                event_id = c.event_id or ""
                if current is None:
                    if not c.suppressed:  # nothing to lift
                        done.append(Change(c.address, False, False, event_id))
                        continue
                    inserted = conn.execute(
                        _insert(conn).values(
                            relay_id=relay.relay_id, address=c.address, suppressed=True, source=c.source,
                            detail=c.detail, event_id=c.event_id, changed_at=c.changed_at,
                            dialect=relay.dialect, base_url=relay.base_url, account=relay.account,
                            confirmation=PENDING if c.confirm else None,
                        ).on_conflict_do_nothing()
                    )
                    if inserted.rowcount:
                        done.append(Change(c.address, True, True, event_id, confirm=c.confirm))
                        continue
                    current = conn.execute(query.with_for_update() if lock else query).first()
                    assert current is not None
                was_suppressed, source, changed_at, last_event = current
                if c.event_id is not None and last_event == c.event_id:
                    done.append(Change(c.address, bool(was_suppressed), False, event_id))  # seen before
                    continue
                if changed_at is not None and as_utc(changed_at) > c.changed_at:
                    done.append(Change(c.address, bool(was_suppressed), False, event_id))  # stale
                    continue
                if c.source == REPLY and not c.suppressed and was_suppressed and source == MANUAL:
                    # START lifts an opt-out, never a suppression someone added by hand.
                    done.append(Change(c.address, True, False, event_id))
                    continue
                # Adding by hand over an opt-out makes the entry a hand one (a later START leaves it).
                made_manual = c.suppressed and source == REPLY and c.source == MANUAL
                if bool(was_suppressed) == c.suppressed and not made_manual:
                    done.append(Change(c.address, c.suppressed, False, event_id))
                    continue
                values: dict[str, Any] = {"suppressed": c.suppressed, "changed_at": c.changed_at,
                                          "event_id": c.event_id}
                if c.suppressed:
                    values.update(source=c.source, detail=c.detail)
                    if c.confirm and not was_suppressed:
                        values["confirmation"] = PENDING
                conn.execute(sa.update(suppressions_table).where(*key).values(**values))
                new = c.suppressed and not was_suppressed
                done.append(Change(c.address, c.suppressed, bool(was_suppressed) != c.suppressed,
                                   event_id, confirm=bool(c.confirm and new)))
            return done

        result: list[Change] = self.store._run(action, work)
        self._has_table = True
        return result

    # --- the opt-out confirmation -----------------------------------------------------------
    def claim_confirmation(self, address: str) -> bool:
        """Take the pending confirmation of ``address`` (pending -> sending); False when another
        process took it, or it was sent or not asked for. Sending happens at most once."""
        t = suppressions_table.c
        return bool(self.store._run("claim a confirmation in", lambda conn: conn.execute(
            sa.update(suppressions_table)
            .where(t.relay_id == self.relay.relay_id, t.address == address, t.confirmation == PENDING)
            .values(confirmation=SENDING)).rowcount))

    def confirmation_done(self, address: str, *, message_id: str | None, failed: bool = False) -> None:
        """Record the confirmation's outcome: sent (with the relay's message id) or failed."""
        t = suppressions_table.c
        self.store._run("record a confirmation in", lambda conn: conn.execute(
            sa.update(suppressions_table)
            .where(t.relay_id == self.relay.relay_id, t.address == address, t.confirmation == SENDING)
            .values(confirmation=FAILED if failed else SENT, confirmation_id=message_id)))

    def pending_confirmations(self) -> list[str]:
        """Addresses whose confirmation is still to be sent (a receiver that stopped before sending)."""
        if not self._readable():
            return []
        t = suppressions_table.c
        rows = self.store._run("read", lambda conn: conn.execute(
            sa.select(t.address).where(t.relay_id == self.relay.relay_id, t.confirmation == PENDING,
                                       t.suppressed.is_(True))).all())
        return [r[0] for r in rows]


__all__ = [
    "MANUAL",
    "REPLY",
    "SUPPRESSION_STORE_ENV",
    "CampaignStoreError",
    "Change",
    "Suppression",
    "SuppressionList",
    "default_suppression_path",
    "suppression_location",
]

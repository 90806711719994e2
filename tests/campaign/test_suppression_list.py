"""The suppression list on both store backends: replies in any order, by-hand entries, accounts apart,
confirmations claimed once, and a list that cannot be read stopping a send."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from relay_integrations.campaign.campaign_store import CampaignStore, CampaignStoreError, RelayIdentity
from relay_integrations.campaign.suppression import (
    SUPPRESSION_STORE_ENV,
    SuppressionList,
    default_suppression_path,
    suppression_location,
)
from relay_integrations.models import WebhookEvent
from relay_integrations.replies import is_opt_in, is_opt_out

RELAY = RelayIdentity("smsgate", "http://127.0.0.1:1/smsgate", "login:relay")
OTHER_ACCOUNT = RelayIdentity("smsgate", "http://127.0.0.1:1/smsgate", "login:other")
T0 = datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)
PERSON = "+15551230001"


def reply(event_id: str, text: str, minutes: int, sender: str = PERSON, dialect: str = "smsgate") -> WebhookEvent:
    return WebhookEvent(event_id=event_id, dialect=dialect, kind="inbound", event_type="sms:received",
                        sender=sender, text=text, occurred_at=T0 + timedelta(minutes=minutes))


def test_keywords_are_exact_trimmed_and_any_case() -> None:
    assert is_opt_out(" stop ") and is_opt_out("Unsubscribe") and is_opt_out("optout")
    assert not is_opt_out("stop it") and not is_opt_out("") and not is_opt_out(None)
    assert is_opt_in("start") and is_opt_in(" UNSTOP") and not is_opt_in("start over")


def test_stop_then_start_in_any_order_and_twice(store_location: str) -> None:
    with SuppressionList.open(store_location, RELAY) as listed:
        assert [c.changed for c in listed.apply_replies([reply("e1", " Stop ", 0)])] == [True]
        entry = listed.get(PERSON)
        assert entry is not None and entry.source == "reply" and entry.since == T0 and entry.detail == "Stop"
        assert entry.describe() == f"opted out by replying 'Stop' at {T0.isoformat()}"
        # The same event again (a relay's retry): nothing changes.
        assert [c.changed for c in listed.apply_replies([reply("e1", " Stop ", 0)])] == [False]
        # START five minutes later lifts it; an older STOP delivered late does not bring it back.
        assert [c.changed for c in listed.apply_replies([reply("e2", "START", 5)])] == [True]
        assert listed.apply_replies([reply("e0", "STOP", 3)])[0].changed is False
        assert PERSON not in listed and listed.count() == 0
        # A newer STOP does.
        assert listed.apply_replies([reply("e3", "quit", 9)])[0].suppressed is True
        assert PERSON in listed
        # Not keywords, other dialects, other kinds: ignored.
        assert listed.apply_replies([reply("e4", "stop it", 10), reply("e5", "STOP", 11, dialect="coop")]) == []


def test_start_never_lifts_an_entry_added_by_hand(store_location: str) -> None:
    with SuppressionList.open(store_location, RELAY) as listed:
        assert listed.add(["+1 (555) 123-0002"], note="complaint") == 1
        assert listed.add(["+15551230002"]) == 0  # the same number, normalised
        listed.apply_replies([reply("s1", "START", 60 * 24 * 365, sender="+15551230002")])
        entry = listed.get("+15551230002")
        assert entry is not None and entry.source == "manual" and entry.detail == "complaint"
        assert listed.remove(["+15551230002"]) == 1 and listed.remove(["+15551230002"]) == 0
        assert listed.count() == 0


def test_accounts_keep_their_own_lists(store_location: str) -> None:
    with (SuppressionList.open(store_location, RELAY) as mine,
          SuppressionList.open(store_location, OTHER_ACCOUNT) as theirs):
        mine.apply_replies([reply("a1", "STOP", 0)])
        assert PERSON in mine and PERSON not in theirs
        assert [e.address for e in mine.entries()] == [PERSON] and list(theirs.entries()) == []


def test_a_confirmation_is_claimed_once_among_many_threads(store_location: str) -> None:
    with SuppressionList.open(store_location, RELAY) as listed:
        change = listed.apply_replies([reply("c1", "STOP", 0)], confirm=True)[0]
        assert change.confirm
        # A second STOP (a new event) is no new opt-out: no second confirmation.
        assert not listed.apply_replies([reply("c2", "STOP", 1)], confirm=True)[0].confirm
        assert listed.pending_confirmations() == [PERSON]
    wins: list[bool] = []
    stores = [SuppressionList.open(store_location, RELAY) for _ in range(6)]
    threads = [threading.Thread(target=lambda s=s: wins.append(s.claim_confirmation(PERSON))) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]
    stores[0].confirmation_done(PERSON, message_id="m-1")
    assert stores[0].get(PERSON).confirmation == "sent"  # type: ignore[union-attr]
    assert stores[0].pending_confirmations() == []
    for s in stores:
        s.close()


def test_a_list_nobody_wrote_reads_as_empty(tmp_path: Path) -> None:
    with SuppressionList.open(tmp_path / "never-written.sqlite", RELAY, read_only=True) as listed:
        assert listed.count() == 0 and list(listed.entries()) == [] and listed.lookup([PERSON]) == {}
    assert not (tmp_path / "never-written.sqlite").exists()
    # A store written by a campaign (ledger tables only) also reads as an empty list.
    CampaignStore.open(tmp_path / "ledger-only.sqlite").close()
    with SuppressionList.open(tmp_path / "ledger-only.sqlite", RELAY, read_only=True) as listed:
        assert listed.count() == 0


def test_where_the_list_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(SUPPRESSION_STORE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_suppression_path() == tmp_path / "cache" / "relay-integrations" / "suppressions.sqlite"
    # A campaign's SQLite ledger is one file per campaign: never the list.
    assert suppression_location(None, tmp_path / "ledger.sqlite") == default_suppression_path()
    pg = "postgresql://relay:pw@127.0.0.1:5432/campaigns"
    assert suppression_location(None, pg) == pg
    monkeypatch.setenv(SUPPRESSION_STORE_ENV, str(tmp_path / "env.sqlite"))
    assert suppression_location(None, pg) == str(tmp_path / "env.sqlite")
    assert suppression_location("explicit.sqlite", pg) == "explicit.sqlite"


def test_an_unreachable_list_is_a_clear_error_without_the_password() -> None:
    from relay_integrations.process import free_port

    with pytest.raises(CampaignStoreError) as caught:
        SuppressionList.open(f"postgresql://alice:s3cret-pw@127.0.0.1:{free_port()}/db", RELAY)
    assert "s3cret-pw" not in str(caught.value) and "127.0.0.1" in str(caught.value)

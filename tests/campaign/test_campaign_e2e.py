"""Campaigns end to end against the reference relay process, for every dialect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from campaign_relay_helpers import (
    DIALECTS,
    async_client_for,
    client_for,
    ids_by_address,
    messages_per_address,
    numbers,
    texts_by_address,
)

from relay_integrations.campaign import Campaign, CampaignProgress, CampaignValidationError
from relay_integrations.campaign.campaign_store import CampaignStore, RelayIdentity
from relay_integrations.errors import RelayAuthError
from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e


class Crash(Exception):
    """Stands in for a worker dying midway."""


def people(addresses: list[str]) -> list[dict[str, Any]]:
    return [{"phone": a, "name": f"Person {i}"} for i, a in enumerate(addresses, start=1)]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_campaign_sends_each_good_row_once_and_reports_it(
    relay: ReferenceRelayProcess, dialect: str, tmp_path: Path
) -> None:
    good = numbers(60)
    suppressed = good[5]
    rows = people(good)
    rows.insert(10, {"phone": "not a number", "name": "Bad"})       # row 11: invalid
    rows.append({"phone": good[0].replace("+1312", "+1 312 "), "name": "Person 1"})  # duplicate of row 1
    campaign = Campaign(
        "Hello {{ name }}, see you soon.", rows, campaign_id=f"e2e-{dialect}", skip_invalid=True,
        suppression=[suppressed], ledger_path=tmp_path / "ledger.sqlite", concurrency=4,
    )
    with client_for(relay, dialect) as client:
        report = campaign.send(client)

    assert report.counts["total"] == 62
    assert report.counts["accepted"] == 59
    assert report.counts["invalid"] == 1
    assert report.counts["suppressed"] == 1
    assert report.counts["duplicate"] == 1
    assert report.counts["failed"] == 0
    assert report.counts["segments"] == 59
    assert report.dialect == dialect
    rows_by_address = {r["address"]: r for r in report.rows if r["state"] == "accepted"}
    assert rows_by_address.keys() == set(good) - {suppressed}
    assert report.rows[10]["state"] == "invalid" and report.rows[10]["row"] == 11

    per_address = messages_per_address(relay, dialect, good)
    assert per_address[suppressed] == 0
    assert {a: c for a, c in per_address.items() if a != suppressed} == {a: 1 for a in rows_by_address}
    texts = texts_by_address(relay, dialect, good)
    assert texts[good[2]] == "Hello Person 3, see you soon."
    relay_ids = ids_by_address(relay, dialect, good)
    # coop: the bulk job answers with a job id; the ids come from the job's per-recipient results.
    assert {a: r["message_id"] for a, r in rows_by_address.items()} == {a: relay_ids[a] for a in rows_by_address}
    if dialect in ("relaysms", "coop"):
        assert all(r["batch_id"] for r in rows_by_address.values())
    assert set(report.message_ids) >= {r["message_id"] for r in rows_by_address.values() if r["message_id"]}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rerun_after_a_crash_midway_leaves_exactly_one_message_each(
    relay: ReferenceRelayProcess, dialect: str, tmp_path: Path
) -> None:
    addresses = numbers(200)
    ledger_path = tmp_path / "ledger.sqlite"
    # The same text for everyone, so smsgate groups recipients; small requests so there is a "midway".
    template = "Flash sale today only."

    def crash_after_first_results(progress: CampaignProgress) -> None:
        if progress.phase == "sending" and progress.processed >= 40:
            raise Crash("worker died")

    def campaign(**kwargs: Any) -> Campaign:
        return Campaign(template, people(addresses), campaign_id=f"crash-{dialect}", ledger_path=ledger_path,
                        batch_size=20, concurrency=2, **kwargs)

    with client_for(relay, dialect) as client:
        with pytest.raises(Crash):
            campaign(progress=crash_after_first_results).send(client)
        with CampaignStore.open(ledger_path) as ledger:
            recorded = ledger.count(RelayIdentity.from_client(client), f"crash-{dialect}")
        assert 40 <= recorded < 200
        sent_first = messages_per_address(relay, dialect, addresses)
        assert sum(sent_first.values()) == recorded  # everything the relay took is in the ledger

        report = campaign().send(client)

    assert report.counts["already_sent"] == recorded
    assert report.counts["accepted"] == 200 - recorded
    assert report.counts["failed"] == 0
    assert messages_per_address(relay, dialect, addresses) == {a: 1 for a in addresses}

    # A third run finds everything done and sends nothing.
    with client_for(relay, dialect) as client:
        again = campaign().send(client)
    assert again.counts["already_sent"] == 200 and again.counts["accepted"] == 0
    assert messages_per_address(relay, dialect, addresses) == {a: 1 for a in addresses}


@pytest.mark.parametrize("dialect", ["phonerelay", "smsgate"])
def test_relay_side_keys_cover_a_lost_ledger(relay: ReferenceRelayProcess, dialect: str, tmp_path: Path) -> None:
    """Where the relay de-duplicates client keys, even a deleted ledger cannot cause a second send."""
    addresses = numbers(30)
    kwargs: dict[str, Any] = {"campaign_id": f"lost-ledger-{dialect}", "batch_size": 10}
    with client_for(relay, dialect) as client:
        first = Campaign("Same words", people(addresses), ledger_path=tmp_path / "a.sqlite", **kwargs).send(client)
        second = Campaign("Same words", people(addresses), ledger_path=tmp_path / "b.sqlite", **kwargs).send(client)
    assert first.counts["accepted"] == 30
    assert second.counts["already_sent"] == 30 and second.counts["accepted"] == 0
    assert [r["message_id"] for r in second.rows] == [r["message_id"] for r in first.rows]
    assert messages_per_address(relay, dialect, addresses) == {a: 1 for a in addresses}


@pytest.mark.anyio
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_async_campaign(relay: ReferenceRelayProcess, dialect: str, tmp_path: Path) -> None:
    addresses = numbers(45)
    seen: list[int] = []
    campaign = Campaign("Hi {{ name }}", people(addresses), campaign_id=f"async-{dialect}",
                        ledger_path=tmp_path / "ledger.sqlite", batch_size=10, concurrency=3,
                        progress=lambda p: seen.append(p.processed) if p.phase == "sending" else None)
    async with async_client_for(relay, dialect) as client:
        report = await campaign.asend(client)
        again = await campaign.asend(client)
    assert report.counts["accepted"] == 45 and report.counts["failed"] == 0
    assert again.counts["already_sent"] == 45 and again.counts["accepted"] == 0
    assert seen[-1] == 45
    assert messages_per_address(relay, dialect, addresses) == {a: 1 for a in addresses}


@pytest.mark.anyio
@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms"])
async def test_async_campaign_keeps_the_ledger_off_the_event_loop(
    relay: ReferenceRelayProcess, dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ledger call of an async campaign runs in a worker thread: a commit (an fsync, a round trip
    to PostgreSQL) on the loop would stall every other task of the flow or triggerer."""
    import threading

    loop_thread = threading.get_ident()
    called_on: dict[str, set[int]] = {}

    def recorded(owner: type, name: str) -> Any:
        method = getattr(owner, name)

        def record(self: Any, *args: Any, **kwargs: Any) -> Any:
            called_on.setdefault(f"{owner.__name__}.{name}", set()).add(threading.get_ident())
            return method(self, *args, **kwargs)

        return record

    # The ledger only: the scratch file of planned rows is a private spool written without a journal
    # or fsync (page-cache writes), read and written from the loop a page at a time.
    for name in ("__init__", "lookup", "claim", "mark_sending", "record_accepted", "write_together", "release"):
        if hasattr(CampaignStore, name):
            monkeypatch.setattr(CampaignStore, name, recorded(CampaignStore, name))
    addresses = numbers(30)
    campaign = Campaign("Hi {{ name }}", people(addresses), campaign_id=f"off-loop-{dialect}",
                        ledger_path=tmp_path / "ledger.sqlite", batch_size=10, concurrency=3)
    async with async_client_for(relay, dialect) as client:
        report = await campaign.asend(client)
    assert report.counts["accepted"] == 30
    assert called_on, "the campaign wrote no ledger"
    on_loop = sorted(name for name, threads in called_on.items() if loop_thread in threads)
    assert on_loop == [], f"ledger calls on the event loop: {on_loop}"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_nothing_is_sent_when_a_row_is_bad(relay: ReferenceRelayProcess, dialect: str, tmp_path: Path) -> None:
    addresses = numbers(20)
    rows = people(addresses)
    rows[-1] = {"phone": addresses[-1]}  # no name
    campaign = Campaign("Hi {{ name }}", rows, campaign_id=f"bad-{dialect}", ledger_path=tmp_path / "l.sqlite")
    with client_for(relay, dialect) as client, pytest.raises(CampaignValidationError) as info:
        campaign.send(client)
    assert info.value.errors == [{"row": 20, "field": "text", "message": "missing column(s) name; this row has: phone"}]
    assert sum(messages_per_address(relay, dialect, addresses).values()) == 0


def test_dry_run_sends_nothing_and_writes_no_ledger(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    addresses = numbers(15)
    ledger_path = tmp_path / "ledger.sqlite"
    campaign = Campaign("Hi {{ name }}", people(addresses), campaign_id="dry", ledger_path=ledger_path)
    with client_for(relay, "relaysms") as client:
        report = campaign.send(client, dry_run=True)
    assert report.counts["would_send"] == 15 and report.strategy == "batch"
    assert not ledger_path.exists()
    assert sum(messages_per_address(relay, "relaysms", addresses).values()) == 0


def test_rate_limit_and_failures_are_reported_per_recipient(tmp_path: Path) -> None:
    """A relay that is not there: every request fails after the retries; nothing is recorded."""
    from relay_integrations.client import RelayClient
    from relay_integrations.process import free_port

    addresses = numbers(6)
    campaign = Campaign("Hi {{ name }}", people(addresses), campaign_id="down", ledger_path=tmp_path / "l.sqlite",
                        rate_limit=1000)
    with RelayClient(f"http://127.0.0.1:{free_port()}/phonerelay", "phonerelay", "k", phone_id="p",
                     max_retries=1, backoff_factor=0.01) as client:
        report = campaign.send(client)
    assert report.counts["failed"] == 6 and report.counts["accepted"] == 0
    assert all(r["state"] == "failed" and r["error"] for r in report.rows)
    assert not report.ok
    with CampaignStore.open(tmp_path / "l.sqlite") as ledger:
        assert ledger.accepted_count(campaign.campaign_id) == 0


@pytest.mark.parametrize("dialect", ["relaysms", "phonerelay"])
def test_wrong_api_key_stops_the_campaign(relay: ReferenceRelayProcess, dialect: str, tmp_path: Path) -> None:
    addresses = numbers(5)
    campaign = Campaign("Hi {{ name }}", people(addresses), campaign_id="auth", ledger_path=tmp_path / "l.sqlite")
    with client_for(relay, dialect, api_key="wrong-key") as client, pytest.raises(RelayAuthError) as info:
        campaign.send(client)
    assert "wrong-key" not in str(info.value)
    assert sum(messages_per_address(relay, dialect, addresses).values()) == 0


@pytest.mark.parametrize("dialect", ["relaysms", "coop"])
def test_death_between_acceptance_and_ledger_commit_is_settled_from_the_relay(
    relay: ReferenceRelayProcess, dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one window a ledger cannot close alone: the relay took a batch, the process died before
    recording it. The in-flight marks make the re-run look on the relay before sending again."""
    addresses = numbers(100)
    ledger_path = tmp_path / "ledger.sqlite"
    campaign_id = f"window-{dialect}"
    original_write = CampaignStore.write_together
    records = 0

    def record_then_die_on_the_second_batch(self: CampaignStore, relay: Any, campaign_id: str, marks: Any,
                                            accepted: Any, settled: Any = ()) -> list[set[str]]:
        nonlocal records
        accepted = list(accepted)
        records += bool(accepted)
        if records == 2:
            raise Crash("died after the relay answered, before the ledger commit")
        return original_write(self, relay, campaign_id, marks, accepted, settled)

    def campaign() -> Campaign:
        return Campaign("Hi {{ name }}", people(addresses), campaign_id=campaign_id, ledger_path=ledger_path,
                        batch_size=20, concurrency=1)

    monkeypatch.setattr(CampaignStore, "write_together", record_then_die_on_the_second_batch)
    with client_for(relay, dialect) as client, pytest.raises(Crash):
        campaign().send(client)
    monkeypatch.setattr(CampaignStore, "write_together", original_write)

    with CampaignStore.open(ledger_path) as ledger, client_for(relay, dialect) as client:
        assert ledger.count(RelayIdentity.from_client(client), campaign_id) == 20
    assert sum(messages_per_address(relay, dialect, addresses).values()) == 40  # the relay has two batches

    with client_for(relay, dialect) as client:
        report = campaign().send(client)
    assert report.counts["already_sent"] == 40  # 20 from the ledger, 20 found on the relay
    assert report.counts["reconciled"] == 20
    assert report.counts["accepted"] == 60
    assert messages_per_address(relay, dialect, addresses) == {a: 1 for a in addresses}
    found_on_relay = [r for r in report.rows[20:40]]
    assert all(r["state"] == "already_sent" and r["message_id"] for r in found_on_relay)


def test_email_campaign_on_phonerelay_with_a_templated_subject(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    import uuid

    from campaign_relay_helpers import stored_messages

    tag = uuid.uuid4().hex[:8]
    rows = [{"email": f"user{i}.{tag}@example.com", "name": f"U{i}"} for i in range(5)]
    rows.append({"email": "not-an-address", "name": "X"})
    campaign = Campaign("Dear {{ name }}, your invoice is ready.", rows, campaign_id=f"mail-{tag}",
                        channel="email", address_field="email", fields={"subject": "Invoice for {{ name }}"},
                        skip_invalid=True, ledger_path=tmp_path / "l.sqlite")
    with client_for(relay, "phonerelay") as client:
        report = campaign.send(client)
    assert report.counts["accepted"] == 5 and report.counts["invalid"] == 1
    assert report.counts["segments"] == 0  # not an SMS
    assert report.rows[5]["error"].startswith("email:")
    mine = [m for m in stored_messages(relay, "phonerelay") if tag in (m.get("to") or "")]
    assert len(mine) == 5
    assert {m["channel"] for m in mine} == {"email"}
    assert sorted(m["text"] for m in mine)[0] == "Dear U0, your invoice is ready."

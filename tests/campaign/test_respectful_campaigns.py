"""Campaigns that respect people, end to end against relay and receiver processes.

* opt-outs: a STOP reply injected at the relay (``/_sim/inbound``) reaches a receiver run with
  ``--opt-outs``, which records it and confirms once; later campaigns and single sends skip that
  person (reported ``suppressed``, since when and why) until START;
* quiet hours: a campaign across three time zones under a controlled clock sends only where it is
  daytime, and later runs send the rest, each message once; DST boundaries;
* scheduled sends: smsgate is handed ``scheduleAt``, other relays' rows are held.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from campaign_relay_helpers import WAIT, client_for, messages_per_address, numbers, stored_messages, wait_until
from test_campaign_cli import relay_env, run_relay

from relay_integrations.campaign import Campaign
from relay_integrations.campaign.campaign_store import RelayIdentity
from relay_integrations.campaign.suppression import Suppression, SuppressionList
from relay_integrations.process import ReferenceRelayProcess, WebhookReceiverProcess
from relay_integrations.webhooks import WebhookInbox

pytestmark = pytest.mark.e2e

SECRET = "respectful-campaigns-secret"
CONFIRMATION = "You will get no more messages from us. Reply START to resubscribe."
class Clock:
    """A controlled clock for campaigns: ``Campaign(clock=clock)``; ``clock.now`` is set by the test."""

    def __init__(self, now: str) -> None:
        self.set(now)

    def set(self, now: str) -> None:
        self.now = datetime.fromisoformat(now)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReferenceRelayProcess, WebhookReceiverProcess,
                                                                          Path]]:
    """A private relay (its webhooks are registered to this module's receiver) and a receiver that records
    opt-outs of the relay's smsgate account in ``suppressions.sqlite`` and confirms them."""
    tmp = tmp_path_factory.mktemp("respect")
    relay = ReferenceRelayProcess(db_path=tmp / "relay.db", api_key="respect-key", delivery_latency=0.05,
                                  webhook_secret=SECRET, log_path=tmp / "relay.log")
    relay.start()
    store = tmp / "suppressions.sqlite"
    env = {"RELAY_BASE_URL": relay.url("smsgate"), "RELAY_DIALECT": "smsgate", "RELAY_API_KEY": relay.api_key,
           "RELAY_LOGIN": "relay"}
    receiver = WebhookReceiverProcess(
        db_path=tmp / "webhooks.db", secrets=[SECRET], api_key="inbox-key", log_path=tmp / "receiver.log", env=env,
        extra_args=["--opt-outs", "--suppression-store", str(store), "--opt-out-reply", CONFIRMATION])
    receiver.start()
    try:
        with client_for(relay, "smsgate") as client:
            client.register_webhook(receiver.url("smsgate"), "sms:received")
        yield relay, receiver, store
    finally:
        receiver.stop()
        relay.stop()


def inject(relay: ReferenceRelayProcess, sender: str, text: str) -> str:
    answer = httpx.post(f"{relay.base_url}/_sim/inbound", headers={"Authorization": f"Bearer {relay.api_key}"},
                        json={"dialect": "smsgate", "channel": "sms", "from": sender, "text": text}, timeout=30)
    assert answer.status_code == 201, answer.text
    message_id: str = answer.json()["id"]
    return message_id


def entry_of(store: Path, relay: ReferenceRelayProcess, address: str) -> Suppression | None:
    with client_for(relay, "smsgate") as client:
        identity = RelayIdentity.from_client(client)
    with SuppressionList.open(store, identity, read_only=True) as listed:
        return listed.get(address)


def rows(addresses: list[str]) -> list[dict[str, Any]]:
    return [{"phone": a, "name": f"Person {i}"} for i, a in enumerate(addresses, start=1)]


def texts_to(relay: ReferenceRelayProcess, address: str) -> list[str]:
    return [m["text"] for m in stored_messages(relay, "smsgate") if address in (m.get("to") or "").split(",")]


def test_a_stop_reply_keeps_campaigns_and_single_sends_away_until_start(
    stack: tuple[ReferenceRelayProcess, WebhookReceiverProcess, Path], tmp_path: Path
) -> None:
    relay, receiver, store = stack
    people = numbers(5)
    quitter = people[1]
    stop_id = inject(relay, quitter, " Stop ")

    entry = wait_until(lambda: (e := entry_of(store, relay, quitter)) and e.confirmation == "sent" and e,
                       "the opt-out to be recorded and confirmed")
    assert entry.source == "reply" and entry.detail == "Stop"
    # A second STOP is no new opt-out: it is stored, and no second confirmation follows (counted at the end).
    second_stop = inject(relay, quitter, "STOP")
    with WebhookInbox.remote(receiver.base_url, "inbox-key") as inbox:
        inbox.wait_for({"kind": "inbound", "sender": quitter, "text_contains": "STOP"}, timeout=WAIT)
    assert second_stop != stop_id

    def campaign() -> Campaign:
        return Campaign("Hello {{ name }}, our sale starts today.", rows(people), campaign_id="respect-stop",
                        ledger=tmp_path / "ledger.sqlite", suppression_store=store)

    with client_for(relay, "smsgate") as client:
        report = campaign().send(client)
    assert report.counts["accepted"] == 4 and report.counts["suppressed"] == 1
    skipped = next(r for r in report.rows if r["address"] == quitter)
    assert skipped["state"] == "suppressed" and skipped["message_id"] is None
    assert skipped["reason"].startswith("opted out by replying 'Stop' at ")
    assert texts_to(relay, quitter) == [CONFIRMATION]

    # A single send from the command line skips them too, and says why.
    env = {**relay_env(relay, "smsgate"), "RELAY_SUPPRESSION_STORE": str(store)}
    single = run_relay(["send", "--to", quitter, "--text", "Your parcel is here"], env)
    assert single.returncode == 0, single.stderr
    answer = json.loads(single.stdout)
    assert answer["state"] == "suppressed" and answer["message_id"] is None
    assert answer["suppressed"][0]["address"] == quitter and "opted out by replying" in single.stderr
    # ... unless told otherwise, explicitly.
    forced = run_relay(["send", "--to", quitter, "--text", "Your account was closed", "--no-opt-outs"], env)
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["message_id"]

    # START lifts the opt-out; the campaign's re-run sends that one message and nothing else again.
    inject(relay, quitter, "start")
    wait_until(lambda: entry_of(store, relay, quitter) is None, "START to lift the opt-out")
    with client_for(relay, "smsgate") as client:
        again = campaign().send(client)
    assert again.counts["accepted"] == 1 and again.counts["already_sent"] == 4 and again.counts["suppressed"] == 0
    assert messages_per_address(relay, "smsgate", people) == {**{a: 1 for a in people}, quitter: 3}
    assert texts_to(relay, quitter) == [CONFIRMATION, "Your account was closed",
                                        "Hello Person 2, our sale starts today."]


def test_honour_opt_outs_false_sends_to_everyone(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    people = numbers(3)
    store = tmp_path / "list.sqlite"
    with client_for(relay, "phonerelay") as client:
        with SuppressionList.open(store, RelayIdentity.from_client(client)) as listed:
            listed.add([people[0]], note="asked by phone")
        honoured = Campaign("Hi", rows(people), campaign_id="respect-honour", ledger=tmp_path / "a.sqlite",
                            suppression_store=store).send(client)
        ignored = Campaign("Hi", rows(people), campaign_id="respect-ignore", ledger=tmp_path / "b.sqlite",
                           suppression_store=store, honour_opt_outs=False).send(client)
    assert honoured.counts["suppressed"] == 1 and honoured.rows[0]["reason"].endswith("(asked by phone)")
    assert ignored.counts["suppressed"] == 0 and ignored.counts["accepted"] == 3


def three_zones() -> tuple[dict[str, str], list[dict[str, Any]]]:
    """New York, Los Angeles and London by their numbers, and Tokyo by a row's ``timezone`` field."""
    tail = numbers(1)[0][5:]  # seven digits no other test uses
    people = {"new_york": "+1212" + tail, "los_angeles": "+1310" + tail, "london": "+44207" + tail,
              "tokyo": "+1646" + tail}
    recipients = [{"phone": people["new_york"], "name": "Ana"}, {"phone": people["los_angeles"], "name": "Bo"},
                  {"phone": people["london"], "name": "Cy"},
                  {"phone": people["tokyo"], "name": "Di", "timezone": "Asia/Tokyo"}]
    return people, recipients


@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms", "coop", "smsgate"])
def test_quiet_hours_across_three_time_zones_send_each_message_once(
    relay: ReferenceRelayProcess, dialect: str, tmp_path: Path
) -> None:
    people, recipients = three_zones()
    clock = Clock("2026-12-04T15:00:00+00:00")  # 10:00 New York, 07:00 Los Angeles, 15:00 London, 00:00 Tokyo

    def run() -> dict[str, Any]:
        campaign = Campaign("Good day {{ name }}", recipients, campaign_id=f"respect-zones-{dialect}",
                            ledger=tmp_path / "ledger.sqlite", send_window=("08:00", "21:00"), clock=clock)
        with client_for(relay, dialect) as client:
            return campaign.send(client).to_dict()

    first = run()
    states = {r["address"]: r for r in first["rows"]}
    assert {a: states[p]["state"] for a, p in people.items()} == {
        "new_york": "accepted", "los_angeles": "deferred", "london": "accepted", "tokyo": "deferred"}
    assert states[people["los_angeles"]]["not_before"] == "2026-12-04T16:00:00+00:00"  # 08:00 PST
    assert states[people["tokyo"]]["not_before"] == "2026-12-04T23:00:00+00:00"  # 08:00 JST
    assert "08:00-21:00 in America/Los_Angeles" in states[people["los_angeles"]]["reason"]
    assert first["counts"]["deferred"] == 2 and first["next_run_at"] == "2026-12-04T16:00:00+00:00"

    clock.set(first["next_run_at"])
    second = run()
    assert second["counts"] == {**second["counts"], "accepted": 1, "already_sent": 2, "deferred": 1}
    assert second["next_run_at"] == "2026-12-04T23:00:00+00:00"

    # 03:00 UTC: night in New York and London (already sent: not deferred again), noon in Tokyo.
    clock.set("2026-12-05T03:00:00+00:00")
    third = run()
    assert third["counts"] == {**third["counts"], "accepted": 1, "already_sent": 3, "deferred": 0}
    assert third["next_run_at"] is None
    assert messages_per_address(relay, dialect, people.values()) == {p: 1 for p in people.values()}


def test_the_window_follows_new_york_across_the_spring_forward(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    person = "+1212" + numbers(1)[0][5:]
    clock = Clock("2026-03-08T11:30:00+00:00")  # 07:30 EDT: clocks went forward at 07:00 UTC

    def run() -> dict[str, Any]:
        with client_for(relay, "phonerelay") as client:
            return Campaign("Morning", [{"phone": person}], campaign_id="respect-dst", clock=clock,
                            ledger=tmp_path / "ledger.sqlite", send_window=("08:00", "21:00")).send(client).to_dict()

    assert run()["next_run_at"] == "2026-03-08T12:00:00+00:00"  # 08:00 EDT, not 08:00 EST (13:00 UTC)
    clock.set("2026-03-08T12:00:00+00:00")
    assert run()["counts"]["accepted"] == 1
    assert messages_per_address(relay, "phonerelay", [person]) == {person: 1}


def test_send_at_is_handed_to_smsgate_and_held_for_the_others(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    later = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0)
    outcomes: dict[str, dict[str, Any]] = {}
    people: dict[str, str] = {}
    for dialect in ("smsgate", "phonerelay"):
        people[dialect] = numbers(1)[0]
        with client_for(relay, dialect) as client:
            report = Campaign("Happy holidays", [{"phone": people[dialect]}], campaign_id=f"respect-at-{dialect}",
                              ledger=tmp_path / f"{dialect}.sqlite", send_at=later.isoformat()).send(client)
        outcomes[dialect] = report.to_dict()
    scheduled = outcomes["smsgate"]["rows"][0]
    assert scheduled["state"] == "accepted" and "handed to smsgate" in scheduled["reason"]
    stored = [m for m in stored_messages(relay, "smsgate") if m["to"] == people["smsgate"]]
    assert len(stored) == 1 and datetime.fromisoformat(stored[0]["extra"]["scheduleAt"]) == later
    assert stored[0]["state"] not in ("sent", "delivered")  # the relay holds it until then
    held = outcomes["phonerelay"]["rows"][0]
    assert held["state"] == "deferred" and held["not_before"] == later.isoformat()
    assert messages_per_address(relay, "phonerelay", [people["phonerelay"]]) == {people["phonerelay"]: 0}


def test_the_command_line_sends_what_it_may_and_says_when_to_run_again(
    relay: ReferenceRelayProcess, tmp_path: Path
) -> None:
    # A window an hour ahead of UTC's clock: open now at UTC+2, closed at UTC-2 (robust to the hour changing).
    hour = datetime.now(timezone.utc).hour
    window = f"{(hour + 1) % 24:02d}:00-{(hour + 4) % 24:02d}:00"
    awake, asleep = numbers(2)
    recipients = tmp_path / "people.jsonl"
    recipients.write_text("\n".join(json.dumps(r) for r in [
        {"phone": awake, "name": "A", "timezone": "Etc/GMT-2"}, {"phone": asleep, "name": "B", "timezone": "Etc/GMT+2"},
    ]) + "\n")
    args = ["campaign", "--template", "Hi {{ name }}", "--recipients", str(recipients), "--campaign-id",
            "respect-cli", "--ledger", str(tmp_path / "ledger.sqlite"), "--send-window", window]
    done = run_relay(args, relay_env(relay, "phonerelay"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["counts"]["accepted"] == 1 and report["counts"]["deferred"] == 1
    assert report["rows"][1]["state"] == "deferred" and report["next_run_at"] == report["rows"][1]["not_before"]
    assert f"run again at {report['next_run_at']}" in done.stderr
    assert messages_per_address(relay, "phonerelay", [awake, asleep]) == {awake: 1, asleep: 0}


def test_suppression_commands_round_trip(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    env = {**relay_env(relay, "relaysms"), "RELAY_SUPPRESSION_STORE": str(tmp_path / "list.sqlite")}
    person = numbers(1)[0]
    added = run_relay(["suppression", "add", person[:2] + " " + person[2:], "--note", "asked us"], env)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"added": 1, "already_listed": 0}
    listed = json.loads(run_relay(["suppression", "list"], env).stdout)
    assert [(e["address"], e["source"], e["detail"]) for e in listed["entries"]] == [(person, "manual", "asked us")]
    campaign = run_relay(["campaign", "--template", "Hi", "--recipients", str(_jsonl(tmp_path, [person])),
                          "--campaign-id", "respect-cmd", "--ledger", str(tmp_path / "l.sqlite")], env)
    assert json.loads(campaign.stdout)["counts"]["suppressed"] == 1 and "1 recipient(s) suppressed" in campaign.stderr
    removed = run_relay(["suppression", "remove", person], env)
    assert json.loads(removed.stdout) == {"removed": 1, "not_listed": 0}
    assert json.loads(run_relay(["suppression", "list"], env).stdout)["count"] == 0
    # Another account of the same relay has its own list: nothing listed there.
    other = {**env, "RELAY_API_KEY": "another-key"}
    assert json.loads(run_relay(["suppression", "list"], other).stdout)["count"] == 0


def _jsonl(tmp_path: Path, addresses: list[str]) -> Path:
    path = tmp_path / "people.jsonl"
    path.write_text("".join(json.dumps({"phone": a}) + "\n" for a in addresses))
    return path


def test_a_receiver_sends_the_confirmations_a_stopped_one_left_pending(
    relay: ReferenceRelayProcess, tmp_path: Path
) -> None:
    from relay_integrations.models import WebhookEvent

    person = numbers(1)[0]
    store = tmp_path / "suppressions.sqlite"
    with client_for(relay, "smsgate") as client:
        identity = RelayIdentity.from_client(client)
    with SuppressionList.open(store, identity) as listed:  # recorded, then the receiver died before sending
        stop = WebhookEvent(event_id="evt-left-pending", dialect="smsgate", kind="inbound", event_type="sms:received",
                            sender=person, text="STOP", occurred_at=datetime.now(timezone.utc))
        assert listed.apply_replies([stop], confirm=True)[0].confirm
    env = {"RELAY_BASE_URL": relay.url("smsgate"), "RELAY_DIALECT": "smsgate", "RELAY_API_KEY": relay.api_key,
           "RELAY_LOGIN": "relay"}
    with WebhookReceiverProcess(db_path=tmp_path / "webhooks.db", secrets=[SECRET], env=env,
                                log_path=tmp_path / "receiver.log",
                                extra_args=["--opt-outs", "--suppression-store", str(store), "--opt-out-reply",
                                            CONFIRMATION]):
        wait_until(lambda: (e := entry_of(store, relay, person)) and e.confirmation == "sent",
                   "the pending confirmation to be sent at start-up")
    assert texts_to(relay, person) == [CONFIRMATION]


def test_a_postgresql_ledger_holds_the_list_every_worker_reads(
    relay: ReferenceRelayProcess, postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With the campaign store on PostgreSQL and no other location named, the list is in that database:
    an opt-out recorded there (by a receiver, or by hand on another machine) keeps every worker away."""
    monkeypatch.delenv("RELAY_SUPPRESSION_STORE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))  # the machine's own file: empty
    people = numbers(3)
    with client_for(relay, "relaysms") as client:
        with SuppressionList.open(postgres_url, RelayIdentity.from_client(client)) as listed:
            listed.add([people[0]], note="told the call centre")
        report = Campaign("Hi {{ name }}", rows(people), campaign_id="respect-pg", ledger=postgres_url).send(client)
    assert [r["state"] for r in report.rows] == ["suppressed", "accepted", "accepted"]
    assert report.rows[0]["reason"].endswith("(told the call centre)")
    assert messages_per_address(relay, "relaysms", people) == {people[0]: 0, people[1]: 1, people[2]: 1}


def test_import_replies_records_what_a_receiver_stored_and_is_safe_to_repeat(
    stack: tuple[ReferenceRelayProcess, WebhookReceiverProcess, Path], tmp_path: Path
) -> None:
    relay, receiver, _ = stack
    person = numbers(1)[0]
    inject(relay, person, "unsubscribe")
    with WebhookInbox.remote(receiver.base_url, "inbox-key") as inbox:
        inbox.wait_for({"kind": "inbound", "sender": person}, timeout=WAIT)
    env = {**relay_env(relay, "smsgate"), "RELAY_SUPPRESSION_STORE": str(tmp_path / "imported.sqlite")}
    args = ["suppression", "import-replies", "--inbox", receiver.base_url]
    refused = run_relay(args, env)
    assert refused.returncode == 2 and "--inbox-api-key" in refused.stderr
    first = run_relay([*args, "--inbox-api-key", "inbox-key"], env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["opted_out"] >= 1
    listed = json.loads(run_relay(["suppression", "list"], env).stdout)
    assert person in [e["address"] for e in listed["entries"]]
    again = json.loads(run_relay([*args, "--inbox-api-key", "inbox-key"], env).stdout)
    assert again["opted_out"] == 0 and again["opted_in"] == 0 and again["inbound_read"] == json.loads(
        first.stdout)["inbound_read"]

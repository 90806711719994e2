"""Campaign-level tracking against real relay processes: a campaign, then the one waiter until every
message is final, states recorded in the store, and each round's requests counted at the HTTP layer
and held to the round's budget (never one GET per message where the relay has an aggregate view)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from campaign_relay_helpers import CLIENT_KWARGS, DIALECTS, numbers

from relay_integrations.campaign import Campaign
from relay_integrations.campaign.campaign_store import CampaignStore
from relay_integrations.client import AsyncRelayClient, RelayClient
from relay_integrations.process import ReferenceRelayProcess
from relay_integrations.tracking import CampaignRef, CampaignWaiter, RelayIdentity, round_budget

pytestmark = pytest.mark.e2e

RECIPIENTS = 250
BATCH = 100


class CountingTransport(httpx.HTTPTransport):
    """Counts every HTTP request that reaches the relay (retries included)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return super().handle_request(request)


class AsyncCountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return await super().handle_async_request(request)


def _run_campaign(relay: ReferenceRelayProcess, dialect: str, ledger: Path, campaign_id: str,
                  phones: list[str], *, shared_text: bool = False) -> dict[str, Any]:
    rows = [{"phone": p, "name": f"n{i}"} for i, p in enumerate(phones)]
    # One text for everyone: smsgate then groups 100 recipients per message, as a real campaign would.
    template = "Your code is ready" if shared_text else "Hi {{ name }}, your code is ready"
    campaign = Campaign(template, rows, campaign_id=campaign_id, ledger_path=ledger, batch_size=BATCH)
    with RelayClient(relay.url(dialect), dialect, relay.api_key, **CLIENT_KWARGS) as client:
        report = campaign.send(client)
        try:
            assert report.counts["accepted"] == len(phones), report.counts
            return {"message_ids": len(report.message_ids), "batches": len({r["batch_id"] for r in report.rows
                                                                             if r.get("batch_id")})}
        finally:
            report.close()


def _identity(relay: ReferenceRelayProcess, dialect: str) -> RelayIdentity:
    """The identity the campaign's entries are keyed by (the client's dialect, URL and account)."""
    with RelayClient(relay.url(dialect), dialect, relay.api_key, **CLIENT_KWARGS) as client:
        return RelayIdentity.from_client(client)


def _structural_bound(dialect: str, open_messages: int, batches: int) -> int:
    """What a round may cost on this dialect with ``open_messages`` open in ``batches`` batches."""
    if dialect in ("relaysms", "coop"):
        return batches + batches * math.ceil(BATCH / 100)  # a status read and its pages per batch
    if dialect == "smsgate":
        return 5 + math.ceil(open_messages / 100) * 5  # five state lists, one page per 100 open messages
    return open_messages  # phonerelay: no aggregate view, one GET per open message


@pytest.mark.parametrize(("dialect", "shared_text"), [*((d, False) for d in DIALECTS), ("smsgate", True)])
def test_waiter_tracks_a_campaign_until_final(relay: ReferenceRelayProcess, tmp_path: Path, dialect: str,
                                              shared_text: bool) -> None:
    phones = [*numbers(RECIPIENTS - 1), "+13125550000"]  # the relay fails numbers ending 0000 on purpose
    ledger = tmp_path / "ledger.sqlite"
    sent = _run_campaign(relay, dialect, ledger, f"track-{dialect}", phones, shared_text=shared_text)

    store = CampaignStore.open(ledger)
    transport = CountingTransport()
    identity = _identity(relay, dialect)
    waiter = CampaignWaiter(CampaignRef(f"track-{dialect}", str(ledger), identity), store)
    rounds = []
    with RelayClient(relay.url(dialect), dialect, relay.api_key, transport=transport, **CLIENT_KWARGS) as client:
        for _ in range(300):
            open_before = waiter.status().waiting
            before = transport.count
            status = waiter.poll(client)
            made = transport.count - before
            rounds.append((open_before, made))
            assert made == status.requests
            assert made <= round_budget(open_before)
            assert made <= _structural_bound(dialect, open_before, sent["batches"]), rounds
            if status.done:
                break
            asyncio.run(asyncio.sleep(0.2))
    assert status.done, rounds
    counts = store.count_states(identity, f"track-{dialect}")
    assert sum(counts.values()) == RECIPIENTS
    assert None not in counts
    if shared_text:
        # The failing number shares a message with 49 others: that message ends failed as a whole.
        assert counts.get("failed", 0) >= 1 and counts.get("delivered", 0) >= RECIPIENTS - 100
    else:
        assert counts == {"delivered": RECIPIENTS - 1, "failed": 1}
    assert status.failed == counts.get("failed") and status.sample[0]["state"] == "failed"
    if dialect != "phonerelay":
        # The aggregate views: far fewer requests than a GET per message in any round.
        assert max(made for _, made in rounds) <= min(sent["message_ids"], RECIPIENTS // 10)
    # A round after the end asks the relay nothing.
    with RelayClient(relay.url(dialect), dialect, relay.api_key, transport=transport, **CLIENT_KWARGS) as client:
        before = transport.count
        assert waiter.poll(client).done and transport.count == before
    store.close()


def test_budget_caps_a_round_and_the_rest_goes_first_next_round(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    _run_campaign(relay, "phonerelay", ledger, "track-capped", numbers(30))
    store = CampaignStore.open(ledger)
    waiter = CampaignWaiter(CampaignRef("track-capped", str(ledger)), store, max_requests_per_round=7)
    transport = CountingTransport()
    with RelayClient(relay.url("phonerelay"), "phonerelay", relay.api_key, transport=transport,
                     **CLIENT_KWARGS) as client:
        seen = []
        for _ in range(200):
            before = transport.count
            status = waiter.poll(client)
            seen.append(transport.count - before)
            if status.done:
                break
            asyncio.run(asyncio.sleep(0.05))
    assert status.done and max(seen) == 7
    assert store.count_states(_identity(relay, "phonerelay"), "track-capped") == {"delivered": 30}
    store.close()


def test_async_waiter_and_a_reference_that_survives_json(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    _run_campaign(relay, "coop", ledger, "track-async", numbers(120))
    ref = CampaignRef.from_value({"campaign": CampaignRef("track-async", str(ledger)).to_dict()})
    assert ref is not None
    transport = AsyncCountingTransport()

    async def wait() -> Any:
        client = AsyncRelayClient(relay.url("coop"), "coop", relay.api_key, transport=transport, **CLIENT_KWARGS)
        async with client:
            return await CampaignWaiter(ref).await_done(client, timeout=60, poll_interval=0.2)

    status = asyncio.run(wait())
    assert status.done and status.counts == {"delivered": 120}
    result = status.as_dict()
    assert result["campaign"]["campaign_id"] == "track-async" and len(result["sample"]) == 0


def test_a_store_url_with_a_password_is_refused() -> None:
    with pytest.raises(ValueError, match="password") as info:
        CampaignRef("c1", "postgresql://user:s3cret@127.0.0.1/db")
    assert "s3cret" not in str(info.value)


def test_waiter_on_the_campaign_store(relay: ReferenceRelayProcess, store_location: str) -> None:
    """Entries as the SQLAlchemy campaign store keeps them (relay identity, leases); the waiter records states
    there, on SQLite and on PostgreSQL, and the reference it is handed carries no secret."""
    from relay_integrations.campaign.campaign_store import Accepted, CampaignStore
    from relay_integrations.models import OutboundMessage

    phones = numbers(300)
    transport = CountingTransport()
    with RelayClient(relay.url("relaysms"), "relaysms", relay.api_key, transport=transport,
                     **CLIENT_KWARGS) as client, CampaignStore.open(store_location) as store:
        identity = RelayIdentity.from_client(client)
        rows = [(f"key-{p}", p, i) for i, p in enumerate(phones)]
        store.claim(identity, "store-campaign", rows)
        store.mark_sending(identity, "store-campaign", {k: "hi" for k, _, _ in rows})
        for start in range(0, len(phones), BATCH):
            chunk = rows[start:start + BATCH]
            receipt = client.send_batch([OutboundMessage(to=p, text=f"Hi {i}") for _, p, i in chunk])
            store.record_accepted(identity, "store-campaign", [
                Accepted(k, message_id=r.message_id, batch_id=receipt.batch_id, address=p, row=i)
                for (k, p, i), r in zip(chunk, receipt.results, strict=True)])
        ref = CampaignRef("store-campaign", store_location, identity)
        with CampaignWaiter(CampaignRef.from_value(ref.to_dict()) or ref) as waiter:
            before = transport.count
            status = waiter.wait(client, timeout=60, poll_interval=0.2)
        assert status.done and status.counts == {"delivered": 300}, status
        assert transport.count - before <= status.rounds * (3 + 3 * math.ceil(BATCH / 100))
        assert store.count_states(identity, "store-campaign") == {"delivered": 300}
        assert {e.state for e in store.iter_accepted(identity, "store-campaign")} == {"delivered"}


def test_campaign_references_from_what_users_hand_over(tmp_path: Path) -> None:
    relay = {"dialect": "coop", "base_url": "http://127.0.0.1:1/coop", "account": "key:00"}
    ref = CampaignRef.from_value({"campaign_id": "c", "counts": {}, "campaign": {"campaign_id": "c@run", "store": "x",
                                                                                  "relay": relay}})
    assert ref == CampaignRef("c@run", "x", RelayIdentity("coop", "http://127.0.0.1:1/coop", "key:00"))
    # An earlier report without the reference still names its ledger.
    assert CampaignRef.from_value({"campaign_id": "c", "ledger_path": "/l.sqlite", "rows": []}) == CampaignRef(
        "c", "/l.sqlite")
    # A dry run sent nothing; ids and receipts are not campaigns.
    assert CampaignRef.from_value({"campaign_id": "c", "ledger_path": "/l", "campaign": None}) is None
    assert CampaignRef.from_value({"message_id": "m1"}) is None and CampaignRef.from_value(["m1"]) is None


def test_webhook_inbox_states_spare_the_relay(start_relay: Any, tmp_path: Path) -> None:
    """Status events in the webhook inbox are read first: messages they settle cost no relay request."""
    from datetime import datetime, timezone

    from relay_integrations.models import WebhookEvent
    from relay_integrations.webhooks.inbox import WebhookInbox
    from relay_integrations.webhooks.store import EventStore

    slow = start_relay(delivery_latency=600)  # the relay itself says "queued" for the whole test
    ledger = tmp_path / "ledger.sqlite"
    _run_campaign(slow, "phonerelay", ledger, "track-inbox", numbers(12))
    with CampaignStore.open(ledger) as store:
        ids = [e.message_id for e in store.iter_accepted(_identity(slow, "phonerelay"), "track-inbox")]
    events = EventStore(tmp_path / "inbox.db")
    now = datetime.now(timezone.utc)
    events.add([WebhookEvent(event_id=f"ev-{i}", dialect="phonerelay", kind="status", event_type="message.status",
                             message_id=m, state="delivered", occurred_at=now, received_at=now)
                for i, m in enumerate(ids[:10])])
    events.add([WebhookEvent(event_id="ev-other", dialect="phonerelay", kind="status", event_type="message.status",
                             message_id="not-ours", state="failed", occurred_at=now, received_at=now)])
    events.close()

    transport = CountingTransport()
    waiter = CampaignWaiter(CampaignRef("track-inbox", str(ledger)), inbox=WebhookInbox(tmp_path / "inbox.db"))
    with waiter, RelayClient(slow.url("phonerelay"), "phonerelay", slow.api_key, transport=transport,
                             **CLIENT_KWARGS) as client:
        status = waiter.poll(client)
    # Ten settled by the inbox; only the two it did not mention were asked about.
    assert transport.count == 2
    assert status.counts == {"delivered": 10, "queued": 2} and not status.done


def test_a_campaign_the_store_does_not_hold_is_an_error_not_a_success(relay: ReferenceRelayProcess,
                                                                     tmp_path: Path) -> None:
    from relay_integrations.tracking import CampaignNotTrackedError

    # A local ledger that is not on this worker: never created, never "done".
    with pytest.raises(CampaignNotTrackedError, match="does not exist"):
        CampaignWaiter(CampaignRef("elsewhere", str(tmp_path / "missing.sqlite")))
    assert not (tmp_path / "missing.sqlite").exists()
    ledger = tmp_path / "ledger.sqlite"
    _run_campaign(relay, "relaysms", ledger, "track-present", numbers(3))
    with CampaignWaiter(CampaignRef("track-other-id", str(ledger))) as waiter, RelayClient(
            relay.url("relaysms"), "relaysms", relay.api_key, **CLIENT_KWARGS) as client:
        with pytest.raises(CampaignNotTrackedError, match="holds no accepted message"):
            waiter.poll(client)


def test_campaign_result_is_bounded_and_never_carries_a_store_password() -> None:
    import json

    from relay_integrations.campaign.report import ACCEPTED, CampaignReport
    from relay_integrations.campaign.store import PlannedRow, ScratchStore
    from relay_integrations.tracking import campaign_result

    scratch = ScratchStore()
    for i in range(5000):
        scratch.add(PlannedRow(row=i + 1, address=f"+1555060{i:04d}", state=ACCEPTED, segments=1,
                               idempotency_key=f"k{i}", message_id=f"msg-{i:08d}"))
    scratch.flush()
    scratch.finish_planning()
    report = CampaignReport.from_store(scratch, "c-secret", dialect="coop",
                                       ledger_path="postgresql://app:s3cret-pw@127.0.0.1:5432/ledger")
    try:
        result = campaign_result(report, RelayIdentity("coop", "http://127.0.0.1:1/coop", "key:00"), max_rows=10)
    finally:
        report.close()
    encoded = json.dumps(result)
    assert "s3cret-pw" not in encoded and result["campaign"]["store"] == "postgresql://app:***@127.0.0.1:5432/ledger"
    assert len(result["rows"]) == 10 and "msg-00004999" not in encoded and len(encoded) < 5000


def test_lists_full_of_other_messages_never_starve_ours(start_relay: Any, tmp_path: Path) -> None:
    """smsgate lists hold every message of the device: with a small budget spent on foreign pages, the
    requests kept back for one-by-one questions still settle the campaign."""
    from relay_integrations.models import OutboundMessage

    own = start_relay(delivery_latency=0.05)
    with RelayClient(own.url("smsgate"), "smsgate", own.api_key, **CLIENT_KWARGS) as client:
        for _ in range(15):  # foreign messages of 100 recipients each, sent before ours
            client.send(OutboundMessage(to=numbers(100), text="someone else's campaign"))
    ledger = tmp_path / "ledger.sqlite"
    _run_campaign(own, "smsgate", ledger, "track-crowded", numbers(40))
    with RelayClient(own.url("smsgate"), "smsgate", own.api_key, **CLIENT_KWARGS) as client:
        for _ in range(3):  # more foreign traffic after ours: our messages are not on the first pages
            client.send(OutboundMessage(to=numbers(100), text="later traffic"))
    transport = CountingTransport()
    waiter = CampaignWaiter(CampaignRef("track-crowded", str(ledger)), max_requests_per_round=4)
    with waiter, RelayClient(own.url("smsgate"), "smsgate", own.api_key, transport=transport,
                             **CLIENT_KWARGS) as client:
        rounds = 0
        while rounds < 100:
            before = transport.count
            status = waiter.poll(client)
            rounds += 1
            assert transport.count - before <= 4
            if status.done:
                break
            asyncio.run(asyncio.sleep(0.05))
    assert status.done and status.counts == {"delivered": 40}, status

"""A relay that takes only so many requests at once and answers the rest 429.

A campaign with adaptive concurrency (the default) must back off to what the relay takes, not
keep as many requests in flight as the latency alone would justify and retry into the refusals.
The relay is across a (simulated) network, so without the 429s the limit would climb towards 64.
Retry-After is 0, so a client that does not back off repeats a refused request at once: the
count of refusals then grows with every request instead of staying a small share of them.

Both drivers run: ``Campaign.send`` (the CLI and Airflow) and ``Campaign.asend`` (Prefect); so
does the status waiter that the Airflow trigger and Prefect's wait tasks share.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from reliability_helpers import TEMPLATE, async_client, client, exactly_once, numbers, people

from relay_integrations.campaign import Campaign, CampaignReport
from relay_integrations.message_waiter import MessageWaiter
from relay_integrations.models import MessageState

pytestmark = pytest.mark.e2e

CAPACITY = 4
RECIPIENTS = 400
LATENCY = 0.02  # seconds the relay holds each request: requests overlap, as across a network


def send(driver: str, campaign: Campaign, url: str, api_key: str) -> tuple[CampaignReport, int]:
    """The campaign's report and the 429/503 answers its client counted."""
    kwargs: dict[str, Any] = {"backoff_factor": 0.2, "timeout": 10}
    if driver == "sync":
        with client(url, "smsgate", api_key, **kwargs) as sync_client:
            return campaign.send(sync_client), sync_client.overload_answers

    async def run() -> tuple[CampaignReport, int]:
        async with async_client(url, "smsgate", api_key, **kwargs) as relay_client:
            return await campaign.asend(relay_client), relay_client.overload_answers

    return asyncio.run(run())


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_adaptive_concurrency_backs_off_to_a_relay_that_answers_429(
    start_relay: Any, tmp_path: Path, driver: str
) -> None:
    relay = start_relay(delivery_latency=0.1)
    addresses = numbers(RECIPIENTS, block=13 if driver == "sync" else 14)
    campaign = Campaign(TEMPLATE, people(addresses), campaign_id=f"overload-{driver}",
                        ledger_path=tmp_path / "ledger.sqlite")
    with FaultProxy(relay.base_url, seed=5, latency=LATENCY, capacity=CAPACITY, retry_after="0") as proxy:
        report, counted = send(driver, campaign, proxy.url("smsgate"), relay.api_key)
        refused, peak_at_relay = proxy.faults["over_capacity"], proxy.peak_busy

    summary = f"{driver}: {report.counts}, concurrency {report.concurrency}, {refused} answered 429"
    print(summary)
    assert report.counts["accepted"] == RECIPIENTS, summary
    # The relay did push back, and the client saw each of its refusals.
    assert refused > 0 and counted == refused, summary
    assert report.concurrency["overload_answers"] == refused, summary  # and the report says so
    assert peak_at_relay == CAPACITY, summary
    # Backing off: the limit ends near what the relay takes, and refusals stay under a tenth of the
    # messages (each refusal halves the limit; it then grows back slowly until the next one). Without
    # backing off, 150 or more of the 400 were refused here, and some messages failed after 4 refusals.
    assert report.concurrency["mode"] == "auto"
    assert report.concurrency["final"] <= 2 * CAPACITY, summary
    assert refused < RECIPIENTS // 10, summary
    assert exactly_once(relay, "smsgate", addresses) == (0, 0, 0), summary


def test_the_status_waiter_backs_off_to_a_relay_that_answers_429(start_relay: Any, tmp_path: Path) -> None:
    relay = start_relay(delivery_latency=0.1)
    addresses = numbers(RECIPIENTS, block=15)
    campaign = Campaign(TEMPLATE, people(addresses), campaign_id="overload-wait", ledger_path=tmp_path / "l.sqlite")
    with client(relay.url("smsgate"), "smsgate", relay.api_key) as direct:  # sent straight to the relay
        message_ids = campaign.send(direct).message_ids
    assert len(message_ids) == RECIPIENTS

    async def wait() -> tuple[bool, int]:
        async with async_client(proxy.url("smsgate"), "smsgate", relay.api_key, backoff_factor=0.2,
                                timeout=10) as relay_client:
            waiter = MessageWaiter(message_ids, MessageState.DELIVERED)
            verdict = await waiter.await_over(relay_client, timeout=120, poll_interval=0.2)
            return waiter.is_over(verdict) and verdict.done, relay_client.overload_answers

    with FaultProxy(relay.base_url, seed=6, latency=LATENCY, capacity=CAPACITY, retry_after="0") as proxy:
        done, counted = asyncio.run(wait())
        refused, peak_at_relay = proxy.faults["over_capacity"], proxy.peak_busy

    summary = f"waited for {len(message_ids)}: done {done}, {refused} answered 429"
    print(summary)
    assert done, summary
    assert refused > 0 and counted == refused and peak_at_relay == CAPACITY, summary
    # Retries hide most refusals from the waiter; without the client's count it saw few and
    # 75 to 90 status requests were refused here.
    assert refused < RECIPIENTS // 10, summary

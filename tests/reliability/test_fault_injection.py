"""A 2,000-recipient campaign through a proxy that drops connections, delays, and answers 429 and 503.

Two dialects, because they rest on different promises:

* phonerelay and smsgate take client idempotency keys: a send whose answer was lost is repeated
  with the same key and the relay answers with the message it already has;
* relaysms takes none: its batches are marked in flight in the campaign's ledger, a batch whose
  answer was lost is not repeated, and the next run settles it from the relay's outbound list.

Every run may end with some rows failed (a request that failed four times in a row, or a lost
answer on a relay without keys); the campaign is then re-run, as a user would, until nothing
failed. The test counts the runs and checks, on the relay itself, that each recipient holds
exactly one message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FAULT_KINDS, FaultProxy
from reliability_helpers import TEMPLATE, client, exactly_once, numbers, people, run_until_complete

from relay_integrations.campaign import Campaign

pytestmark = pytest.mark.e2e

RECIPIENTS = 2000
MAX_RUNS = 5
# Per request: 3% dropped before the relay, 3% answer lost after it acted, 3% 429 (Retry-After: 1),
# 3% 503, 5% delayed up to 0.2 s ...
FAULTS: dict[str, Any] = {"drop_before": 0.03, "drop_after": 0.03, "rate_limited": 0.03, "unavailable": 0.03,
                          "delay": 0.05, "max_delay": 0.2, "retry_after": "1"}
# ... and twice that where a campaign makes only about a hundred requests, so each kind of fault occurs.
HEAVY_FAULTS: dict[str, Any] = {**FAULTS, "drop_before": 0.06, "drop_after": 0.06, "rate_limited": 0.06,
                                "unavailable": 0.06, "delay": 0.1}
BROADCAST = "Doors open at 9 tomorrow, see you there."
# (dialect, template, batch size): phonerelay one request per personalised message (2,000 requests);
# relaysms /sms/batch in chunks of 20 (100 requests), so that faults hit many batches; smsgate one
# text for everyone, sent as messages of 20 recipients (100 requests) whose ids derive from their members.
CASES = [("phonerelay", TEMPLATE, None), ("relaysms", TEMPLATE, 20), ("smsgate", BROADCAST, 20)]


@pytest.mark.parametrize(("dialect", "template", "batch_size"), CASES, ids=[c[0] for c in CASES])
def test_campaign_through_faults_leaves_exactly_one_message_per_recipient(
    start_relay: Any, tmp_path: Path, dialect: str, template: str, batch_size: int | None
) -> None:
    relay = start_relay(delivery_latency=0.1)
    addresses = numbers(RECIPIENTS, block=11)
    rows = people(addresses)
    ledger = tmp_path / "ledger.sqlite"

    def make_campaign() -> Campaign:
        return Campaign(template, rows, campaign_id=f"faults-{dialect}", ledger_path=ledger, batch_size=batch_size,
                        concurrency=8)

    with FaultProxy(relay.base_url, seed=20261122, **(FAULTS if batch_size is None else HEAVY_FAULTS)) as proxy:
        # Short backoff keeps the test quick; Retry-After is still honoured in full.
        with client(proxy.url(dialect), dialect, relay.api_key, backoff_factor=0.05, timeout=10) as send_client:
            runs, reports = run_until_complete(make_campaign, send_client, max_runs=MAX_RUNS)
            overload_answers = send_client.overload_answers
        faults = dict(proxy.faults)

    summary = f"{dialect}: {runs} run(s), faults injected {faults}, counts per run {[r.counts for r in reports]}"
    print(summary)
    final = reports[-1].counts
    assert final["failed"] == 0, summary
    # Over all runs every recipient was accepted once (later runs report earlier acceptances as already sent).
    assert final["accepted"] + final["already_sent"] == RECIPIENTS, summary
    assert sum(r.counts["accepted"] for r in reports) <= RECIPIENTS, summary
    # The faults really happened, every kind of them; the client counted each 429 and 503 it was
    # answered (retried or not), which is what the adaptive concurrency backs off on.
    assert all(faults.get(kind, 0) > 0 for kind in FAULT_KINDS), summary
    assert overload_answers == faults["rate_limited"] + faults["unavailable"], summary

    missing, duplicated, strays = exactly_once(relay, dialect, addresses)
    assert (missing, duplicated, strays) == (0, 0, 0), summary

"""``kill -9`` of the campaign process midway, twice, then a re-run: nothing lost, nothing duplicated.

The campaign runs as ``python -m relay_integrations campaign ... --ledger PATH`` (what a user's
cron job or a task runner does); the test kills it once a quarter of the recipients are in the
ledger, starts it again, kills it again past 60%, and runs it a third time to the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import SENDER, TEMPLATE, exactly_once, numbers, write_csv

from relay_integrations.campaign.campaign_store import CampaignStore

pytestmark = pytest.mark.e2e

RECIPIENTS = 1000
CASES = [("phonerelay", None), ("relaysms", 10)]


def _ledger_count(path: Path, campaign_id: str) -> int:
    if not path.exists():
        return 0
    with CampaignStore.open(path, read_only=True) as ledger:
        return ledger.accepted_count(campaign_id)


def _kill_when_recorded(args: list[str], env: dict[str, str], ledger: Path, campaign_id: str, at_least: int) -> int:
    """Start the campaign command, ``kill -9`` it once the ledger holds ``at_least`` messages; the count then."""
    proc = subprocess.Popen([sys.executable, "-m", "relay_integrations", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if _ledger_count(ledger, campaign_id) >= at_least:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the campaign ended before it could be killed: {proc.stderr.read()!r}"  # type: ignore[union-attr]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return _ledger_count(ledger, campaign_id)


@pytest.mark.parametrize(("dialect", "batch_size"), CASES, ids=[c[0] for c in CASES])
def test_campaign_process_killed_twice_then_rerun_sends_each_message_once(
    start_relay: Any, tmp_path: Path, dialect: str, batch_size: int | None
) -> None:
    relay = start_relay(delivery_latency=0.1)
    addresses = numbers(RECIPIENTS, block=31)
    recipients = write_csv(tmp_path / "people.csv", addresses)
    ledger = tmp_path / "ledger.sqlite"
    campaign_id = f"process-kill-{dialect}"
    args = ["campaign", "--template", TEMPLATE, "--recipients", str(recipients), "--campaign-id", campaign_id,
            "--ledger", str(ledger), "--no-progress", "--max-rows", "0"]
    if batch_size:
        args += ["--batch-size", str(batch_size)]
    env = {**os.environ, "RELAY_BASE_URL": relay.url(dialect), "RELAY_DIALECT": dialect,
           "RELAY_API_KEY": relay.api_key, "RELAY_LOGIN": relay.login, "RELAY_SENDER": SENDER,
           "RELAY_PHONE_ID": "phone_main", "RELAY_CAMPAIGN_LEASE_SECONDS": "2"}

    first = _kill_when_recorded(args, env, ledger, campaign_id, RECIPIENTS // 4)
    second = _kill_when_recorded(args, env, ledger, campaign_id, RECIPIENTS * 3 // 5)
    assert RECIPIENTS // 4 <= first <= second < RECIPIENTS
    missing, duplicated, _ = exactly_once(relay, dialect, addresses)
    assert duplicated == 0 and missing > 0

    final = subprocess.run([sys.executable, "-m", "relay_integrations", *args], env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert final.returncode == 0, final.stderr[-2000:]
    counts = json.loads(final.stdout)["counts"]
    summary = f"{dialect}: ledger after kill 1: {first}, after kill 2: {second}; third run: {counts}"
    print(summary)
    assert counts["failed"] == 0 and counts["accepted"] + counts["already_sent"] == RECIPIENTS, summary
    assert counts["already_sent"] >= second, summary
    assert exactly_once(relay, dialect, addresses) == (0, 0, 0), summary
    assert relay.api_key not in final.stdout + final.stderr

"""Exactly once on many workers: a shared PostgreSQL ledger, leases, reconciliation on retry.

Each "worker" is a separate process with its own HOME and working directory, so nothing but the
store is shared between tries (as on Celery/Kubernetes workers or Prefect workers).
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
from campaign_relay_helpers import SENDER, client_for, messages_per_address, numbers

from relay_integrations.campaign import Campaign, CampaignProgress
from relay_integrations.campaign.campaign_store import CampaignStore, CampaignStoreError, RelayIdentity
from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

LEASE = "2"


def worker_env(relay: ReferenceRelayProcess, dialect: str, home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "XDG_"))}
    return {**env, "HOME": str(home), "RELAY_BASE_URL": relay.url(dialect), "RELAY_DIALECT": dialect,
            "RELAY_API_KEY": relay.api_key, "RELAY_LOGIN": "relay", "RELAY_PHONE_ID": "phone_main",
            "RELAY_SENDER": SENDER, "RELAY_CAMPAIGN_LEASE_SECONDS": LEASE}


def write_people(path: Path, addresses: list[str]) -> None:
    path.write_text("phone,name\n" + "".join(f"{a},P{i}\n" for i, a in enumerate(addresses)))


def campaign_args(recipients: Path, campaign_id: str, ledger: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "relay_integrations", "campaign", "--template", "Hello {{ name }}",
            "--recipients", str(recipients), "--campaign-id", campaign_id, "--ledger", ledger,
            "--batch-size", "10", "--concurrency", "2", "--no-progress", *extra]


def start_worker(args: list[str], home: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_accepted(ledger: str, campaign_id: str, at_least: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    with CampaignStore.open(ledger) as store:
        while time.monotonic() < deadline and proc.poll() is None:
            if store.accepted_count(campaign_id) >= at_least:
                return
            time.sleep(0.05)
    raise AssertionError(f"the worker never recorded {at_least} messages (exit {proc.poll()})")


@pytest.mark.parametrize("dialect", ["relaysms", "coop"])
def test_killed_worker_retried_on_another_sends_each_message_once(
    relay: ReferenceRelayProcess, dialect: str, tmp_path: Path, postgres_url: str
) -> None:
    addresses = numbers(150)
    recipients = tmp_path / "people.csv"
    write_people(recipients, addresses)
    campaign_id = f"many-workers-kill-{dialect}"
    args = campaign_args(recipients, campaign_id, postgres_url)
    first_home, second_home = tmp_path / "worker-a", tmp_path / "worker-b"

    first = start_worker([*args, "--rate-limit", "60"], first_home, worker_env(relay, dialect, first_home))
    try:
        wait_for_accepted(postgres_url, campaign_id, 30, first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    partial = messages_per_address(relay, dialect, addresses)
    assert 30 <= sum(partial.values()) < 150

    retry = subprocess.run(args, env=worker_env(relay, dialect, second_home), cwd=second_home,
                           capture_output=True, text=True, timeout=120, check=False)
    assert retry.returncode == 0, retry.stderr
    report = json.loads(retry.stdout)
    assert report["counts"]["accepted"] + report["counts"]["already_sent"] == 150
    assert report["counts"]["already_sent"] >= sum(partial.values())
    assert messages_per_address(relay, dialect, addresses) == {a: 1 for a in addresses}


@pytest.mark.parametrize("dialect", ["relaysms", "coop"])
def test_two_concurrent_runs_of_one_campaign_send_each_message_once(
    relay: ReferenceRelayProcess, dialect: str, tmp_path: Path, postgres_url: str
) -> None:
    addresses = numbers(120)
    recipients = tmp_path / "people.csv"
    write_people(recipients, addresses)
    args = campaign_args(recipients, f"many-workers-twice-{dialect}", postgres_url, "--rate-limit", "200")
    homes = [tmp_path / "worker-a", tmp_path / "worker-b"]
    procs = [start_worker(args, home, worker_env(relay, dialect, home)) for home in homes]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    assert sum(r["counts"]["accepted"] for r in reports) == 120
    assert all(r["counts"]["accepted"] + r["counts"]["already_sent"] == 120 for r in reports)
    assert messages_per_address(relay, dialect, addresses) == {a: 1 for a in addresses}


def test_two_concurrent_runs_on_one_sqlite_ledger_send_each_message_once(
    relay: ReferenceRelayProcess, tmp_path: Path
) -> None:
    addresses = numbers(100)
    recipients = tmp_path / "people.csv"
    write_people(recipients, addresses)
    args = campaign_args(recipients, "many-workers-sqlite", str(tmp_path / "shared.sqlite"), "--rate-limit", "200")
    homes = [tmp_path / "worker-a", tmp_path / "worker-b"]
    procs = [start_worker(args, home, worker_env(relay, "relaysms", home)) for home in homes]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    assert sum(json.loads(out)["counts"]["accepted"] for out, _ in outputs) == 100
    assert messages_per_address(relay, "relaysms", addresses) == {a: 1 for a in addresses}


def test_same_campaign_id_on_another_relay_is_a_new_campaign(
    relay: ReferenceRelayProcess, start_relay: Any, tmp_path: Path
) -> None:
    """Keyed by campaign id only, the ledger reported ``already_sent`` against a fresh relay."""
    addresses = numbers(10)
    ledger = tmp_path / "ledger.sqlite"

    def campaign() -> Campaign:
        return Campaign("Hi {{ name }}", [{"phone": a, "name": "X"} for a in addresses],
                        campaign_id="moved-relay", ledger=ledger)

    with client_for(relay, "relaysms") as client:
        assert campaign().send(client).counts["accepted"] == 10
    fresh = start_relay()
    with client_for(fresh, "relaysms") as client:
        report = campaign().send(client)
    assert report.counts["accepted"] == 10 and report.counts["already_sent"] == 0
    assert messages_per_address(fresh, "relaysms", addresses) == {a: 1 for a in addresses}


def test_postgresql_stopped_mid_campaign_is_a_clear_error_and_a_rerun_finishes(
    relay: ReferenceRelayProcess, postgres_cluster: Any, postgres_url: str
) -> None:
    addresses = numbers(120)
    people = [{"phone": a, "name": f"P{i}"} for i, a in enumerate(addresses)]
    stopped = False

    def stop_postgres_midway(progress: CampaignProgress) -> None:
        nonlocal stopped
        if progress.phase == "sending" and progress.accepted >= 30 and not stopped:
            stopped = True
            postgres_cluster.stop()

    def campaign(**kwargs: Any) -> Campaign:
        return Campaign("Hi {{ name }}", people, campaign_id="pg-outage", ledger=postgres_url, batch_size=10,
                        concurrency=2, lease_seconds=2, **kwargs)

    try:
        with client_for(relay, "relaysms") as client, pytest.raises(CampaignStoreError) as info:
            campaign(progress=stop_postgres_midway, rate_limit=100).send(client)
    finally:
        postgres_cluster.start()
    assert stopped
    message = str(info.value)
    assert "127.0.0.1:" in message and "campaign store" in message
    partial = sum(messages_per_address(relay, "relaysms", addresses).values())
    assert 30 <= partial < 120

    with client_for(relay, "relaysms") as client:
        report = campaign().send(client)
        with CampaignStore.open(postgres_url) as store:
            assert store.count(RelayIdentity.from_client(client), "pg-outage") == 120
    assert report.counts["accepted"] + report.counts["already_sent"] == 120
    assert messages_per_address(relay, "relaysms", addresses) == {a: 1 for a in addresses}


def test_unreachable_ledger_fails_before_the_first_send(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addresses = numbers(3)
    campaign = Campaign("Hi", [{"phone": a} for a in addresses], campaign_id="no-store",
                        ledger=f"postgresql://bob:hunter2-pw@127.0.0.1:{port}/campaigns")
    assert "hunter2-pw" not in campaign.ledger_path
    with client_for(relay, "relaysms") as client, pytest.raises(CampaignStoreError) as info:
        campaign.send(client)
    assert f"127.0.0.1:{port}" in str(info.value) and "hunter2-pw" not in str(info.value)
    assert sum(messages_per_address(relay, "relaysms", addresses).values()) == 0


@pytest.mark.anyio
async def test_two_concurrent_async_runs_share_the_work_and_send_each_message_once(
    relay: ReferenceRelayProcess, tmp_path: Path
) -> None:
    import asyncio

    from campaign_relay_helpers import async_client_for

    addresses = numbers(60)
    people = [{"phone": a, "name": f"P{i}"} for i, a in enumerate(addresses)]

    def campaign() -> Campaign:
        return Campaign("Hi {{ name }}", people, campaign_id="async-twice", ledger=tmp_path / "shared.sqlite",
                        batch_size=5, concurrency=2, rate_limit=100, lease_seconds=2)

    async with async_client_for(relay, "coop") as one, async_client_for(relay, "coop") as two:
        first, second = await asyncio.gather(campaign().asend(one), campaign().asend(two))
    assert first.counts["accepted"] + second.counts["accepted"] == 60
    assert first.counts["accepted"] + first.counts["already_sent"] == 60
    assert second.counts["accepted"] + second.counts["already_sent"] == 60
    assert messages_per_address(relay, "coop", addresses) == {a: 1 for a in addresses}


def test_cli_with_an_unreachable_ledger_url_fails_clearly_and_sends_nothing(
    relay: ReferenceRelayProcess, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addresses = numbers(3)
    recipients = tmp_path / "people.csv"
    write_people(recipients, addresses)
    args = campaign_args(recipients, "cli-no-store", f"postgresql://carol:pw-31337x@127.0.0.1:{port}/relay")
    result = subprocess.run(args, env=worker_env(relay, "relaysms", tmp_path / "home"), capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 3, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "campaign store" in result.stderr
    assert "pw-31337x" not in result.stderr + result.stdout
    assert sum(messages_per_address(relay, "relaysms", addresses).values()) == 0


def test_a_large_run_on_a_fresh_postgresql_ledger_records_rows_by_primary_key(
    relay: ReferenceRelayProcess, postgres_cluster: Any
) -> None:
    # A ledger created by this very run has no statistics; PostgreSQL then planned recording a row
    # through the message index and read every row of the campaign for each one (1 to 3 s per
    # 1,000 rows at 10,000). The run refreshes them once it has claimed its rows.
    ledger = postgres_cluster.create_database()
    addresses = numbers(1000)
    people = [{"phone": a, "name": f"P{i}"} for i, a in enumerate(addresses)]
    with client_for(relay, "relaysms") as client:
        report = Campaign("Hi {{ name }}", people, campaign_id="pg-plans", ledger=ledger).send(client)
        identity = RelayIdentity.from_client(client)
    assert report.counts["accepted"] == 1000
    with CampaignStore.open(ledger) as store, store._require().connect() as conn:
        key = conn.exec_driver_sql("SELECT idempotency_key FROM relay_campaign_entries LIMIT 1").scalar_one()
        plan = " ".join(str(line) for (line,) in conn.exec_driver_sql(
            "EXPLAIN UPDATE relay_campaign_entries SET state = 'delivered'"
            " WHERE relay_id = %s AND campaign_id = %s AND idempotency_key = %s",
            (identity.relay_id, "pg-plans", key)))
    assert "relay_campaign_entries_pkey" in plan, plan

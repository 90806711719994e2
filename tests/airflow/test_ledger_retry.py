"""An Airflow retry on another worker with a local ledger: nothing is sent twice on relaysms.

Each try runs RelayCampaignOperator.execute in its own process with its own AIRFLOW_HOME and HOME
(so its own local ledger), as a Celery/Kubernetes retry would. Try 1 is killed midway; try 2 has a
fresh ledger and must look every planned row up on the relay before sending.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).parent / "campaign_try.py"
SENDER = "+1987654321"


def _worker_env(relay: ReferenceRelayProcess, home: Path) -> dict[str, str]:
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "XDG_", "AIRFLOW"))}
    conn = {"conn_type": "relay", "host": relay.url("relaysms"), "password": relay.api_key,
            "extra": {"dialect": "relaysms", "sender": SENDER, "max_retries": 1}}
    return {**env, "HOME": str(home), "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW_CONN_RELAY_RETRY": json.dumps(conn), "RELAY_CAMPAIGN_LEASE_SECONDS": "2"}


def _outbound_to(relay: ReferenceRelayProcess, addresses: list[str]) -> list[str]:
    import httpx

    answer = httpx.get(f"{relay.base_url}/_sim/messages",
                       params={"dialect": "relaysms", "direction": "outbound", "limit": 100_000},
                       headers={"Authorization": f"Bearer {relay.api_key}"}, timeout=30)
    answer.raise_for_status()
    wanted = set(addresses)
    return [m["to"] for m in answer.json()["messages"] if m.get("to") in wanted]


def test_retry_on_another_worker_with_a_local_ledger_sends_nothing_twice(
    relay: ReferenceRelayProcess, tmp_path: Path
) -> None:
    block = int(time.time() * 1000) % 900 + 50
    addresses = [f"+1415{block:03d}{i:04d}" for i in range(1, 81)]
    recipients = tmp_path / "people.csv"
    recipients.write_text("phone,name\n" + "".join(f"{a},P{i}\n" for i, a in enumerate(addresses)))
    started = datetime.now(timezone.utc).isoformat()
    campaign_id = f"airflow-retry-{block}"
    first_home, second_home = tmp_path / "worker-a", tmp_path / "worker-b"

    first = subprocess.Popen([sys.executable, str(SCRIPT), str(recipients), campaign_id, "1", "20", started],
                             env=_worker_env(relay, first_home), cwd=first_home, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and first.poll() is None and len(_outbound_to(relay, addresses)) < 20:
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    sent_by_first = len(_outbound_to(relay, addresses))
    assert 20 <= sent_by_first < 80

    second = subprocess.run([sys.executable, str(SCRIPT), str(recipients), campaign_id, "2", "200", started],
                            env=_worker_env(relay, second_home), cwd=second_home, capture_output=True, text=True,
                            timeout=120, check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    counts = json.loads(second.stdout.strip().splitlines()[-1])
    assert counts["reconciled"] == sent_by_first and counts["already_sent"] == sent_by_first
    assert counts["accepted"] == 80 - sent_by_first
    sent = _outbound_to(relay, addresses)
    assert sorted(sent) == sorted(addresses)  # each recipient exactly once
    log = second.stdout + second.stderr
    assert "CeleryExecutor" in log and "ledger_conn_id" in log  # the local-ledger warning


def test_send_operator_claims_in_the_ledger_named_by_the_relay_connection(
    relay: ReferenceRelayProcess, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ledger_conn_id`` set once in the relay connection's extra: a retry finds the message there."""
    from types import SimpleNamespace

    from sqlalchemy.engine import make_url

    from airflow_provider.operators.relay import RelaySendMessageOperator
    from relay_integrations.campaign.campaign_store import CampaignStore

    url = make_url(postgres_url)
    monkeypatch.setenv("AIRFLOW_CONN_RELAY_LEDGER_DB", json.dumps({
        "conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username,
        "schema": url.database}))
    monkeypatch.setenv("AIRFLOW_CONN_RELAY_WITH_LEDGER", json.dumps({
        "conn_type": "relay", "host": relay.url("relaysms"), "password": relay.api_key,
        "extra": {"dialect": "relaysms", "sender": SENDER, "ledger_conn_id": "relay_ledger_db"}}))
    to = f"+1415{int(time.time() * 1000) % 900 + 50:03d}9999"
    started = datetime.now(timezone.utc)
    receipts = []
    for try_number in (1, 2):
        operator = RelaySendMessageOperator(task_id="notify", to=to, text="ledger once",
                                            relay_conn_id="relay_with_ledger", idempotency_key=f"af-ledger-{to}")
        context = {"ti": SimpleNamespace(try_number=try_number), "dag_run": SimpleNamespace(start_date=started)}
        receipts.append(operator.execute(context))  # type: ignore[arg-type]
    assert not receipts[0]["duplicate"] and receipts[1]["duplicate"]
    assert receipts[1]["message_id"] == receipts[0]["message_id"]
    assert _outbound_to(relay, [to]) == [to]
    with CampaignStore.open(postgres_url) as store:
        assert store.accepted_count("airflow.send_message") == 1


def test_an_unreachable_ledger_connection_fails_before_sending_without_its_password(
    relay: ReferenceRelayProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowException

    from airflow_provider.operators.relay import RelayCampaignOperator

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_DOWN_LEDGER", json.dumps({
        "conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "dana", "password": "pw-af-0042",
        "schema": "relay"}))
    monkeypatch.setenv("AIRFLOW_CONN_RELAY_PLAIN", json.dumps({
        "conn_type": "relay", "host": relay.url("relaysms"), "password": relay.api_key,
        "extra": {"dialect": "relaysms", "sender": SENDER}}))
    to = f"+1415{int(time.time() * 1000) % 900 + 50:03d}8888"
    operator = RelayCampaignOperator(task_id="campaign", template="Hi", recipients=[{"phone": to}],
                                     campaign_id="down-ledger", relay_conn_id="relay_plain",
                                     ledger_conn_id="down_ledger")
    context = {"ti": SimpleNamespace(try_number=1), "dag_run": SimpleNamespace(start_date=datetime.now(timezone.utc))}
    with pytest.raises(AirflowException) as info:
        operator.execute(context)  # type: ignore[arg-type]
    assert f"127.0.0.1:{port}" in str(info.value) and "pw-af-0042" not in str(info.value)
    assert _outbound_to(relay, [to]) == []

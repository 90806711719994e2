"""A Prefect flow-run retry in a new process (own HOME, cwd and local ledger) sends nothing twice.

The first run is killed (SIGKILL) midway through a relaysms campaign; the run is marked crashed
(as Prefect's zombie detection would) and ``prefect flow-run retry --entrypoint`` runs it again
in another process, which must look every planned row up on the relay before sending.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from prefect.states import Crashed

from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

FLOW_FILE = Path(__file__).parent / "flows" / "retry_campaign_flow.py"


def _env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "XDG_", "PREFECT_"))}
    root = str(Path(__file__).resolve().parents[2])
    return {**env, "HOME": str(home), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "RELAY_CAMPAIGN_LEASE_SECONDS": "2",
            "PYTHONPATH": os.pathsep.join([root, str(FLOW_FILE.parent), env.get("PYTHONPATH", "")])}


def _sent_to(relay: ReferenceRelayProcess, addresses: list[str]) -> list[str]:
    answer = httpx.get(f"{relay.base_url}/_sim/messages",
                       params={"dialect": "relaysms", "direction": "outbound", "limit": 100_000},
                       headers={"Authorization": f"Bearer {relay.api_key}"}, timeout=30)
    answer.raise_for_status()
    wanted = set(addresses)
    return [m["to"] for m in answer.json()["messages"] if m.get("to") in wanted]


def test_flow_run_retry_in_a_new_process_sends_nothing_twice(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    block = int(time.time() * 1000) % 900 + 50
    addresses = [f"+1646{block:03d}{i:04d}" for i in range(1, 81)]
    recipients = tmp_path / "people.csv"
    recipients.write_text("phone,name\n" + "".join(f"{a},P{i}\n" for i, a in enumerate(addresses)))
    params: dict[str, Any] = {"base_url": relay.url("relaysms"), "api_key": relay.api_key,
                              "recipients": str(recipients), "campaign_id": f"prefect-retry-{block}",
                              "rate_limit": 20.0}
    first_home, second_home = tmp_path / "worker-a", tmp_path / "worker-b"
    code = f"from retry_campaign_flow import retry_campaign\nretry_campaign(**{params!r})\n"
    first = subprocess.Popen([sys.executable, "-c", code], env=_env(first_home), cwd=first_home,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    flow_run_id = None
    try:
        assert first.stdout is not None
        for line in first.stdout:
            if line.startswith("FLOW_RUN_ID="):
                flow_run_id = line.strip().split("=", 1)[1]
                break
        assert flow_run_id, "the first run never started"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and first.poll() is None and len(_sent_to(relay, addresses)) < 20:
            time.sleep(0.1)
        assert first.poll() is None, "the first run finished before it could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    sent_by_first = len(_sent_to(relay, addresses))
    assert 20 <= sent_by_first < 80

    with get_client(sync_client=True) as client:  # as zombie detection would mark the dead run
        client.set_flow_run_state(flow_run_id, Crashed(message="worker killed"), force=True)

    retry = subprocess.run(
        [sys.executable, "-m", "prefect", "flow-run", "retry", flow_run_id, "--entrypoint",
         f"{FLOW_FILE}:retry_campaign"],
        env=_env(second_home), cwd=second_home, capture_output=True, text=True, timeout=240, check=False)
    output = retry.stdout + retry.stderr
    assert retry.returncode == 0, output[-4000:]
    counts_line = next(line for line in output.splitlines() if line.startswith("COUNTS="))
    counts = ast.literal_eval(counts_line.split("=", 1)[1])
    assert counts["reconciled"] == sent_by_first and counts["accepted"] == 80 - sent_by_first
    assert sorted(_sent_to(relay, addresses)) == sorted(addresses)  # each recipient exactly once
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run_id).run_count >= 2

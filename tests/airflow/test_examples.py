"""The example DAG (examples/airflow/dags/relay_campaign.py) end to end, the way ``make demo`` runs it.

``airflow dags test relay_campaign`` runs in a subprocess with the examples' DAG folder, a private
copy of the session's migrated metadata DB, and the environment ``examples/demo.py`` builds, against
a private reference relay and webhook receiver with every dialect's webhooks registered by the demo's
own code. The relay is then asked what it holds.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from relay_integrations.process import ReferenceRelayProcess, WebhookReceiverProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = ROOT / "examples" / "airflow" / "dags"
RECIPIENTS_CSV = ROOT / "examples" / "data" / "recipients.csv"
API_KEY = "examples-relay-key-3e1f0b"
RECEIVER_KEY = "examples-receiver-key-9a2d4c"
WEBHOOK_SECRET = "whsec_ZXhhbXBsZXMtYWlyZmxvdy13ZWJob29rLXNlY3JldA=="
BAD_ADDRESSES = {"not-a-number", "+1555", ""}


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    """examples/demo.py, for the wiring it does (webhook registration, the examples' environment)."""
    return _load(ROOT / "examples" / "demo.py", "relay_examples_demo")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, demo: ModuleType) -> Iterator[tuple[ReferenceRelayProcess,
                                                                                         WebhookReceiverProcess]]:
    tmp = tmp_path_factory.mktemp("airflow-examples")
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=API_KEY, delivery_latency=0.1,
                               webhook_secret=WEBHOOK_SECRET, log_path=tmp / "relay.log") as relay, \
            WebhookReceiverProcess(db_path=tmp / "inbox.db", secrets=[WEBHOOK_SECRET], api_key=RECEIVER_KEY,
                                   log_path=tmp / "receiver.log") as receiver:
        demo.register_webhooks(relay, receiver, WEBHOOK_SECRET)
        yield relay, receiver


def _recipients() -> list[dict[str, str]]:
    with RECIPIENTS_CSV.open(newline="") as f:
        return list(csv.DictReader(f))


def _stored(relay: ReferenceRelayProcess, direction: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{relay.base_url}/_sim/messages", params={"direction": direction},
                       headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    answer.raise_for_status()
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def _copied_dags_folder(tmp_path: Path) -> Path:
    """A DAGs folder outside the checkout holding only the example DAG file, as a user would copy it."""
    folder = tmp_path / "user-dags"
    folder.mkdir()
    shutil.copy(EXAMPLE_DAGS / "relay_campaign.py", folder / "relay_campaign.py")
    return folder


def test_example_dag_parses_with_nothing_configured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Parsing needs no connection, no RELAY_* variable and no relay: nothing is read at import."""
    from airflow.dag_processing.dagbag import DagBag

    for name in [n for n in os.environ if n.startswith(("RELAY_", "AIRFLOW_CONN_"))]:
        monkeypatch.delenv(name)
    bag = DagBag(dag_folder=str(_copied_dags_folder(tmp_path) / "relay_campaign.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["relay_campaign"]  # parsed, not read back from a metadata DB
    assert {t.task_id for t in dag.tasks} == {
        "load_recipients", "send_campaign", "wait_for_delivery", "check_delivery", "simulate_customer_reply",
        "wait_for_reply",
        "inbound_stats",
    }
    assert dag.get_task("wait_for_delivery").deferrable and dag.get_task("wait_for_reply").deferrable
    assert type(dag.on_failure_callback[0]).__name__ == "RelayNotifier"  # type: ignore[index]


def test_example_dag_copied_alone_has_the_demo_rows_inline(tmp_path: Path) -> None:
    """Copied alone into a DAGs folder, the DAG still has its recipients: the same rows as examples/data."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(_copied_dags_folder(tmp_path) / "relay_campaign.py"))
    load_recipients = bag.dags["relay_campaign"].get_task("load_recipients").python_callable  # type: ignore[attr-defined]
    assert load_recipients(params={"recipients_csv": ""}) == _recipients()
    # A run may name its own file instead.
    own = tmp_path / "mine.csv"
    own.write_text("phone,first_name,order_id,eta\n+14155551000,Ada,A-1,9:00\n")
    assert load_recipients(params={"recipients_csv": str(own)}) == [
        {"phone": "+14155551000", "first_name": "Ada", "order_id": "A-1", "eta": "9:00"}]


def _run_example_dag(demo: ModuleType, relay: ReferenceRelayProcess, receiver: WebhookReceiverProcess,
                     airflow_db: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "airflow-home"
    home.mkdir()
    shutil.copy(airflow_db, home / "airflow.db")  # already migrated: no second `airflow db migrate`
    base = {**demo.example_env(relay, receiver), "RELAY_CAMPAIGN_LEDGER_DIR": str(tmp_path / "ledgers")}
    conn = {
        "conn_type": "relay", "host": base["RELAY_BASE_URL"], "login": base["RELAY_LOGIN"],
        "password": API_KEY,
        "extra": {"dialect": base["RELAY_DIALECT"], "phone_id": base["RELAY_PHONE_ID"],
                  "sender": base["RELAY_SENDER"], "webhook_inbox_url": receiver.base_url,
                  "webhook_inbox_api_key": RECEIVER_KEY},
    }
    env = {
        **os.environ,
        **base,
        "AIRFLOW_HOME": str(home),
        # Only the DAG file, copied outside the checkout, as a user deploys it.
        "AIRFLOW__CORE__DAGS_FOLDER": str(_copied_dags_folder(tmp_path)),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_RELAY_DEFAULT": json.dumps(conn),
    }
    return subprocess.run([sys.executable, "-m", "airflow", "dags", "test", "relay_campaign"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_example_dag_end_to_end(
    demo: ModuleType,
    stack: tuple[ReferenceRelayProcess, WebhookReceiverProcess],
    airflow_db: Path,
    tmp_path: Path,
) -> None:
    relay, receiver = stack
    result = _run_example_dag(demo, relay, receiver, airflow_db, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    finished = re.search(r"DagRun Finished: dag_id=relay_campaign.*?state=(\w+)", output)
    assert finished and finished.group(1) == "success", output[-4000:]
    assert API_KEY not in output and RECEIVER_KEY not in output

    rows = _recipients()
    good = {r["phone"] for r in rows if r["phone"] not in BAD_ADDRESSES}
    assert len(rows) == 51 and len(good) == 47  # one duplicate row, three bad rows

    outbound = _stored(relay, "outbound")
    per_address = Counter(m["to"] for m in outbound)
    # Every good recipient exactly once (the duplicate row too), the bad rows never.
    assert per_address == Counter({address: 1 for address in good}), per_address
    first = next(m for m in outbound if m["to"] == rows[0]["phone"])
    assert first["text"] == (f"Hi {rows[0]['first_name']}, your order {rows[0]['order_id']} arrives today around "
                             f"{rows[0]['eta']}. Reply YES to confirm or STOP to opt out.")
    states = {m["to"]: m["state"] for m in outbound}
    assert {a for a, s in states.items() if s == "failed"} == {"+14155550000"}
    assert {a for a, s in states.items() if s != "failed"} == good - {"+14155550000"}
    assert set(states.values()) == {"delivered", "failed"}

    # The simulated reply: stored by the relay, posted to the receiver, waited for by the sensor.
    inbound = _stored(relay, "inbound")
    assert [(m["from"], m["text"]) for m in inbound] == [(rows[0]["phone"], "YES, see you then!")]
    events = httpx.get(f"{receiver.base_url}/events", params={"kind": "inbound"},
                       headers={"Authorization": f"Bearer {RECEIVER_KEY}"}, timeout=10).json()
    assert [(e["sender"], e["text"]) for e in events] == [(rows[0]["phone"], "YES, see you then!")]
    assert "Inbound stats: 1 event(s)" in output

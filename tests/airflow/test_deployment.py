"""Airflow as users run it: ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as
separate processes (LocalExecutor, SQLite, a private AIRFLOW_HOME, free ports), against a reference relay
and a webhook receiver.

- The UI's Test button: ``POST /api/v2/connections/test`` with the body the 3.3 UI's list-row button
  builds from the stored connection (``port: Number(stored port)``, empty strings for unset fields, the
  masked password), with a JWT from SimpleAuthManager (all admins).
- The example DAG, copied alone into a DAGs folder outside the checkout, runs to success, its sensors
  deferred to the triggerer.

Every process runs in its own process group, killed in teardown.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from relay_integrations.process import ReferenceRelayProcess, WebhookReceiverProcess, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "deploy-relay-key-5c8e21"
RECEIVER_KEY = "deploy-receiver-key-0b7d93"
WEBHOOK_SECRET = "whsec_ZGVwbG95LWFpcmZsb3ctd2ViaG9vay1zZWNyZXQ="
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 300.0


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wait_for(condition: Callable[[], Any], timeout: float, what: str, logs: Path) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            tails = "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                              for p in sorted(logs.glob("*.log")))
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.5)


class Deployment:
    def __init__(self, home: Path, env: dict[str, str], api_port: int) -> None:
        self.home, self.env, self.api_url = home, env, f"http://127.0.0.1:{api_port}"
        self.logs = home / "logs-processes"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *command: str) -> None:
        log = (self.logs / f"{command[0]}.log").open("wb")
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "airflow", *command], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def token(self) -> str:
        answer = httpx.get(f"{self.api_url}/auth/token", timeout=10)
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.api_url}/api/v2", headers={"Authorization": f"Bearer {self.token()}"},
                            timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReferenceRelayProcess, WebhookReceiverProcess]]:
    demo = _load(ROOT / "examples" / "demo.py", "relay_examples_demo_deploy")
    tmp = tmp_path_factory.mktemp("deploy-stack")
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=API_KEY, delivery_latency=0.1,
                               webhook_secret=WEBHOOK_SECRET, log_path=tmp / "relay.log") as relay, \
            WebhookReceiverProcess(db_path=tmp / "inbox.db", secrets=[WEBHOOK_SECRET], api_key=RECEIVER_KEY,
                                   log_path=tmp / "receiver.log") as receiver:
        demo.register_webhooks(relay, receiver, WEBHOOK_SECRET)
        yield relay, receiver


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory,
               stack: tuple[ReferenceRelayProcess, WebhookReceiverProcess]) -> Iterator[Deployment]:
    relay, receiver = stack
    demo = _load(ROOT / "examples" / "demo.py", "relay_examples_demo_deploy_env")
    home = tmp_path_factory.mktemp("airflow-deploy-home")
    dags = tmp_path_factory.mktemp("user-dags")  # outside the checkout, only the DAG file
    shutil.copy(ROOT / "examples" / "airflow" / "dags" / "relay_campaign.py", dags / "relay_campaign.py")
    api_port = free_port()
    base = {**demo.example_env(relay, receiver), "RELAY_CAMPAIGN_LEDGER_DIR": str(home / "ledgers")}
    conn = {"conn_type": "relay", "host": base["RELAY_BASE_URL"], "login": base["RELAY_LOGIN"], "password": API_KEY,
            "extra": {"dialect": base["RELAY_DIALECT"], "phone_id": base["RELAY_PHONE_ID"],
                      "sender": base["RELAY_SENDER"], "webhook_inbox_url": receiver.base_url,
                      "webhook_inbox_api_key": RECEIVER_KEY}}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        **base,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": "deploy-test-jwt-secret-2f6a",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "task-logs"),
        # Free ports for the log servers too (other test sessions may run next to this one).
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW_CONN_RELAY_DEFAULT": json.dumps(conn),
    }
    migrated = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                              text=True, timeout=300, check=False)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
    deployment = Deployment(home, env, api_port)
    try:
        deployment.start("api-server", "--host", "127.0.0.1", "--port", str(api_port))
        deployment.start("scheduler")
        deployment.start("dag-processor")
        deployment.start("triggerer")

        def api_up() -> bool:
            try:
                return httpx.get(f"{deployment.api_url}/api/v2/monitor/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(api_up, STARTUP_TIMEOUT, "the api-server", deployment.logs)
        yield deployment
    finally:
        deployment.stop()


def _run_dag(deployment: Deployment, api: httpx.Client, dag_id: str,
             conf: dict[str, Any] | None = None) -> tuple[str, str]:
    """Wait for the dag-processor to parse ``dag_id`` (without import errors), unpause it, trigger a run
    with ``conf`` and wait for it to end: ``(run id, final state)``."""
    _wait_for(lambda: api.get(f"/dags/{dag_id}").status_code == 200, STARTUP_TIMEOUT,
              f"the dag-processor to parse {dag_id}", deployment.logs)
    errors = api.get("/importErrors").json()
    assert errors["total_entries"] == 0, errors
    assert api.patch(f"/dags/{dag_id}", json={"is_paused": False}).status_code == 200
    run = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, **({"conf": conf} if conf else {})})
    assert run.status_code == 200, run.text
    run_id: str = run.json()["dag_run_id"]

    def finished() -> str | None:
        state: str = api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    return run_id, _wait_for(finished, RUN_TIMEOUT, f"the {dag_id} run to finish", deployment.logs)


def _xcom(api: httpx.Client, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    """A task's return value, as the REST API gives it back."""
    value = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
                    params={"deserialize": True}).json()["value"]
    result: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return result


def _outbound(relay: ReferenceRelayProcess, dialect: str) -> list[dict[str, Any]]:
    """Every outbound message the relay stored for ``dialect``."""
    answer = httpx.get(f"{relay.base_url}/_sim/messages", params={"dialect": dialect, "direction": "outbound"},
                       headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def _ui_test_body(stored: dict[str, Any]) -> dict[str, Any]:
    """The body the 3.3 UI's Test button (connection list) posts, built the way its code builds it."""
    extra = stored.get("extra")
    return {
        "conn_type": stored["conn_type"],
        "connection_id": stored["connection_id"],
        "description": stored.get("description") or "",
        "extra": "{}" if extra in (None, "") else extra,
        "host": stored.get("host") or "",
        "login": stored.get("login") or "",
        "password": stored.get("password") or "",
        "port": stored.get("port") or 0,  # Number(null) is 0
        "schema": stored.get("schema") or "",
    }


def test_ui_test_button_passes_through_the_rest_api(
    deployment: Deployment, stack: tuple[ReferenceRelayProcess, WebhookReceiverProcess]
) -> None:
    relay, _ = stack
    with deployment.api() as api:
        # Made as the form now lets a user: the base URL, and its port in the (visible) Port field.
        created = api.post("/connections", json={
            "connection_id": "relay_ui", "conn_type": "relay", "host": relay.url("coop"), "port": relay.port,
            "password": API_KEY, "extra": json.dumps({"dialect": "coop", "timeout": 5, "max_retries": 0})})
        assert created.status_code == 201, created.text
        stored = api.get("/connections/relay_ui").json()
        answer = api.post("/connections/test", json=_ui_test_body(stored))
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] is True, answer.json()

        # An unsaved form tested with a wrong setting: the message names the field, not Airflow's random id.
        unsaved = api.post("/connections/test", json={
            "connection_id": "relay_unsaved", "conn_type": "relay", "host": relay.url("coop"),
            "password": API_KEY, "extra": json.dumps({"dialect": "twilio"})})
        assert unsaved.status_code == 200, unsaved.text
        body = unsaved.json()
        assert body["status"] is False and body["message"].startswith("extra.dialect:"), body
        assert API_KEY not in unsaved.text


def test_example_dag_copied_into_a_dags_folder_runs_with_sensors_on_the_triggerer(deployment: Deployment) -> None:
    with deployment.api() as api:
        run_id, state = _run_dag(deployment, api, "relay_campaign")
        tis = {t["task_id"]: t["state"]
               for t in api.get(f"/dags/relay_campaign/dagRuns/{run_id}/taskInstances").json()["task_instances"]}
        assert state == "success", (tis, deployment.log("scheduler")[-3000:])
        assert set(tis.values()) == {"success"}, tis

    # The sensors waited on the triggerer, not on a worker slot: the triggerer process writes each
    # deferred task's trigger log (attempt=1.log.trigger.<triggerer job id>.log) and fired its event there.
    for task_id in ("wait_for_delivery", "wait_for_reply"):
        trigger_logs = list((deployment.home / "task-logs" / "dag_id=relay_campaign").glob(
            f"run_id=*/task_id={task_id}/attempt=*.log.trigger.*.log"))
        assert trigger_logs, f"{task_id} never deferred to the triggerer"
        text = "".join(p.read_text(errors="replace") for p in trigger_logs)
        assert "Trigger fired event" in text and "'status': 'success'" in text, text[-2000:]
        assert API_KEY not in text and RECEIVER_KEY not in text
    assert API_KEY not in deployment.log("triggerer") and RECEIVER_KEY not in deployment.log("triggerer")


def _edit_form_extra_fields(declared: dict[str, Any], stored_extra: str) -> list[str]:
    """The extra fields the 3.3 UI's edit form shows, computed as its params store's ``setConf`` does when
    the form loads a stored connection: a declared field appears only when the stored ``extra`` has its key
    (``Object.hasOwn``), undeclared keys appear as raw fields without a label."""
    stored = json.loads(stored_extra or "{}")
    return [name for name in declared if name in stored] + [name for name in stored if name not in declared]


def test_cli_made_connection_from_the_readme_shows_every_extra_in_the_edit_form(deployment: Deployment) -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("airflow connections add relay_default")
    command = shlex.split(readme[start:readme.index("```", start)].replace("\\\n", " "))
    command[3] = "relay_cli"  # the README's command as written, under another id
    added = subprocess.run([sys.executable, "-m", *command], env=deployment.env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert added.returncode == 0, added.stdout[-2000:] + added.stderr[-2000:]
    with deployment.api() as api:
        [meta] = [m for m in api.get(f"{deployment.api_url}/ui/connections/hook_meta").json()
                  if m["connection_type"] == "relay"]
        stored = api.get("/connections/relay_cli").json()
    declared = meta["extra_fields"]
    assert "timeout" in declared and "max_retries" in declared, declared
    assert _edit_form_extra_fields(declared, stored["extra"]) == list(declared), stored["extra"]


def test_a_campaign_held_until_send_at_waits_on_the_triggerer_and_skips_opt_outs(
    deployment: Deployment, stack: tuple[ReferenceRelayProcess, WebhookReceiverProcess]
) -> None:
    """``send_at`` on a relay that cannot schedule (phonerelay): the operator sends nothing early, defers on a
    time trigger (the triggerer only waits), and sends on a worker when the moment comes, each message once,
    never to the person on the suppression list."""
    from datetime import datetime, timedelta, timezone

    from relay_integrations.campaign.campaign_store import RelayIdentity
    from relay_integrations.campaign.suppression import SuppressionList
    from relay_integrations.client import RelayClient

    relay, _ = stack
    dags = Path(deployment.env["AIRFLOW__CORE__DAGS_FOLDER"])
    shutil.copy(ROOT / "tests" / "airflow" / "respectful_dag.py", dags / "relay_respectful.py")
    people = [f"+1415555{n:04d}" for n in (2101, 2102, 2103)]
    with RelayClient(relay.url("phonerelay"), "phonerelay", API_KEY) as client:
        identity = RelayIdentity.from_client(client)
    with SuppressionList.open(deployment.env["RELAY_SUPPRESSION_STORE"], identity) as listed:
        listed.add([people[2]], note="asked by phone")
    # A minute ahead: the task starts well before it (it only waits for the scheduler to pick the run up).
    send_at = (datetime.now(timezone.utc) + timedelta(seconds=60)).replace(microsecond=0)
    with deployment.api() as api:
        created = api.post("/connections", json={
            "connection_id": "relay_respect", "conn_type": "relay", "host": relay.url("phonerelay"),
            "password": API_KEY, "extra": json.dumps({"dialect": "phonerelay", "phone_id": "phone_main"})})
        assert created.status_code == 201, created.text
        run_id, state = _run_dag(deployment, api, "relay_respectful", {
            "send_at": send_at.isoformat(),
            "recipients": [{"phone": p, "name": f"Person {i}"} for i, p in enumerate(people, start=1)]})
        assert state == "success", deployment.log("scheduler")[-3000:]
        result = _xcom(api, "relay_respectful", run_id, "holiday_greetings")
        note = _xcom(api, "relay_respectful", run_id, "personal_note")
    assert note["state"] == "suppressed" and note["message_id"] is None, note
    assert note["suppressed"][0]["reason"].endswith("(asked by phone)")
    assert result["pass"] == 2, result  # the first pass deferred every row, the second sent them
    assert result["counts"]["accepted"] == 2 and result["counts"]["suppressed"] == 1, result["counts"]
    assert result["counts"]["deferred"] == 0 and result["next_run_at"] is None
    # The time trigger ran on the triggerer and fired; the sends happened afterwards, once each.
    trigger_logs = list((deployment.home / "task-logs" / "dag_id=relay_respectful").glob(
        "run_id=*/task_id=holiday_greetings/attempt=*.log.trigger.*.log"))
    assert trigger_logs and any("Trigger fired event" in p.read_text(errors="replace") for p in trigger_logs)
    sent = [m for m in _outbound(relay, "phonerelay") if m["to"] in people]
    assert sorted(m["to"] for m in sent) == people[:2]
    assert all(datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")) >= send_at for m in sent)


def test_a_large_campaign_is_validated_with_a_worker_process_in_a_real_task_and_sent_once(
    deployment: Deployment, stack: tuple[ReferenceRelayProcess, WebhookReceiverProcess], tmp_path: Path
) -> None:
    """3,000 rows through the task runner's own process (not dag.test(), whose supervisor runs a thread next
    to the task): ``validation_workers="auto"`` forks a worker there, and every customer gets one message
    with their own text."""
    import csv

    relay, _ = stack
    dags = Path(deployment.env["AIRFLOW__CORE__DAGS_FOLDER"])
    shutil.copy(ROOT / "tests" / "airflow" / "large_campaign_dag.py", dags / "relay_large_campaign.py")
    people = [{"phone": f"+1415{3000000 + i:07d}", "name": f"Customer {i}", "order": f"B{i:06d}"}
              for i in range(3000)]
    recipients_csv = tmp_path / "customers.csv"
    with recipients_csv.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["phone", "name", "order"])
        writer.writeheader()
        writer.writerows(people)
    with deployment.api() as api:
        created = api.post("/connections", json={
            "connection_id": "relay_large", "conn_type": "relay", "host": relay.url("relaysms"),
            "password": API_KEY, "extra": json.dumps({"dialect": "relaysms", "sender": "+1987654321"})})
        assert created.status_code == 201, created.text
        run_id, state = _run_dag(deployment, api, "relay_large_campaign", {"recipients_csv": str(recipients_csv)})
        assert state == "success", deployment.log("scheduler")[-3000:]
        result = _xcom(api, "relay_large_campaign", run_id, "order_updates")
    assert result["counts"]["accepted"] == 3000 and result["counts"]["failed"] == 0, result["counts"]
    assert result["validation_workers"] >= 1, result
    texts: dict[str, list[str]] = {}
    for m in _outbound(relay, "relaysms"):
        if m["to"].startswith("+141530"):  # this test's numbers; other tests send through the same relay
            texts.setdefault(m["to"], []).append(m["text"])
    assert texts == {p["phone"]: [f"Hi {p['name']}, order {p['order']} has shipped."] for p in people}

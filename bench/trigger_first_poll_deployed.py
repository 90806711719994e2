"""Airflow: the status trigger's first run on a REAL triggerer process (issue #13's 9.1 s first trigger).

Starts api-server, scheduler, dag-processor and triggerer as separate processes (LocalExecutor, SQLite,
private AIRFLOW_HOME, free ports) against a reference relay holding 47 delivered phonerelay messages, and
runs a DAG with two deferrable RelayMessageStatusSensors over those 47 explicit ids, one after the other
(the first is the triggerer's first trigger of our provider: cold imports, connection lookup through the
supervisor, client and SSL context; the second is a warm one). For each, from the trigger's own log file
(``attempt=1.log.trigger.<job>.log``, timestamped by the triggerer): the time from the trigger's first
log line to "Trigger fired event" (its first poll completes the wait, every message being delivered),
next to the 47 raw status calls with one plain httpx client as the baseline.

    PYTHONPATH=$PWD .venvs/airflow/bin/python bench/trigger_first_poll_deployed.py \
        [--default-heartbeat] [--localhost] [--campaign-first]

``--campaign-first`` runs the campaign (47 rows sent by RelayCampaignOperator, then a sensor on its
reference) before the explicit-id sensors, so that its trigger is the triggerer's first.
``--localhost`` names the relay ``localhost`` in the connection (name resolution on the first request).
``--default-heartbeat`` leaves the triggerer's job_heartbeat_sec at Airflow's default (5 s) instead of 1 s.

The last line of output is ``BENCH_RESULT {json}``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from relay_integrations.process import ReferenceRelayProcess, free_port

MESSAGES = 47
KEY = "bench-deployed-key-7a1e"
DAG = '''
from datetime import datetime
from airflow.sdk import DAG
from airflow_provider.operators.relay import RelayCampaignOperator
from airflow_provider.sensors.relay import RelayMessageStatusSensor

IDS = {ids!r}
ROWS = [{{"phone": f"+1415556{{1000 + i:04d}}", "name": f"n{{i}}"}} for i in range(len(IDS))]
with DAG("bench_status_ids", start_date=datetime(2025, 1, 1), schedule=None, catchup=False):
    campaign = RelayCampaignOperator(task_id="send_campaign", template="Hi {{{{ name }}}}", recipients=ROWS)
    campaign_wait = RelayMessageStatusSensor(task_id="campaign", message_ids=campaign.output, target_state="sent",
                                             deferrable=True, poke_interval=1.0, timeout=300)
    first = RelayMessageStatusSensor(task_id="first", message_ids=IDS, target_state="sent", deferrable=True,
                                     poke_interval=1.0, timeout=300)
    second = RelayMessageStatusSensor(task_id="second", message_ids=IDS, target_state="sent", deferrable=True,
                                      poke_interval=1.0, timeout=300)
    if {campaign_first!r}:
        campaign >> campaign_wait >> first >> second
    else:
        first >> second >> campaign >> campaign_wait
'''


def _wait(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def _stamps(log: Path) -> list[tuple[datetime, str]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")), str(e.get("event", ""))) for e in lines]


def _trigger_figures(trigger_log: Path, task_log: Path) -> dict[str, Any]:
    """From the lines' timestamps: the task's "Pausing task as DEFERRED" -> the trigger's first line
    ("trigger ... starting") -> "Trigger fired event"."""
    stamps = _stamps(trigger_log)
    deferred = next(t for t, event in _stamps(task_log) if "DEFERRED" in event)
    first = stamps[0][0]
    fired = next(t for t, event in stamps if "Trigger fired event" in event)
    return {"deferred_to_first_line_s": round((first - deferred).total_seconds(), 3),
            "first_line_to_fired_s": round((fired - first).total_seconds(), 3),
            "events": [f"{(t - first).total_seconds():7.3f} {event[:110]}" for t, event in stamps]}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-trigger-deployed-"))
    processes: list[subprocess.Popen[bytes]] = []
    relay = ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=KEY, delivery_latency=0.05)
    with relay:
        base = relay.url("phonerelay")
        headers = {"Authorization": f"Bearer {KEY}"}
        ids = [httpx.post(f"{base}/api/v1/messages", headers=headers, timeout=10, json={
            "phone_id": "phone_main", "to": f"+1415555{1000 + i:04d}", "text": "bench", "channel": "sms",
        }).json()["message_id"] for i in range(MESSAGES)]

        def delivered() -> bool:
            return all(httpx.get(f"{base}/api/v1/messages/{m}", headers=headers, timeout=10).json()["message"]["status"]
                       in ("sent", "delivered") for m in ids)

        _wait(delivered, 60, "delivery")
        started = time.perf_counter()
        with httpx.Client(headers=headers, timeout=10) as client:
            for m in ids:
                client.get(f"{base}/api/v1/messages/{m}").raise_for_status()
        raw = time.perf_counter() - started

        home, dags = tmp / "home", tmp / "dags"
        dags.mkdir(parents=True)
        (dags / "bench_status_ids.py").write_text(DAG.format(ids=ids, campaign_first="--campaign-first" in sys.argv))
        port = free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
               "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
               "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
               "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
               "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
               "AIRFLOW__API_AUTH__JWT_SECRET": "bench-deployed-jwt-secret",
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
               "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
               **({} if "--default-heartbeat" in sys.argv else {"AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1"}),
               "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "task-logs"),
               "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
               "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
               "AIRFLOW_CONN_RELAY_DEFAULT": json.dumps({"conn_type": "relay", "password": KEY,
                                                         "host": base.replace("127.0.0.1", "localhost")
                                                         if "--localhost" in sys.argv else base,
                                                         "extra": {"dialect": "phonerelay", "phone_id": "phone_main"}}),
               "RELAY_CAMPAIGN_LEDGER_DIR": str(tmp / "ledgers")}
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True,
                       timeout=300, check=True)
        logs = home / "logs-processes"
        logs.mkdir()
        try:
            for command in (["api-server", "--host", "127.0.0.1", "--port", str(port)], ["scheduler"],
                            ["dag-processor"], ["triggerer"]):
                processes.append(subprocess.Popen([sys.executable, "-m", "airflow", *command], env=env,
                                                  stdout=(logs / f"{command[0]}.log").open("wb"),
                                                  stderr=subprocess.STDOUT, start_new_session=True))

            def api_up() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).status_code == 200
                except httpx.HTTPError:
                    return False

            _wait(api_up, 180, "the api-server")
            token = httpx.get(f"http://127.0.0.1:{port}/auth/token", timeout=10).json()["access_token"]
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v2", timeout=30,
                              headers={"Authorization": f"Bearer {token}"}) as api:
                _wait(lambda: api.get("/dags/bench_status_ids").status_code == 200, 180, "the DAG to parse")
                api.patch("/dags/bench_status_ids", json={"is_paused": False}).raise_for_status()
                run_id = api.post("/dags/bench_status_ids/dagRuns", json={"logical_date": None}).json()["dag_run_id"]
                state = _wait(lambda: (s := api.get(f"/dags/bench_status_ids/dagRuns/{run_id}").json()["state"])
                              in ("success", "failed") and s, 300, "the run")
            figures = {}
            for task in ("first", "second", "campaign"):
                [log] = (home / "task-logs" / "dag_id=bench_status_ids").glob(
                    f"run_id=*/task_id={task}/attempt=*.log.trigger.*.log")
                figures[task] = _trigger_figures(log, log.parent / "attempt=1.log")
        finally:
            for proc in processes:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in processes:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
    for task, fig in figures.items():
        print(f"== {task} trigger: deferred -> first trigger line {fig['deferred_to_first_line_s']} s; "
              f"first line -> fired {fig['first_line_to_fired_s']} s")
        print("\n".join(fig["events"]))
    result = {"messages": MESSAGES, "run_state": state, "raw_status_calls_s": round(raw, 3),
              **{f"{task}_trigger_s": fig["first_line_to_fired_s"] for task, fig in figures.items()},
              **{f"{task}_deferred_to_start_s": fig["deferred_to_first_line_s"] for task, fig in figures.items()}}
    print(f"47 raw status calls: {raw:.3f} s")
    print("BENCH_RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()

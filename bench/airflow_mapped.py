"""Airflow: one RelayCampaignOperator for N recipients vs N mapped HttpOperator tasks, under dag.test().

The approach users take today without this provider is dynamic task mapping: an upstream task builds
one request body per recipient and ``HttpOperator.partial(...).expand(data=...)`` posts each as its
own task instance. The provider's way is one ``RelayCampaignOperator`` task that validates every row
and sends them with bounded concurrency. Both DAGs send the same personalised texts to N different
numbers through the same reference relay process (phonerelay dialect, one message per request on
both sides), and both start with the same upstream task producing the recipient rows.

Measured: the wall-clock time of each ``dag.test()`` run (scheduling loop, task instances, XCom and
the sends), the task instances' summed durations, and the relay's stored-message count for each (N
each, or the run is reported broken). A one-task warm-up DAG runs first, so neither side pays for
the first bundle sync and imports.

Set-up: a temporary AIRFLOW_HOME with ``airflow db migrate``, the two DAG files in a temporary DAGs
folder, connections from ``AIRFLOW_CONN_*`` variables. ``apache-airflow-providers-http`` is needed
only here; when missing it is installed into this interpreter's environment with pip (constrained to
the versions already installed, so nothing else changes), and the script says so.

    .venvs/airflow/bin/python bench/airflow_mapped.py [--recipients 500]

The last line of output is ``BENCH_RESULT {json}`` for bench/run.py.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

from relay_integrations.process import ReferenceRelayProcess

API_KEY = "bench-airflow-key"
DAG_OPERATOR = "bench_relay_campaign_operator"
DAG_MAPPED = "bench_mapped_http_operator"
DAG_WARMUP = "bench_warm_up"

COMMON = '''
import json

import pendulum
from airflow.sdk import dag, task

N = {n}
KEY = {key!r}


@task
def load_recipients(offset: int) -> list[dict[str, str]]:
    return [{{"phone": f"+1415{{5000000 + offset + i:07d}}", "name": f"Customer {{i}}", "order": f"B{{i:05d}}"}}
            for i in range(1, N + 1)]
'''

OPERATOR_DAG = COMMON + '''
from airflow_provider.operators.relay import RelayCampaignOperator


@dag(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def campaign_operator() -> None:
    RelayCampaignOperator(task_id="campaign", relay_conn_id="relay_bench", recipients=load_recipients(0),
                          template="Hi {{{{ name }}}}, order {{{{ order }}}} has shipped.", max_report_rows=10)


campaign_operator()
'''

WARMUP_DAG = COMMON + '''

@dag(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def warm_up() -> None:
    load_recipients(0)


warm_up()
'''

MAPPED_DAG = COMMON + '''
from airflow.providers.http.operators.http import HttpOperator


@task
def build_requests(rows: list[dict[str, str]]) -> list[str]:
    return [json.dumps({{"phone_id": "phone_main", "channel": "sms", "to": r["phone"],
                         "text": f"Hi {{r['name']}}, order {{r['order']}} has shipped.",
                         "idempotency_key": f"mapped-{{r['phone']}}"}}) for r in rows]


@dag(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
     max_active_tasks=64)
def mapped_http() -> None:
    HttpOperator.partial(
        task_id="send", http_conn_id="relay_http", endpoint="/phonerelay/api/v1/messages", method="POST",
        headers={{"Authorization": f"Bearer {{KEY}}", "Content-Type": "application/json"}},
        log_response=False,
    ).expand(data=build_requests(load_recipients(100000)))


mapped_http()
'''


def ensure_http_provider() -> None:
    """Install apache-airflow-providers-http into this environment if it is missing (only this bench needs it)."""
    try:  # metadata only: importing airflow here would read its configuration before it is set
        importlib.metadata.distribution("apache-airflow-providers-http")
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    print(f"airflow_mapped: installing apache-airflow-providers-http into {sys.prefix} with pip "
          "(needed only by this benchmark; existing packages are pinned to their installed versions)",
          file=sys.stderr, flush=True)
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True, check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as constraints:
        constraints.write("\n".join(line for line in freeze.stdout.splitlines() if "==" in line) + "\n")
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "apache-airflow-providers-http",
                        "-c", constraints.name], check=True)
    finally:
        os.unlink(constraints.name)
    importlib.invalidate_caches()


def stored_count(relay: ReferenceRelayProcess, prefix: str) -> int:
    answer = httpx.get(f"{relay.base_url}/_sim/messages", params={"dialect": "phonerelay", "direction": "outbound",
                       "limit": 100_000}, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    answer.raise_for_status()
    return sum(1 for m in answer.json()["messages"] if str(m["to"]).startswith(prefix))


def run_dag(dags_folder: Path, dag_id: str) -> tuple[float, float, dict[str, int]]:
    """``dag.test()`` one DAG: wall seconds, the task instances' summed run time, their states counted."""
    from collections import Counter

    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(dags_folder / f"{dag_id}.py"))
    if bag.import_errors:
        raise RuntimeError(f"{dag_id}: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    started = time.perf_counter()
    dag_run = dag.test()
    seconds = time.perf_counter() - started
    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        states = Counter(str(ti.state) for ti in tis)
        task_seconds = sum(ti.duration or 0.0 for ti in tis)
    return seconds, task_seconds, dict(states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=500)
    args = parser.parse_args()
    n = args.recipients
    ensure_http_provider()

    home = Path(tempfile.mkdtemp(prefix="bench-airflow-home-"))
    try:
        dags = home / "dags"
        dags.mkdir()
        (dags / f"{DAG_OPERATOR}.py").write_text(textwrap.dedent(OPERATOR_DAG.format(n=n, key=API_KEY,
                                                                                     dag_id=DAG_OPERATOR)))
        (dags / f"{DAG_WARMUP}.py").write_text(textwrap.dedent(WARMUP_DAG.format(n=1, key=API_KEY,
                                                                                 dag_id=DAG_WARMUP)))
        (dags / f"{DAG_MAPPED}.py").write_text(textwrap.dedent(MAPPED_DAG.format(n=n, key=API_KEY, dag_id=DAG_MAPPED)))
        os.environ.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home.resolve()}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags.resolve()),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "RELAY_CAMPAIGN_LEDGER_DIR": str(home / "ledgers"),
        })
        migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True,
                                 check=False)
        if migrate.returncode:
            raise SystemExit(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-2000:]}")

        with ReferenceRelayProcess(db_path=home / "relay.db", api_key=API_KEY, delivery_latency=0.2,
                                   log_path=home / "relay.log") as relay:
            os.environ["AIRFLOW_CONN_RELAY_BENCH"] = json.dumps({
                "conn_type": "relay", "host": relay.url("phonerelay"), "password": API_KEY,
                "extra": {"dialect": "phonerelay", "phone_id": "phone_main"}})
            os.environ["AIRFLOW_CONN_RELAY_HTTP"] = json.dumps({
                "conn_type": "http", "host": "127.0.0.1", "port": relay.port, "schema": "http"})
            print(f"airflow_mapped: {n} recipients, dag.test(), phonerelay on a reference relay process",
                  file=sys.stderr, flush=True)
            # First dag.test() of a process pays for bundle sync, parsing and imports: not counted.
            run_dag(dags, DAG_WARMUP)
            op_seconds, op_task_seconds, op_states = run_dag(dags, DAG_OPERATOR)
            op_stored = stored_count(relay, "+14155")
            print(f"  RelayCampaignOperator: {op_seconds:.1f} s, {op_states}, relay stored {op_stored}",
                  file=sys.stderr, flush=True)
            mapped_seconds, mapped_task_seconds, mapped_states = run_dag(dags, DAG_MAPPED)
            mapped_stored = stored_count(relay, "+14155") - op_stored
            print(f"  mapped HttpOperator:   {mapped_seconds:.1f} s, {mapped_states}, relay stored {mapped_stored}",
                  file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    result = {
        "recipients": n,
        "operator": {"seconds": op_seconds, "task_seconds": op_task_seconds, "messages_per_s": n / op_seconds,
                     "stored": op_stored, "task_instances": op_states},
        "mapped": {"seconds": mapped_seconds, "task_seconds": mapped_task_seconds,
                   "messages_per_s": n / mapped_seconds, "stored": mapped_stored, "task_instances": mapped_states},
    }
    print(f"\n| Airflow, {n} recipients, dag.test() | run seconds | summed task seconds | messages/s |"
          " task instances | stored on relay |")
    print("|---|---|---|---|---|---|")
    for label, key in (("one RelayCampaignOperator", "operator"), (f"{n} mapped HttpOperator tasks", "mapped")):
        r = result[key]
        print(f"| {label} | {r['seconds']:.1f} | {r['task_seconds']:.1f} | {r['messages_per_s']:.1f} |"
              f" {sum(r['task_instances'].values())} | {r['stored']} |")
    print(f"\nspeed-up: {mapped_seconds / op_seconds:.1f}x")
    print("BENCH_RESULT " + json.dumps(result))
    if op_stored != n or mapped_stored != n:
        raise SystemExit(f"expected {n} messages from each DAG on the relay, got {op_stored} and {mapped_stored}")


if __name__ == "__main__":
    main()

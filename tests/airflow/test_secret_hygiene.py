"""Secret hygiene: a DAG run with a known, distinctive API key never shows that key in any log.

``dag.test()`` runs a DAG against a reference relay process: a single send, campaigns (relaysms with
an invalid row skipped, smsgate with Basic auth), a status sensor deferred to the triggerer, the
connection test a UI button runs, a send the relay refuses, and a send with a wrong key (401). Every
logger of the provider and the core is at DEBUG. Then the key (and a second, wrong key, and the
smsgate Basic credential built from the key) is looked for in:

* everything the run wrote to stdout/stderr (dag.test() prints task logs there, unmasked),
* every log record captured by pytest's logging plugin,
* every file under AIRFLOW_HOME (task log files, the metadata DB with XComs and trigger kwargs),
* the reference relay's own log file (uvicorn at debug level).

The DAG file lives in a temporary DAG bundle of its own, so the shared test DAG folder stays as it is.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

API_KEY = "hygiene-airflow-key-Zq8v3XK1wP"
WRONG_KEY = "hygiene-airflow-wrong-key-Tm4sR7"
LOGIN = "relay"
DAG_ID = "relay_secret_hygiene"

DAG_SOURCE = '''
from __future__ import annotations

import logging

import pendulum
from airflow.sdk import dag, task

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.operators.relay import RelayCampaignOperator, RelaySendMessageOperator
from airflow_provider.sensors.relay import RelayMessageStatusSensor

RECIPIENTS = [
    {"phone": "+15550177001", "name": "Ada"},
    {"phone": "+15550177002", "name": "Grace"},
    {"phone": "not-a-number", "name": "Broken"},
]


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)
def relay_secret_hygiene() -> None:
    RelaySendMessageOperator(task_id="send_one", relay_conn_id="relay_hygiene_phonerelay",
                             to="+15550177010", text="hygiene single send")
    campaign = RelayCampaignOperator(task_id="campaign_relaysms", relay_conn_id="relay_hygiene_relaysms",
                                     template="Hi {{ name }}", recipients=RECIPIENTS, skip_invalid=True,
                                     progress_interval=0)
    RelayMessageStatusSensor(task_id="wait_deferred", relay_conn_id="relay_hygiene_relaysms",
                             message_ids=campaign.output, deferrable=True, poke_interval=0.2, timeout=60)
    RelayCampaignOperator(task_id="campaign_smsgate", relay_conn_id="relay_hygiene_smsgate",
                          template="Same text for all", recipients=RECIPIENTS[:2], progress_interval=0)
    RelaySendMessageOperator(task_id="refused_send", relay_conn_id="relay_hygiene_relaysms", retries=0,
                             to="+15550177011", text="from a number the account does not own",
                             sender="+15550199999")
    RelaySendMessageOperator(task_id="wrong_key_send", relay_conn_id="relay_hygiene_wrong_key", retries=0,
                             to="+15550177012", text="never accepted")

    @task
    def inspect_connection() -> str:
        log = logging.getLogger("relay_secret_hygiene")
        hook = RelayHook("relay_hygiene_smsgate")
        ok, message = hook.test_connection()
        with hook.get_client() as client:
            log.info("client %r, settings %r, test %s: %s", client, hook.settings, ok, message)
        return f"{ok} {message}"

    inspect_connection()


relay_secret_hygiene()
'''


def _connections(relay: Any) -> dict[str, dict[str, Any]]:
    def conn(dialect: str, key: str = API_KEY, **extra: Any) -> dict[str, Any]:
        return {"conn_type": "relay", "host": relay.url(dialect), "login": LOGIN, "password": key,
                "extra": {"dialect": dialect, "timeout": 5, "max_retries": 1, **extra}}

    return {
        "relay_hygiene_phonerelay": conn("phonerelay", phone_id="phone_main"),
        "relay_hygiene_relaysms": conn("relaysms", sender="+1987654321"),
        "relay_hygiene_smsgate": conn("smsgate"),
        "relay_hygiene_wrong_key": conn("coop", key=WRONG_KEY),
    }


def _secrets() -> dict[str, str]:
    basic = base64.b64encode(f"{LOGIN}:{API_KEY}".encode()).decode()
    return {"api key": API_KEY, "wrong key": WRONG_KEY, "smsgate Basic credential": basic}


def _leaks(where: str, text: str) -> list[str]:
    return [f"{name} in {where}" for name, secret in _secrets().items() if secret in text]


def test_a_dag_run_never_logs_the_api_key(
    airflow_db: Path,
    start_relay: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = start_relay(api_key=API_KEY, login=LOGIN, delivery_latency=0.1, extra_args=["--log-level", "debug"])
    for conn_id, conn in _connections(relay).items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    monkeypatch.setenv("RELAY_CAMPAIGN_LEDGER_DIR", str(tmp_path / "ledgers"))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / f"{DAG_ID}.py").write_text(DAG_SOURCE)
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
        {"name": "secret-hygiene", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
         "kwargs": {"path": str(bundle), "refresh_interval": 0}},
    ]))
    caplog.set_level(logging.DEBUG)
    for name in ("relay_integrations", "airflow_provider", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)

    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(bundle / f"{DAG_ID}.py"))
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.get_dag(DAG_ID).test()
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}
    captured = capfd.readouterr()

    # The run did what it was meant to: good paths succeeded, the refused and unauthorised sends failed.
    for task_id in ("send_one", "campaign_relaysms", "wait_deferred", "campaign_smsgate", "inspect_connection"):
        assert states[task_id] == "success", states
    assert states["refused_send"] == "failed" and states["wrong_key_send"] == "failed", states
    output = captured.out + captured.err
    assert "401" in output or "nauthori" in output, "the wrong-key failure should be in the logs"

    leaks = _leaks("stdout/stderr", output)
    leaks += _leaks("log records", caplog.text)
    leaks += _leaks("log record arguments", " ".join(repr(r.args) for r in caplog.records))
    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    files = [p for p in airflow_home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)
    for path in files:
        leaks += _leaks(str(path.relative_to(airflow_home)), path.read_bytes().decode("latin-1"))
    assert relay.log_path is not None
    relay_log = relay.log_path.read_text(errors="replace")
    assert "reference relay on" in relay_log  # the relay's start-up lines (it keeps no access log)
    leaks += _leaks("the relay's log", relay_log)
    assert leaks == []

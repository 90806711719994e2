"""End-to-end: dag.test() runs of the test DAGs against a real reference relay and webhook receiver process.

Two DAG runs cover: a campaign per dialect (one template from a .j2 file) tracked by its reference in
poke mode (phonerelay, coop) and deferrable mode (relaysms, smsgate), states recorded in its ledger;
a validation failure that sends nothing;
a dry run; the inbound stats query; webhook registration, a simulated reply reaching the inbox and
satisfying a poke and a deferred webhook sensor; a send that crashes after the relay took it and is
retried (one message on the relay); a failing task whose RelayNotifier message reaches the relay;
and the API key known to the task's log masker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay_integrations.process import ReferenceRelayProcess, WebhookReceiverProcess
from relay_integrations.tracking import CampaignRef, open_store

pytestmark = pytest.mark.e2e

API_KEY = "e2e-relay-key-5c0d9e71"
RECEIVER_KEY = "e2e-receiver-key-88ab31"
WEBHOOK_SECRET = "whsec_ZTJlLWFpcmZsb3ctd2ViaG9vay1zZWNyZXQ="
DIALECTS = ("phonerelay", "relaysms", "coop", "smsgate")
DAGS_FOLDER = Path(__file__).parent / "dags"


@pytest.fixture(scope="module")
def e2e_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRelayProcess]:
    """A private relay: these DAGs register webhooks, which must not reach other tests' relays."""
    tmp = tmp_path_factory.mktemp("airflow-e2e-relay")
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=API_KEY, delivery_latency=0.1,
                               webhook_secret=WEBHOOK_SECRET, log_path=tmp / "relay.log") as relay:
        yield relay


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookReceiverProcess]:
    tmp = tmp_path_factory.mktemp("airflow-e2e-receiver")
    with WebhookReceiverProcess(db_path=tmp / "inbox.db", secrets=[WEBHOOK_SECRET], api_key=RECEIVER_KEY,
                                log_path=tmp / "receiver.log") as proc:
        yield proc


@pytest.fixture
def relay_connections(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, e2e_relay: ReferenceRelayProcess, receiver: WebhookReceiverProcess
) -> None:
    """``relay_<dialect>`` connections as JSON env vars, the way a deployment would pass them."""
    for dialect in DIALECTS:
        extra: dict[str, Any] = {"dialect": dialect, "timeout": 5, "max_retries": 2,
                                 "webhook_inbox_url": receiver.base_url, "webhook_inbox_api_key": RECEIVER_KEY}
        if dialect == "phonerelay":
            extra["phone_id"] = "phone_main"
        if dialect == "relaysms":
            extra["sender"] = "+1987654321"
        conn = {"conn_type": "relay", "host": e2e_relay.url(dialect), "login": e2e_relay.login,
                "password": API_KEY, "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_RELAY_{dialect.upper()}", json.dumps(conn))
    monkeypatch.setenv("RELAY_CAMPAIGN_LEDGER_DIR", str(tmp_path / "ledgers"))


def _run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """``dag.test()`` one DAG; returns the run, task states and return values by task id."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(DAGS_FOLDER / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.get_dag(dag_id).test(run_conf=conf or {})
    with create_session() as session:
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}
        rows = session.query(XComModel).filter(XComModel.run_id == dag_run.run_id,
                                               XComModel.key == "return_value").all()
        values = {row.task_id: XComModel.deserialize_value(row) for row in rows}
    return dag_run, states, values


def _stored(relay: ReferenceRelayProcess, **params: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{relay.base_url}/_sim/messages", params=params,
                       headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    answer.raise_for_status()
    messages: list[dict[str, Any]] = answer.json()["messages"]
    return messages


def test_campaigns_in_every_dialect_waited_on_in_poke_and_deferrable_mode(
    airflow_db: Path, relay_connections: None, e2e_relay: ReferenceRelayProcess
) -> None:
    _, states, values = _run_dag("relay_e2e_campaigns")

    for dialect in DIALECTS:
        assert states[f"campaign_{dialect}"] == "success", (dialect, states)
        assert states[f"delivered_{dialect}"] == "success", (dialect, states)
        report = values[f"campaign_{dialect}"]
        assert report["counts"]["accepted"] == 3 and report["counts"]["failed"] == 0, report
        # The XCom names the campaign (its ledger and relay), never every message id.
        assert "message_ids" not in report and report["campaign"]["campaign_id"] == report["campaign_id"]
        assert report["campaign"]["relay"]["dialect"] == dialect
        assert len(report["rows"]) == 2 and report["rows_omitted"] == 1  # trimmed for XCom
        waited = values[f"delivered_{dialect}"]
        outbound = [m for m in _stored(e2e_relay, dialect=dialect) if m["direction"] == "outbound"]
        assert waited["done"] and waited["counts"] == {"delivered": 3}, waited
        assert waited["failed_count"] == 0 and waited["campaign"] == report["campaign"]
        # The sensor recorded each message's state in the campaign's store.
        ref = CampaignRef.from_value(report)
        assert ref is not None and ref.relay is not None
        with open_store(ref.store) as store:
            entries = list(store.iter_accepted(ref.relay, report["campaign_id"]))
        assert {e.message_id for e in entries} == {m["id"] for m in outbound}, (entries, outbound)
        assert {e.state for e in entries} == {"delivered"}
        texts = sorted(m["text"] for m in outbound)
        assert texts == sorted(f"Hi {n}, {'your ' if dialect == 'coop' else ''}order {o} ships today."
                               for n, o in (("Ada", "A-1"), ("Grace", "A-2"), ("Linus", "A-3"))), texts

    # A bad row fails the task before anything goes out.
    assert states["campaign_invalid"] == "failed"
    assert not [m for m in _stored(e2e_relay) if "INVALID-CAMPAIGN" in (m["text"] or "")]
    # A dry run reports and sends nothing.
    assert states["campaign_dry_run"] == "success"
    assert values["campaign_dry_run"]["counts"]["would_send"] == 3
    assert not [m for m in _stored(e2e_relay) if "DRY-RUN" in (m["text"] or "")]
    assert states["inbound_stats"] == "success" and "summary" in values["inbound_stats"]


def test_reply_retry_and_failure_alert(
    airflow_db: Path,
    relay_connections: None,
    e2e_relay: ReferenceRelayProcess,
    receiver: WebhookReceiverProcess,
) -> None:
    reply_from = "+15550107777"
    dag_run, states, values = _run_dag(
        "relay_e2e_reactions", {"receiver_url": receiver.base_url, "reply_from": reply_from}
    )

    # The simulated reply went relay -> signed webhook -> receiver -> inbox -> both sensors.
    assert states["register_inbound_webhook"] == "success"
    for task_id in ("wait_for_reply", "wait_for_reply_deferred"):
        assert states[task_id] == "success", (task_id, states)
        event = values[task_id]
        assert (event["kind"], event["sender"], event["dialect"]) == ("inbound", reply_from, "smsgate")
        assert "confirm order 42" in event["text"]

    # Try 1 sent and crashed, try 2 found the same message: exactly one on the relay, with or without
    # client idempotency keys.
    for dialect in ("smsgate", "relaysms", "coop"):
        assert states[f"send_once_{dialect}"] == "success", (dialect, states)
        assert states[f"send_once_{dialect}_delivered"] == "success", (dialect, states)
        probes = [m for m in _stored(e2e_relay, dialect=dialect) if m["text"] == "RETRY-PROBE for relay_e2e_reactions"]
        assert len(probes) == 1, (dialect, probes)
        assert values[f"send_once_{dialect}"]["duplicate"] is True
        assert values[f"send_once_{dialect}"]["message_id"] == probes[0]["id"]

    # The failing task's notifier reached the relay.
    assert states["explode"] == "failed"
    alerts = [m for m in _stored(e2e_relay, dialect="phonerelay") if (m["text"] or "").startswith("ALERT")]
    assert [(m["to"], m["text"]) for m in alerts] == [
        ("+15550106666", "ALERT relay_e2e_reactions.explode failed: disk full")
    ], alerts
    assert str(dag_run.state) == "failed"
    dag_alerts = [m for m in _stored(e2e_relay, dialect="phonerelay") if (m["text"] or "").startswith("DAG ALERT")]
    assert [(m["to"], m["text"]) for m in dag_alerts] == [
        ("+15550107777", "DAG ALERT relay_e2e_reactions run failed")
    ], dag_alerts

    # Inside the task, the masker already knows the key (read through the hook).
    assert states["log_the_key"] == "success"
    assert values["log_the_key"] == "connecting with key *** (inbox ***)"

"""Trigger run() events: the status trigger against a real relay process, the webhook trigger against
a receiver's SQLite inbox (the file ``relay webhooks serve`` writes)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider.triggers.relay import RelayMessageStatusTrigger, RelayWebhookTrigger
from relay_integrations.client import RelayClient
from relay_integrations.models import OutboundMessage, WebhookEvent
from relay_integrations.process import ReferenceRelayProcess
from relay_integrations.webhooks.store import EventStore

pytestmark = pytest.mark.e2e


@pytest.fixture
def smsgate_conn(monkeypatch: pytest.MonkeyPatch, relay: ReferenceRelayProcess, tmp_path: Path) -> Path:
    """``relay_trig`` (smsgate on the session relay) with a local inbox file."""
    inbox = tmp_path / "inbox.db"
    monkeypatch.setenv("AIRFLOW_CONN_RELAY_TRIG", json.dumps({
        "conn_type": "relay", "host": relay.url("smsgate"), "login": relay.login, "password": relay.api_key,
        "extra": {"dialect": "smsgate", "max_retries": 1, "webhook_inbox_url": str(inbox)}}))
    return inbox


def _send(relay: ReferenceRelayProcess, *numbers: str) -> list[str]:
    with RelayClient(relay.url("smsgate"), "smsgate", relay.api_key, login=relay.login) as client:
        return [client.send(OutboundMessage(to=n, text="trigger probe")).message_id for n in numbers]


async def _first_event(trigger: Any) -> dict[str, Any]:
    events = []
    async for event in trigger.run():
        events.append(event.payload)
    assert len(events) == 1  # run() yields exactly one event, then stops
    payload: dict[str, Any] = events[0]
    return payload


@pytest.mark.anyio
async def test_status_trigger_success_and_fail_fast(relay: ReferenceRelayProcess, smsgate_conn: Path) -> None:
    good = _send(relay, "+15550101001", "+15550101002")
    event = await _first_event(RelayMessageStatusTrigger(message_ids=good, relay_conn_id="relay_trig",
                                                         poll_interval=0.05))
    assert event["status"] == "success"
    assert event["states"] == dict.fromkeys(good, "delivered") and event["failed"] == {}

    failing = _send(relay, "+15550100000")  # numbers ending in 0000 fail on the reference relay
    event = await _first_event(RelayMessageStatusTrigger(message_ids=good + failing, relay_conn_id="relay_trig",
                                                         poll_interval=0.05))
    assert event["status"] == "failed" and list(event["failed"]) == failing

    event = await _first_event(RelayMessageStatusTrigger(message_ids=good + failing, relay_conn_id="relay_trig",
                                                         fail_on_failed=False, poll_interval=0.05))
    assert event["status"] == "success"
    assert event["states"][failing[0]] == "failed" and list(event["failed"]) == failing


@pytest.mark.anyio
async def test_status_trigger_reports_an_unknown_message(relay: ReferenceRelayProcess, smsgate_conn: Path) -> None:
    event = await _first_event(RelayMessageStatusTrigger(message_ids=["no-such-message"], relay_conn_id="relay_trig",
                                                         poll_interval=0.05))
    assert event["status"] == "error" and "404" in event["message"]
    assert relay.api_key not in event["message"]


def _inbound(event_id: str, sender: str, text: str, received_at: datetime) -> WebhookEvent:
    return WebhookEvent(event_id=event_id, dialect="smsgate", kind="inbound", event_type="sms:received",
                        sender=sender, recipient="+1987654321", text=text, received_at=received_at)


@pytest.mark.anyio
async def test_webhook_trigger_matches_only_new_enough_events(smsgate_conn: Path) -> None:
    now = datetime.now(timezone.utc)
    store = EventStore(smsgate_conn)
    try:
        store.add([_inbound("old-yes", "+15550102000", "YES from last week", now - timedelta(days=7))])
        store.add([_inbound("other", "+15550102999", "yes but someone else", now)])
        store.add([_inbound("new-yes", "+15550102000", "Yes, today", now)])
    finally:
        store.close()
    trigger = RelayWebhookTrigger(
        match={"dialect": "smsgate", "kind": "inbound", "sender": "+15550102000", "text_contains": "yes"},
        relay_conn_id="relay_trig",
        received_after=(now - timedelta(minutes=1)).isoformat(),
        poll_interval=0.05,
    )
    event = await _first_event(trigger)
    assert event["status"] == "success"
    assert (event["event"]["event_id"], event["event"]["text"]) == ("new-yes", "Yes, today")


@pytest.mark.anyio
async def test_webhook_trigger_reports_a_bad_filter(smsgate_conn: Path) -> None:
    event = await _first_event(RelayWebhookTrigger(match={"colour": "blue"}, relay_conn_id="relay_trig"))
    assert event["status"] == "error" and "colour" in event["message"]


def _wait_until_settled(sensor: Any) -> Any:
    """Poke like BaseSensorOperator.execute would (short interval, bounded)."""
    import time

    for _ in range(100):
        result = sensor.poke({})
        if result.is_done:
            return result
        time.sleep(0.05)
    raise AssertionError("sensor never finished")


def test_status_sensor_poke_mode_has_the_trigger_semantics(
    relay: ReferenceRelayProcess, smsgate_conn: Path
) -> None:
    from airflow_provider.sensors.relay import RelayMessageFailedError, RelayMessageStatusSensor

    good = _send(relay, "+15550103001")
    failing = _send(relay, "+15550100000")
    done = _wait_until_settled(RelayMessageStatusSensor(
        task_id="s1", relay_conn_id="relay_trig", message_ids={"message_id": good[0]}))
    assert done.xcom_value == {"target_state": "delivered", "states": {good[0]: "delivered"}, "failed": {}}

    with pytest.raises(RelayMessageFailedError) as caught:
        _wait_until_settled(RelayMessageStatusSensor(
            task_id="s2", relay_conn_id="relay_trig", message_ids=good + failing))
    assert list(caught.value.failed) == failing

    done = _wait_until_settled(RelayMessageStatusSensor(
        task_id="s3", relay_conn_id="relay_trig", message_ids=good + failing, fail_on_failed=False))
    assert done.xcom_value["states"] == {good[0]: "delivered", failing[0]: "failed"}


def test_webhook_sensor_poke_skips_events_from_before_the_run(smsgate_conn: Path) -> None:
    from types import SimpleNamespace

    from airflow_provider.sensors.relay import RelayWebhookSensor

    now = datetime.now(timezone.utc)
    store = EventStore(smsgate_conn)
    try:
        store.add([_inbound("stale", "+15550104000", "STOP", now - timedelta(hours=1))])
        sensor = RelayWebhookSensor(task_id="w", relay_conn_id="relay_trig", kind="inbound",
                                    sender="+15550104000", text_contains="stop")
        context: Any = {"dag_run": SimpleNamespace(start_date=now - timedelta(minutes=5))}
        assert not sensor.poke(context).is_done
        store.add([_inbound("fresh", "+15550104000", "stop please", now)])
        result = sensor.poke(context)
    finally:
        store.close()
    assert result.is_done and (result.xcom_value or {}).get("event_id") == "fresh"


@pytest.mark.anyio
async def test_notifier_async_notify_reaches_the_relay(
    monkeypatch: pytest.MonkeyPatch, relay: ReferenceRelayProcess
) -> None:
    """The triggerer's path: the connection read with the async APIs, sent with the async client."""
    from types import SimpleNamespace

    import httpx

    from airflow_provider.notifications.relay import RelayNotifier

    monkeypatch.setenv("AIRFLOW_CONN_RELAY_NOTIFY", json.dumps({
        "conn_type": "relay", "host": relay.url("phonerelay"), "password": relay.api_key,
        "extra": {"dialect": "phonerelay", "phone_id": "phone_main"}}))
    context: Any = {"ti": SimpleNamespace(dag_id="billing", run_id="r-async-1", task_id="charge", map_index=-1,
                                          try_number=1)}
    notifier = RelayNotifier(relay_conn_id="relay_notify", to="+15550105555",
                             text="{{ ti.dag_id }}.{{ ti.task_id }} missed its deadline", context=context)
    await notifier  # BaseNotifier.__await__: renders the fields, then async_notify
    await notifier.async_notify(context)  # the same notification again: the relay dedupes it

    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{relay.base_url}/_sim/messages", params={"dialect": "phonerelay"},
                                headers={"Authorization": f"Bearer {relay.api_key}"})
    sent = [m for m in answer.json()["messages"] if m["text"] == "billing.charge missed its deadline"]
    assert [m["to"] for m in sent] == ["+15550105555"]


def test_manage_webhooks_lists_registers_removes_and_refuses_coop(
    monkeypatch: pytest.MonkeyPatch, relay: ReferenceRelayProcess
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_provider.operators.relay import RelayManageWebhooksOperator

    for dialect in ("smsgate", "coop"):
        monkeypatch.setenv(f"AIRFLOW_CONN_RELAY_HOOKS_{dialect.upper()}", json.dumps({
            "conn_type": "relay", "host": relay.url(dialect), "login": relay.login, "password": relay.api_key,
            "extra": {"dialect": dialect}}))
    url = "http://127.0.0.1:9/webhooks/smsgate-manage-test"
    registered = RelayManageWebhooksOperator(task_id="add", relay_conn_id="relay_hooks_smsgate", action="register",
                                             url=url, event="sms:delivered").execute({})
    lister = RelayManageWebhooksOperator(task_id="list", relay_conn_id="relay_hooks_smsgate")
    listed = lister.execute({})
    assert [h for h in listed if h["url"] == url and h["event"] == "sms:delivered"]
    RelayManageWebhooksOperator(task_id="rm", relay_conn_id="relay_hooks_smsgate", action="remove",
                                webhook_id=registered["id"]).execute({})
    listed = lister.execute({})
    assert not [h for h in listed if h["url"] == url]

    with pytest.raises(AirflowFailException, match="coop"):
        RelayManageWebhooksOperator(task_id="coop", relay_conn_id="relay_hooks_coop", action="register",
                                    url=url).execute({})


@pytest.mark.anyio
async def test_webhook_trigger_reads_a_postgres_inbox(monkeypatch: pytest.MonkeyPatch, relay: ReferenceRelayProcess,
                                                      postgres_url: str) -> None:
    # Issue 12 item 9: sensors on any worker read the receivers' shared PostgreSQL inbox directly.
    store = EventStore(postgres_url)
    now = datetime.now(timezone.utc)
    try:
        store.add([_inbound("pg-yes", "+15550103000", "YES from postgres", now)])
    finally:
        store.close()
    monkeypatch.setenv("AIRFLOW_CONN_RELAY_PG", json.dumps({
        "conn_type": "relay", "host": relay.url("smsgate"), "login": relay.login, "password": relay.api_key,
        "extra": {"dialect": "smsgate", "max_retries": 1, "webhook_inbox_url": postgres_url}}))
    trigger = RelayWebhookTrigger(match={"kind": "inbound", "sender": "+15550103000"}, relay_conn_id="relay_pg",
                                  received_after=(now - timedelta(minutes=1)).isoformat(), poll_interval=0.05)
    event = await _first_event(trigger)
    assert event["status"] == "success" and event["event"]["event_id"] == "pg-yes"


def _campaign(relay: ReferenceRelayProcess, tmp_path: Path, campaign_id: str, phones: list[str]) -> dict[str, Any]:
    """A real campaign on smsgate; returns the operator-shaped result (``campaign`` reference, counts)."""
    from relay_integrations.campaign import Campaign
    from relay_integrations.tracking import RelayIdentity, campaign_result

    rows = [{"phone": p, "name": f"n{i}"} for i, p in enumerate(phones)]
    campaign = Campaign("Hi {{ name }}", rows, campaign_id=campaign_id, ledger_path=tmp_path / "ledger.sqlite")
    with RelayClient(relay.url("smsgate"), "smsgate", relay.api_key, login=relay.login) as client:
        report = campaign.send(client)
        try:
            return campaign_result(report, RelayIdentity.from_client(client), max_rows=5)
        finally:
            report.close()


def test_campaign_trigger_serializes_a_reference_not_ids(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    from relay_integrations.tracking import CampaignRef

    result = _campaign(relay, tmp_path, "trigger-serialize", [f"+1555020{i:04d}" for i in range(1, 41)])
    trigger = RelayMessageStatusTrigger(campaign=result, relay_conn_id="relay_trig", poll_interval=0.05)
    classpath, kwargs = trigger.serialize()
    encoded = json.dumps(kwargs)
    assert kwargs["message_ids"] == [] and kwargs["campaign"] == result["campaign"]
    assert len(encoded) < 1000
    from relay_integrations.tracking import open_store

    ref = CampaignRef.from_value(result)
    assert ref is not None and ref.relay is not None
    with open_store(ref.store) as store:
        ids = [e.message_id for e in store.iter_accepted(ref.relay, "trigger-serialize")]
    assert len(ids) == 40 and not any(i in encoded for i in ids)
    # The round trip the triggerer makes: same kwargs, same reference.
    again = RelayMessageStatusTrigger(**json.loads(encoded))
    assert again.serialize() == (classpath, kwargs)
    assert CampaignRef.from_value(again.campaign) == CampaignRef.from_value(result)


@pytest.mark.anyio
async def test_campaign_trigger_tracks_until_final(relay: ReferenceRelayProcess, smsgate_conn: Path,
                                                   tmp_path: Path) -> None:
    phones = [f"+1555030{i:04d}" for i in range(1, 31)]
    result = _campaign(relay, tmp_path, "trigger-campaign", phones)
    event = await _first_event(RelayMessageStatusTrigger(campaign=result["campaign"], relay_conn_id="relay_trig",
                                                         poll_interval=0.05))
    assert event["status"] == "success", event
    assert event["counts"] == {"delivered": 30} and event["done"] and event["waiting"] == 0
    assert len(json.dumps(event)) < 5000

    failing = _campaign(relay, tmp_path / "f", "trigger-campaign-fail", [*phones[:3], "+15550300000"])
    event = await _first_event(RelayMessageStatusTrigger(campaign=failing["campaign"], relay_conn_id="relay_trig",
                                                         poll_interval=0.05))
    assert event["status"] == "failed" and event["failed_count"] == 1
    assert [r["address"] for r in event["sample"] if r["state"] == "failed"] == ["+15550300000"]


def test_status_sensor_pokes_a_campaign(relay: ReferenceRelayProcess, smsgate_conn: Path, tmp_path: Path) -> None:
    from airflow_provider.sensors.relay import RelayMessageFailedError, RelayMessageStatusSensor

    phones = [f"+1555040{i:04d}" for i in range(1, 9)]
    result = _campaign(relay, tmp_path, "sensor-campaign", [*phones, "+15550400000"])
    sensor = RelayMessageStatusSensor(task_id="wait", message_ids=result, relay_conn_id="relay_trig",
                                      fail_on_failed=False)
    done = _wait_until_settled(sensor)
    assert done.xcom_value["counts"] == {"delivered": 8, "failed": 1} and done.xcom_value["failed_count"] == 1
    assert [r["address"] for r in done.xcom_value["sample"]] == ["+15550400000"]

    strict = RelayMessageStatusSensor(task_id="wait2", message_ids=result["campaign"], relay_conn_id="relay_trig")
    with pytest.raises(RelayMessageFailedError, match="1 message"):
        strict.poke({})


@pytest.mark.anyio
async def test_webhook_trigger_opens_a_local_inbox_off_the_event_loop(
    smsgate_conn: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a local inbox creates its tables (DDL, file I/O): never on the triggerer's loop."""
    import threading

    store = EventStore(smsgate_conn)
    try:
        store.add([_inbound("off-loop", "+15550104000", "hello", datetime.now(timezone.utc))])
    finally:
        store.close()
    loop_thread = threading.get_ident()
    schema_threads: list[int] = []
    create_schema = EventStore._create_schema

    def recording(self: EventStore) -> None:
        schema_threads.append(threading.get_ident())
        create_schema(self)

    monkeypatch.setattr(EventStore, "_create_schema", recording)
    event = await _first_event(RelayWebhookTrigger(match={"sender": "+15550104000"}, relay_conn_id="relay_trig",
                                                   poll_interval=0.05))
    assert event["status"] == "success"
    assert schema_threads and loop_thread not in schema_threads

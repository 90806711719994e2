"""Derived keys, the waiting rules shared by sensors and triggers, trigger serialization, notifier templating."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.module_loading import import_string

from airflow_provider.keys import derive_campaign_id, derive_idempotency_key
from airflow_provider.notifications.relay import RelayNotifier
from airflow_provider.triggers.relay import RelayMessageStatusTrigger, RelayWebhookTrigger
from airflow_provider.waiting import (
    batch_ids_from,
    bulk_job_message_ids,
    event_is_recent,
    judge_states,
    message_ids_from,
    target_state_from,
)
from relay_integrations.models import MessageState, WebhookEvent


def _context(**ti_fields: Any) -> dict[str, Any]:
    fields = {"dag_id": "orders", "run_id": "manual__2026-11-22T10:00:00+00:00", "task_id": "notify",
              "map_index": -1, "try_number": 1}
    fields.update(ti_fields)
    return {"ti": SimpleNamespace(**fields)}


def test_idempotency_key_is_stable_across_tries_and_unique_per_instance() -> None:
    first = derive_idempotency_key(_context(try_number=1))
    assert first == derive_idempotency_key(_context(try_number=2))
    others = {
        derive_idempotency_key(_context(map_index=0)),
        derive_idempotency_key(_context(map_index=1)),
        derive_idempotency_key(_context(run_id="scheduled__2026-11-23T10:00:00+00:00")),
        derive_idempotency_key(_context(task_id="other")),
        derive_idempotency_key(_context(dag_id="other")),
        derive_idempotency_key(_context(), purpose="notify"),
    }
    assert first not in others and len(others) == 6
    assert len(first) == 36  # a UUID: fits smsgate's message id and phonerelay's key


def test_campaign_id_is_readable_and_stable() -> None:
    campaign_id = derive_campaign_id(_context(task_id="send campaign!"))
    assert campaign_id.startswith("orders.send-campaign-")
    assert campaign_id == derive_campaign_id(_context(task_id="send campaign!", try_number=3))
    assert campaign_id != derive_campaign_id(_context(task_id="send campaign!", run_id="another"))
    assert derive_campaign_id(_context(map_index=4)).startswith("orders.notify.4-")


def test_message_ids_from_every_shape() -> None:
    assert message_ids_from("msg_1") == ["msg_1"]
    assert message_ids_from(["msg_1", "msg_2", "msg_1"]) == ["msg_1", "msg_2"]
    assert message_ids_from({"message_id": "msg_9", "state": "queued"}) == ["msg_9"]
    report = {"campaign_id": "c", "rows": [{"row": 1, "message_id": "a"}, {"row": 2, "message_id": None}],
              "message_ids": ["a", "b"]}
    assert message_ids_from(report) == ["a", "b"]
    assert message_ids_from({"rows": report["rows"]}) == ["a"]
    assert message_ids_from([{"message_id": "x"}, {"message_id": "y"}]) == ["x", "y"]
    with pytest.raises(ValueError, match="message_id"):
        message_ids_from({"id": "nope"})


def test_bulk_jobs_are_waited_on_once_they_list_their_messages() -> None:
    report = {"message_ids": [], "batch_ids": ["bulk_1"],
              "rows": [{"row": 1, "message_id": None, "batch_id": "bulk_1"}]}
    assert message_ids_from(report) == [] and batch_ids_from(report) == ["bulk_1"]
    assert batch_ids_from([report, {"message_id": "m"}]) == ["bulk_1"]
    processing = {"jobId": "bulk_1", "status": "processing", "total": 2, "results": [{"index": 0, "messageId": "a"}]}
    assert bulk_job_message_ids(processing) is None  # not every recipient listed yet
    done = {"jobId": "bulk_1", "status": "completed", "total": 2,
            "results": [{"index": 0, "messageId": "a"}, {"index": 1, "messageId": "b"}]}
    assert bulk_job_message_ids(done) == ["a", "b"]
    assert bulk_job_message_ids({"results": []}) is None and bulk_job_message_ids([]) is None


def test_target_state_rejects_outcomes() -> None:
    assert target_state_from("sent") is MessageState.SENT
    for bad in ("failed", "cancelled", "read"):
        with pytest.raises(ValueError, match="target_state"):
            target_state_from(bad)


def test_judge_states() -> None:
    target = MessageState.SENT
    verdict = judge_states(
        {
            "a": (MessageState.DELIVERED, None),
            "b": (MessageState.SENDING, None),
            "c": (MessageState.FAILED, "no route"),
        },
        target,
    )
    assert verdict.pending == ["b"] and verdict.failed == {"c": "no route"} and not verdict.done
    assert verdict.as_result(target)["states"] == {"a": "delivered", "b": "sending", "c": "failed"}
    done = judge_states({"a": (MessageState.SENT, None)}, target)
    assert done.done and not judge_states({"a": (MessageState.SENT, None)}, MessageState.DELIVERED).done


def test_event_is_recent() -> None:
    from datetime import datetime, timezone

    event = WebhookEvent(event_id="e", dialect="coop", kind="inbound", event_type="message.received",
                         received_at=datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc))
    assert event_is_recent(event, None)
    assert event_is_recent(event, datetime(2026, 11, 22, 9, 59, tzinfo=timezone.utc))
    assert not event_is_recent(event, datetime(2026, 11, 22, 10, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize(
    "trigger",
    [
        RelayMessageStatusTrigger(message_ids=["m1", "m2"], relay_conn_id="relay_x", target_state="sent",
                                  fail_on_failed=False, poll_interval=0.2),
        RelayWebhookTrigger(match={"kind": "inbound", "sender": "+15550001111", "text_contains": "yes"},
                            relay_conn_id="relay_y", received_after="2026-11-22T10:00:00+00:00", poll_interval=1),
    ],
)
def test_trigger_serialize_round_trips(trigger: Any) -> None:
    classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON primitives only
    rebuilt = import_string(classpath)(**kwargs)
    assert type(rebuilt) is type(trigger)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_notifier_renders_its_fields_from_the_callback_context() -> None:
    notifier = RelayNotifier(
        text="{{ ti.dag_id }}.{{ ti.task_id }} failed (try {{ ti.try_number }})",
        to="{{ params.on_call }}",
        channel="{{ params.channel }}",
        relay_conn_id="relay_{{ params.relay }}",
    )
    context: dict[str, Any] = {**_context(task_id="load", try_number=2),
                               "params": {"on_call": "+15550002222", "channel": "wa", "relay": "ops"}}
    notifier.render_template_fields(context)  # type: ignore[arg-type]
    message = notifier.build_message(context)
    assert message.text == "orders.load failed (try 2)"
    assert (message.to, message.channel, notifier.relay_conn_id) == ("+15550002222", "wa", "relay_ops")
    assert message.idempotency_key == RelayNotifier(text=message.text or "").build_message(context).idempotency_key
    assert message.idempotency_key != notifier.build_message(_context(try_number=3)).idempotency_key


def test_a_naive_dag_run_start_is_utc_on_a_worker_in_any_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow stores UTC; a worker's own zone (here UTC+9) must not move when a retry looks for earlier
    sends. Operators, sensors and Prefect tasks read naive times through one rule (waiting.as_utc)."""
    import time
    from datetime import datetime, timezone

    from airflow_provider.retries import first_try_began

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        naive = datetime(2026, 12, 3, 8, 0, 0)
        began = first_try_began({"dag_run": SimpleNamespace(start_date=naive)})
        assert began == datetime(2026, 12, 3, 8, 0, 0, tzinfo=timezone.utc)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("workers", ["auto", 0, 1])
def test_the_campaign_operator_hands_validation_workers_to_the_campaign(workers: int | str) -> None:
    from airflow_provider.operators.relay import RelayCampaignOperator
    from relay_integrations.campaign import Campaign

    operator = RelayCampaignOperator(task_id="send", template="Hi {{ name }}", recipients=[{"phone": "+15550100"}],
                                     validation_workers=workers)
    assert operator._campaign(Campaign, "orders").validation_workers == workers


def test_the_campaign_operator_names_a_bad_validation_workers_value() -> None:
    from airflow_provider.operators.relay import RelayCampaignOperator
    from relay_integrations.campaign import Campaign

    operator = RelayCampaignOperator(task_id="send", template="Hi", recipients=[{"phone": "+15550100"}],
                                     validation_workers=-1)
    with pytest.raises(ValueError, match="validation_workers"):
        operator._campaign(Campaign, "orders")

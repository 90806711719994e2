"""send_campaign and relay_campaign_flow: artifacts, validation, retries that never send twice."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
import httpx
import pytest
from prefect import flow
from prefect.client.schemas.objects import Artifact as ArtifactRecord
from prefect.settings import PREFECT_API_URL
from prefect.utilities.callables import parameter_schema
from relay_prefect_helpers import (
    AnswerDroppingProxy,
    WebhookSetup,
    credentials_for,
    inject_inbound,
    sim_messages,
    task_runs_of,
    texts_sent_to,
    unique_number,
)

from prefect_blocks.artifacts import artifact_key
from prefect_blocks.flows import mark_reply_baseline, relay_campaign_flow, summarize_campaign_replies
from prefect_blocks.tasks import (
    CampaignNotDeliveredError,
    send_campaign,
    wait_for_message_status,
    wait_for_webhook_event,
)
from relay_integrations.campaign import CampaignValidationError
from relay_integrations.process import ReferenceRelayProcess


def new_campaign_id(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def latest_artifact(key: str) -> ArtifactRecord:
    """The newest artifact with ``key``, read back from the Prefect server's API."""
    # Straight to the API: the client's read_artifacts sends task/flow-run filters that leave out
    # artifacts created by a flow (not a task).
    answer = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", timeout=10, json={
        "artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1,
    })
    answer.raise_for_status()
    found = answer.json()
    assert found, f"no artifact {key!r}"
    return ArtifactRecord.model_validate(found[0])


def table_rows(key: str) -> list[dict[str, Any]]:
    data = latest_artifact(key).data
    rows = json.loads(data) if isinstance(data, str) else data
    assert isinstance(rows, list)
    return rows


def recipients(n: int, *, failing: int = 0) -> list[dict[str, Any]]:
    rows = [{"phone": unique_number(), "name": f"Customer {i}"} for i in range(n)]
    for i in range(failing):  # the reference relay fails numbers ending in 0000 at delivery
        rows.append({"phone": f"+1555{uuid.uuid4().int % 1000:03d}0000", "name": f"Unlucky {i}"})
    return rows


def test_sync_campaign_reports_through_artifacts(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "phonerelay")
    rows = recipients(3)
    campaign_id = new_campaign_id("Spring Sale")

    @flow
    def spring_sale() -> dict[str, Any]:
        return send_campaign(credentials, "Hi {{ name }}, 20% off today", rows, campaign_id)

    result = spring_sale()
    counts = result["counts"]
    assert counts["total"] == 3 and counts["accepted"] == 3 and counts["failed"] == 0
    assert counts["segments"] == 3
    # The result names the campaign (its ledger and relay) instead of listing every message id.
    assert "message_ids" not in result and result["campaign"]["campaign_id"].startswith(campaign_id + "@")
    assert result["campaign"]["relay"]["dialect"] == "phonerelay"
    for row in rows:
        assert texts_sent_to(relay, "phonerelay", row["phone"]) == [f"Hi {row['name']}, 20% off today"]

    key = artifact_key(campaign_id)
    assert key == f"campaign-{campaign_id.lower().replace(' ', '-')}"
    table = table_rows(f"{key}-report")
    assert [r["address"] for r in table] == [r["phone"] for r in rows]
    assert {r["state"] for r in table} == {"accepted"}
    assert sorted(r["message_id"] for r in table) == sorted(r["message_id"] for r in result["rows"])
    summary = latest_artifact(f"{key}-summary").data
    assert isinstance(summary, str)
    assert "| accepted | 3 |" in summary and "SMS segments sent: **3**" in summary
    progress = latest_artifact(f"{key}-progress")
    assert progress.type == "progress" and float(progress.data) == 100.0  # type: ignore[arg-type]
    assert "sent 3/3" in (progress.description or "")
    # The campaign's name, not the internal "<name>@<flow run id>" its idempotency keys use.
    assert (progress.description or "").startswith(f"Campaign {campaign_id}: sent")
    assert "@" not in (progress.description or "")


def test_async_campaign_on_a_batch_relay(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "relaysms")
    rows = recipients(4)
    campaign_id = new_campaign_id("async batch")

    @flow
    async def batch() -> dict[str, Any]:
        return await send_campaign(credentials, "Order for {{ name }} shipped", rows, campaign_id,
                                   artifact_key="async-batch-report-test")

    result = anyio.run(batch)
    assert result["counts"]["accepted"] == 4
    assert result["strategy"] is not None
    for row in rows:
        assert texts_sent_to(relay, "relaysms", row["phone"]) == [f"Order for {row['name']} shipped"]
    table = table_rows("async-batch-report-test-report")
    assert len(table) == 4 and {r["state"] for r in table} == {"accepted"}
    progress = latest_artifact("async-batch-report-test-progress")
    assert float(progress.data) == 100.0  # type: ignore[arg-type]


def test_bad_rows_fail_the_task_before_any_send(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "coop")
    good = unique_number()
    rows = [{"phone": good, "name": "Ok"}, {"phone": "12", "name": "Short"}, {"phone": unique_number()}]
    campaign_id = new_campaign_id("bad rows")

    @flow
    def bad() -> dict[str, Any]:
        return send_campaign(credentials, "Hi {{ name }}", rows, campaign_id)

    state = bad(return_state=True)
    assert state.is_failed()
    with pytest.raises(CampaignValidationError) as caught:
        state.result()
    assert {(e["row"], e["field"]) for e in caught.value.errors} == {(2, "phone"), (3, "text")}
    assert "nothing was sent" in str(caught.value)
    assert texts_sent_to(relay, "coop", good) == []
    (send_run,) = task_runs_of(state)
    assert send_run.run_count == 1  # not retried: another attempt cannot fix the rows
    errors = table_rows(f"{artifact_key(campaign_id)}-validation-errors")
    assert {(e["row"], e["field"]) for e in errors} == {(2, "phone"), (3, "text")}


def test_skip_invalid_and_dry_run(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "smsgate")
    rows = [{"phone": unique_number(), "name": "A"}, {"phone": "nope", "name": "B"}]
    dry_id = new_campaign_id("dry")

    @flow
    def rehearse() -> tuple[dict[str, Any], dict[str, Any]]:
        dry = send_campaign(credentials, "Hi {{ name }}", rows, dry_id, skip_invalid=True,
                            dry_run=True)
        real = send_campaign(credentials, "Hi {{ name }}", rows, new_campaign_id("real"), skip_invalid=True)
        return dry, real

    dry, real = rehearse()
    assert dry["dry_run"] is True and dry["counts"]["would_send"] == 1 and dry["counts"]["invalid"] == 1
    assert real["counts"]["accepted"] == 1 and real["counts"]["invalid"] == 1
    assert texts_sent_to(relay, "smsgate", rows[0]["phone"]) == ["Hi A"]
    # The dry run's progress bar ends complete, saying nothing was sent.
    progress = latest_artifact(f"{artifact_key(dry_id)}-progress")
    assert float(progress.data) == 100.0  # type: ignore[arg-type]
    assert (progress.description or "").startswith(f"Campaign {dry_id}: dry run, 2 row(s) checked, nothing sent")


def test_campaign_task_retry_after_a_lost_answer_sends_each_message_once(relay: ReferenceRelayProcess) -> None:
    """The relay takes a message but its answer is lost: the row fails, the task fails after the
    others were sent, Prefect retries it, and every recipient still has exactly one message."""
    rows = recipients(4)
    with AnswerDroppingProxy(relay.base_url, path_suffix="/api/v1/messages", drops=1) as proxy:
        credentials = credentials_for(relay, "phonerelay", base_url=proxy.url("phonerelay"), max_retries=0)
        campaign_id = new_campaign_id("retry")

        @flow
        def flaky() -> dict[str, Any]:
            return send_campaign(credentials, "Hello {{ name }}", rows, campaign_id, concurrency=2)

        state = flaky(return_state=True)
        assert proxy.dropped == 1
    assert state.is_completed(), state.message
    result = state.result()
    (send_run,) = task_runs_of(state)
    assert send_run.run_count == 2
    assert result["counts"]["failed"] == 0
    assert result["counts"]["already_sent"] == 4  # 3 from the ledger, 1 the relay recognised by its key
    assert len({r["message_id"] for r in result["rows"]}) == 4
    stored = [m for m in sim_messages(relay, "phonerelay") if m["to"] in {r["phone"] for r in rows}]
    assert sorted(m["to"] for m in stored) == sorted(r["phone"] for r in rows)


def test_campaign_relay_refusals_fail_the_task_after_the_report(relay: ReferenceRelayProcess) -> None:
    """Every send refused: artifacts still written, task failed with the counts, nothing sent twice."""
    credentials = credentials_for(relay, "phonerelay", api_key="revoked-key-000", max_retries=0)
    campaign_id = new_campaign_id("refused")

    @flow
    def refused() -> dict[str, Any]:
        return send_campaign(credentials, "Hi", [{"phone": unique_number()}], campaign_id)

    state = refused(return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception) as caught:
        state.result()
    assert "revoked-key-000" not in str(caught.value)


# --- the ready flow ----------------------------------------------------------------------------


def test_relay_campaign_flow_end_to_end(relay: ReferenceRelayProcess) -> None:
    block_name = f"relay-{uuid.uuid4().hex[:8]}"
    credentials_for(relay, "phonerelay").save(block_name)
    rows = recipients(2, failing=1)
    # A reply from a recipient before the campaign started is not a reply to it.
    inject_inbound(relay, "phonerelay", rows[0]["phone"], "old news", phone_id="phone_main")
    campaign_id = new_campaign_id("flow")

    result = relay_campaign_flow(
        credentials=block_name, template="Hi {{ name }}", recipients=rows, campaign_id=campaign_id,
        delivery_timeout=30, poll_interval=0.1,
    )
    json.dumps(result)  # the flow's result is JSON
    assert result["campaign"]["counts"]["accepted"] == 3
    delivery = result["delivery"]
    assert delivery["complete"] is True
    assert delivery["by_state"] == {"delivered": 2, "failed": 1}
    assert [f["message_id"] for f in delivery["failed"]] != []
    assert result["replies"]["source"] == "inbound-query" and result["replies"]["replies"] == 0
    outcome = latest_artifact(f"{artifact_key(campaign_id)}-outcome").data
    assert "delivered 2, failed 1" in str(outcome)


def test_reply_summary_from_inbound_query_and_from_webhooks(
    relay: ReferenceRelayProcess, webhook_setup: WebhookSetup
) -> None:
    phonerelay = credentials_for(relay, "phonerelay")
    smsgate = credentials_for(webhook_setup.relay, "smsgate")
    first, second, stranger = unique_number(), unique_number(), unique_number()

    @flow
    def replies() -> tuple[dict[str, Any], dict[str, Any]]:
        queried_before = mark_reply_baseline(phonerelay)
        hooked_before = mark_reply_baseline(smsgate, webhook_setup.remote_inbox)
        for dialect_relay, dialect, extra in ((relay, "phonerelay", {"phone_id": "phone_main"}),
                                              (webhook_setup.relay, "smsgate", {})):
            inject_inbound(dialect_relay, dialect, first, "Yes please", **extra)
            inject_inbound(dialect_relay, dialect, second, " stop ", **extra)
            inject_inbound(dialect_relay, dialect, stranger, "who is this?", **extra)
        queried = summarize_campaign_replies(phonerelay, [first, second], queried_before)
        # Webhooks are posted asynchronously: wait until the receiver has the last one.
        wait_for_webhook_event(webhook_setup.remote_inbox, kind="inbound", sender=stranger, timeout=20,
                               poll_interval=0.1)
        hooked = summarize_campaign_replies(smsgate, [first, second], hooked_before,
                                            webhook_setup.remote_inbox)
        return queried, hooked

    queried, hooked = replies()
    for summary, source in ((queried, "inbound-query"), (hooked, "webhook-inbox")):
        assert summary["source"] == source
        assert summary["replies"] == 2 and summary["repliers"] == 2 and summary["reply_rate"] == 1.0
        assert summary["opt_outs"] == [second]


def test_relay_campaign_flow_is_deployable_with_json_parameters() -> None:
    relay_campaign_flow.to_deployment(name="relay-campaign-test")
    schema = parameter_schema(relay_campaign_flow).model_dump()
    json.dumps(schema)
    assert {"credentials", "template", "recipients", "campaign_id", "inbox"} <= set(schema["properties"])
    parameters = {"credentials": "saved-block", "template": "Hi {{ name }}", "campaign_id": "c1",
                  "recipients": [{"phone": "+15551234567", "name": "A"}], "wait_for_state": "sent",
                  "inbox": None}
    validated = relay_campaign_flow.validate_parameters(json.loads(json.dumps(parameters)))
    assert validated["credentials"] == "saved-block" and validated["wait_for_state"] == "sent"
    # The run form shows each parameter's description (Prefect reads the docstring's Args section).
    described = {name: prop.get("description") for name, prop in schema["properties"].items()}
    assert all(described.values()), [name for name, text in described.items() if not text]
    assert described["campaign_id"].startswith("Names the campaign")


def test_campaign_on_a_relay_without_keys_is_retried_after_reconciling_a_lost_answer(
    relay: ReferenceRelayProcess,
) -> None:
    """relaysms batches cannot be recognised when repeated: the lost batch is reported failed, the
    task retry looks the rows up on the relay first, finds them, and sends nothing twice."""
    rows = recipients(3)
    with AnswerDroppingProxy(relay.base_url, path_suffix="/sms/batch", drops=1) as proxy:
        credentials = credentials_for(relay, "relaysms", base_url=proxy.url("relaysms"), max_retries=3)

        @flow
        def lossy() -> dict[str, Any]:
            return send_campaign(credentials, "Hi {{ name }}", rows, new_campaign_id("lossy"))

        state = lossy(return_state=True)
        assert proxy.dropped == 1
    assert state.is_completed(), state
    result = state.result()
    assert result["counts"]["reconciled"] == 3 and result["counts"]["already_sent"] == 3
    assert result["counts"]["accepted"] == 0 and result["counts"]["failed"] == 0
    (send_run,) = task_runs_of(state)
    assert send_run.run_count == 2
    for row in rows:
        assert texts_sent_to(relay, "relaysms", row["phone"]) == [f"Hi {row['name']}"]


@pytest.mark.parametrize("dialect", ["relaysms", "coop"])
def test_wait_for_message_status_tracks_a_campaign_result(relay: ReferenceRelayProcess, dialect: str) -> None:
    """The campaign result (counts, a reference, two rows) is all the wait task needs; states land in the store."""
    from relay_integrations.tracking import CampaignRef, open_store

    credentials = credentials_for(relay, dialect)
    rows = recipients(5, failing=1)
    campaign_id = new_campaign_id("tracked")

    @flow
    def send_and_wait() -> tuple[dict[str, Any], Any]:
        result = send_campaign(credentials, "Hi {{ name }}", rows, campaign_id, max_rows=2)
        status = wait_for_message_status(credentials, result, timeout=60, poll_interval=0.1,
                                         raise_on_failure=False)
        return result, status

    result, status = send_and_wait()
    assert len(result["rows"]) == 2 and "message_ids" not in result
    assert status["done"] and status["counts"] == {"delivered": 5, "failed": 1}, status
    assert [r["address"] for r in status["sample"]] == [rows[-1]["phone"]]
    ref = CampaignRef.from_value(result)
    assert ref is not None and ref.relay is not None
    with open_store(ref.store) as store:
        assert store.count_states(ref.relay, ref.campaign_id) == {"delivered": 5, "failed": 1}

    @flow
    async def wait_async() -> Any:
        return await wait_for_message_status(credentials, result["campaign"], timeout=60, poll_interval=0.1)

    state = anyio.run(lambda: wait_async(return_state=True))
    assert state.is_failed()
    with pytest.raises(CampaignNotDeliveredError, match="1 message"):
        state.result()

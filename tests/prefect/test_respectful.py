"""The Prefect tasks honour the suppression list and send windows: ``send_message`` answers
``suppressed``, ``send_campaign`` returns deferred rows with ``next_run_at`` (or waits for them), and
its artifacts show the suppressed and deferred counts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from prefect import flow
from relay_prefect_helpers import credentials_for, sim_messages, texts_sent_to, unique_number
from test_campaign import latest_artifact, new_campaign_id, table_rows

from prefect_blocks.artifacts import artifact_key
from prefect_blocks.tasks import send_campaign, send_message
from relay_integrations.campaign.campaign_store import RelayIdentity
from relay_integrations.campaign.single import SuppressedSend
from relay_integrations.campaign.suppression import SuppressionList
from relay_integrations.process import ReferenceRelayProcess


def opt_out(relay: ReferenceRelayProcess, dialect: str, address: str, note: str) -> None:
    """Put ``address`` on the account's list, where every task of the session looks (RELAY_SUPPRESSION_STORE)."""
    with credentials_for(relay, dialect).get_client() as client:
        identity = RelayIdentity.from_client(client)
    with SuppressionList.open(None, identity) as listed:
        listed.add([address], note=note)


def test_send_message_to_someone_who_opted_out_sends_nothing_and_says_why(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "phonerelay")
    person = unique_number()
    opt_out(relay, "phonerelay", person, "replied STOP by email")

    @flow
    def notify() -> tuple[Any, Any]:
        skipped = send_message(credentials, to=person, text="Your order shipped")
        forced = send_message(credentials, to=person, text="Your account was closed", honour_opt_outs=False)
        return skipped, forced

    skipped, forced = notify()
    assert isinstance(skipped, SuppressedSend) and skipped.state == "suppressed" and skipped.message_id is None
    assert skipped.suppressed[0]["reason"].endswith("(replied STOP by email)")
    assert forced.message_id
    assert texts_sent_to(relay, "phonerelay", person) == ["Your account was closed"]


def test_send_campaign_returns_deferred_rows_for_a_follow_up_run(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "relaysms")
    rows = [{"phone": unique_number(), "name": "Here", "timezone": "Etc/GMT-2"},
            {"phone": unique_number(), "name": "There", "timezone": "Etc/GMT+2"},
            {"phone": unique_number(), "name": "Gone", "timezone": "Etc/GMT-2"}]
    opt_out(relay, "relaysms", rows[2]["phone"], "complaint")
    hour = datetime.now(timezone.utc).hour  # open now at UTC+2, closed at UTC-2, whatever the hour does meanwhile
    window = (f"{(hour + 1) % 24:02d}:00", f"{(hour + 4) % 24:02d}:00")
    campaign_id = new_campaign_id("Quiet Hours")

    @flow
    def greet() -> dict[str, Any]:
        return send_campaign(credentials, "Hello {{ name }}", rows, campaign_id, send_window=window,
                             idempotency_scope="campaign")

    result = greet()
    assert result["counts"]["accepted"] == 1 and result["counts"]["deferred"] == 1
    assert result["counts"]["suppressed"] == 1
    deferred = result["rows"][1]
    assert deferred["state"] == "deferred" and result["next_run_at"] == deferred["not_before"]
    assert "outside the send window" in deferred["reason"] and "Etc/GMT+2" in deferred["reason"]
    key = artifact_key(campaign_id)
    summary = latest_artifact(f"{key}-summary").data
    assert "| deferred | 1 |" in summary and "| suppressed | 1 |" in summary
    assert result["next_run_at"] in summary
    table = {r["address"]: r for r in table_rows(f"{key}-report")}
    assert table[rows[2]["phone"]]["state"] == "suppressed" and "complaint" in table[rows[2]["phone"]]["reason"]
    assert table[rows[1]["phone"]]["not_before"] == result["next_run_at"]
    assert [m["to"] for m in sim_messages(relay, "relaysms") if m["to"] in {r["phone"] for r in rows}] == [
        rows[0]["phone"]]


def test_send_campaign_can_wait_for_send_at_and_send_once(relay: ReferenceRelayProcess) -> None:
    credentials = credentials_for(relay, "coop")
    rows = [{"phone": unique_number(), "name": f"P{i}"} for i in range(3)]
    send_at = (datetime.now(timezone.utc) + timedelta(seconds=3)).replace(microsecond=0)

    @flow
    def later() -> dict[str, Any]:
        return send_campaign(credentials, "See you, {{ name }}", rows, new_campaign_id("Later"),
                             send_at=send_at.isoformat(), wait_for_send_window=True)

    result = later()
    assert result["counts"]["accepted"] == 3 and result["counts"]["deferred"] == 0 and result["next_run_at"] is None
    sent = [m for m in sim_messages(relay, "coop") if m["to"] in {r["phone"] for r in rows}]
    assert sorted(m["to"] for m in sent) == sorted(r["phone"] for r in rows)
    assert all(datetime.fromisoformat(m["created_at"].replace("Z", "+00:00")) >= send_at for m in sent)

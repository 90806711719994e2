"""Example DAG: a delivery-day SMS campaign, from a CSV to confirmed replies.

0. ``load_recipients`` reads the CSV file named by the run's ``recipients_csv`` param (a path the
   workers can read); left empty, it uses the demo rows inline below (the same rows as
   ``examples/data/recipients.csv``), so this file works on its own when copied into a DAGs folder.
1. ``send_campaign`` renders one templated message per row; bad rows (an unparsable number, a
   short one, an empty one) are skipped and reported, the duplicate row is sent once.
2. ``wait_for_delivery`` hands the waiting to the triggerer (deferrable) until every message is
   delivered or failed; the failed ones are listed, not fatal (one recipient is unreachable on purpose).
3. ``check_delivery`` fails the run if anything but the expected unreachable number failed.
4. ``simulate_customer_reply`` -- DEMO ONLY -- asks the *reference* relay to pretend a customer
   answered. Against a real relay, delete this task: real customers reply on their own.
5. ``wait_for_reply`` waits (deferrable) until that reply reaches the webhook inbox.
6. ``inbound_stats`` asks the relay for its inbound traffic figures (phonerelay only).

A failed run sends an alert through the same relay (``RelayNotifier`` at DAG level).

Set-up: an Airflow connection ``relay_default`` of type ``relay``, for example::

    export AIRFLOW_CONN_RELAY_DEFAULT='{"conn_type": "relay", "host": "http://127.0.0.1:5110/phonerelay",
        "login": "relay", "password": "dev-key", "extra": {"dialect": "phonerelay", "phone_id": "phone_main",
        "sender": "+1987654321", "webhook_inbox_url": "http://127.0.0.1:5111", "webhook_inbox_api_key": "dev-key"}}'

``make demo`` starts a reference relay and a webhook receiver and sets all of this up.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.notifications.relay import RelayNotifier
from airflow_provider.operators.relay import RelayCampaignOperator, RelayInboundStatsOperator
from airflow_provider.sensors.relay import RelayMessageStatusSensor, RelayWebhookSensor

# The demo rows, inline so that this one file is the whole example (the DAG file is all that gets
# copied into a DAGs folder). Same rows as examples/data/recipients.csv: 47 good numbers, one that
# the reference relay fails (…0000), one duplicate and three bad rows.
DEMO_RECIPIENTS_CSV = """\
phone,first_name,order_id,eta
+14155551000,Ada,A-1000,9:00
+14155551007,Grace,A-1001,10:00
+14155551014,Alan,A-1002,11:00
+14155551021,Edsger,A-1003,12:00
+14155551028,Barbara,A-1004,13:00
+14155551035,Donald,A-1005,14:00
+14155551042,Ken,A-1006,15:00
+14155551049,Dennis,A-1007,16:00
+14155551056,Margaret,A-1008,9:00
+14155551063,Linus,A-1009,10:00
+14155551070,Guido,A-1010,11:00
+14155551077,Bjarne,A-1011,12:00
+14155551084,Frances,A-1012,13:00
+14155551091,John,A-1013,14:00
+14155551098,Radia,A-1014,15:00
+14155551105,Tim,A-1015,16:00
+14155551112,Vint,A-1016,9:00
+14155551119,Leslie,A-1017,10:00
+14155551126,Sophie,A-1018,11:00
+14155551133,Niklaus,A-1019,12:00
+14155551140,Katherine,A-1020,13:00
+14155551147,Hedy,A-1021,14:00
+14155551154,Claude,A-1022,15:00
+14155551161,Jean,A-1023,16:00
+14155551168,Annie,A-1024,9:00
+14155551175,Ada,A-1025,10:00
+14155551182,Grace,A-1026,11:00
+14155551189,Alan,A-1027,12:00
+14155551196,Edsger,A-1028,13:00
+14155551203,Barbara,A-1029,14:00
+14155551210,Donald,A-1030,15:00
+14155551217,Ken,A-1031,16:00
+14155551224,Dennis,A-1032,9:00
+14155551231,Margaret,A-1033,10:00
+14155551238,Linus,A-1034,11:00
+14155551245,Guido,A-1035,12:00
+14155551252,Bjarne,A-1036,13:00
+14155551259,Frances,A-1037,14:00
+14155551266,John,A-1038,15:00
+14155551273,Radia,A-1039,16:00
+14155551280,Tim,A-1040,9:00
+14155551287,Vint,A-1041,10:00
+14155551294,Leslie,A-1042,11:00
+14155551301,Sophie,A-1043,12:00
+14155551308,Niklaus,A-1044,13:00
+14155551315,Katherine,A-1045,14:00
+14155550000,Failing,A-2000,10:00
+14155551021,Edsger,A-1003,12:00
not-a-number,Typo,A-2001,11:00
+1555,Short,A-2002,12:00
,Nobody,A-2003,13:00
"""
TEMPLATE = (
    "Hi {{ first_name }}, your order {{ order_id }} arrives today around {{ eta }}. "
    "Reply YES to confirm or STOP to opt out."
)
# Where a failure alert goes (the on-call phone).
ALERT_TO = os.environ.get("RELAY_ALERT_TO", "+15550109999")
# The reference relay's root, for its /_sim test hooks (demo only).
REFERENCE_URL = os.environ.get("RELAY_REFERENCE_URL", "http://127.0.0.1:5110")
# The reference relay fails numbers ending in 0000: the recipients file has one on purpose.
EXPECTED_UNREACHABLE = "0000"
# Only phonerelay documents an inbound traffic query.
HAS_INBOUND_STATS = os.environ.get("RELAY_DIALECT", "phonerelay") == "phonerelay"


@dag(
    dag_id="relay_campaign",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["relay", "example"],
    doc_md=__doc__,
    params={
        "recipients_csv": Param(
            "",
            type="string",
            title="Recipients CSV",
            description="Path of a CSV file (header: phone,first_name,order_id,eta) that the workers can read. "
            "Empty: the demo rows in the DAG file.",
        ),
    },
    on_failure_callback=[
        RelayNotifier(to=ALERT_TO, text="ALERT: DAG {{ dag.dag_id }} run {{ run_id }} failed"),
    ],
)
def relay_campaign() -> None:
    @task
    def load_recipients(params: dict[str, Any]) -> list[dict[str, str]]:
        """The campaign's rows: the file named by the ``recipients_csv`` param, else the inline demo rows."""
        path = (params.get("recipients_csv") or "").strip()
        text = Path(path).read_text(encoding="utf-8") if path else DEMO_RECIPIENTS_CSV
        return list(csv.DictReader(io.StringIO(text)))

    campaign = RelayCampaignOperator(
        task_id="send_campaign",
        template=TEMPLATE,
        recipients=load_recipients(),
        skip_invalid=True,
        progress_interval=1.0,
    )

    wait_for_delivery = RelayMessageStatusSensor(
        task_id="wait_for_delivery",
        message_ids=campaign.output,
        target_state="delivered",
        fail_on_failed=False,  # the unreachable recipient is listed in the result, checked below
        deferrable=True,
        poke_interval=1.0,
        timeout=300,
    )

    @task
    def check_delivery(report: dict[str, Any], delivery: dict[str, Any]) -> dict[str, Any]:
        """Counts for the run; fails on any failure other than the deliberately unreachable number."""
        # The sensor tracked the campaign by its reference: counts per state and a sample of the failed rows.
        failed = sorted(r["address"] for r in delivery["sample"] if r["state"] in ("failed", "cancelled"))
        unexpected = [a for a in failed if not str(a).endswith(EXPECTED_UNREACHABLE)]
        if unexpected or delivery["failed_count"] != len(failed):
            raise RuntimeError(f"{delivery['failed_count']} delivery failure(s), unexpected: {unexpected}")
        counts = delivery["counts"]
        delivered = [r["address"] for r in report["rows"] if r.get("message_id") and r["address"] not in failed]
        summary = {
            "rows": report["counts"]["total"],
            "invalid": report["counts"]["invalid"],
            "sent": sum(counts.values()),
            "delivered": counts.get("delivered", 0),
            "failed": failed,
            # The customer whose reply the next task simulates: the first one delivered.
            "reply_from": delivered[0] if delivered else None,
        }
        print(f"Campaign {report['campaign_id']}: {summary}")
        return summary

    @task
    def simulate_customer_reply(summary: dict[str, Any]) -> dict[str, Any]:
        """DEMO ONLY: make the reference relay receive a reply, as if the customer had answered.

        ``POST /_sim/inbound`` exists only on the reference relay (``relay serve``); a real relay gets
        real replies. The relay stores the reply and posts it, signed, to the webhook receiver.
        """
        import httpx

        if not summary["reply_from"]:
            raise RuntimeError("no message was delivered, so nobody can reply")
        settings = RelayHook().settings
        reply = {
            "dialect": settings.dialect,
            "channel": "sms",
            "from": summary["reply_from"],
            "to": settings.sender or "+1987654321",
            "text": "YES, see you then!",
            "phone_id": settings.phone_id,
        }
        answer = httpx.post(
            f"{REFERENCE_URL.rstrip('/')}/_sim/inbound",
            headers={"Authorization": f"Bearer {settings.api_key}"},
            json={k: v for k, v in reply.items() if v is not None},
            timeout=10,
        )
        answer.raise_for_status()
        return {"from": reply["from"], "text": reply["text"], "id": answer.json()["id"]}

    wait_for_reply = RelayWebhookSensor(
        task_id="wait_for_reply",
        kind="inbound",
        sender="{{ ti.xcom_pull(task_ids='simulate_customer_reply')['from'] }}",
        text_contains="yes",
        deferrable=True,
        poke_interval=0.5,
        timeout=120,
    )

    summary = check_delivery(campaign.output, wait_for_delivery.output)
    reply = simulate_customer_reply(summary)
    reply >> wait_for_reply

    if HAS_INBOUND_STATS:
        stats = RelayInboundStatsOperator(task_id="inbound_stats", range="1d", event_types=["message"])
        wait_for_reply >> stats


relay_campaign()

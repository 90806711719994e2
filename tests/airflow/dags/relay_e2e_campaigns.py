"""End-to-end test DAG: a campaign through every dialect, waited on in poke and deferrable mode.

Connections ``relay_<dialect>`` come from ``AIRFLOW_CONN_RELAY_<DIALECT>`` set by the test.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider.operators.relay import RelayCampaignOperator, RelayInboundStatsOperator
from airflow_provider.sensors.relay import RelayMessageStatusSensor

DIALECTS = ("phonerelay", "relaysms", "coop", "smsgate")
# Waited on by the triggerer (run inline by dag.test()); the others poke.
DEFERRED = ("relaysms", "smsgate")

RECIPIENTS = [
    {"name": "Ada", "phone": "+15550100001", "order": "A-1"},
    {"name": "Grace", "phone": "+15550100002", "order": "A-2"},
    {"name": "Linus", "phone": "+15550100003", "order": "A-3"},
]
BAD_RECIPIENTS = [
    {"name": "Ok", "phone": "+15550100004", "order": "B-1"},
    {"name": "Broken", "phone": "not-a-number", "order": "B-2"},
    {"name": "Missing order", "phone": "+15550100005"},
]


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["relay-e2e"])
def relay_e2e_campaigns() -> None:
    for dialect in DIALECTS:
        campaign = RelayCampaignOperator(
            task_id=f"campaign_{dialect}",
            relay_conn_id=f"relay_{dialect}",
            # One campaign reads its template from a .j2 file next to the DAG (template_ext).
            template="campaign_message.j2" if dialect == "coop" else "Hi {{ name }}, order {{ order }} ships today.",
            recipients=RECIPIENTS,
            max_report_rows=2,
            progress_interval=0,
        )
        wait = RelayMessageStatusSensor(
            task_id=f"delivered_{dialect}",
            relay_conn_id=f"relay_{dialect}",
            message_ids=campaign.output,
            deferrable=dialect in DEFERRED,
            poke_interval=0.2,
            timeout=60,
        )
        campaign >> wait

    RelayCampaignOperator(
        task_id="campaign_invalid",
        relay_conn_id="relay_smsgate",
        template="INVALID-CAMPAIGN {{ name }} {{ order }}",
        recipients=BAD_RECIPIENTS,
        retries=0,
    )
    RelayCampaignOperator(
        task_id="campaign_dry_run",
        relay_conn_id="relay_relaysms",
        template="DRY-RUN {{ name }}",
        recipients=RECIPIENTS,
        dry_run=True,
    )
    RelayInboundStatsOperator(task_id="inbound_stats", relay_conn_id="relay_phonerelay", range="7d")


relay_e2e_campaigns()

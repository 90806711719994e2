"""A DAG a user writes for a holiday greeting that must not go out early, nor to anyone who opted out.

Copied alone into a deployment's DAGs folder by ``test_deployment.py``; the recipients and the moment
come from the run's conf.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, get_current_context, task

from airflow_provider.operators.relay import RelayCampaignOperator, RelaySendMessageOperator


@task
def customers() -> list[dict[str, Any]]:
    conf: dict[str, Any] = get_current_context()["dag_run"].conf or {}
    return list(conf["recipients"])


with DAG(dag_id="relay_respectful", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RelayCampaignOperator(
        task_id="holiday_greetings",
        template="Happy holidays, {{ name }}!",
        recipients=customers(),
        send_at="{{ dag_run.conf['send_at'] }}",
        relay_conn_id="relay_respect",
    )
    # A single send to someone on the suppression list: nothing goes out, the XCom says why.
    RelaySendMessageOperator(
        task_id="personal_note",
        to="{{ dag_run.conf['recipients'][2]['phone'] }}",
        text="We miss you!",
        relay_conn_id="relay_respect",
    )

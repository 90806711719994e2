"""A DAG a user writes for a holiday greeting that must not go out early, nor to anyone who opted out.

Copied alone into a deployment's DAGs folder by ``test_deployment.py``; the recipients and the moment
come from the run's conf.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider.operators.relay import RelayCampaignOperator

with DAG(
    dag_id="relay_respectful",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
):
    RelayCampaignOperator(
        task_id="holiday_greetings",
        template="Happy holidays, {{ name }}!",
        recipients="{{ dag_run.conf['recipients'] }}",
        send_at="{{ dag_run.conf['send_at'] }}",
        relay_conn_id="relay_respect",
    )

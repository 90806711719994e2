"""A DAG a user writes for a large campaign: one operator over a CSV of several thousand customers.

Copied alone into a deployment's DAGs folder by ``test_deployment.py``; the CSV's path comes from the
run's conf. Past 2,000 rows the campaign checks rows on a forked validation worker too, when the task
process runs no other thread: the real task runner's process is the one that decides.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider.operators.relay import RelayCampaignOperator

with DAG(dag_id="relay_large_campaign", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    RelayCampaignOperator(
        task_id="order_updates",
        template="Hi {{ name }}, order {{ order }} has shipped.",
        recipients="{{ dag_run.conf['recipients_csv'] }}",
        relay_conn_id="relay_large",
    )

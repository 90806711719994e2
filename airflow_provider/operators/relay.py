"""Operators that send through a relay, run campaigns, read inbound stats and manage webhooks.

Sends run on the worker and never defer (a triggerer restart could send twice). Every operator
returns plain JSON for XCom. Each lives in the module named after its job; this module keeps the
import path DAGs use (``from airflow_provider.operators.relay import RelayCampaignOperator``).
"""

from __future__ import annotations

from airflow_provider.operators.campaign import RelayCampaignOperator
from airflow_provider.operators.inbound import RelayInboundStatsOperator
from airflow_provider.operators.message import RelaySendMessageOperator
from airflow_provider.operators.webhooks import RelayManageWebhooksOperator

__all__ = [
    "RelayCampaignOperator",
    "RelayInboundStatsOperator",
    "RelayManageWebhooksOperator",
    "RelaySendMessageOperator",
]

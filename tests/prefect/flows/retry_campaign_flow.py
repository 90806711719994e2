"""A flow whose run test_flow_run_retry.py starts in one process, kills, and retries in another."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from prefect_blocks import RelayCredentials
from prefect_blocks.tasks import send_campaign


@flow(name="relay-retry-campaign")
def retry_campaign(base_url: str, api_key: str, recipients: str, campaign_id: str, rate_limit: float) -> dict[str, Any]:
    print(f"FLOW_RUN_ID={flow_run.get_id()}", flush=True)
    credentials = RelayCredentials(base_url=base_url, dialect="relaysms", api_key=api_key, sender="+1987654321",
                                   max_retries=1)
    result = send_campaign(credentials, "Hello {{ name }}", recipients, campaign_id, rate_limit=rate_limit,
                           concurrency=1, max_rows=0)
    print(f"COUNTS={result['counts']}", flush=True)
    return dict(result["counts"])

"""One try of a RelayCampaignOperator task in its own process (a worker): ``try_number`` from argv.

Used by test_ledger_retry.py; prints the report's counts as JSON.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from types import SimpleNamespace

from airflow_provider.operators.relay import RelayCampaignOperator


def main() -> None:
    recipients, campaign_id, try_number, rate_limit, started = sys.argv[1:6]
    operator = RelayCampaignOperator(task_id="campaign", template="Hello {{ name }}", recipients=recipients,
                                     campaign_id=campaign_id, relay_conn_id="relay_retry", concurrency=1,
                                     rate_limit=float(rate_limit), max_report_rows=0)
    context = {"ti": SimpleNamespace(try_number=int(try_number)),
               "dag_run": SimpleNamespace(start_date=datetime.fromisoformat(started))}
    print(json.dumps(operator.execute(context)["counts"]))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()

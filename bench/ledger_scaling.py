"""Whether the campaign ledger's cost per row stays flat as a campaign grows.

Every row of a campaign passes through three ledger writes: claimed (its lease taken), marked as
sending (committed before its request), recorded as accepted. This drives exactly those calls of
:class:`~relay_integrations.campaign.campaign_store.CampaignStore`, 1,000 rows per call as a
relaysms campaign's batches do, on a fresh SQLite ledger, for a small and a large campaign in one
run. Per-row costs that grow with the size of the campaign show up as a ratio under 1.

    .venvs/airflow/bin/python bench/ledger_scaling.py [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

from relay_integrations.campaign.campaign_store import Accepted, CampaignStore, RelayIdentity

RELAY = RelayIdentity("relaysms", "http://127.0.0.1:5000/relaysms", "key:bench")
PER_CALL = 1000


def one_campaign(n: int, workdir: Path) -> tuple[float, float, float]:
    """Seconds per row spent claiming, marking and recording ``n`` rows."""
    rows = [(str(uuid.uuid4()), f"+1202{i:07d}", i) for i in range(n)]
    keys = [key for key, _, _ in rows]
    with CampaignStore.open(workdir / f"ledger-{n}.sqlite") as store:
        started = time.perf_counter()
        for at in range(0, n, PER_CALL):
            store.claim(RELAY, "bench", rows[at:at + PER_CALL])
        claimed = time.perf_counter()
        for at in range(0, n, PER_CALL):
            store.mark_sending(RELAY, "bench", keys[at:at + PER_CALL])
        marked = time.perf_counter()
        for at in range(0, n, PER_CALL):
            store.record_accepted(RELAY, "bench", [Accepted(k, message_id=f"m-{k}") for k in keys[at:at + PER_CALL]])
        recorded = time.perf_counter()
        assert store.count(RELAY, "bench") == n
    return (claimed - started) / n, (marked - claimed) / n, (recorded - marked) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}\n")
    print("| rows | claim µs/row | mark µs/row | record µs/row | rows/s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            claim, mark, record = one_campaign(n, Path(tmp))
            print(f"| {n:,} | {claim * 1e6:.1f} | {mark * 1e6:.1f} | {record * 1e6:.1f} | "
                  f"{1 / (claim + mark + record):,.0f} |", flush=True)


if __name__ == "__main__":
    main()

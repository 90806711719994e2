"""What honouring opt-outs and quiet hours costs a campaign's validation pass.

The same dry run (render, address, segments, dedupe, key, ledger lookup; nothing is sent) over N
generated recipients, three ways, alternating in one process (medians of ``--repeats`` runs):

* baseline: ``honour_opt_outs=False``, no send window;
* opt-outs: the relay account's suppression list holds ``--listed`` entries (one in 100 recipients
  is on it), read from its SQLite store at the start of the run;
* quiet hours: ``send_window=("08:00", "21:00")``, each recipient's zones from their number
  (six US area codes, one spanning two zones).

    .venvs/airflow/bin/python bench/respect_cost.py [--n 50000] [--listed 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from relay_integrations.campaign import Campaign
from relay_integrations.campaign.campaign_store import RelayIdentity
from relay_integrations.campaign.suppression import SuppressionList
from relay_integrations.client import RelayClient

TEMPLATE = "Hi {{ name }}, order {{ order }} has shipped."
AREA_CODES = ("212", "310", "415", "312", "808", "907")


def recipients(n: int, offset: int) -> Iterator[dict[str, Any]]:
    for i in range(offset, offset + n):
        yield {"phone": f"+1{AREA_CODES[i % len(AREA_CODES)]}{2000000 + i // len(AREA_CODES):07d}",
               "name": f"Customer {i}", "order": f"A{i:07d}"}


def one_run(client: RelayClient, n: int, offset: int, workdir: Path, **options: Any) -> float:
    campaign = Campaign(TEMPLATE, recipients(n, offset), campaign_id=f"bench-respect-{offset}",
                        ledger=workdir / "ledger.sqlite", suppression_store=workdir / "suppressions.sqlite", **options)
    start = time.perf_counter()
    report = campaign.send(client, dry_run=True)
    elapsed = time.perf_counter() - start
    counted = report.counts["would_send"] + report.counts["suppressed"] + report.counts["deferred"]
    assert counted == n, report.counts
    report.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--listed", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp, \
            RelayClient("http://127.0.0.1:9/relaysms", "relaysms", "bench-key", sender="+1987654321") as client:
        workdir = Path(tmp)
        with SuppressionList.open(workdir / "suppressions.sqlite", RelayIdentity.from_client(client)) as listed:
            # Every 100th recipient of each run is listed (the list holds them for every offset used).
            wanted = [r["phone"] for i in range(1 + 3 * args.repeats)
                      for r in recipients(args.n, i * args.n)][::100][:args.listed]
            listed.add(wanted, note="bench")
        rates: dict[str, list[float]] = {"baseline": [], "opt-outs": [], "quiet hours": []}
        for i in range(args.repeats):
            base = (3 * i + 1) * args.n
            rates["baseline"].append(one_run(client, args.n, base, workdir, honour_opt_outs=False))
            rates["opt-outs"].append(one_run(client, args.n, base + args.n, workdir))
            rates["quiet hours"].append(one_run(client, args.n, base + 2 * args.n, workdir, honour_opt_outs=False,
                                                send_window=("08:00", "21:00")))
    baseline = statistics.median(rates["baseline"])
    print(f"\n## Dry run of {args.n} recipients, medians of {args.repeats} (rows/s)\n")
    print("| run | rows/s | vs baseline |\n|---|---:|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | {median / baseline:.2f}x |")
    print(f"\n(list: {args.listed} entries; load after {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()

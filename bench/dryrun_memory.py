"""Baseline for the dry-run figures: the render+validate loop a user writes by hand.

bench/campaign_throughput.py measures ``Campaign.send(None, dry_run=True)`` over 100,000 and
1,000,000 generated recipients (rows/s and peak memory, each in a fresh process). This script
measures what that is compared against, over the same generated recipients and template:

* the hand-written loop: render the template in a Jinja2 sandbox with strict undefined variables,
  parse and check the number with phonenumbers, and keep the rendered messages in a list to send
  afterwards (what a script without a campaign layer does);

reported as rows/s and peak RSS (``VmHWM``) of this process, next to its RSS right after the imports.
The campaign does more per row (segments, dedupe, ledger look-ups, a spooled scratch store) and
keeps memory flat; this loop is the floor for the per-row work and grows with the list.

    .venvs/airflow/bin/python bench/dryrun_memory.py [--n 100000]

The last line of output is ``BENCH_RESULT {json}`` for bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import phonenumbers
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

sys.path.insert(0, str(Path(__file__).parent))
from campaign_throughput import TEMPLATE, recipients


def _rss_kib(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def naive_pass(n: int, *, offset: int = 0) -> tuple[float, list[dict[str, Any]]]:
    template = SandboxedEnvironment(undefined=StrictUndefined).from_string(TEMPLATE)
    messages: list[dict[str, Any]] = []
    started = time.perf_counter()
    for row in recipients(n, offset=offset):
        text = template.render(row)
        number = phonenumbers.parse(row["phone"], None)
        if not phonenumbers.is_possible_number(number):
            raise ValueError(f"row {len(messages) + 1}: not a possible number")
        messages.append({"to": phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                         "text": text})
    return time.perf_counter() - started, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="rows (default 100000)")
    args = parser.parse_args()
    after_imports = _rss_kib("VmRSS")
    seconds, messages = naive_pass(args.n)
    assert len(messages) == args.n
    peak = _rss_kib("VmHWM")
    result = {"n": args.n, "seconds": seconds, "rows_per_s": args.n / seconds, "peak_rss_mib": peak / 1024,
              "import_rss_mib": after_imports / 1024, "over_import_mib": (peak - after_imports) / 1024}
    print(f"hand-written render+validate loop, {args.n:,} rows kept in a list: {result['rows_per_s']:.0f} rows/s, "
          f"peak RSS {result['peak_rss_mib']:.1f} MiB ({result['over_import_mib']:.1f} MiB over the imports)")
    print("BENCH_RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()

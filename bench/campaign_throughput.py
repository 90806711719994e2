"""Campaign throughput against baselines, render+validate rate, and dry-run memory.

For every dialect, the same N personalised messages go to one reference relay process three ways:

* ``Campaign.send`` with a :class:`RelayClient` (the dialect's best path: batch, bulk job,
  multi-recipient message, or 8 concurrent single sends);
* (a) a plain sequential httpx loop posting the messages one by one;
* (b) a tuned raw async httpx sender: one ``AsyncClient``, 8 requests in flight.

Then: rows/s of ``Campaign.validate()`` (render + address + segments + dedupe) next to the
hand-written jinja2 + phonenumbers loop of bench/dryrun_memory.py, alternating in the same
process (medians of ``--repeats`` runs), and the peak
memory of a dry run over 100,000 and 1,000,000 generated recipients, each in a fresh process, to
show that memory stays flat as the list grows. Large inputs are validated on forked worker
processes, so the peak counts them too: every 20 ms this script adds the dry-run process's
resident set to the pages only its workers hold (their private pages: what they share with the
process is counted once) and reports the largest sum, or the process's own high-water mark
(``VmHWM``) if that is larger.

    .venvs/airflow/bin/python bench/campaign_throughput.py            # N=10000, 1M dry run
    .venvs/airflow/bin/python bench/campaign_throughput.py --n 2000 --dry-run-sizes 10000 100000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from relay_integrations.campaign import Campaign
from relay_integrations.client import RelayClient
from relay_integrations.process import ReferenceRelayProcess

API_KEY = "bench-key"
SENDER = "+1987654321"
DIALECTS = ("phonerelay", "relaysms", "coop", "smsgate")
CLIENT_KWARGS: dict[str, dict[str, Any]] = {
    "phonerelay": {"phone_id": "phone_main"},
    "relaysms": {"sender": SENDER},
    "coop": {},
    "smsgate": {"login": "relay"},
}
TEMPLATE = "Hi {{ name }}, order {{ order }} has shipped."
# One text for everyone (a broadcast): smsgate merges its recipients into multi-recipient messages.
BROADCAST = "Our store opens at 9."


def recipients(n: int, *, offset: int = 0) -> Iterator[dict[str, Any]]:
    """Unique, possible US numbers; none ends in 0000 (the relay fails those on purpose)."""
    produced = 0
    i = offset
    while produced < n:
        number = f"+1415{2000000 + i:07d}"
        i += 1
        if number.endswith("0000"):
            continue
        produced += 1
        yield {"phone": number, "name": f"Customer {i}", "order": f"A{i:07d}"}


def raw_request(dialect: str, base: str, to: str, text: str, key: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """URL, headers and JSON body of one send, written by hand from the relay docs."""
    if dialect == "phonerelay":
        return (f"{base}/api/v1/messages", {"Authorization": f"Bearer {API_KEY}"},
                {"phone_id": "phone_main", "channel": "sms", "to": to, "text": text, "idempotency_key": key})
    if dialect == "relaysms":
        return (f"{base}/api/v1/sms/send", {"X-API-Key": API_KEY}, {"to": to, "from": SENDER, "body": text})
    if dialect == "coop":
        return (f"{base}/api/v1/messages", {"Authorization": f"Bearer {API_KEY}"}, {"to": to, "body": text})
    basic = base64.b64encode(f"relay:{API_KEY}".encode()).decode()
    return (f"{base}/api/3rdparty/v1/messages", {"Authorization": f"Basic {basic}"},
            {"phoneNumbers": [to], "textMessage": {"text": text}})


def messages_for(rows: list[dict[str, Any]], tag: str) -> list[tuple[str, str, str]]:
    return [(r["phone"], f"Hi {r['name']}, order {r['order']} has shipped.", f"{tag}-{i}") for i, r in enumerate(rows)]


def plain_loop(dialect: str, base: str, msgs: list[tuple[str, str, str]]) -> float:
    start = time.perf_counter()
    with httpx.Client(timeout=30) as http:
        for to, text, key in msgs:
            url, headers, body = raw_request(dialect, base, to, text, key)
            http.post(url, headers=headers, json=body).raise_for_status()
    return len(msgs) / (time.perf_counter() - start)


def raw_async(dialect: str, base: str, msgs: list[tuple[str, str, str]], concurrency: int = 8) -> float:
    async def run() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
            for m in msgs:
                queue.put_nowait(m)

            async def worker() -> None:
                while not queue.empty():
                    to, text, key = queue.get_nowait()
                    url, headers, body = raw_request(dialect, base, to, text, key)
                    (await http.post(url, headers=headers, json=body)).raise_for_status()

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    start = time.perf_counter()
    asyncio.run(run())
    return len(msgs) / (time.perf_counter() - start)


def campaign_send(dialect: str, base: str, rows: list[dict[str, Any]], campaign_id: str, ledger: Path,
                  template: str = TEMPLATE) -> tuple[float, dict[str, int], str | None]:
    campaign = Campaign(template, rows, campaign_id=campaign_id, ledger_path=ledger)
    start = time.perf_counter()
    with RelayClient(base, dialect, API_KEY, timeout=60, **CLIENT_KWARGS[dialect]) as client:
        report = campaign.send(client)
    rate = len(rows) / (time.perf_counter() - start)
    return rate, report.counts, report.strategy


def stored_count(relay: ReferenceRelayProcess, dialect: str) -> int:
    r = httpx.get(f"{relay.base_url}/_sim/messages", params={"dialect": dialect, "direction": "outbound",
                  "limit": 100_000}, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    r.raise_for_status()
    return int(r.json()["count"])


def throughput(n: int, workdir: Path) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = []
    with ReferenceRelayProcess(db_path=workdir / "relay.db", api_key=API_KEY, delivery_latency=0.2,
                               log_path=workdir / "relay.log") as relay:
        for index, dialect in enumerate(DIALECTS):
            base = relay.url(dialect)
            # Different numbers per approach so no relay-side de-duplication flatters anyone.
            rows_c = list(recipients(n, offset=index * 3 * n))
            rows_a = list(recipients(n, offset=index * 3 * n + n))
            rows_b = list(recipients(n, offset=index * 3 * n + 2 * n))
            print(f"  {dialect}: campaign ...", file=sys.stderr, flush=True)
            c_rate, counts, strategy = campaign_send(dialect, base, rows_c, f"bench-{dialect}",
                                                     workdir / f"{dialect}.ledger")
            assert counts["accepted"] == n, counts
            print(f"  {dialect}: plain loop ...", file=sys.stderr, flush=True)
            a_rate = plain_loop(dialect, base, messages_for(rows_a, f"{dialect}-a"))
            print(f"  {dialect}: raw async ...", file=sys.stderr, flush=True)
            b_rate = raw_async(dialect, base, messages_for(rows_b, f"{dialect}-b"))
            table.append({"dialect": dialect, "strategy": strategy, "campaign": c_rate, "loop": a_rate,
                          "async8": b_rate})
        # smsgate's multi-recipient path pays off when texts are identical (a broadcast).
        rows_s = list(recipients(n, offset=20 * n))
        print("  smsgate broadcast: campaign ...", file=sys.stderr, flush=True)
        s_rate, counts, strategy = campaign_send("smsgate", relay.url("smsgate"), rows_s, "bench-smsgate-bc",
                                                 workdir / "smsgate-bc.ledger", template=BROADCAST)
        assert counts["accepted"] == n, counts
        rows_a = list(recipients(n, offset=21 * n))
        a_rate = plain_loop("smsgate", relay.url("smsgate"),
                            [(r["phone"], BROADCAST, "x") for r in rows_a])
        rows_b = list(recipients(n, offset=22 * n))
        b_rate = raw_async("smsgate", relay.url("smsgate"),
                           [(r["phone"], BROADCAST, "x") for r in rows_b])
        table.append({"dialect": "smsgate (same text)", "strategy": strategy, "campaign": s_rate, "loop": a_rate,
                      "async8": b_rate})
        for dialect in DIALECTS:
            print(f"  stored outbound {dialect}: {stored_count(relay, dialect)}", file=sys.stderr)
    return table


def validate_rate(n: int, *, offset: int = 0) -> float:
    """rows/s of Campaign.validate over ``n`` generated rows (a fresh campaign, fresh numbers)."""
    campaign = Campaign(TEMPLATE, recipients(n, offset=offset), campaign_id="bench-validate", default_region="US")
    start = time.perf_counter()
    report = campaign.validate(dialect="relaysms")
    elapsed = time.perf_counter() - start
    assert report.counts["valid"] == n, report.counts
    return n / elapsed


def hand_written_rate(n: int, *, offset: int = 0) -> float:
    """rows/s of the loop a user writes by hand (bench/dryrun_memory.py): sandboxed jinja2 with
    StrictUndefined, phonenumbers parse + possible check + E.164, messages kept in a list."""
    from dryrun_memory import naive_pass

    seconds, messages = naive_pass(n, offset=offset)
    assert len(messages) == n
    return n / seconds


def validate_against_loop(n: int, repeats: int) -> dict[str, Any]:
    """Both rates in the same process, alternating, each run on numbers not seen before (so no
    cache is warm); medians, with the load average around them (the machine may be shared)."""
    load_before = os.getloadavg()[0]
    campaign_rates: list[float] = []
    loop_rates: list[float] = []
    for i in range(repeats):
        campaign_rates.append(validate_rate(n, offset=(2 * i + 1) * n))
        loop_rates.append(hand_written_rate(n, offset=(2 * i + 2) * n))
    return {"n": n, "campaign": campaign_rates, "loop": loop_rates,
            "campaign_median": statistics.median(campaign_rates), "loop_median": statistics.median(loop_rates),
            "load_before": load_before, "load_after": os.getloadavg()[0]}


# ru_maxrss would include the parent's size at fork (Linux keeps it across exec); VmHWM is this
# process's own high-water mark.
_PEAK = """
def peak_kb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""

_DRY_RUN_CHILD = _PEAK + """
import resource, sys, time, json
sys.path.insert(0, {bench!r})
from campaign_throughput import recipients, TEMPLATE
from relay_integrations.campaign import Campaign
n = {n}
start = time.perf_counter()
c = Campaign(TEMPLATE, recipients(n), campaign_id="bench-dry", ledger_path={ledger!r})
report = c.send(None, dry_run=True)
elapsed = time.perf_counter() - start
assert report.counts["would_send"] == n, report.counts
print(json.dumps({{"n": n, "seconds": elapsed, "maxrss_kb": peak_kb()}}))
"""

_BASELINE_CHILD = _PEAK + """
import json
from relay_integrations.campaign import Campaign
print(json.dumps({"maxrss_kb": peak_kb()}))
"""


def dry_run_memory(n: int, workdir: Path) -> dict[str, Any]:
    """One dry run in a fresh process: its result, plus ``tree_kb``, the largest resident memory of the
    process and its validation workers, sampled from out here (a sampling thread inside would turn
    the workers off: they are only forked from a process without other threads)."""
    code = _DRY_RUN_CHILD.format(bench=str(Path(__file__).parent), n=n, ledger=str(workdir / "dry.ledger"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, peak_workers = 0, 0
    while proc.poll() is None:
        workers = _children(proc.pid)
        total = _memory_kb(proc.pid, "Rss") + sum(_memory_kb(pid, "Private_Clean", "Private_Dirty") for pid in workers)
        if total > peak:
            peak, peak_workers = total, len(workers)
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"dry run of {n} rows failed: {err[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["tree_kb"] = max(peak, result["maxrss_kb"])
    result["workers"] = peak_workers
    return result


def _memory_kb(pid: int, *fields: str) -> int:
    """The sum of ``fields`` of /proc/PID/smaps_rollup, in KiB (0 once the process is gone)."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in fields:
                    total += int(rest.split()[0])
    except OSError:
        pass
    return total


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return found


def baseline_memory() -> int:
    out = subprocess.run([sys.executable, "-c", _BASELINE_CHILD], check=True, capture_output=True, text=True).stdout
    return int(json.loads(out)["maxrss_kb"])


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="recipients per dialect (default 10000)")
    parser.add_argument("--validate-n", type=int, default=100_000, help="rows for the render+validate rate")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of validate and the loop (median)")
    parser.add_argument("--dry-run-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--skip-send", action="store_true", help="only the validation and memory figures")
    args = parser.parse_args()

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
          f" load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_send:
            print(f"\n## Throughput, {args.n} recipients per dialect (messages/s, one relay process)\n")
            table = throughput(args.n, workdir)
            print_table(
                ["dialect", "campaign path", "Campaign.send", "(a) httpx loop", "(b) async x8", "vs (a)", "vs (b)"],
                [[t["dialect"], str(t["strategy"]), f"{t['campaign']:.0f}", f"{t['loop']:.0f}", f"{t['async8']:.0f}",
                  f"{t['campaign'] / t['loop']:.2f}x", f"{t['campaign'] / t['async8']:.2f}x"] for t in table],
            )
        print(f"\n## Render + validate ({args.validate_n} rows, relaysms limits)\n")
        v = validate_against_loop(args.validate_n, args.repeats)
        print(f"{v['campaign_median']:.0f} rows/s")
        print(f"hand-written jinja2 + phonenumbers loop, same run: {v['loop_median']:.0f} rows/s")
        print(f"Campaign.validate / loop: {v['campaign_median'] / v['loop_median']:.2f}x (medians of {args.repeats}"
              f" alternating runs; Campaign.validate {', '.join(f'{r:.0f}' for r in v['campaign'])};"
              f" loop {', '.join(f'{r:.0f}' for r in v['loop'])}; load average {v['load_before']:.1f} before,"
              f" {v['load_after']:.1f} after)")
        if args.dry_run_sizes:
            print("\n## Dry run peak memory (fresh process each, its validation workers included)\n")
            base = baseline_memory()
            rows = []
            for n in args.dry_run_sizes:
                result = dry_run_memory(n, workdir)
                rows.append([f"{n:,}", f"{result['seconds']:.1f}", f"{n / result['seconds']:.0f}",
                             str(result["workers"]), f"{result['tree_kb'] / 1024:.1f}",
                             f"{result['maxrss_kb'] / 1024:.1f}", f"{(result['tree_kb'] - base) / 1024:.1f}"])
            print_table(["recipients", "seconds", "rows/s", "workers", "peak memory MiB", "main process VmHWM MiB",
                         "over import baseline MiB"], rows)
            print("\n(peak memory: the largest sum of the process's resident set and its workers' private pages,"
                  " sampled every 20 ms, or the process's VmHWM if larger)")
            print(f"\n(import baseline: {base / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()

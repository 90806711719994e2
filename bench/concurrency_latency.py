"""What a user sees: ``relay campaign`` (process start-up included) against a plain sequential httpx
loop posting the same messages to the same reference relay, on loopback and across a network.

One reference relay process; a latency proxy process (bench/latency_proxy.py) per one-way delay
makes it look ``--delays`` away (10 ms each way = a 20 ms round trip). For each delay and each
scenario the campaign runs as ``python -m relay_integrations campaign`` on a CSV of fresh numbers
(wall-clock time of the whole command), and the baseline loop sends its own fresh numbers one
request at a time through the same route, in the same run. The concurrency the campaign chose is
read from the CLI's JSON report (``concurrency``: mode, peak, final).

Prefect's ``send_campaign`` task runs the async driver (``Campaign.asend`` with an
``AsyncRelayClient``) inside its worker, where the process is already up; so for smsgate singles
each route also gets that figure, measured in this process (no start-up), against the same loop.

For the batch scenarios (relaysms, coop) the same command with ``--dry-run`` over as many fresh rows
is timed too, once per size: process start-up, validation and ledger look-ups, no sends. Its time
next to the campaign's shows how much of the run comes before the first request.

Scenarios: ``smsgate`` and ``phonerelay`` single sends (a different text per recipient, so smsgate
cannot merge them into multi-recipient messages), ``relaysms`` through its batch endpoint, ``coop``
through its bulk jobs, and ``smsgate`` with one text for everyone (a broadcast, which it sends as
multi-recipient messages); the baseline loop sends those same texts one message at a time.
On loopback the relay's own single-send ceiling is measured too (a raw async httpx sender keeping
16 requests in flight, no validation and no ledger), since there the relay, not the client, is the limit.

    .venvs/airflow/bin/python bench/concurrency_latency.py            # the full table, about a minute
    .venvs/airflow/bin/python bench/concurrency_latency.py --quick    # smaller sizes
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from campaign_throughput import (
    API_KEY,
    BROADCAST,
    CLIENT_KWARGS,
    SENDER,
    TEMPLATE,
    messages_for,
    raw_async,
    raw_request,
)

from relay_integrations.campaign import Campaign
from relay_integrations.client import AsyncRelayClient
from relay_integrations.process import ReferenceRelayProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass(frozen=True)
class Scenario:
    name: str
    dialect: str
    campaign_n: dict[float, int]  # recipients per campaign, by one-way delay
    loop_n: dict[float, int]  # messages the baseline loop sends, by one-way delay (its rate is steady)
    broadcast: bool = False  # one text for everyone (BROADCAST) instead of a different text per recipient

    @property
    def template(self) -> str:
        return BROADCAST if self.broadcast else TEMPLATE

    def loop_messages(self, rows: list[dict[str, Any]], tag: str) -> list[tuple[str, str, str]]:
        """What the baseline loop sends: the campaign's texts, one request each."""
        if not self.broadcast:
            return messages_for(rows, tag)
        return [(row["phone"], BROADCAST, f"{tag}-{i}") for i, row in enumerate(rows)]


FULL = [
    Scenario("smsgate singles", "smsgate", {0.0: 3000, 0.010: 3000, 0.050: 2000}, {0.0: 400, 0.010: 80, 0.050: 20}),
    Scenario("phonerelay", "phonerelay", {0.0: 3000, 0.010: 3000, 0.050: 2000}, {0.0: 400, 0.010: 80, 0.050: 20}),
    Scenario("relaysms batch", "relaysms", {0.0: 10000, 0.010: 2000, 0.050: 2000}, {0.0: 400, 0.010: 80, 0.050: 20}),
    Scenario("coop bulk", "coop", {0.0: 10000, 0.010: 2000, 0.050: 2000}, {0.0: 400, 0.010: 80, 0.050: 20}),
    Scenario("smsgate same text", "smsgate", {0.0: 10000, 0.010: 2000, 0.050: 2000}, {0.0: 400, 0.010: 80, 0.050: 20},
             broadcast=True),
]
QUICK = [
    Scenario("smsgate singles", "smsgate", {0.0: 1000, 0.010: 1000, 0.050: 500}, {0.0: 200, 0.010: 40, 0.050: 10}),
    Scenario("phonerelay", "phonerelay", {0.0: 1000, 0.010: 1000, 0.050: 500}, {0.0: 200, 0.010: 40, 0.050: 10}),
    Scenario("relaysms batch", "relaysms", {0.0: 4000, 0.010: 2000, 0.050: 2000}, {0.0: 200, 0.010: 40, 0.050: 10}),
    Scenario("coop bulk", "coop", {0.0: 4000, 0.010: 2000, 0.050: 2000}, {0.0: 200, 0.010: 40, 0.050: 10}),
    Scenario("smsgate same text", "smsgate", {0.0: 4000, 0.010: 2000, 0.050: 2000}, {0.0: 200, 0.010: 40, 0.050: 10},
             broadcast=True),
]


class Numbers:
    """Fresh, possible US numbers (none ends in 0000: the relay fails those on purpose)."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while len(rows) < n:
            i = self.next
            self.next += 1
            number = f"+1415{2000000 + i:07d}"
            if not number.endswith("0000"):
                rows.append({"phone": number, "name": f"Customer {i}", "order": f"A{i:07d}"})
        return rows


def start_proxy(upstream: str, delay: float) -> tuple[subprocess.Popen[str], str]:
    host_port = upstream.split("://", 1)[1].split("/", 1)[0]
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "latency_proxy.py"), "--upstream", host_port, "--delay", str(delay)],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"latency proxy did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def plain_loop(dialect: str, base: str, msgs: list[tuple[str, str, str]]) -> float:
    """Messages/s of one request at a time (the connection opened before the clock starts)."""
    with httpx.Client(timeout=60) as http:
        http.get(base + "/")  # any answer: only the connection matters
        start = time.perf_counter()
        for to, text, key in msgs:
            url, headers, body = raw_request(dialect, base, to, text, key)
            http.post(url, headers=headers, json=body).raise_for_status()
        return len(msgs) / (time.perf_counter() - start)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["phone", "name", "order"])
        writer.writeheader()
        writer.writerows(rows)


def cli_campaign(dialect: str, base: str, rows: list[dict[str, Any]], work: Path,
                 tag: str, template: str = TEMPLATE, *, dry_run: bool = False) -> tuple[float, dict[str, Any]]:
    """Messages/s of ``relay campaign`` over ``rows``, process start-up included; and its JSON report.

    ``dry_run``: ``--dry-run``, which validates and looks the rows up in the ledger but sends nothing
    (rows/s then)."""
    recipients = work / f"{tag}.csv"
    write_csv(recipients, rows)
    env = {**os.environ, "RELAY_BASE_URL": base, "RELAY_DIALECT": dialect, "RELAY_API_KEY": API_KEY,
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    kwargs = CLIENT_KWARGS[dialect]
    if "login" in kwargs:
        env["RELAY_LOGIN"] = kwargs["login"]
    if "sender" in kwargs:
        env["RELAY_SENDER"] = kwargs["sender"]
    if "phone_id" in kwargs:
        env["RELAY_PHONE_ID"] = kwargs["phone_id"]
    args = [sys.executable, "-m", "relay_integrations", "campaign", "--template", template,
            "--recipients", str(recipients), "--campaign-id", tag, "--ledger", str(work / f"{tag}.ledger"),
            "--no-progress", "--max-rows", "0", "--timeout", "60", *(["--dry-run"] if dry_run else [])]
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"relay campaign exited {done.returncode}: {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    if report["counts"]["would_send" if dry_run else "accepted"] != len(rows):
        raise RuntimeError(f"campaign {tag}: {report['counts']}")
    return len(rows) / elapsed, report


def async_campaign(dialect: str, base: str, rows: list[dict[str, Any]], work: Path,
                   tag: str, template: str = TEMPLATE) -> tuple[float, dict[str, Any]]:
    """Messages/s of ``Campaign.asend`` over ``rows`` in this process (as a Prefect worker runs it); its report."""
    campaign = Campaign(template, rows, campaign_id=tag, ledger=work / f"{tag}.ledger")

    async def send() -> Any:
        async with AsyncRelayClient(base, dialect, API_KEY, timeout=60, **CLIENT_KWARGS[dialect]) as client:
            return await campaign.asend(client)

    start = time.perf_counter()
    report = asyncio.run(send())
    elapsed = time.perf_counter() - start
    if report.counts["accepted"] != len(rows):
        raise RuntimeError(f"campaign {tag}: {report.counts}")
    return len(rows) / elapsed, {"strategy": report.strategy, "concurrency": report.concurrency}


def shown_concurrency(report: dict[str, Any]) -> str:
    chosen = report.get("concurrency")
    if not isinstance(chosen, dict):
        return "-"
    return f"{chosen.get('mode')}, peak {chosen.get('peak')}, final {chosen.get('final')}"


def row_against_loop(what: str, rate: float, report: dict[str, Any], loop_n: int, loop_rate: float) -> list[str]:
    """A campaign's table row: its rate (with the concurrency it chose) next to the sequential loop's."""
    return [f"{what}, msg/s [{report.get('strategy')}; concurrency {shown_concurrency(report)}]",
            f"{rate:,.0f} msg/s", f"sequential httpx loop ({loop_n} messages)", f"{loop_rate:,.0f} msg/s",
            f"{rate / loop_rate:.1f}x"]


def row_against_dry_run(scenario: Scenario, n: int, dry_rate: float, where: str, rate: float) -> list[str]:
    """How much of a campaign's run comes before its first send: the same command with ``--dry-run``
    (process start-up, validation and ledger look-ups) next to the campaign that sent."""
    dry_ms, sent_ms = n / dry_rate * 1000, n / rate * 1000
    return [f"relay campaign --dry-run, {scenario.name}, {n:,} recipients: start-up, validation and ledger "
            f"look-ups, no sends, ms (lower is better)", f"{dry_ms:,.0f} ms",
            f"the same campaign sending ({where})", f"{sent_ms:,.0f} ms", f"{dry_ms / sent_ms:.2f}x"]


def rows_for(scenarios: list[Scenario], delays: list[float], relay: ReferenceRelayProcess, work: Path,
             numbers: Numbers) -> Iterator[list[str]]:
    proxies: dict[float, tuple[subprocess.Popen[str], str]] = {}
    dry_runs_done: set[tuple[str, int]] = set()
    try:
        for delay in delays:
            if delay > 0:
                proxies[delay] = start_proxy(relay.base_url, delay)
        for delay in delays:
            root = proxies[delay][1] if delay > 0 else relay.base_url
            where = "loopback" if delay == 0 else f"{delay * 1000:g} ms each way"
            if delay == 0:
                base = relay.url("smsgate")
                ceiling = raw_async("smsgate", base, messages_for(numbers.take(2000), "ceiling"), concurrency=16)
                yield [f"relay ceiling, smsgate single sends ({where}), msg/s", f"{ceiling:,.0f} msg/s",
                       "raw async httpx, 16 in flight, no checks", "", ""]
            for scenario in scenarios:
                base = relay.url(scenario.dialect).replace(relay.base_url, root, 1)
                n = scenario.campaign_n.get(delay, scenario.campaign_n[max(scenario.campaign_n)])
                loop_n = scenario.loop_n.get(delay, scenario.loop_n[max(scenario.loop_n)])
                loop_messages = scenario.loop_messages(numbers.take(loop_n), f"loop-{delay}")
                loop_rate = plain_loop(scenario.dialect, base, loop_messages)
                tag = f"{scenario.dialect}-{int(delay * 1000)}ms-{time.time_ns()}"
                what = f"{scenario.name}, {n:,} recipients ({where})"
                rate, report = cli_campaign(scenario.dialect, base, numbers.take(n), work, tag, scenario.template)
                yield row_against_loop(f"relay campaign, {what}", rate, report, loop_n, loop_rate)
                # Batch and bulk runs are short enough that start-up and validation are much of them. A dry
                # run sends nothing, so once per size is enough, whatever the route.
                if report.get("strategy") in ("batch", "bulk") and (scenario.name, n) not in dry_runs_done:
                    dry_runs_done.add((scenario.name, n))
                    dry_rate, _ = cli_campaign(scenario.dialect, base, numbers.take(n), work, f"dry-{tag}",
                                               scenario.template, dry_run=True)
                    yield row_against_dry_run(scenario, n, dry_rate, where, rate)
                if scenario.dialect == "smsgate" and not scenario.broadcast:
                    rate, report = async_campaign(scenario.dialect, base, numbers.take(n), work, f"async-{tag}")
                    yield row_against_loop(f"Campaign.asend (Prefect's path, in-process), {what}", rate, report,
                                           loop_n, loop_rate)
    finally:
        for proc, _ in proxies.values():
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few seconds per delay)")
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 0.010, 0.050],
                        help="one-way delays in seconds (0 = loopback)")
    parser.add_argument("--only", nargs="+", help="scenario dialects to run (smsgate, phonerelay, relaysms, coop)")
    args = parser.parse_args()
    scenarios = [s for s in (QUICK if args.quick else FULL) if not args.only or s.dialect in args.only]
    started = time.perf_counter()
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.2f} at start{' (--quick)' if args.quick else ''}\n")
    print("| figure | value | baseline | baseline value | ratio |")
    print("|---|---|---|---|---|")
    numbers = Numbers()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with ReferenceRelayProcess(db_path=work / "relay.db", api_key=API_KEY, delivery_latency=0.2,
                                   log_path=work / "relay.log") as relay:
            for row in rows_for(scenarios, args.delays, relay, work, numbers):
                print("| " + " | ".join(row) + " |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s in all; load average {os.getloadavg()[0]:.2f} at the end; "
          f"sender {SENDER}")


if __name__ == "__main__":
    main()

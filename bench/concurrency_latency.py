"""Single-send campaigns across simulated network latency: fixed concurrency against "auto".

For each one-way delay (0 = loopback, 10 ms, 50 ms: a latency proxy process in front of one
reference relay process) and each single-send path (phonerelay; smsgate with a different text per
recipient), the same N personalised messages go out four ways, each to fresh numbers:

* a plain sequential httpx loop (the baseline a user would write by hand);
* ``Campaign.send`` with ``concurrency=1``, ``8`` (the old default) and ``"auto"`` (the default).

    .venvs/airflow/bin/python bench/concurrency_latency.py --n 400
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from campaign_throughput import API_KEY, CLIENT_KWARGS, TEMPLATE, messages_for, plain_loop, recipients

from relay_integrations.campaign import Campaign
from relay_integrations.client import RelayClient
from relay_integrations.process import ReferenceRelayProcess

HERE = Path(__file__).resolve().parent


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


def campaign_rate(dialect: str, base: str, rows: list[dict[str, Any]], concurrency: int | str, ledger: Path) -> float:
    campaign = Campaign(TEMPLATE, rows, campaign_id=f"lat-{dialect}-{concurrency}-{time.time_ns()}",
                        ledger_path=ledger, concurrency=concurrency)  # type: ignore[arg-type]
    start = time.perf_counter()
    with RelayClient(base, dialect, API_KEY, timeout=60, **CLIENT_KWARGS[dialect]) as client:
        report = campaign.send(client)
    assert report.counts.get("accepted", 0) == len(rows), report.counts
    return len(rows) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.0, 0.010, 0.050])
    parser.add_argument("--dialects", nargs="+", default=["phonerelay", "smsgate"])
    args = parser.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, n={args.n}")
    print("| one-way delay | dialect | plain loop msg/s | campaign c=1 | c=8 | auto | auto / loop |")
    print("|---|---|---|---|---|---|---|")
    offset = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with ReferenceRelayProcess(db_path=work / "relay.db", api_key=API_KEY, delivery_latency=0.2,
                                   log_path=work / "relay.log") as relay:
            for delay in args.delays:
                proxy = None
                root = relay.base_url
                if delay > 0:
                    proxy, root = start_proxy(relay.base_url, delay)
                try:
                    for dialect in args.dialects:
                        base = relay.url(dialect).replace(relay.base_url, root, 1)
                        rates: dict[str, float] = {}

                        def fresh() -> list[dict[str, Any]]:
                            nonlocal offset
                            rows = list(recipients(args.n, offset=offset))
                            offset += args.n
                            return rows

                        rates["loop"] = plain_loop(dialect, base, messages_for(fresh(), f"loop{offset}"))
                        for c in (1, 8, "auto"):
                            rates[str(c)] = campaign_rate(dialect, base, fresh(), c, work / f"ledger-{offset}.db")
                        print(f"| {delay * 1000:.0f} ms | {dialect} | {rates['loop']:.0f} | {rates['1']:.0f} | "
                              f"{rates['8']:.0f} | {rates['auto']:.0f} | {rates['auto'] / rates['loop']:.2f}x |",
                              flush=True)
                finally:
                    if proxy is not None:
                        proxy.kill()
                        proxy.wait()


if __name__ == "__main__":
    main()

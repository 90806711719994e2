"""Reference relay: accepted messages per second, each figure next to a baseline measured in the same run.

What is measured (one reference relay process, SQLite file in WAL mode, latency 1 s so the delivery
worker runs alongside; ``--latency 100000`` shows the accept path alone):

* single sends, 8 requests in flight from one async httpx client, per dialect;
  baseline: the same client against a bare FastAPI/uvicorn app (the relay's uvicorn settings, h11 parser) whose
  endpoint parses the JSON body and answers 202 -- the cost of HTTP + FastAPI alone.
* batch/bulk sends (relaysms ``/sms/batch`` and coop bulk jobs of 1,000 messages; smsgate messages
  with 100 recipients), counted in messages (recipients) per second;
  baselines: the bare app receiving the same 1,000-item bodies, and raw SQLite inserting the same
  number of rows per transaction (``executemany``, WAL, synchronous=NORMAL) in this process.
  A second raw floor inserts the same number of rows per transaction into the relay's own
  ``messages`` table (its schema and indexes, rows as the batch handlers build them).
* batch/bulk sends again against a second relay whose delivery is deferred (``--delivery-latency
  100000``): the accept path alone, without the delivery worker's updates sharing the CPU.
* raw SQLite single-row transactions (one INSERT + COMMIT each), the floor under single sends.

    .venvs/airflow/bin/python bench/server_throughput.py            # defaults
    .venvs/airflow/bin/python bench/server_throughput.py --singles 3000 --batches 20
    .venvs/airflow/bin/python bench/server_throughput.py --only batches --repeat 5   # batch paths only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from relay_integrations.process import ReferenceRelayProcess, ServiceProcess, free_port

API_KEY = "bench-key"
DEFERRED = ", delivery deferred"
CONCURRENCY = 8

BASELINE_APP = textwrap.dedent("""
    import sys
    from typing import Any
    import uvicorn
    from fastapi import FastAPI, Request
    from starlette.responses import JSONResponse

    from relay_integrations._uvicorn import HTTP_IMPLEMENTATION

    app = FastAPI()

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"accepted": len(body.get("messages", [])) or 1}, status_code=202)

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                http=HTTP_IMPLEMENTATION)
""")


class BaselineProcess(ServiceProcess):
    """The bare FastAPI app, started like the relay (``python -c``), so both pay the same process costs."""

    def __init__(self, port: int) -> None:
        super().__init__([], port=port)

    def start(self) -> BaselineProcess:
        self.proc = subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self


async def run_requests(base_url: str, n: int, make: Callable[[int], tuple[str, dict[str, Any]]],
                       headers: dict[str, str], expect: int, per_request: int = 1,
                       auth: tuple[str, str] | None = None) -> float:
    """Send ``n`` POSTs with CONCURRENCY in flight; returns accepted messages per second."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, auth=auth, limits=limits,
                                 timeout=60.0) as client:
        counter = iter(range(n))
        failures: list[str] = []

        async def worker() -> None:
            for i in counter:
                path, body = make(i)
                r = await client.post(path, json=body)
                if r.status_code != expect:
                    failures.append(f"{r.status_code} {r.text[:200]}")

        # warm-up connections
        path, body = make(-1)
        await client.post(path, json=body)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return n * per_request / elapsed


def number(i: int) -> str:
    return f"+1415{2000000 + (i % 7000000):07d}".replace("0000", "0001")


def single_payloads() -> dict[str, tuple[Callable[[int], tuple[str, dict[str, Any]]], int]]:
    run = uuid.uuid4().hex[:8]
    return {
        "phonerelay": (lambda i: ("/phonerelay/api/v1/messages", {
            "phone_id": "phone_main", "channel": "sms", "to": number(i), "text": f"Hello {i}",
            "idempotency_key": f"bench-{run}-{i}"}), 202),
        "relaysms": (lambda i: ("/relaysms/api/v1/sms/send", {
            "to": number(i), "from": "+1987654321", "body": f"Hello {i}"}), 202),
        "coop": (lambda i: ("/coop/api/v1/messages", {"to": number(i), "body": f"Hello {i}"}), 201),
        "smsgate": (lambda i: ("/smsgate/api/3rdparty/v1/messages", {
            "phoneNumbers": [number(i)], "textMessage": {"text": f"Hello {i}"}}), 200),
    }


def batch_payloads(size: int) -> dict[str, tuple[Callable[[int], tuple[str, dict[str, Any]]], int, int]]:
    def items(i: int, key: str) -> list[dict[str, str]]:
        return [{"to": number(i * size + j), key: f"Hello {j}"} for j in range(size)]

    return {
        f"relaysms /sms/batch x{size}": (lambda i: ("/relaysms/api/v1/sms/batch", {
            "from": "+1987654321", "messages": items(i, "body")}), 202, size),
        f"coop bulk job x{size}": (lambda i: ("/coop/api/v1/messages/bulk", {"messages": items(i, "body")}), 201,
                                   size),
        "smsgate 100 recipients": (lambda i: ("/smsgate/api/3rdparty/v1/messages", {
            "phoneNumbers": [number(i * 100 + j) for j in range(100)], "textMessage": {"text": "Hello"}}), 200, 100),
    }


def auth_headers(dialect: str) -> tuple[dict[str, str], tuple[str, str] | None]:
    if dialect == "smsgate":
        return {}, ("relay", API_KEY)
    if dialect == "relaysms":
        return {"X-API-Key": API_KEY}, None
    return {"Authorization": f"Bearer {API_KEY}"}, None


def sqlite_rate(path: Path, total: int, per_tx: int) -> float:
    """Raw SQLite inserts/s of message-like rows, ``per_tx`` rows per transaction, WAL + NORMAL."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS m (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, to_addr TEXT, body TEXT, "
                 "state TEXT, created_at REAL, extra TEXT)")
    start = time.perf_counter()
    done = 0
    while done < total:
        rows = [(uuid.uuid4().hex, number(done + j), "Hello", "queued", time.time(), "{}") for j in range(per_tx)]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO m (id, to_addr, body, state, created_at, extra) VALUES (?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        done += per_tx
    elapsed = time.perf_counter() - start
    conn.close()
    return done / elapsed


def relay_schema_rate(path: Path, total: int, per_tx: int) -> float:
    """Raw inserts/s into the relay's own ``messages`` table, ``per_tx`` rows per transaction.

    The rows are built as a relaysms batch builds them and inserted with the batch handlers' own
    statement, outside the handlers and with the rows built before the clock starts: this is the
    store's floor, not the handler's.
    """
    from relay_integrations.server import store as relay_store
    from relay_integrations.server.common import new_message_ids

    store = relay_store.Store(str(path))
    t = time.time()
    ids = [new_message_ids(per_tx) for _ in range(-(-total // per_tx))]
    if hasattr(relay_store, "insert_queued_messages"):
        insert = relay_store.insert_queued_messages
        batches = [[relay_store.queued_row(message_id, "relaysms", "sms", number(b * per_tx + j), "+1987654321",
                                           f"Hello {j}", f"batch_{b}", j, 0, 0, 0, 1, t, t + 0.3, "{}")
                    for j, message_id in enumerate(batch_ids)] for b, batch_ids in enumerate(ids)]
    else:  # versions before the batch paths bound only a new message's columns
        insert = relay_store.insert_messages  # type: ignore[attr-defined]
        batches = [[relay_store.message_row(id=message_id, dialect="relaysms", state="queued",
                                            to_addr=number(b * per_tx + j), from_addr="+1987654321",
                                            body=f"Hello {j}", batch_id=f"batch_{b}", batch_index=j, created_at=t,
                                            next_at=t + 0.3)
                    for j, message_id in enumerate(batch_ids)] for b, batch_ids in enumerate(ids)]
    start = time.perf_counter()
    for rows in batches:
        store.write(lambda conn, rows=rows: insert(conn, rows))  # type: ignore[misc]
    elapsed = time.perf_counter() - start
    store.close()
    return len(batches) * per_tx / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--singles", type=int, default=1000, help="single sends per dialect and run")
    parser.add_argument("--batches", type=int, default=10, help="batch/bulk requests per kind and run (1,000 each)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=1.0,
                        help="relay delivery latency; the delivery worker shares the CPU with the sends (1.0)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is shown (3)")
    parser.add_argument("--only", choices=("all", "batches"), default="all", help="batches: skip single sends")
    args = parser.parse_args(argv)

    # Each figure is the median of --repeat runs, baselines interleaved with the relay runs, so a
    # burst of load from elsewhere on the machine hits both sides rather than one.
    samples: dict[str, list[float]] = {}
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    size = args.batch_size

    def measure(key: str, fn: Callable[..., float], *args: Any, **kwargs: Any) -> None:
        samples.setdefault(key, []).append(fn(*args, **kwargs))

    def sends(base_url: str, n: int, make: Callable[[int], tuple[str, dict[str, Any]]], headers: dict[str, str],
              expect: int, per_request: int = 1, auth: tuple[str, str] | None = None) -> float:
        return asyncio.run(run_requests(base_url, n, make, headers, expect, per_request=per_request, auth=auth))

    def echo_single(i: int) -> tuple[str, dict[str, Any]]:
        return "/echo", {"to": number(i), "text": "Hello"}

    def echo_batch(i: int) -> tuple[str, dict[str, Any]]:
        return "/echo", {"messages": [{"to": number(j), "body": "Hello"} for j in range(size)]}

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        baseline = BaselineProcess(free_port()).start()
        # A balance no run exhausts: relaysms answers 402 once 1,000 USD of messages are sent.
        funds = ["--balance", "100000000"]
        relay = ReferenceRelayProcess(db_path=tmpdir / "relay.db", api_key=API_KEY, delivery_latency=args.latency,
                                      log_path=tmpdir / "relay.log", extra_args=funds).start()
        deferred = ReferenceRelayProcess(db_path=tmpdir / "deferred.db", api_key=API_KEY, delivery_latency=100000,
                                         log_path=tmpdir / "deferred.log", extra_args=funds).start()
        try:
            for rep in range(args.repeat):
                if args.only == "all":
                    measure("echo", sends, baseline.base_url, args.singles, echo_single, {}, 202)
                    measure("raw1", sqlite_rate, tmpdir / "raw1.db", min(args.singles, 3000), 1)
                    for dialect, (make, expect) in single_payloads().items():
                        headers, auth = auth_headers(dialect)
                        measure(dialect, sends, relay.base_url, args.singles, make, headers, expect, auth=auth)
                measure("echo_batch", sends, baseline.base_url, args.batches, echo_batch, {}, 202, per_request=size)
                measure("raw_batch", sqlite_rate, tmpdir / f"rawb{rep}.db", args.batches * size, size)
                measure("raw_relay", relay_schema_rate, tmpdir / f"rawr{rep}.db", args.batches * size, size)
                for target, suffix in ((relay, ""), (deferred, DEFERRED)):
                    for label, (make, expect, per) in batch_payloads(size).items():
                        headers, auth = auth_headers(label.split()[0])
                        n = args.batches if per == size else args.batches * size // per
                        measure(label + suffix, sends, target.base_url, n, make, headers, expect, per_request=per,
                                auth=auth)
        finally:
            deferred.stop()
            relay.stop()
            baseline.stop()

    med = {key: statistics.median(values) for key, values in samples.items()}
    rows: list[tuple[str, float, str, float]] = []
    if args.only == "all":
        for dialect in single_payloads():
            rows.append((f"single send: {dialect}", med[dialect], "bare FastAPI echo", med["echo"]))
        rows.append(("raw SQLite: 1 row per commit", med["raw1"], "", 0.0))
    for suffix in ("", DEFERRED):
        for label in batch_payloads(size):
            rows.append((f"batch: {label}{suffix}", med[label + suffix], f"raw SQLite, {size} rows/commit",
                         med["raw_batch"]))
            rows.append(("", 0.0, f"raw SQLite, relay schema, {size}/commit", med["raw_relay"]))
            rows.append(("", 0.0, f"bare echo, {size}-item body", med["echo_batch"]))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nReference relay throughput  ({platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {load_before:.1f} -> {load:.1f}, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, concurrency {CONCURRENCY}, "
          f"delivery latency {args.latency}s, median of {args.repeat})\n")
    print(f"| {'what':<52} | {'msgs/s':>9} | {'baseline':<36} | {'baseline/s':>10} | {'ratio':>6} |")
    print(f"|{'-' * 54}|{'-' * 11}|{'-' * 38}|{'-' * 12}|{'-' * 8}|")
    last_rate = 0.0  # a row without its own rate compares the row above with another baseline
    for what, rate, base_label, base_rate in rows:
        last_rate = rate or last_rate
        rate_s = f"{rate:,.0f}" if rate else ""
        base_s = f"{base_rate:,.0f}" if base_rate else ""
        ratio = f"{last_rate / base_rate:.2f}" if base_rate else ""
        print(f"| {what:<52} | {rate_s:>9} | {base_label:<36} | {base_s:>10} | {ratio:>6} |")
    print("\nratio = relay rate / baseline rate (1.00 = as fast as the baseline).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

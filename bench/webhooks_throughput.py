"""Webhook receiver throughput: verified events/s accepted, next to baselines, in one run.

Each variant is served by uvicorn in its own process on 127.0.0.1, with the settings ``relay webhooks
serve`` uses (``relay_integrations._uvicorn``: the h11 parser, whatever else is installed). A client
process sends the same pre-signed bodies (signed with ``signing.sign_for`` exactly as the reference
relay signs them, the four dialects in turn) over a fixed number of keep-alive connections and counts
2xx answers. By default it is a minimal HTTP/1.1 client (``--client raw``): httpx's async client
(``--client httpx``) cannot send much more than 1,000 requests/s on a 2-core machine, so it would
measure itself rather than the server.

Variants:
  echo               a bare Starlette endpoint that reads the body and answers 200 (the HTTP floor)
  receiver/no-verify the receiver with signature verification switched off (parse + store only)
  receiver           the receiver as shipped: verify, parse, de-duplicate, commit (synchronous=FULL), answer
  receiver/NORMAL    the same with SQLite synchronous=NORMAL (survives a process crash, not a power loss)

Run:  .venvs/airflow/bin/python bench/webhooks_throughput.py [--events 3000] [--concurrency 8] [--clients 1]
      [--rounds 3]

The "server CPU us/event" column is the server process's user+system CPU over the timed window,
divided by events: the cost of each step. It is lower under more load, when one commit (one fsync)
holds more deliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from relay_integrations.process import free_port
from relay_integrations.signing import sign_for

SECRET = "whsec_YmVuY2gtc2VjcmV0LWZvci13ZWJob29rcw=="
API_KEY = "bench-key"
VARIANTS = ("echo", "receiver/no-verify", "receiver", "receiver/NORMAL")


def _body(dialect: str, i: int) -> dict[str, Any]:
    mid = f"m-{i}-{uuid.uuid4().hex[:8]}"
    to = f"+1555{i % 10_000_000:07d}"
    if dialect == "smsgate":
        return {"deviceId": "dev1", "event": "sms:delivered", "id": f"evt_{uuid.uuid4().hex}", "webhookId": "wh1",
                "payload": {"messageId": mid, "phoneNumber": to, "deliveredAt": "2026-11-22T22:00:00Z"}}
    if dialect == "coop":
        return {"event": "message.delivered", "timestamp": "2026-11-22T22:00:00Z",
                "data": {"id": mid, "status": "delivered", "to": to, "from": "+19870001111", "body": "hi",
                         "error": None}}
    if dialect == "relaysms":
        return {"event": "message.status", "message_id": f"SM{i}", "client_reference_id": mid, "status": "delivered",
                "to": to, "from": "+1987654321", "direction": "outbound", "timestamp": "2026-11-22T22:00:00Z",
                "unix_timestamp": 1795384800000, "error_code": None, "error_message": None, "metadata": {}}
    return {"event": "inbound", "subscription": {"id": "cb_1", "callback_url": "http://127.0.0.1/x"},
            "events": [{"message_id": f"in_{mid}", "event_type": "message", "channel": "sms", "source": to,
                        "destination": "+19870003333", "text": "yes", "duration_sec": None, "tags": [],
                        "phone_id": "phone_main", "created_at": "2026-11-22T22:00:00Z"}]}


def _requests(n: int) -> list[tuple[str, bytes, dict[str, str]]]:
    dialects = ("smsgate", "coop", "relaysms", "phonerelay")
    out = []
    for i in range(n):
        dialect = dialects[i % 4]
        raw = json.dumps(_body(dialect, i), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **sign_for(dialect, raw, SECRET, f"msg_{uuid.uuid4().hex}")}
        out.append((f"/webhooks/{dialect}", raw, headers))
    return out


def _serve(variant: str, port: int, db_path: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from relay_integrations._uvicorn import HTTP_IMPLEMENTATION
    from relay_integrations.webhooks.receiver import WebhookReceiver, build_app, secrets_by_dialect
    from relay_integrations.webhooks.store import EventStore

    class UnverifiedReceiver(WebhookReceiver):
        def verify(self, dialect: str, body: bytes, headers: Mapping[str, str]) -> str | None:
            return None

    if variant == "echo":
        async def echo(request: Request) -> JSONResponse:
            body = await request.body()
            return JSONResponse({"stored": 1, "bytes": len(body)})

        app: Any = Starlette(routes=[Route("/webhooks/{dialect}", echo, methods=["POST"])])
    else:
        cls = UnverifiedReceiver if variant == "receiver/no-verify" else WebhookReceiver
        sync = "NORMAL" if variant == "receiver/NORMAL" else "FULL"
        # Each dialect given SECRET itself, as sign_for above signs with it.
        secrets = secrets_by_dialect({d: [SECRET] for d in ("smsgate", "coop", "relaysms", "phonerelay")})
        app = build_app(cls(EventStore(db_path, synchronous=sync), secrets, API_KEY))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http=HTTP_IMPLEMENTATION)


async def _send_all(base_url: str, requests: list[tuple[str, bytes, dict[str, str]]], concurrency: int) -> int:
    """httpx's async client, ``concurrency`` keep-alive connections (what a Python relay would use)."""
    ok = 0
    queue: asyncio.Queue[tuple[str, bytes, dict[str, str]]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0) as client:
        async def worker() -> None:
            nonlocal ok
            while not queue.empty():
                path, raw, headers = queue.get_nowait()
                response = await client.post(path, content=raw, headers=headers)
                if response.status_code == 200:
                    ok += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok


def _raw_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _send_all_raw(port: int, requests: list[tuple[str, bytes, dict[str, str]]], concurrency: int) -> int:
    """A minimal HTTP/1.1 load generator: ``concurrency`` keep-alive connections, one request at a time
    on each (as a relay delivers), request bytes prepared before the clock starts. It spends a few tens
    of microseconds per request where httpx spends most of a millisecond, so the server, not the
    client, sets the pace on a 2-core machine."""
    prepared = [_raw_request(*item) for item in requests]
    prepared.reverse()
    ok = 0

    async def connection() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while prepared:
                writer.write(prepared.pop())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                if status == 200:
                    ok += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return ok


def _wait_up(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/webhooks/none", content=b"", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client(port: int, events: int, concurrency: int, client: str, go: Any, results: Any) -> None:
    requests = _requests(events)  # signing happens before the clock starts
    go.wait()
    started = time.perf_counter()
    if client == "httpx":
        ok = asyncio.run(_send_all(f"http://127.0.0.1:{port}", requests, concurrency))
    else:
        ok = asyncio.run(_send_all_raw(port, requests, concurrency))
    results.put((ok, started, time.perf_counter()))


def run_variant(variant: str, events: int, concurrency: int, clients: int, client: str,
                workdir: Path) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / f"{variant.replace('/', '-')}.db"
    server = ctx.Process(target=_serve, args=(variant, port, str(db_path)), daemon=True)
    server.start()
    warmup = 200
    try:
        _wait_up(port)
        asyncio.run(_send_all(f"http://127.0.0.1:{port}", _requests(warmup), concurrency))
        go, results = ctx.Event(), ctx.Queue()
        share = [events // clients + (1 if i < events % clients else 0) for i in range(clients)]
        procs = [ctx.Process(target=_client, args=(port, n, concurrency, client, go, results)) for n in share]
        for p in procs:
            p.start()
        time.sleep(1.0 + 0.0005 * events)  # let the clients sign their bodies
        assert server.pid is not None
        cpu_before = _cpu_seconds(server.pid)
        go.set()
        answers = [results.get(timeout=600) for _ in procs]
        cpu_used = _cpu_seconds(server.pid) - cpu_before
        for p in procs:
            p.join(10)
    finally:
        server.terminate()
        server.join(10)
    ok = sum(a[0] for a in answers)
    elapsed = max(a[2] for a in answers) - min(a[1] for a in answers)
    stored = None
    if variant != "echo":
        with sqlite3.connect(db_path) as conn:
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0] - warmup
    return {"variant": variant, "events": events, "ok": ok, "stored": stored, "seconds": elapsed,
            "rate": ok / elapsed, "cpu_us": cpu_used / max(ok, 1) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8, help="connections per client process")
    parser.add_argument("--clients", type=int, default=1, help="client processes sending at once")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="load generator: a minimal HTTP/1.1 client (default) or httpx.AsyncClient")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every variant this many times, interleaved; the best round counts (noisy hosts)")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for v in args.variants:
                runs[v].append(run_variant(v, args.events, args.concurrency, args.clients, args.client,
                                           Path(tmp) / str(round_no)))
    rows = [max(results, key=lambda r: r["rate"]) for results in runs.values()]
    failed = [r for results in runs.values() for r in results
              if r["ok"] != r["events"] or (r["stored"] is not None and r["stored"] != r["events"])]
    base = next((r["rate"] for r in rows if r["variant"] == "echo"), rows[0]["rate"])
    print(f"\nwebhook receiver throughput: {args.events} signed events per variant, {args.clients} client"
          f" process(es) x {args.concurrency} connections ({args.client} client), uvicorn on 127.0.0.1,"
          f" {multiprocessing.cpu_count()} CPUs\n")
    print(f"| {'variant':<20} | {'2xx':>6} | {'stored':>6} | {'seconds':>7} | {'events/s':>9} | {'vs echo':>7} |"
          f" {'server CPU us/event':>19} |")
    print(f"|{'-' * 22}|{'-' * 8}|{'-' * 8}|{'-' * 9}|{'-' * 11}|{'-' * 9}|{'-' * 21}|")
    for r in rows:
        stored = "-" if r["stored"] is None else str(r["stored"])
        print(f"| {r['variant']:<20} | {r['ok']:>6} | {stored:>6} | {r['seconds']:>7.2f} | {r['rate']:>9.0f} |"
              f" {r['rate'] / base:>7.2f} | {r['cpu_us']:>19.0f} |")
    if args.rounds > 1:
        print(f"\n(best of {args.rounds} interleaved rounds; events/s per round: "
              + "; ".join(f"{v} " + "/".join(f"{r['rate']:.0f}" for r in results) for v, results in runs.items())
              + ")")
    for r in failed:
        raise SystemExit(f"{r['variant']}: {r['ok']} acknowledged, {r['stored']} stored of {r['events']}")


if __name__ == "__main__":
    main()

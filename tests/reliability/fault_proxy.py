"""A loopback HTTP proxy that injects network and relay faults between a client and a relay.

It runs an asyncio server in a thread of the test process, speaks HTTP/1.1 with keep-alive to the
client, and forwards each request over one upstream keep-alive connection per client connection
(plain asyncio streams: the proxy shares the test's CPU, so it must stay light).
For every request to a relay API path it draws one outcome from a seeded generator:

* ``drop_before``: close the client's connection without forwarding (the relay never saw it,
  but the client cannot know that);
* ``drop_after``: forward, let the relay act, then close without answering (the client never
  hears that its message was taken -- the case that causes double sends);
* ``rate_limited``: answer 429 with ``Retry-After`` without forwarding;
* ``unavailable``: answer 503 without forwarding (a relay whose queue is full);
* ``delay``: wait up to ``max_delay`` seconds, then forward;
* otherwise forward untouched.

Two settings shape the relay itself rather than drawing faults: ``latency`` holds every forwarded
request that long first (a relay across a network, where requests overlap), and ``capacity`` is
how many requests the relay takes at once: past it, it answers 429 with ``Retry-After`` (a relay
with a bounded queue, counted as ``over_capacity``).

``faults`` counts what was injected, so a test can show the faults really happened.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
    "content-length", "content-encoding", "host",
})
_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            404: "Not Found", 409: "Conflict", 413: "Payload Too Large", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
FAULT_KINDS = ("drop_before", "drop_after", "rate_limited", "unavailable", "delay")


def _relay_api_path(path: str) -> bool:
    """Faults go to the dialects' API paths only; health checks and test hooks pass untouched."""
    return "/api/" in path


class FaultProxy:
    """``with FaultProxy(relay.base_url, seed=7, drop_after=0.03, ...) as proxy:`` then use ``proxy.url(dialect)``.

    :param upstream: the relay's root URL (``http://127.0.0.1:PORT``).
    :param seed: seeds the fault generator, so a failing run can be replayed with the same rates.
    :param drop_before: share of requests dropped before they reach the relay.
    :param drop_after: share of requests whose answer is dropped after the relay acted.
    :param rate_limited: share answered 429 with ``Retry-After: <retry_after>``.
    :param unavailable: share answered 503.
    :param delay: share delayed by up to ``max_delay`` seconds.
    :param faulty: which paths get faults (default: the dialects' ``/api/`` paths).
    """

    def __init__(
        self,
        upstream: str,
        *,
        seed: int,
        drop_before: float = 0.0,
        drop_after: float = 0.0,
        rate_limited: float = 0.0,
        unavailable: float = 0.0,
        delay: float = 0.0,
        max_delay: float = 0.2,
        retry_after: str = "1",
        latency: float = 0.0,
        capacity: int | None = None,
        faulty: Callable[[str], bool] = _relay_api_path,
    ) -> None:
        rates = {"drop_before": drop_before, "drop_after": drop_after, "rate_limited": rate_limited,
                 "unavailable": unavailable, "delay": delay}
        if sum(rates.values()) > 1.0 or min(rates.values()) < 0.0:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        if latency < 0 or (capacity is not None and capacity < 1):
            raise ValueError("latency must be >= 0 and capacity at least 1")
        self.upstream = upstream.rstrip("/")
        parts = urlsplit(self.upstream)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the fault proxy forwards to a loopback http:// relay only")
        self._host = parts.hostname
        self._upstream_port = parts.port or 80
        self.rates = rates
        self.max_delay = max_delay
        self.retry_after = retry_after
        self.latency = latency
        self.capacity = capacity
        self.faulty = faulty
        self.faults: Counter[str] = Counter()
        self.forwarded = 0
        self.requests = 0
        self.busy = 0  # API requests being handled now (past ``capacity``, a request is answered 429)
        self.peak_busy = 0
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._port = 0
        self._connections: set[asyncio.StreamWriter] = set()

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def url(self, dialect: str) -> str:
        return f"{self.base_url}/{dialect}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._connections):
            writer.close()
        await self._server.wait_closed()

    # --- one client connection ----------------------------------------------------------
    def _draw(self, path: str) -> str | None:
        if not self.faulty(path):
            return None
        roll = self._random.random()
        for kind in FAULT_KINDS:
            if roll < self.rates[kind]:
                return kind
            roll -= self.rates[kind]
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        upstream: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
                lowered = {k.lower(): v for k, v in headers}
                if "chunked" in lowered.get("transfer-encoding", "").lower():
                    await self._answer(writer, 400, {}, b'{"error":"chunked bodies are not supported here"}', False)
                    return
                body = await reader.readexactly(int(lowered.get("content-length") or 0))
                keep_alive = lowered.get("connection", "").lower() != "close"
                if not await self._handle(writer, method, target, headers, body, keep_alive, upstream):
                    return
        finally:
            self._connections.discard(writer)
            writer.close()
            for _, up in upstream:
                up.close()

    async def _handle(self, writer: asyncio.StreamWriter, method: str, target: str,
                      headers: list[tuple[str, ...]], body: bytes, keep_alive: bool,
                      upstream: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> bool:
        """Answers (or not) one request; False when the connection is to be closed."""
        self.requests += 1
        path = target.split("?", 1)[0]
        if not self.faulty(path):
            return await self._pass(writer, method, target, headers, body, keep_alive, upstream, None, 0.0)
        if self.capacity is not None and self.busy >= self.capacity:
            self.faults["over_capacity"] += 1
            payload = json.dumps({"error": {"code": "rate_limited", "message": "too many requests at once"}}).encode()
            await self._answer(writer, 429, {"Retry-After": self.retry_after}, payload, keep_alive)
            return keep_alive
        self.busy += 1
        self.peak_busy = max(self.peak_busy, self.busy)
        try:
            return await self._pass(writer, method, target, headers, body, keep_alive, upstream, self._draw(path),
                                    self.latency)
        finally:
            self.busy -= 1

    async def _pass(self, writer: asyncio.StreamWriter, method: str, target: str, headers: list[tuple[str, ...]],
                    body: bytes, keep_alive: bool, upstream: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
                    fault: str | None, latency: float) -> bool:
        """Injects ``fault`` (or none) into one request, or forwards it ``latency`` seconds later;
        False when the connection is to be closed."""
        if fault:
            self.faults[fault] += 1
        if fault == "drop_before":
            return False
        if fault == "rate_limited":
            payload = json.dumps({"error": {"code": "rate_limited", "message": "too many requests"}}).encode()
            await self._answer(writer, 429, {"Retry-After": self.retry_after}, payload, keep_alive)
            return keep_alive
        if fault == "unavailable":
            payload = json.dumps({"error": {"code": "unavailable", "message": "queue full, try later"}}).encode()
            await self._answer(writer, 503, {}, payload, keep_alive)
            return keep_alive
        if fault == "delay":
            await asyncio.sleep(self._random.uniform(0.0, self.max_delay))
        if latency:
            await asyncio.sleep(latency)
        try:
            status, out, content = await self._forward(method, target, headers, body, upstream)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            # The relay is down or hung up: the client sees a broken connection, as it would without us.
            return False
        self.forwarded += 1
        if fault == "drop_after":
            return False
        await self._answer(writer, status, out, content, keep_alive)
        return keep_alive

    async def _forward(self, method: str, target: str, headers: list[tuple[str, ...]], body: bytes,
                       upstream: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
                       ) -> tuple[int, dict[str, str], bytes]:
        """One request over this client connection's own upstream connection (opened on first use)."""
        if not upstream:
            upstream.append(await asyncio.open_connection(self._host, self._upstream_port))
        reader, writer = upstream[0]
        try:
            lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host}:{self._upstream_port}"]
            lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP]
            lines += [f"Content-Length: {len(body)}", "Connection: keep-alive"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(head[0].split(" ", 2)[1])
            answer = {k.strip(): v.strip() for k, v in (x.split(":", 1) for x in head[1:] if ":" in x)}
            lowered = {k.lower(): v for k, v in answer.items()}
            if "chunked" in lowered.get("transfer-encoding", "").lower():
                content = b""
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    chunk = await reader.readexactly(size + 2)
                    if size == 0:
                        break
                    content += chunk[:-2]
            else:
                content = await reader.readexactly(int(lowered.get("content-length") or 0))
            if lowered.get("connection", "").lower() == "close":
                writer.close()
                upstream.clear()
        except BaseException:
            writer.close()
            upstream.clear()
            raise
        return status, {k: v for k, v in answer.items() if k.lower() not in _HOP_BY_HOP}, content

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes,
                      keep_alive: bool) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Content-Length: {len(body)}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
        if not any(k.lower() == "content-type" for k in headers):
            lines.append("Content-Type: application/json")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            await writer.drain()
        except ConnectionError:
            pass

"""Helpers for the reference relay tests: HTTP clients per dialect, waiting, a loopback webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from relay_integrations.process import ReferenceRelayProcess

WAIT_SECONDS = 15.0


def auth_for(relay: ReferenceRelayProcess, dialect: str) -> dict[str, Any]:
    """httpx keyword arguments that authenticate as ``dialect`` expects."""
    if dialect == "smsgate":
        return {"auth": (relay.login, relay.api_key)}
    if dialect == "relaysms":
        return {"headers": {"X-API-Key": relay.api_key}}
    return {"headers": {"Authorization": f"Bearer {relay.api_key}"}}


def client_for(relay: ReferenceRelayProcess, dialect: str) -> httpx.Client:
    return httpx.Client(base_url=relay.url(dialect), timeout=10.0, **auth_for(relay, dialect))


def sim_client(relay: ReferenceRelayProcess) -> httpx.Client:
    return httpx.Client(base_url=relay.base_url + "/_sim", timeout=10.0,
                        headers={"Authorization": f"Bearer {relay.api_key}"})


def wait_until(fetch: Callable[[], Any], done: Callable[[Any], bool], what: str,
               timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``fetch`` until ``done(value)``; fails with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last value: {value!r}")
        time.sleep(0.05)
        value = fetch()
    return value


@pytest.fixture
def clients(relay: ReferenceRelayProcess) -> Iterator[dict[str, httpx.Client]]:
    made = {d: client_for(relay, d) for d in ("phonerelay", "relaysms", "coop", "smsgate")}
    made["_sim"] = sim_client(relay)
    yield made
    for c in made.values():
        c.close()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookSink:
    """A loopback HTTP server that records every POST. ``fail_first`` answers 500 that many times first."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    fail_first: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def wait_for(self, predicate: Callable[[Received], bool], what: str, count: int = 1) -> list[Received]:
        def matching() -> list[Received]:
            with self.lock:
                return [r for r in self.received if predicate(r)]
        return wait_until(matching, lambda found: len(found) >= count, what)  # type: ignore[no-any-return]


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    holder: dict[str, WebhookSink] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            sink = holder["sink"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with sink.lock:
                sink.attempts += 1
                failing = sink.attempts <= sink.fail_first
                if not failing:
                    sink.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(500 if failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink = WebhookSink(server=server)
    holder["sink"] = sink
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sink
    server.shutdown()
    server.server_close()

"""The clients' connections, on a real loopback server that records which connection every request
came on: each sending thread of the sync client keeps its own keep-alive connection; each request in
flight of the async client borrows one, within ``max_connections``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from relay_integrations import AsyncRelayClient, OutboundMessage, RelayClient
from relay_integrations._transports import ConnectionsPerRequest, ConnectionsPerThread


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    seen: list[tuple[str, int]]  # (the sender's X-Thread header, the connection's client port)
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        with self.lock:
            self.seen.append((self.headers.get("x-thread", ""), self.client_address[1]))
        body = b'{"id": "m1", "state": "Pending", "recipients": []}'
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, int]]]]:
    seen: list[tuple[str, int]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _ports(seen: list[tuple[str, int]]) -> set[int]:
    return {port for _, port in seen}


def _send_from_threads(client: httpx.Client, url: str, threads: int, each: int) -> None:
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def sender(name: str) -> None:
        try:
            start.wait(30)
            for _ in range(each):
                client.post(url, content=b"{}", headers={"x-thread": name}).raise_for_status()
                start.wait(30)  # every thread sends its next request while the others hold theirs
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=sender, args=(f"t{i}",)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors, errors


def test_each_sending_thread_reuses_its_own_connection(server: tuple[str, list[tuple[str, int]]]) -> None:
    url, seen = server
    transport = ConnectionsPerThread(verify=False, limits=httpx.Limits(max_connections=64))
    with httpx.Client(transport=transport) as client:
        _send_from_threads(client, url, threads=6, each=5)
    assert len(seen) == 30
    ports_by_thread: dict[str, set[int]] = {}
    for name, port in seen:
        ports_by_thread.setdefault(name, set()).add(port)
    assert all(len(ports) == 1 for ports in ports_by_thread.values()), ports_by_thread
    assert len(_ports(seen)) == 6


def test_the_pools_of_ended_threads_are_closed_when_another_thread_sends(
    server: tuple[str, list[tuple[str, int]]],
) -> None:
    url, _seen = server
    transport = ConnectionsPerThread(verify=False, limits=httpx.Limits(max_connections=64))
    with httpx.Client(transport=transport) as client:
        _send_from_threads(client, url, threads=3, each=1)
        assert transport.pools == 3
        _send_from_threads(client, url, threads=1, each=1)
        assert transport.pools == 1  # the three ended threads' pools were closed, the new one opened
    assert transport.pools == 0  # closing the client closes every pool


def test_the_sync_relay_client_sends_from_many_threads_over_its_own_connections(
    server: tuple[str, list[tuple[str, int]]],
) -> None:
    url, seen = server
    with RelayClient(url, "smsgate", "secret", login="relay") as client:
        results: list[str] = []

        def send(i: int) -> None:
            results.append(client.send(OutboundMessage(to=f"+1415555{i:04d}", text="hi")).message_id)

        workers = [threading.Thread(target=send, args=(i,)) for i in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
    assert results == ["m1"] * 8
    assert len(seen) == 8 and len(_ports(seen)) == 8


def test_async_requests_in_flight_each_borrow_a_connection_and_reuse_it_later(
    server: tuple[str, list[tuple[str, int]]],
) -> None:
    url, seen = server
    transport = ConnectionsPerRequest(verify=False, limits=httpx.Limits(max_connections=64))

    async def main() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(5):  # five rounds of six at once: the six connections of round one serve all
                answers = await asyncio.gather(*(client.post(url, content=b"{}") for _ in range(6)))
                assert [a.status_code for a in answers] == [202] * 6
            assert transport.pools == 6
        assert transport.pools == 0

    asyncio.run(main())
    assert len(seen) == 30 and len(_ports(seen)) == 6


def test_async_requests_beyond_max_connections_wait_for_one_to_come_back(
    server: tuple[str, list[tuple[str, int]]],
) -> None:
    url, seen = server
    transport = ConnectionsPerRequest(verify=False, limits=httpx.Limits(max_connections=2))

    async def main() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            answers = await asyncio.gather(*(client.post(url, content=b"{}") for _ in range(20)))
            assert [a.status_code for a in answers] == [202] * 20
            assert transport.pools == 2

    asyncio.run(main())
    assert len(seen) == 20 and len(_ports(seen)) == 2


def test_an_async_request_that_fails_gives_its_connection_back(server: tuple[str, list[tuple[str, int]]]) -> None:
    url, seen = server
    transport = ConnectionsPerRequest(verify=False, limits=httpx.Limits(max_connections=1))

    async def main() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError):
                await client.post("http://127.0.0.1:1/", content=b"{}")  # nothing listens on port 1
            answer = await client.post(url, content=b"{}")  # the only slot is free again
            assert answer.status_code == 202

    asyncio.run(main())
    assert len(seen) == 1


def test_the_async_relay_client_sends_many_at_once(server: tuple[str, list[tuple[str, int]]]) -> None:
    url, seen = server

    async def main() -> list[str]:
        async with AsyncRelayClient(url, "smsgate", "secret", login="relay") as client:
            receipts = await asyncio.gather(
                *(client.send(OutboundMessage(to=f"+1415555{i:04d}", text="hi")) for i in range(8)))
        return [r.message_id for r in receipts]

    assert asyncio.run(main()) == ["m1"] * 8
    assert len(seen) == 8

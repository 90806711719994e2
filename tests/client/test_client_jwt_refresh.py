"""Many requests sharing one client meet an expired JWT together: one new token is fetched, not one each.

A campaign sends from many threads (or tasks) through one client. Against the reference relay: the
client's token is revoked on the relay, then N requests go out at once (a barrier in a counting
transport holds each first request until all N are in flight, so all of them carry the revoked
token and all are refused). Each must then succeed, after exactly one token request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from relay_integrations import AsyncRelayClient, OutboundMessage, RelayClient
from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

REQUESTS = 16
TOKEN_PATH = "/api/3rdparty/v1/auth/token"


def _jti(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def _revoke(relay: ReferenceRelayProcess, client: RelayClient | AsyncRelayClient) -> None:
    token = client._credentials.token
    assert token is not None
    answer = httpx.delete(f"{relay.url('smsgate')}{TOKEN_PATH}/{_jti(token.get_secret_value())}",
                          auth=(relay.login, relay.api_key), timeout=10)
    assert answer.status_code == 204, answer.text


def _kwargs(relay: ReferenceRelayProcess) -> dict[str, Any]:
    return {"base_url": relay.url("smsgate"), "dialect": "smsgate", "api_key": relay.api_key,
            "login": relay.login, "use_jwt": True, "backoff_factor": 0.05}


class _Counting:
    """Counts token requests; holds each thread's first other request until ``REQUESTS`` are waiting."""

    def __init__(self) -> None:
        self.token_requests = 0
        self.armed = False
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(REQUESTS, timeout=60)
        self.held: set[int] = set()

    def seen(self, request: httpx.Request) -> bool:
        """Record ``request``; whether it must wait at the barrier."""
        with self.lock:
            if request.url.path.endswith(TOKEN_PATH):
                self.token_requests += 1
                return False
            if not self.armed or threading.get_ident() in self.held:
                return False
            self.held.add(threading.get_ident())
            return True


class CountingTransport(httpx.HTTPTransport):
    def __init__(self, counting: _Counting) -> None:
        super().__init__()
        self.counting = counting

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.counting.seen(request):
            self.counting.barrier.wait()
        return super().handle_request(request)


def test_threads_sharing_a_client_fetch_one_new_token(relay: ReferenceRelayProcess) -> None:
    counting = _Counting()
    with RelayClient(**_kwargs(relay), transport=CountingTransport(counting)) as client:
        receipt = client.send(OutboundMessage(to=["+15550001231"], text="jwt refresh"))
        assert counting.token_requests == 1
        _revoke(relay, client)
        counting.armed = True
        with ThreadPoolExecutor(REQUESTS) as pool:
            reports = list(pool.map(lambda _: client.get_status(receipt.message_id), range(REQUESTS)))
    assert all(r.message_id == receipt.message_id for r in reports)
    assert counting.token_requests == 2  # the first token, and one refresh for all sixteen


class AsyncCountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.token_requests = 0
        self.to_hold = 0  # the next this many requests wait until all of them are in flight
        self.barrier = asyncio.Barrier(REQUESTS)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(TOKEN_PATH):
            self.token_requests += 1
        elif self.to_hold:
            self.to_hold -= 1
            await asyncio.wait_for(self.barrier.wait(), 60)
        return await super().handle_async_request(request)


def test_tasks_sharing_an_async_client_fetch_one_new_token(relay: ReferenceRelayProcess) -> None:
    async def main() -> None:
        transport = AsyncCountingTransport()
        async with AsyncRelayClient(**_kwargs(relay), transport=transport) as client:
            receipt = await client.send(OutboundMessage(to=["+15550001241"], text="jwt refresh"))
            assert transport.token_requests == 1
            await asyncio.to_thread(_revoke, relay, client)
            transport.to_hold = REQUESTS
            reports = await asyncio.gather(*(client.get_status(receipt.message_id) for _ in range(REQUESTS)))
        assert all(r.message_id == receipt.message_id for r in reports)
        assert transport.token_requests == 2

    asyncio.run(main())

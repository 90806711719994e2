"""AsyncRelayClient: the main paths of the sync tests, awaited."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from client_socket_server import closed_port, scripted_server

from relay_integrations import (
    AsyncRelayClient,
    MessageState,
    OutboundMessage,
    RelayConnectionError,
    RelayNotFoundError,
    RelayTimeoutError,
    UnsupportedOperationError,
)

pytestmark = pytest.mark.anyio

KEY = "sk_async_5d2b"


def async_client(dialect: str, base_url: str, sleeps: list[float], **kwargs: Any) -> AsyncRelayClient:
    kwargs.setdefault("backoff_factor", 0.0)
    client = AsyncRelayClient(base_url, dialect, KEY, **kwargs)

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    client._sleep = record
    return client


async def test_send_status_and_list() -> None:
    async with async_client("coop", "http://127.0.0.1:9/coop/api/v1", []) as client:
        with respx.mock(base_url="http://127.0.0.1:9/coop") as mock:
            send = mock.post("/api/v1/messages").respond(201, json={"id": "msg_abc123", "status": "queued"})
            mock.get("/api/v1/messages/msg_abc123/status").respond(
                200, json={"id": "msg_abc123", "status": "delivered", "attempts": 1}
            )
            mock.get("/api/v1/messages").respond(200, json={"messages": [{"id": "msg_abc123", "status": "sent"}]})
            receipt = await client.send(OutboundMessage(to="+15551234567", text="Hello!"))
            report = await client.get_status(receipt.message_id)
            page = await client.list_messages(limit=10)
    assert json.loads(send.calls.last.request.content) == {"to": "+15551234567", "body": "Hello!"}
    assert send.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"
    assert report.state is MessageState.DELIVERED and report.attempts == 1
    assert page.messages[0].message_id == "msg_abc123"


async def test_iter_messages_pages_through_relaysms() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        items = [{"id": f"m{number}", "client_reference_id": f"m{number}", "status": "sent"}]
        return httpx.Response(200, json={"data": {"messages": items, "page": number, "limit": 1,
                                                  "has_more": number < 3}})

    async with async_client("relaysms", "http://127.0.0.1:9/relaysms", []) as client:
        with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock:
            mock.get("/api/v1/messages").mock(side_effect=page)
            ids = [m.message_id async for p in client.iter_messages(limit=1, page=1) for m in p.messages]
    assert ids == ["m1", "m2", "m3"]


async def test_retry_after_and_same_key_on_every_attempt() -> None:
    sleeps: list[float] = []
    async with async_client("phonerelay", "http://127.0.0.1:9/phonerelay", sleeps, phone_id="phone_main") as client:
        with respx.mock(base_url="http://127.0.0.1:9/phonerelay") as mock:
            route = mock.post("/api/v1/messages").mock(side_effect=[
                httpx.Response(503, headers={"Retry-After": "1"}),
                httpx.ReadError("reset"),
                httpx.Response(202, json={"success": True, "message_id": "msg_1", "status": "queued"}),
            ])
            receipt = await client.send(OutboundMessage(to="+15551234567", text="hello"))
    keys = {json.loads(c.request.content)["idempotency_key"] for c in route.calls}
    assert route.call_count == 3 and len(keys) == 1 and receipt.idempotency_key in keys
    assert sleeps == [1.0, 0.0]


async def test_send_without_key_not_retried_after_read_timeout_but_after_connect_error() -> None:
    sleeps: list[float] = []
    async with async_client("relaysms", "http://127.0.0.1:9/relaysms", sleeps, sender="+1987654321") as client:
        with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock:
            route = mock.post("/api/v1/sms/send").mock(side_effect=[
                httpx.ReadTimeout("slow"),
                httpx.ConnectError("refused"),
                httpx.Response(202, json={"data": {"id": "r1", "status": "accepted"}}),
            ])
            with pytest.raises(RelayTimeoutError):
                await client.send(OutboundMessage(to="+1234567890", text="hi"))
            assert route.call_count == 1
            receipt = await client.send(OutboundMessage(to="+1234567890", text="hi"))
    assert route.call_count == 3 and receipt.message_id == "r1" and len(sleeps) == 1


async def test_smsgate_409_returns_duplicate_receipt() -> None:
    async with async_client("smsgate", "http://127.0.0.1:9/smsgate", [], login="u") as client:
        with respx.mock(base_url="http://127.0.0.1:9/smsgate") as mock:
            mock.post("/api/3rdparty/v1/messages").mock(side_effect=[
                httpx.RemoteProtocolError("closed"), httpx.Response(409, json={"message": "exists"}),
            ])
            mock.get("/api/3rdparty/v1/messages/key-1").respond(200, json={"id": "key-1", "state": "Sent"})
            receipt = await client.send(OutboundMessage(to="+12025550100", text="hi", idempotency_key="key-1"))
    assert (receipt.message_id, receipt.duplicate, receipt.state) == ("key-1", True, MessageState.SENT)


async def test_errors_and_unsupported() -> None:
    async with async_client("relaysms", "http://127.0.0.1:9/relaysms", []) as client:
        with respx.mock(base_url="http://127.0.0.1:9/relaysms") as mock:
            mock.get("/api/v1/sms/nope").respond(404, json={"error": {"code": "NOT_FOUND", "message": "no such"}})
            with pytest.raises(RelayNotFoundError) as caught:
                await client.get_status("nope")
        with pytest.raises(UnsupportedOperationError):
            await client.inbound_stats(range="7d")
        with pytest.raises(UnsupportedOperationError):
            await client.queue_stats()
    assert caught.value.code == "NOT_FOUND"


async def test_real_sockets_timeout_and_refusal() -> None:
    ok = ("respond", 202, {"data": {"id": "r1", "status": "accepted"}}, {})
    with scripted_server([("hang",), ok]) as server:
        async with async_client("relaysms", server.url + "/relaysms", [], timeout=0.2, sender="+1987654321") as c:
            with pytest.raises(RelayTimeoutError):
                await c.send(OutboundMessage(to="+1234567890", text="hi"))
        assert len(server.received) == 1
    sleeps: list[float] = []
    async with async_client("coop", f"http://127.0.0.1:{closed_port()}/coop", sleeps, max_retries=2) as c:
        with pytest.raises(RelayConnectionError):
            await c.health()
    assert len(sleeps) == 2

"""A relay that sets a cookie never gets it back: relay clients keep no cookie jar.

Every request carries its own credentials; a stored cookie would ride along on every later request
(and parsing it costs CPU on every answer). A real loopback server answers with ``Set-Cookie``.
"""

from __future__ import annotations

import pytest
from client_socket_server import scripted_server

from relay_integrations import AsyncRelayClient, RelayClient
from relay_integrations.models import OutboundMessage

ACCEPTED = ("respond", 202, {"data": {"id": "r1", "status": "accepted"}},
            {"Set-Cookie": "session=abc123; Path=/", "X-Other": "1"})


def test_sync_client_sends_no_cookie_back() -> None:
    with scripted_server([ACCEPTED, ACCEPTED]) as server:
        with RelayClient(server.url + "/relaysms", "relaysms", "key", sender="+1987654321") as client:
            client.send(OutboundMessage(to="+14155550101", text="one"))
            client.send(OutboundMessage(to="+14155550102", text="two"))
            assert not client._http.cookies
            with pytest.raises(AttributeError):
                client._http.cookies = {"session": "x"}
    assert len(server.headers) == 2
    assert all("cookie" not in h for h in server.headers), server.headers
    assert server.headers[1]["x-api-key"] == "key"  # its own credentials, every time


@pytest.mark.anyio
async def test_async_client_sends_no_cookie_back() -> None:
    with scripted_server([ACCEPTED, ACCEPTED]) as server:
        async with AsyncRelayClient(server.url + "/relaysms", "relaysms", "key", sender="+1987654321") as client:
            await client.send(OutboundMessage(to="+14155550101", text="one"))
            await client.send(OutboundMessage(to="+14155550102", text="two"))
    assert len(server.headers) == 2
    assert all("cookie" not in h for h in server.headers), server.headers

"""Retry safety decided once: ``RelayError.maybe_sent`` says whether a failed send may have been taken."""

from __future__ import annotations

import httpx
import pytest

from relay_integrations.client import RelayClient
from relay_integrations.errors import RelayError
from relay_integrations.models import OutboundMessage


def _client(handler: httpx.MockTransport) -> RelayClient:
    return RelayClient("http://127.0.0.1:9/relaysms", "relaysms", "k", transport=handler, max_retries=0,
                       sender="+1987654321")


@pytest.mark.parametrize(("status", "maybe_sent"), [
    (500, True), (502, True), (504, True), (503, False), (400, False), (401, False), (404, False),
    (422, False), (429, False),
])
def test_status_answers(status: int, maybe_sent: bool) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json={"error": {"code": "x"}}))
    with _client(transport) as client, pytest.raises(RelayError) as info:
        client.send(OutboundMessage(to="+15551234567", text="hi"))
    assert info.value.maybe_sent is maybe_sent


@pytest.mark.parametrize(("error", "maybe_sent"), [
    (httpx.ConnectError("refused"), False), (httpx.ConnectTimeout("slow"), False),
    (httpx.ReadTimeout("no answer"), True), (httpx.RemoteProtocolError("dropped"), True),
])
def test_transport_failures(error: Exception, maybe_sent: bool) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    with _client(httpx.MockTransport(fail)) as client, pytest.raises(RelayError) as info:
        client.send(OutboundMessage(to="+15551234567", text="hi"))
    assert info.value.maybe_sent is maybe_sent


def test_a_refused_connection_to_a_real_port_was_never_sent() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with RelayClient(f"http://127.0.0.1:{port}/relaysms", "relaysms", "k", max_retries=0,
                     sender="+1987654321") as client, \
            pytest.raises(RelayError) as info:
        client.send(OutboundMessage(to="+15551234567", text="hi"))
    assert info.value.maybe_sent is False


def test_maybe_sent_survives_pickling() -> None:
    import pickle

    error = RelayError("x", status_code=400, maybe_sent=True)
    assert pickle.loads(pickle.dumps(error)).maybe_sent is True

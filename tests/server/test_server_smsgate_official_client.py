"""The official SMS Gateway for Android client (``android_sms_gateway``) against the relay's smsgate dialect.

Every call goes through the official client (sync, and the async one for the token round trip)
to a real relay process; nothing here builds the requests by hand except where the client has
no method for the check (a 403 is read from the client's own exception).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from android_sms_gateway import client as sg_client
from android_sms_gateway import domain, errors, webhooks
from android_sms_gateway.enums import ProcessState, WebhookEvent
from relay_server_helpers import sim_client, wait_until

from relay_integrations.dialects import get_dialect
from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

API_KEY = "official-client-key"
LOGIN = "gate"


@pytest.fixture(scope="module")
def gate_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRelayProcess]:
    tmp = tmp_path_factory.mktemp("smsgate-official")
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=API_KEY, login=LOGIN, delivery_latency=0.2,
                               log_path=tmp / "relay.log") as relay:
        yield relay


def base(relay: ReferenceRelayProcess) -> str:
    return relay.url("smsgate") + "/api/3rdparty/v1"


def basic(relay: ReferenceRelayProcess) -> sg_client.APIClient:
    return sg_client.APIClient(LOGIN, API_KEY, base_url=base(relay))


def bearer(relay: ReferenceRelayProcess, token: str) -> sg_client.APIClient:
    return sg_client.APIClient(None, token, base_url=base(relay))


def send(api: sg_client.APIClient, *numbers: str, text: str = "hi") -> domain.MessageState:
    return api.send(domain.Message(phone_numbers=list(numbers), text_message=domain.TextMessage(text=text)))


def test_token_issue_scopes_refresh_and_revoke(gate_relay: ReferenceRelayProcess) -> None:
    with basic(gate_relay) as api:
        read = api.generate_token(domain.TokenRequest(scopes=["messages:read"], ttl=600))
        full = api.generate_token(domain.TokenRequest(scopes=["messages:send", "messages:read"], ttl=600))
    assert read.token_type == "Bearer" and read.access_token and read.refresh_token and read.id
    assert dt.datetime.fromisoformat(read.expires_at.replace("Z", "+00:00")) > dt.datetime.now(dt.timezone.utc)

    with bearer(gate_relay, read.access_token) as api:
        with pytest.raises(errors.ForbiddenError):
            send(api, "+12025550111")
    with bearer(gate_relay, full.access_token) as api:
        sent = send(api, "+12025550112")
        assert api.get_state(sent.id).id == sent.id

    with basic(gate_relay) as api:
        renewed = api.refresh_token(full.refresh_token)
    assert renewed.access_token != full.access_token
    with bearer(gate_relay, renewed.access_token) as api:
        send(api, "+12025550113")
    with basic(gate_relay) as api:  # a refresh token is used up by the exchange
        with pytest.raises(errors.UnauthorizedError):
            api.refresh_token(full.refresh_token)
        api.revoke_token(renewed.id)
    with bearer(gate_relay, renewed.access_token) as api:
        with pytest.raises(errors.UnauthorizedError):
            api.get_state(sent.id)


def test_async_client_token_round_trip(gate_relay: ReferenceRelayProcess) -> None:
    async def main() -> domain.MessageState:
        async with sg_client.AsyncAPIClient(LOGIN, API_KEY, base_url=base(gate_relay)) as api:
            token = await api.generate_token(domain.TokenRequest(scopes=["all:any"], ttl=600))
        async with sg_client.AsyncAPIClient(None, token.access_token, base_url=base(gate_relay)) as api:
            sent = await api.send(domain.Message(phone_numbers=["+12025550114"],
                                                 text_message=domain.TextMessage(text="async")))
            return await api.get_state(sent.id)

    assert asyncio.run(main()).state in (ProcessState.Pending, ProcessState.Processed, ProcessState.Sent,
                                         ProcessState.Delivered)


def test_paging_sort_state_and_date_filters(start_relay: Any) -> None:
    relay: ReferenceRelayProcess = start_relay(api_key=API_KEY, login=LOGIN, delivery_latency=0.1)
    with basic(relay) as api:
        ids = [send(api, "+12025550120", text=f"n{i}").id for i in range(5)]
        # One recipient fails: the message ends Sent (mixed), not Delivered.
        mixed = send(api, "+12025550121", "+12025550000", text="mixed").id
        everything = set(ids) | {mixed}
        wait_until(lambda: [api.get_state(i).state for i in everything],
                   lambda got: set(got) <= {ProcessState.Delivered, ProcessState.Sent} and
                   got.count(ProcessState.Sent) <= 1 and all(api.get_state(mixed).recipients[k].state in (
                       ProcessState.Delivered, ProcessState.Failed) for k in (0, 1)),
                   "every message in its final state")
        pages = [api.get_messages(pagination=domain.QueryPagination(limit=2, offset=o), sort="created_at")
                 for o in (0, 2, 4)]
        assert [m.id for page in pages for m in page] == [*ids, mixed]
        newest_first = api.get_messages(sort="-created_at", pagination=domain.QueryPagination(limit=6))
        assert [m.id for m in newest_first] == [mixed, *reversed(ids)]
        delivered = api.get_messages(query=domain.MessagesQueryFilter(state="Delivered"))
        assert {m.id for m in delivered} == set(ids)
        assert all(m.state == ProcessState.Delivered for m in delivered)
        sent = api.get_messages(query=domain.MessagesQueryFilter(state="Sent"))
        assert [m.id for m in sent] == [mixed]
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        assert api.get_messages(query=domain.MessagesQueryFilter(from_=later)) == []
        assert {m.id for m in api.get_messages(query=domain.MessagesQueryFilter(from_=earlier, to=later))} \
            == everything
        device = api.list_devices()
        assert [d.id for d in device] == ["sim-device-0001"]
        assert {m.id for m in api.get_messages(query=domain.MessagesQueryFilter(device_id=device[0].id))} \
            == everything
        assert api.get_messages(query=domain.MessagesQueryFilter(device_id="another-device")) == []


def test_cancel_a_pending_message(start_relay: Any) -> None:
    relay: ReferenceRelayProcess = start_relay(api_key=API_KEY, login=LOGIN, delivery_latency=30)
    with basic(relay) as api:
        message = send(api, "+12025550130", "+12025550131")
        api.cancel_message(message.id)
        state = api.get_state(message.id)
        assert state.state == ProcessState.Cancelled
        assert {r.state for r in state.recipients} == {ProcessState.Cancelled}
        with pytest.raises(errors.APIError) as info:
            api.cancel_message(message.id)  # no longer Pending
        assert info.value.status_code == 409
        with pytest.raises(errors.NotFoundError):
            api.cancel_message("no-such-message")


def test_health_endpoints(gate_relay: ReferenceRelayProcess) -> None:
    with basic(gate_relay) as api:
        for check in (api.health_check, api.liveness_check, api.readiness_check, api.startup_check):
            assert check().status.value == "pass"
    # Probes need no credentials, as on the real server.
    with sg_client.APIClient(None, "not-a-token", base_url=base(gate_relay)) as api:
        assert api.liveness_check().status.value == "pass"


class _Sink(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhooks_parse_with_the_official_models_and_ours(gate_relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with basic(gate_relay) as api:
            hook = api.create_webhook(domain.Webhook(id=None, url=url, event=WebhookEvent.SMS_RECEIVED))
            assert hook.event == WebhookEvent.SMS_RECEIVED and hook.id
            assert hook.id in {h.id for h in api.get_webhooks()}
            with sim_client(gate_relay) as sim:
                sim.post("/inbound", json={"dialect": "smsgate", "from": "+12025550140", "to": "+12025550199",
                                           "text": "inbound hello"}).raise_for_status()
            envelope = wait_until(lambda: list(_Sink.received), lambda got: bool(got), "the sms:received webhook")[0]
            api.delete_webhook(hook.id)
    finally:
        server.shutdown()
        server.server_close()
    assert envelope["event"] == "sms:received"
    official = webhooks.SmsReceivedPayload.from_dict(envelope["payload"])
    assert official.sender == "+12025550140" and official.message == "inbound hello"
    assert official.recipient == "+12025550199"
    ours = get_dialect("smsgate").parse_webhook(envelope, {})
    assert ours[0].sender == "+12025550140" and ours[0].text == "inbound hello"

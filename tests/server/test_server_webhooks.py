"""Webhooks out: exact bodies per dialect, signatures checked with relay_integrations.signing, durable retries."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from relay_server_helpers import Received, WebhookSink, client_for, sim_client, wait_until

from relay_integrations.process import ReferenceRelayProcess
from relay_integrations.signing import (
    SignatureError,
    derive_dialect_secret,
    verify_callback_token,
    verify_coop,
    verify_for,
    verify_smsgate,
    verify_standard,
)

pytestmark = pytest.mark.e2e

# The relay's master secret: smsgate and coop sign with secrets derived from it; relaysms signs only
# because it is given a secret of its own (it would go out unsigned, as relaysms.md has it).
MASTER = "relay-master-secret-for-tests"
SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXdlYmhvb2tz"
COOP_SECRET = derive_dialect_secret(MASTER, "coop")
SMSGATE_SECRET = derive_dialect_secret(MASTER, "smsgate")


@pytest.fixture(scope="module")
def shared_hook_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRelayProcess]:
    tmp = tmp_path_factory.mktemp("hook-relay")
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key="hook-key", delivery_latency=0.1,
                               webhook_secret=MASTER,
                               extra_args=["--webhook-retry-base", "0.2", "--webhook-secret", f"relaysms={SECRET}"],
                               log_path=tmp / "relay.log") as relay:
        yield relay


@pytest.fixture
def hook_relay(shared_hook_relay: ReferenceRelayProcess) -> Iterator[ReferenceRelayProcess]:
    """The module's relay, with every webhook target removed after each test (each test has its own sink)."""
    yield shared_hook_relay
    with sim_client(shared_hook_relay) as sim:
        for target in sim.get("/webhooks").json()["webhooks"]:
            sim.delete(f"/webhooks/{target['id']}")


def test_relaysms_status_webhooks_standard_signed(hook_relay: ReferenceRelayProcess, webhook_sink: WebhookSink) -> None:
    with client_for(hook_relay, "relaysms") as rs:
        rs.put("/api/v1/webhooks", json={"status_url": webhook_sink.url + "/status",
                                         "inbound_url": webhook_sink.url + "/inbound"}).raise_for_status()
        sent = rs.post("/api/v1/sms/send", json={"to": "+1234567890", "from": "+1987654321", "body": "hi",
                                                  "metadata": {"order_id": "12345"}}).json()["data"]
    got = webhook_sink.wait_for(lambda r: r.path == "/status" and r.json()["status"] == "delivered",
                                "delivered status webhook")[0]
    webhook_id = verify_standard(got.body, got.headers, [SECRET])
    assert webhook_id.startswith("evt_")
    body = got.json()
    assert set(body) == {"event", "message_id", "client_reference_id", "status", "to", "from", "direction",
                         "timestamp", "unix_timestamp", "error_code", "error_message", "metadata"}
    assert body["event"] == "message.status" and body["message_id"] == sent["id"]
    assert body["client_reference_id"] == sent["id"] and body["metadata"] == {"order_id": "12345"}
    assert (body["to"], body["from"], body["direction"]) == ("+1234567890", "+1987654321", "outbound")
    statuses = [r.json()["status"] for r in webhook_sink.wait_for(lambda r: r.path == "/status", "all", count=3)]
    assert statuses == ["queued", "sent", "delivered"]
    ids = [r.headers["webhook-id"] for r in webhook_sink.received]
    assert len(ids) == len(set(ids))
    with pytest.raises(SignatureError):
        verify_standard(got.body, got.headers, ["whsec_d3Jvbmctc2VjcmV0"])
    with pytest.raises(SignatureError):
        verify_standard(got.body + b" ", got.headers, [SECRET])

    # Inbound goes to inbound_url, a per-number callback wins over it.
    with sim_client(hook_relay) as sim:
        sim.post("/inbound", json={"dialect": "relaysms", "from": "+1234567890", "text": "Hello!"}).raise_for_status()
    inbound = webhook_sink.wait_for(lambda r: r.path == "/inbound", "inbound webhook")[0]
    verify_for("relaysms", inbound.body, inbound.headers, [SECRET])
    assert set(inbound.json()) == {"event", "message_id", "from", "to", "body", "timestamp", "unix_timestamp",
                                   "media_urls"}
    assert inbound.json()["event"] == "message.inbound" and inbound.json()["to"] == "+1987654321"
    with client_for(hook_relay, "relaysms") as rs:
        rs.put("/api/v1/numbers/+1987654321/webhooks", json={"inbound_callback": webhook_sink.url + "/number"})
    with sim_client(hook_relay) as sim:
        sim.post("/inbound", json={"dialect": "relaysms", "from": "+1234567890", "text": "again"}).raise_for_status()
    assert webhook_sink.wait_for(lambda r: r.path == "/number", "per-number inbound")[0].json()["body"] == "again"


def test_relaysms_per_message_status_callback(hook_relay: ReferenceRelayProcess, webhook_sink: WebhookSink) -> None:
    with client_for(hook_relay, "relaysms") as rs:
        rs.post("/api/v1/sms/send", json={"to": "+1234560000", "from": "+1987654321", "body": "will fail",
                                          "status_callback": webhook_sink.url + "/mine"}).raise_for_status()
    failed = webhook_sink.wait_for(lambda r: r.json()["status"] == "failed", "failed status")[0]
    assert failed.path == "/mine"
    assert failed.json()["error_code"] and "0000" in failed.json()["error_message"]


def test_coop_webhooks_signed(hook_relay: ReferenceRelayProcess, webhook_sink: WebhookSink) -> None:
    with sim_client(hook_relay) as sim:
        sim.post("/webhooks", json={"dialect": "coop", "url": webhook_sink.url + "/coop"}).raise_for_status()
    with client_for(hook_relay, "coop") as coop:
        message = coop.post("/api/v1/messages", json={"to": "+15551234567", "body": "Hello!"}).json()
    events = webhook_sink.wait_for(lambda r: r.json()["data"]["id"] == message["id"], "coop events", count=3)
    assert [e.json()["event"] for e in events] == ["message.queued", "message.sent", "message.delivered"]
    for e in events:
        verify_coop(e.body, e.headers, [COOP_SECRET])
        assert set(e.json()) == {"event", "timestamp", "data"}
        assert set(e.json()["data"]) == {"id", "status", "to", "from", "body", "error"}
    with pytest.raises(SignatureError):
        verify_coop(events[0].body, {"X-Webhook-Signature": "00" * 32}, [COOP_SECRET])
    with sim_client(hook_relay) as sim:
        sim.post("/inbound", json={"dialect": "coop", "from": "+15551234567", "text": "yo"}).raise_for_status()
    received = webhook_sink.wait_for(lambda r: r.json()["event"] == "message.received", "coop inbound")[0]
    verify_coop(received.body, received.headers, [COOP_SECRET])
    assert received.json()["data"]["body"] == "yo"


def test_smsgate_webhooks_signed(hook_relay: ReferenceRelayProcess, webhook_sink: WebhookSink) -> None:
    with client_for(hook_relay, "smsgate") as sg:
        for event in ("sms:sent", "sms:delivered", "sms:failed", "sms:received"):
            sg.post("/api/3rdparty/v1/webhooks", json={"url": webhook_sink.url + "/sg", "event": event}
                    ).raise_for_status()
        message = sg.post("/api/3rdparty/v1/messages", json={
            "phoneNumbers": ["+12025550100", "+12025550000"], "textMessage": {"text": "hi"}}).json()
    events = webhook_sink.wait_for(lambda r: r.json()["event"] != "sms:received", "smsgate events", count=4)
    by_event = sorted((e.json()["event"], e.json()["payload"]["phoneNumber"]) for e in events)
    assert by_event == [("sms:delivered", "+12025550100"), ("sms:failed", "+12025550000"),
                        ("sms:sent", "+12025550000"), ("sms:sent", "+12025550100")]
    for e in events:
        verify_smsgate(e.body, e.headers, [SMSGATE_SECRET])
        body = e.json()
        assert set(body) == {"deviceId", "event", "id", "webhookId", "payload"}
        assert body["payload"]["messageId"] == message["id"]
    failed = next(e.json() for e in events if e.json()["event"] == "sms:failed")
    assert failed["payload"]["reason"] and failed["payload"]["failedAt"]
    assert len({e.json()["id"] for e in events}) == 4
    with sim_client(hook_relay) as sim:
        sim.post("/inbound", json={"dialect": "smsgate", "from": "+12025550100", "text": "STOP"}).raise_for_status()
    received = webhook_sink.wait_for(lambda r: r.json()["event"] == "sms:received", "smsgate inbound")[0]
    verify_smsgate(received.body, received.headers, [SMSGATE_SECRET])
    assert {"messageId", "message", "phoneNumber", "receivedAt", "simNumber"} <= set(received.json()["payload"])
    assert received.json()["payload"]["message"] == "STOP"


def test_phonerelay_callbacks_filter_and_carry_the_token(hook_relay: ReferenceRelayProcess,
                                                         webhook_sink: WebhookSink) -> None:
    with client_for(hook_relay, "phonerelay") as pr:
        pr.post("/api/v1/webchat/callbacks/inbound", json={
            "callback_url": webhook_sink.url + "/calls", "channels": ["sms", "wa"], "source_filter": "+1555",
            "event_types": ["call", "missed", "answered"], "min_duration_sec": 5, "max_duration_sec": 900,
            "callback_token": "secret-token", "active": True}).raise_for_status()
        pr.post("/api/v1/webchat/callbacks/inbound", json={
            "callback_url": webhook_sink.url + "/support", "keyword_filter": "support",
            "callback_token": "other-token"}).raise_for_status()
    inject = [
        {"channel": "wa", "from": "+15550001111", "event_type": "answered", "duration_sec": 60},  # -> /calls
        {"channel": "wa", "from": "+15550001111", "event_type": "answered", "duration_sec": 2},  # too short
        {"channel": "tg", "from": "+15550001111", "event_type": "missed"},  # channel not selected
        {"channel": "sms", "from": "+4470001111", "event_type": "missed"},  # source filter
        {"channel": "sms", "from": "+4470001111", "text": "need SUPPORT please"},  # -> /support
        {"channel": "sms", "from": "+15551234567", "text": "support loop"},  # loop source: filtered
    ]
    with sim_client(hook_relay) as sim:
        for event in inject:
            sim.post("/inbound", json={"dialect": "phonerelay", "to": "+15551234567", "tags": ["vip"],
                                       "phone_id": "phone_main", **event}).raise_for_status()
        # A last event that matches /calls, so once it arrives every earlier one has been decided.
        sim.post("/inbound", json={"dialect": "phonerelay", "channel": "sms", "from": "+15559999999",
                                   "event_type": "missed", "to": "+15551234567"}).raise_for_status()
    calls = webhook_sink.wait_for(lambda r: r.path == "/calls", "calls callbacks", count=2)
    support = webhook_sink.wait_for(lambda r: r.path == "/support", "support callback")
    wait_until(lambda: sim_deliveries(hook_relay, webhook_sink), lambda ds: all(d["status"] == "delivered" for d in ds),
               "the outbox to drain")
    assert len([r for r in webhook_sink.received if r.path == "/calls"]) == 2
    assert len(support) == 1
    verify_callback_token(calls[0].headers, ["secret-token"])
    verify_callback_token(support[0].headers, ["other-token"])
    with pytest.raises(SignatureError):
        verify_callback_token(support[0].headers, ["secret-token"])
    # The outbox delivers concurrently, so callbacks arrive in any order: take the answered call's.
    (body,) = [r.json() for r in calls if r.json()["events"][0]["event_type"] == "answered"]
    assert body["event"] == "inbound" and "callback_token" not in body["subscription"]
    assert body["subscription"]["callback_url"] == webhook_sink.url + "/calls"
    (event,) = body["events"]
    assert set(event) == {"message_id", "event_type", "channel", "source", "destination", "text", "duration_sec",
                          "tags", "phone_id", "created_at"}
    assert event["message_id"].startswith("in_") and event["duration_sec"] == 60 and event["tags"] == ["vip"]


def sim_deliveries(relay: ReferenceRelayProcess, sink: WebhookSink) -> list[dict]:  # type: ignore[type-arg]
    """Outbox records of deliveries to ``sink`` (other tests' records share the relay)."""
    with sim_client(relay) as sim:
        deliveries = sim.get("/webhook-deliveries", params={"limit": 100_000}).json()["deliveries"]
    return [d for d in deliveries if d["url"].startswith(sink.url)]


def test_retries_keep_the_event_id_and_back_off(hook_relay: ReferenceRelayProcess, webhook_sink: WebhookSink) -> None:
    webhook_sink.fail_first = 2
    with sim_client(hook_relay) as sim:
        sim.post("/webhooks", json={"dialect": "coop", "url": webhook_sink.url + "/flaky"}).raise_for_status()
        sim.post("/inbound", json={"dialect": "coop", "from": "+15551234567", "text": "retry me"}).raise_for_status()
    got = webhook_sink.wait_for(lambda r: True, "delivery after two failures")[0]
    assert got.json()["data"]["body"] == "retry me"
    (delivery,) = wait_until(lambda: sim_deliveries(hook_relay, webhook_sink),
                             lambda ds: ds and ds[0]["status"] == "delivered", "delivered record")
    assert delivery["attempts"] == 3 and delivery["last_status"] == 200 and webhook_sink.attempts == 3


def test_pending_webhooks_survive_kill_9(start_relay, webhook_sink: WebhookSink) -> None:  # type: ignore[no-untyped-def]
    hook_relay = start_relay(delivery_latency=0.1, webhook_secret=SECRET, extra_args=["--webhook-retry-base", "0.2"])
    with client_for(hook_relay, "smsgate") as sg:
        sg.post("/api/3rdparty/v1/webhooks", json={"url": webhook_sink.url + "/sg", "event": "sms:received"}
                ).raise_for_status()
    webhook_sink.fail_first = 10**6  # the receiver is "down"
    with sim_client(hook_relay) as sim:
        sim.post("/inbound", json={"dialect": "smsgate", "from": "+12025550100", "text": "later"}).raise_for_status()
    wait_until(lambda: sim_deliveries(hook_relay, webhook_sink), lambda ds: ds and ds[0]["attempts"] >= 1,
               "a failed attempt")
    (before,) = sim_deliveries(hook_relay, webhook_sink)
    assert before["status"] == "pending" and before["last_status"] == 500
    hook_relay.kill()
    webhook_sink.fail_first = 0
    hook_relay.start()
    got = webhook_sink.wait_for(lambda r: True, "delivery after restart")[0]
    verify_smsgate(got.body, got.headers, [derive_dialect_secret(SECRET, "smsgate")])
    # Same event: the envelope id fixed at enqueue time, unchanged by retries and the restart.
    assert got.json()["id"] == before["event_id"] and json.loads(before["body"])["id"] == before["event_id"]
    (after,) = wait_until(lambda: sim_deliveries(hook_relay, webhook_sink),
                          lambda ds: ds[0]["status"] == "delivered", "record")
    assert after["event_id"] == before["event_id"] and after["attempts"] > before["attempts"]


def test_non_loopback_targets_are_never_contacted(hook_relay: ReferenceRelayProcess) -> None:
    with sim_client(hook_relay) as sim:
        sim.post("/webhooks", json={"dialect": "coop", "url": "https://example.com/hook"}).raise_for_status()
        message_id = sim.post("/inbound", json={"dialect": "coop", "from": "+15551234567", "text": "x"}).json()["id"]

    def fetch() -> list[dict]:  # type: ignore[type-arg]
        with sim_client(hook_relay) as sim:
            return sim.get("/webhook-deliveries", params={"message_id": message_id}).json()[  # type: ignore[no-any-return]
                "deliveries"]

    (delivery,) = wait_until(fetch, lambda ds: ds and ds[0]["status"] != "pending", "skip decision")
    assert delivery["status"] == "skipped" and delivery["attempts"] == 0 and "loopback" in delivery["last_error"]


def test_unsigned_without_secret(start_relay, webhook_sink: WebhookSink) -> None:  # type: ignore[no-untyped-def]
    relay = start_relay(delivery_latency=0.1, extra_args=["--webhook-url", f"coop={webhook_sink.url}/cfg"])
    with client_for(relay, "coop") as coop:
        coop.post("/api/v1/messages", json={"to": "+15551234567", "body": "x"}).raise_for_status()
    got: Received = webhook_sink.wait_for(lambda r: r.path == "/cfg", "configured target")[0]
    assert "x-webhook-signature" not in got.headers
    assert got.json()["event"] == "message.queued"


def test_deliveries_listing_hides_tokens(hook_relay: ReferenceRelayProcess, webhook_sink: WebhookSink) -> None:
    with client_for(hook_relay, "phonerelay") as pr:
        pr.post("/api/v1/webchat/callbacks/inbound", json={"callback_url": webhook_sink.url,
                                                           "callback_token": "tok-123456"}).raise_for_status()
    with sim_client(hook_relay) as sim:
        sim.post("/inbound", json={"dialect": "phonerelay", "from": "+15550001111", "text": "x"}).raise_for_status()
        webhook_sink.wait_for(lambda r: True, "callback")
        listing = sim.get("/webhook-deliveries")
    assert listing.status_code == 200 and "tok-123456" not in listing.text
    assert httpx.get(hook_relay.base_url + "/_sim/webhook-deliveries").status_code == 401


# --- per-dialect secrets (issue 14) ------------------------------------------------------------------------


def test_phonerelay_sends_only_a_callbacks_own_token(hook_relay: ReferenceRelayProcess,
                                                      webhook_sink: WebhookSink) -> None:
    with client_for(hook_relay, "phonerelay") as pr:
        pr.post("/api/v1/webchat/callbacks/inbound", json={"callback_url": webhook_sink.url + "/tokenless"}
                ).raise_for_status()
        pr.post("/api/v1/webchat/callbacks/inbound", json={"callback_url": webhook_sink.url + "/own",
                                                           "callback_token": "own-token-1"}).raise_for_status()
    with sim_client(hook_relay) as sim:
        sim.post("/inbound", json={"dialect": "phonerelay", "from": "+15550001111", "text": "x"}).raise_for_status()
    tokenless = webhook_sink.wait_for(lambda r: r.path == "/tokenless", "tokenless callback")[0]
    own = webhook_sink.wait_for(lambda r: r.path == "/own", "callback with a token")[0]
    assert "x-callback-token" not in tokenless.headers  # was the relay's global secret
    assert tokenless.json()["subscription"]["has_token"] is False
    assert own.headers["x-callback-token"] == "own-token-1"
    for received in (tokenless, own):
        for secret in (MASTER, SECRET, COOP_SECRET, SMSGATE_SECRET):
            assert secret not in str(received.headers)


def test_relaysms_webhooks_go_out_unsigned_unless_told_to_sign(start_relay, webhook_sink: WebhookSink) -> None:  # type: ignore[no-untyped-def]
    relay = start_relay(delivery_latency=0.1, webhook_secret=MASTER,
                        extra_args=["--webhook-url", f"relaysms={webhook_sink.url}/rs",
                                    "--webhook-url", f"coop={webhook_sink.url}/coop"])
    with client_for(relay, "relaysms") as rs:
        rs.post("/api/v1/sms/send", json={"to": "+1234567890", "from": "+1987654321", "body": "hi"}
                ).raise_for_status()
    with client_for(relay, "coop") as coop:
        coop.post("/api/v1/messages", json={"to": "+15551234567", "body": "x"}).raise_for_status()
    got = webhook_sink.wait_for(lambda r: r.path == "/rs", "relaysms status")[0]
    assert not {"webhook-id", "webhook-signature", "webhook-timestamp"} & set(got.headers)
    coop_hook = webhook_sink.wait_for(lambda r: r.path == "/coop", "coop status")[0]
    verify_coop(coop_hook.body, coop_hook.headers, [COOP_SECRET])
    with pytest.raises(SignatureError):  # the master secret itself is never a signing key
        verify_coop(coop_hook.body, coop_hook.headers, [MASTER])


def test_relaysms_signatures_verify_with_the_official_standardwebhooks_library(
    hook_relay: ReferenceRelayProcess, webhook_sink: WebhookSink
) -> None:
    from standardwebhooks import Webhook

    with client_for(hook_relay, "relaysms") as rs:
        rs.put("/api/v1/webhooks", json={"status_url": webhook_sink.url + "/official"}).raise_for_status()
        rs.post("/api/v1/sms/send", json={"to": "+1234567890", "from": "+1987654321", "body": "hi"}
                ).raise_for_status()
    got = webhook_sink.wait_for(lambda r: r.path == "/official", "signed relaysms status")[0]
    payload = Webhook(SECRET).verify(got.body, got.headers)
    assert payload["event"] == "message.status"


@pytest.mark.parametrize("value", ["relaysms=SECRET", "relaysms=whsec_not*base64!"])
def test_relay_refuses_a_relaysms_secret_not_in_standard_webhooks_form(tmp_path, value: str) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "relay_integrations", "serve", "--db", str(tmp_path / "r.db"),
                           "--port", "1", "--webhook-secret", value], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "whsec_" in done.stderr and value.split("=", 1)[1] not in done.stderr

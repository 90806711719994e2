"""The receiver over a real loopback socket: verification, size limit, JSON, storage and de-duplication."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from webhook_payloads import (
    API_KEY,
    DIALECTS,
    OTHER_SECRET,
    SECRET,
    ServedReceiver,
    coop_event,
    encode,
    phonerelay_inbound,
    relaysms_status,
    sample_body,
    signed_headers,
    smsgate_status,
)

from relay_integrations.models import MessageState
from relay_integrations.signing import sign_standard
from relay_integrations.webhooks import WebhookInbox
from relay_integrations.webhooks.receiver import secrets_by_dialect

TIMESTAMPED = ("smsgate", "relaysms")  # dialects whose scheme signs a timestamp


def _stored(receiver: ServedReceiver) -> int:
    return len(receiver.events(limit=1000))


# --- every dialect, signed exactly as the reference relay signs ---------------------------------------
@pytest.mark.parametrize("dialect", DIALECTS)
def test_signed_delivery_of_every_dialect_is_stored_and_parsed(receiver: ServedReceiver, dialect: str) -> None:
    message_id = f"m-{uuid.uuid4().hex[:12]}"
    response = receiver.post(dialect, sample_body(dialect, message_id))
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1

    [event] = receiver.events(dialect=dialect)
    assert event["dialect"] == dialect
    assert event["message_id"] == message_id
    assert event["cursor"] == response.json()["cursors"][0]
    assert event["received_at"]
    if dialect == "phonerelay":
        assert (event["kind"], event["sender"], event["text"]) == ("inbound", "+15550000001", "yes please")
    else:
        assert (event["kind"], event["state"], event["recipient"]) == ("status", "delivered", "+15550000001")


# --- verification: fail closed, nothing stored ------------------------------------------------------------
# phonerelay's callback token signs no body; only a wrong or missing token can be refused (tests below).
@pytest.mark.parametrize("dialect", ["smsgate", "coop", "relaysms"])
def test_forged_signature_is_refused(receiver: ServedReceiver, dialect: str) -> None:
    genuine = encode(sample_body(dialect, "m-genuine"))
    forged = encode(sample_body(dialect, "m-forged"))
    # Headers signed for another body: a captured signature replayed on a tampered body.
    response = receiver.post(dialect, forged, headers=signed_headers(dialect, genuine))
    assert response.status_code == 401
    assert _stored(receiver) == 0


@pytest.mark.parametrize("dialect", DIALECTS)
def test_wrong_secret_is_refused(receiver: ServedReceiver, dialect: str) -> None:
    response = receiver.post(dialect, sample_body(dialect, "m-1"), secret=OTHER_SECRET)
    assert response.status_code == 401
    assert "signature verification failed" in response.json()["error"]
    assert _stored(receiver) == 0


@pytest.mark.parametrize("dialect", DIALECTS)
def test_missing_signature_headers_are_refused(receiver: ServedReceiver, dialect: str) -> None:
    response = receiver.post(dialect, sample_body(dialect, "m-1"), headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert _stored(receiver) == 0


@pytest.mark.parametrize("dialect", TIMESTAMPED)
@pytest.mark.parametrize("offset", [-301, 301, -3600, 86400])
def test_stale_and_future_timestamps_are_refused(receiver: ServedReceiver, dialect: str, offset: int) -> None:
    response = receiver.post(dialect, sample_body(dialect, "m-1"), timestamp=int(time.time()) + offset)
    assert response.status_code == 401
    assert "tolerance" in response.json()["error"]
    assert _stored(receiver) == 0


@pytest.mark.parametrize("dialect", TIMESTAMPED)
@pytest.mark.parametrize("offset", [-290, 290])
def test_timestamps_within_five_minutes_are_accepted(receiver: ServedReceiver, dialect: str, offset: int) -> None:
    response = receiver.post(dialect, sample_body(dialect, "m-1"), timestamp=int(time.time()) + offset)
    assert response.status_code == 200


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_secret_configured_fails_closed(start_receiver: Callable[..., ServedReceiver], dialect: str) -> None:
    receiver = start_receiver(secrets=[])
    response = receiver.post(dialect, sample_body(dialect, "m-1"))
    assert response.status_code == 401
    assert _stored(receiver) == 0


def test_rotation_accepts_old_and_new_secret(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(secrets=[SECRET, OTHER_SECRET])
    for dialect in DIALECTS:
        assert receiver.post(dialect, sample_body(dialect, f"old-{dialect}"), secret=SECRET).status_code == 200
        assert receiver.post(dialect, sample_body(dialect, f"new-{dialect}"), secret=OTHER_SECRET).status_code == 200
        third = "whsec_" + "dGhpcmQtc2VjcmV0LW5vdC1jb25maWd1cmVk"
        assert receiver.post(dialect, sample_body(dialect, f"bad-{dialect}"), secret=third).status_code == 401
    assert _stored(receiver) == 8


def test_standard_webhooks_sender_signing_with_several_secrets(receiver: ServedReceiver) -> None:
    # A sender mid-rotation puts one signature per secret in webhook-signature; one known one is enough.
    raw = encode(relaysms_status("m-rot"))
    headers = {"Content-Type": "application/json",
               **sign_standard(raw, ["whsec_dW5rbm93bi1rZXk=", SECRET], "msg_rot_1")}
    assert receiver.post("relaysms", raw, headers=headers).status_code == 200


def test_per_dialect_secrets(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(secrets={"smsgate": [SECRET], "coop": OTHER_SECRET})
    assert receiver.post("smsgate", smsgate_status("m-1", "+15550000001")).status_code == 200
    assert receiver.post("coop", coop_event("m-2"), secret=OTHER_SECRET).status_code == 200
    # Each dialect's secret is its own: the smsgate secret does not sign coop deliveries...
    assert receiver.post("coop", coop_event("m-3"), secret=SECRET).status_code == 401
    # ...and a dialect with no secret refuses everything.
    assert receiver.post("relaysms", relaysms_status("m-4")).status_code == 401
    assert _stored(receiver) == 2


def test_secrets_config_is_validated_without_echoing_secrets() -> None:
    with pytest.raises(ValueError, match="unknown dialect 'twilio'"):
        secrets_by_dialect({"twilio": ["s"]})
    with pytest.raises(ValueError, match="not base64") as info:
        secrets_by_dialect(["whsec_not*base64!"])
    assert "not*base64" not in str(info.value)
    assert secrets_by_dialect({"*": ["a"], "coop": ["b", "a"]})["coop"] == ("a", "b")
    assert secrets_by_dialect("only")["relaysms"] == ("only",)


# --- size limit and malformed bodies ----------------------------------------------------------------
@pytest.mark.parametrize("dialect", DIALECTS)
def test_oversized_body_gets_413(start_receiver: Callable[..., ServedReceiver], dialect: str) -> None:
    receiver = start_receiver(max_body_bytes=2048)
    body = sample_body(dialect, "m-big")
    body["padding"] = "x" * 4096
    response = receiver.post(dialect, body)
    assert response.status_code == 413
    assert _stored(receiver) == 0


def test_oversized_chunked_body_without_length_gets_413(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(max_body_bytes=2048)
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        # Far more than the limit, streamed without Content-Length: the receiver must stop reading.
        for _ in range(64):
            sent.append(1)
            yield b"x" * 1024

    raw_headers = signed_headers("coop", b"")
    try:
        response = receiver.client.post(receiver.url("coop"), content=chunks(), headers=raw_headers)
        assert response.status_code == 413
    except httpx.TransportError:
        pass  # the server may close the connection before the client finished sending: also a refusal
    assert _stored(receiver) == 0


def test_body_at_the_limit_is_accepted(start_receiver: Callable[..., ServedReceiver]) -> None:
    raw = encode(coop_event("m-limit"))
    receiver = start_receiver(max_body_bytes=len(raw))
    assert receiver.post("coop", raw).status_code == 200


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("raw", [b'{"event": "sms:sent", ', b"\xff\xfe not utf-8", b"[1, 2, 3]", b""])
def test_malformed_json_is_400_when_signed(receiver: ServedReceiver, dialect: str, raw: bytes) -> None:
    response = receiver.post(dialect, raw)
    assert response.status_code == 400
    assert _stored(receiver) == 0


def test_malformed_json_with_bad_signature_is_401_not_400(receiver: ServedReceiver) -> None:
    # Verification comes first: an unauthenticated sender learns nothing about parsing.
    response = receiver.post("coop", b"{not json", secret=OTHER_SECRET)
    assert response.status_code == 401


def test_unknown_dialect_is_404(receiver: ServedReceiver) -> None:
    response = receiver.client.post(f"{receiver.base_url}/webhooks/twilio", content=b"{}")
    assert response.status_code == 404


# --- duplicates and order ---------------------------------------------------------------------------
def test_replayed_standard_webhook_is_stored_once(receiver: ServedReceiver) -> None:
    raw = encode(relaysms_status("m-replay"))
    first = receiver.post("relaysms", raw, event_id="msg_2Xa1")
    replay = receiver.post("relaysms", raw, event_id="msg_2Xa1")
    assert (first.status_code, replay.status_code) == (200, 200)
    assert (first.json()["stored"], replay.json()["stored"], replay.json()["duplicates"]) == (1, 0, 1)
    assert len(receiver.events(message_id="m-replay")) == 1


def test_replayed_smsgate_envelope_is_stored_once(receiver: ServedReceiver) -> None:
    body = smsgate_status("m-env", "+15550000001", envelope_id="evt_same")
    assert receiver.post("smsgate", body).json()["stored"] == 1
    # A retry carries a fresh X-Timestamp, hence a different signature, and the same envelope id.
    again = receiver.post("smsgate", body, timestamp=int(time.time()) - 30)
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    assert len(receiver.events(message_id="m-env")) == 1


def test_duplicate_delivery_under_a_new_envelope_id_is_stored_once(receiver: ServedReceiver) -> None:
    # The real smsgate app re-sends a status with the same messageId and a different envelope id.
    assert receiver.post("smsgate", smsgate_status("m-dup", "+15550000001", envelope_id="evt_a")).json()["stored"] == 1
    again = receiver.post("smsgate", smsgate_status("m-dup", "+15550000001", envelope_id="evt_b"))
    assert again.status_code == 200
    assert again.json() == {"stored": 0, "duplicates": 1, "cursors": []}
    # Another recipient of the same message is another event.
    other = receiver.post("smsgate", smsgate_status("m-dup", "+15550000002", envelope_id="evt_c"))
    assert other.json()["stored"] == 1
    assert len(receiver.events(message_id="m-dup")) == 2


def test_duplicate_phonerelay_inbound_is_stored_once(receiver: ServedReceiver) -> None:
    body = phonerelay_inbound("in_42", "+15550000001", "STOP")
    assert receiver.post("phonerelay", body).json()["stored"] == 1
    assert receiver.post("phonerelay", body).json()["duplicates"] == 1
    assert len(receiver.events(dialect="phonerelay")) == 1


@pytest.mark.parametrize("dialect", ["smsgate", "coop", "relaysms"])
def test_out_of_order_delivery_never_moves_state_backwards(receiver: ServedReceiver, dialect: str) -> None:
    builders = {
        "smsgate": lambda state: smsgate_status("m-ooo", "+15550000001", state),
        "coop": lambda state: coop_event("m-ooo", state),
        "relaysms": lambda state: relaysms_status("m-ooo", state),
    }
    inbox = WebhookInbox(receiver.db_path)
    assert receiver.post(dialect, builders[dialect]("delivered")).status_code == 200
    assert receiver.post(dialect, builders[dialect]("sent")).status_code == 200
    assert [e["state"] for e in receiver.events(message_id="m-ooo")] == ["delivered", "sent"]
    assert inbox.message_state("m-ooo") is MessageState.DELIVERED
    remote = WebhookInbox.remote(receiver.base_url, API_KEY)
    assert remote.message_state("m-ooo") is MessageState.DELIVERED


# --- GET /events ------------------------------------------------------------------------------------
def test_events_needs_the_api_key(receiver: ServedReceiver) -> None:
    receiver.post("coop", coop_event("m-1"))
    url = f"{receiver.base_url}/events"
    assert receiver.client.get(url).status_code == 401
    assert receiver.client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert receiver.client.get(url, headers={"Authorization": f"Basic {API_KEY}"}).status_code == 401
    assert len(receiver.events()) == 1


def test_events_without_configured_api_key_refuses_everyone(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(api_key=None)
    url = f"{receiver.base_url}/events"
    assert receiver.client.get(url).status_code == 401
    assert receiver.client.get(url, headers={"Authorization": "Bearer x"}).status_code == 401


def test_events_rejects_unknown_filters(receiver: ServedReceiver) -> None:
    response = receiver.client.get(f"{receiver.base_url}/events", params={"colour": "red"},
                                   headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 400
    assert "colour" in response.json()["error"]


def test_health(receiver: ServedReceiver) -> None:
    assert receiver.client.get(f"{receiver.base_url}/health").json() == {"status": "ok"}


# --- secrets stay out of logs -------------------------------------------------------------------------
def test_logs_name_dialect_and_event_but_never_a_secret(receiver: ServedReceiver,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="relay_integrations.webhooks")
    receiver.post("relaysms", relaysms_status("m-log"), event_id="msg_logged_1")
    receiver.post("coop", coop_event("m-log2"), secret=OTHER_SECRET)
    receiver.post("phonerelay", phonerelay_inbound("in_log", "+15550000001", "hi"), secret=OTHER_SECRET)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "msg_logged_1" in text and "relaysms" in text
    assert "rejected coop webhook" in text
    for secret in (SECRET, OTHER_SECRET, SECRET.removeprefix("whsec_"), OTHER_SECRET.removeprefix("whsec_")):
        assert secret not in text

"""The receiver over a real loopback socket: verification, size limit, JSON, storage and de-duplication.

Most tests share one receiver per module (``shared``) and use unique message ids; "nothing stored"
is checked as "the number of stored events did not change".
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator

import anyio
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
from relay_integrations.signing import derive_dialect_secret, sign_standard
from relay_integrations.webhooks import WebhookInbox
from relay_integrations.webhooks.receiver import secrets_by_dialect

TIMESTAMPED = ("smsgate", "relaysms")  # dialects whose scheme signs a timestamp
UNKNOWN_SECRET = "whsec_dGhpcmQtc2VjcmV0LW5vdC1jb25maWd1cmVk"


def _uid(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _count(receiver: ServedReceiver) -> int:
    return len(receiver.events(limit=1000))


@pytest.fixture
def shared(shared_receiver: ServedReceiver) -> Iterator[ServedReceiver]:
    """The module's receiver (short name)."""
    yield shared_receiver


# --- every dialect, signed exactly as the reference relay signs ---------------------------------------
@pytest.mark.parametrize("dialect", DIALECTS)
def test_signed_delivery_of_every_dialect_is_stored_and_parsed(shared: ServedReceiver, dialect: str) -> None:
    message_id = _uid()
    response = shared.post(dialect, sample_body(dialect, message_id))
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1

    [event] = shared.events(message_id=message_id)
    assert event["dialect"] == dialect
    assert event["cursor"] == response.json()["cursors"][0]
    assert event["received_at"]
    if dialect == "phonerelay":
        assert (event["kind"], event["sender"], event["text"]) == ("inbound", "+15550000001", "yes please")
    else:
        assert (event["kind"], event["state"], event["recipient"]) == ("status", "delivered", "+15550000001")


# --- verification: fail closed, nothing stored ------------------------------------------------------------
# phonerelay's callback token signs no body; only a wrong or missing token can be refused (tests below).
@pytest.mark.parametrize("dialect", ["smsgate", "coop", "relaysms"])
def test_forged_signature_is_refused(shared: ServedReceiver, dialect: str) -> None:
    before = _count(shared)
    genuine = encode(sample_body(dialect, _uid()))
    forged = encode(sample_body(dialect, _uid()))
    # Headers signed for another body: a captured signature replayed on a tampered body.
    response = shared.post(dialect, forged, headers=signed_headers(dialect, genuine))
    assert response.status_code == 401
    assert _count(shared) == before


@pytest.mark.parametrize("dialect", DIALECTS)
def test_wrong_secret_is_refused(shared: ServedReceiver, dialect: str) -> None:
    before = _count(shared)
    response = shared.post(dialect, sample_body(dialect, _uid()), secret=OTHER_SECRET)
    assert response.status_code == 401
    assert "signature verification failed" in response.json()["error"]
    assert _count(shared) == before


@pytest.mark.parametrize("dialect", ["smsgate", "coop", "relaysms"])
def test_every_refusal_answers_the_same_body(shared: ServedReceiver, dialect: str) -> None:
    """Forged, wrong secret, missing headers: one 401 body, so nobody learns which check failed."""
    genuine = encode(sample_body(dialect, _uid()))
    answers = [
        shared.post(dialect, encode(sample_body(dialect, _uid())), headers=signed_headers(dialect, genuine)),
        shared.post(dialect, sample_body(dialect, _uid()), secret=OTHER_SECRET),
        shared.post(dialect, sample_body(dialect, _uid()), headers={"Content-Type": "application/json"}),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert len({a.content for a in answers}) == 1, [a.text for a in answers]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_missing_signature_headers_are_refused(shared: ServedReceiver, dialect: str) -> None:
    before = _count(shared)
    response = shared.post(dialect, sample_body(dialect, _uid()), headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert _count(shared) == before


@pytest.mark.parametrize("dialect", TIMESTAMPED)
@pytest.mark.parametrize("offset", [-301, 301, -3600, 86400])
def test_stale_and_future_timestamps_are_refused(shared: ServedReceiver, dialect: str, offset: int) -> None:
    before = _count(shared)
    response = shared.post(dialect, sample_body(dialect, _uid()), timestamp=int(time.time()) + offset)
    assert response.status_code == 401
    assert response.json()["error"] == "signature verification failed"  # the reason is in our log only
    assert _count(shared) == before


@pytest.mark.parametrize("dialect", TIMESTAMPED)
@pytest.mark.parametrize("offset", [-290, 290])
def test_timestamps_within_five_minutes_are_accepted(shared: ServedReceiver, dialect: str, offset: int) -> None:
    response = shared.post(dialect, sample_body(dialect, _uid()), timestamp=int(time.time()) + offset)
    assert response.status_code == 200


def test_no_secret_configured_fails_closed(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(secrets=[])
    for dialect in DIALECTS:
        assert receiver.post(dialect, sample_body(dialect, _uid())).status_code == 401
    assert _count(receiver) == 0


def test_rotation_accepts_old_and_new_secret(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(secrets=[SECRET, OTHER_SECRET])
    for dialect in DIALECTS:
        assert receiver.post(dialect, sample_body(dialect, _uid()), secret=SECRET).status_code == 200
        assert receiver.post(dialect, sample_body(dialect, _uid()), secret=OTHER_SECRET).status_code == 200
        assert receiver.post(dialect, sample_body(dialect, _uid()), secret=UNKNOWN_SECRET).status_code == 401
    assert _count(receiver) == 8


def test_standard_webhooks_sender_signing_with_several_secrets(shared: ServedReceiver) -> None:
    # A sender mid-rotation puts one signature per secret in webhook-signature; one known one is enough.
    raw = encode(relaysms_status(_uid()))
    keys = [UNKNOWN_SECRET, derive_dialect_secret(SECRET, "relaysms")]
    headers = {"Content-Type": "application/json", **sign_standard(raw, keys, _uid("msg"))}
    assert shared.post("relaysms", raw, headers=headers).status_code == 200
    only_unknown = {"Content-Type": "application/json", **sign_standard(raw, [UNKNOWN_SECRET], _uid("msg"))}
    assert shared.post("relaysms", raw, headers=only_unknown).status_code == 401


def test_per_dialect_secrets(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(secrets={"smsgate": [SECRET], "coop": OTHER_SECRET})
    assert receiver.post("smsgate", smsgate_status("m-1", "+15550000001"), verbatim=True).status_code == 200
    assert receiver.post("coop", coop_event("m-2"), secret=OTHER_SECRET, verbatim=True).status_code == 200
    # Each dialect's secret is its own: the smsgate secret does not sign coop deliveries...
    assert receiver.post("coop", coop_event("m-3"), secret=SECRET, verbatim=True).status_code == 401
    # ...and a dialect with no secret refuses everything.
    assert receiver.post("relaysms", relaysms_status("m-4"), verbatim=True).status_code == 401
    assert _count(receiver) == 2


def test_secrets_config_is_validated_without_echoing_secrets() -> None:
    with pytest.raises(ValueError, match="unknown dialect 'twilio'"):
        secrets_by_dialect({"twilio": ["s"]})
    with pytest.raises(ValueError, match="not base64") as info:
        secrets_by_dialect({"relaysms": ["whsec_not*base64!"]})
    assert "not*base64" not in str(info.value)
    # relaysms secrets are Standard Webhooks secrets: the README's old example "SECRET" is refused.
    with pytest.raises(ValueError, match="whsec_<base64>") as info:
        secrets_by_dialect({"relaysms": ["SECRET"]})
    assert "SECRET" not in str(info.value).replace("secret", "")
    with pytest.raises(ValueError, match="empty"):
        secrets_by_dialect([""])
    # A master secret ("*", a list, a string) gives each dialect a derived secret of its own.
    assert secrets_by_dialect({"*": ["a"], "coop": ["b"]})["coop"] == ("b", derive_dialect_secret("a", "coop"))
    derived = secrets_by_dialect("only")
    assert derived["relaysms"] == (derive_dialect_secret("only", "relaysms"),)
    assert derived["relaysms"][0].startswith("whsec_")
    assert len({v for values in derived.values() for v in values}) == len(derived) == 4
    assert "only" not in {v for values in derived.values() for v in values}


# --- size limit and malformed bodies ----------------------------------------------------------------
def test_oversized_body_gets_413(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(max_body_bytes=2048)
    for dialect in DIALECTS:
        body = sample_body(dialect, _uid())
        body["padding"] = "x" * 4096
        assert receiver.post(dialect, body).status_code == 413
    assert _count(receiver) == 0


def test_oversized_chunked_body_without_length_gets_413(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(max_body_bytes=2048)

    def chunks() -> Iterator[bytes]:
        # Far more than the limit, streamed without Content-Length: the receiver must stop reading.
        for _ in range(64):
            yield b"x" * 1024

    try:
        response = receiver.client.post(receiver.url("coop"), content=chunks(), headers=signed_headers("coop", b""))
        assert response.status_code == 413
    except httpx.TransportError:
        pass  # the server may close the connection before the client finished sending: also a refusal
    assert _count(receiver) == 0


def test_body_at_the_limit_is_accepted(start_receiver: Callable[..., ServedReceiver]) -> None:
    raw = encode(coop_event("m-limit"))
    receiver = start_receiver(max_body_bytes=len(raw))
    assert receiver.post("coop", raw).status_code == 200


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("raw", [b'{"event": "sms:sent", ', b"\xff\xfe not utf-8", b"[1, 2, 3]", b""])
def test_malformed_json_is_400_when_signed(shared: ServedReceiver, dialect: str, raw: bytes) -> None:
    before = _count(shared)
    response = shared.post(dialect, raw)
    assert response.status_code == 400
    assert _count(shared) == before


def test_malformed_json_with_bad_signature_is_401_not_400(shared: ServedReceiver) -> None:
    # Verification comes first: an unauthenticated sender learns nothing about parsing.
    assert shared.post("coop", b"{not json", secret=OTHER_SECRET).status_code == 401


def test_unknown_dialect_is_404(shared: ServedReceiver) -> None:
    assert shared.client.post(f"{shared.base_url}/webhooks/twilio", content=b"{}").status_code == 404


# --- duplicates and order ---------------------------------------------------------------------------
def test_replayed_standard_webhook_is_stored_once(shared: ServedReceiver) -> None:
    message_id, webhook_id = _uid(), _uid("msg")
    raw = encode(relaysms_status(message_id))
    first = shared.post("relaysms", raw, event_id=webhook_id)
    replay = shared.post("relaysms", raw, event_id=webhook_id)
    assert (first.status_code, replay.status_code) == (200, 200)
    assert (first.json()["stored"], replay.json()["stored"], replay.json()["duplicates"]) == (1, 0, 1)
    assert len(shared.events(message_id=message_id)) == 1


def test_replayed_smsgate_envelope_is_stored_once(shared: ServedReceiver) -> None:
    message_id = _uid()
    body = smsgate_status(message_id, "+15550000001", envelope_id=_uid("evt"))
    assert shared.post("smsgate", body).json()["stored"] == 1
    # A retry carries a fresh X-Timestamp, hence a different signature, and the same envelope id.
    again = shared.post("smsgate", body, timestamp=int(time.time()) - 30)
    assert again.status_code == 200
    assert again.json()["duplicates"] == 1
    assert len(shared.events(message_id=message_id)) == 1


def test_duplicate_delivery_under_a_new_envelope_id_is_stored_once(shared: ServedReceiver) -> None:
    # The real smsgate app re-sends a status with the same messageId and a different envelope id.
    message_id = _uid()
    assert shared.post("smsgate", smsgate_status(message_id, "+15550000001")).json()["stored"] == 1
    again = shared.post("smsgate", smsgate_status(message_id, "+15550000001"))
    assert again.status_code == 200
    assert again.json() == {"stored": 0, "duplicates": 1, "cursors": []}
    # Another recipient of the same message is another event.
    assert shared.post("smsgate", smsgate_status(message_id, "+15550000002")).json()["stored"] == 1
    assert len(shared.events(message_id=message_id)) == 2


def test_duplicate_phonerelay_inbound_is_stored_once(shared: ServedReceiver) -> None:
    message_id = _uid("in")
    body = phonerelay_inbound(message_id, "+15550000001", "STOP")
    assert shared.post("phonerelay", body).json()["stored"] == 1
    assert shared.post("phonerelay", body).json()["duplicates"] == 1
    assert len(shared.events(message_id=message_id)) == 1


@pytest.mark.anyio
async def test_concurrent_deliveries_all_committed_and_concurrent_duplicates_stored_once(
    shared: ServedReceiver,
) -> None:
    # Deliveries arriving together are committed together (group commit); each still gets its own
    # answer, and copies of one delivery inside the same commit are still stored once.
    ids = [_uid() for _ in range(24)]
    dup_id = _uid()
    dup_raw = encode(coop_event(dup_id))
    answers: list[httpx.Response] = []

    async with httpx.AsyncClient(timeout=30) as client:
        async def post(raw: bytes) -> None:
            answers.append(await client.post(shared.url("coop"), content=raw, headers=signed_headers("coop", raw)))

        async with anyio.create_task_group() as tg:
            for message_id in ids:
                tg.start_soon(post, encode(coop_event(message_id)))
            for _ in range(8):
                tg.start_soon(post, dup_raw)
    assert [a.status_code for a in answers] == [200] * 32
    assert sum(a.json()["stored"] for a in answers) == 25
    assert sum(a.json()["duplicates"] for a in answers) == 7
    cursors = [c for a in answers for c in a.json()["cursors"]]
    assert len(set(cursors)) == 25
    assert len(shared.events(message_id=dup_id)) == 1


@pytest.mark.parametrize("dialect", ["smsgate", "coop", "relaysms"])
def test_out_of_order_delivery_never_moves_state_backwards(shared: ServedReceiver, dialect: str) -> None:
    message_id = _uid()
    builders = {
        "smsgate": lambda state: smsgate_status(message_id, "+15550000001", state),
        "coop": lambda state: coop_event(message_id, state),
        "relaysms": lambda state: relaysms_status(message_id, state),
    }
    assert shared.post(dialect, builders[dialect]("delivered")).status_code == 200
    assert shared.post(dialect, builders[dialect]("sent")).status_code == 200
    assert [e["state"] for e in shared.events(message_id=message_id)] == ["delivered", "sent"]
    assert WebhookInbox(shared.db_path).message_state(message_id) is MessageState.DELIVERED
    assert WebhookInbox.remote(shared.base_url, API_KEY).message_state(message_id) is MessageState.DELIVERED


# --- GET /events ------------------------------------------------------------------------------------
def test_events_needs_the_api_key(shared: ServedReceiver) -> None:
    shared.post("coop", coop_event(_uid()))
    url = f"{shared.base_url}/events"
    assert shared.client.get(url).status_code == 401
    assert shared.client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert shared.client.get(url, headers={"Authorization": f"Basic {API_KEY}"}).status_code == 401
    assert len(shared.events()) >= 1


def test_events_without_configured_api_key_refuses_everyone(start_receiver: Callable[..., ServedReceiver]) -> None:
    receiver = start_receiver(api_key=None)
    url = f"{receiver.base_url}/events"
    assert receiver.client.get(url).status_code == 401
    assert receiver.client.get(url, headers={"Authorization": "Bearer x"}).status_code == 401


def test_events_rejects_unknown_filters(shared: ServedReceiver) -> None:
    response = shared.client.get(f"{shared.base_url}/events", params={"colour": "red"},
                                 headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 400
    assert "colour" in response.json()["error"]


def test_health(shared: ServedReceiver) -> None:
    assert shared.client.get(f"{shared.base_url}/health").json() == {"status": "ok"}


# --- secrets stay out of logs -------------------------------------------------------------------------
def test_logs_name_dialect_and_event_but_never_a_secret(shared: ServedReceiver,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="relay_integrations.webhooks")
    webhook_id = _uid("msg")
    shared.post("relaysms", relaysms_status(_uid()), event_id=webhook_id)
    shared.post("coop", coop_event(_uid()), secret=OTHER_SECRET)
    shared.post("phonerelay", phonerelay_inbound(_uid("in"), "+15550000001", "hi"), secret=OTHER_SECRET)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"stored relaysms webhook event {webhook_id}" in text
    assert "rejected coop webhook" in text and "rejected phonerelay webhook" in text
    for secret in (SECRET, OTHER_SECRET, SECRET.removeprefix("whsec_"), OTHER_SECRET.removeprefix("whsec_")):
        assert secret not in text

"""Every example in the four relay docs, replayed over HTTP against a real reference relay process.

A private relay (module scope) so the docs' fixed idempotency keys start unused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from relay_server_helpers import auth_for, client_for, wait_until

from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

API_KEY = "doc-examples-key"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def doc_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRelayProcess]:
    tmp = tmp_path_factory.mktemp("doc-relay")
    proc = ReferenceRelayProcess(
        db_path=tmp / "relay.db", api_key=API_KEY, delivery_latency=0.1, webhook_secret="doc-secret",
        extra_args=["--numbers", "+1987654321", "+18882034193"], log_path=tmp / "relay.log",
    )
    with proc:
        yield proc


@pytest.fixture(scope="module")
def pr(doc_relay: ReferenceRelayProcess) -> Iterator[httpx.Client]:
    with client_for(doc_relay, "phonerelay") as c:
        yield c


@pytest.fixture(scope="module")
def rs(doc_relay: ReferenceRelayProcess) -> Iterator[httpx.Client]:
    with client_for(doc_relay, "relaysms") as c:
        yield c


@pytest.fixture(scope="module")
def coop(doc_relay: ReferenceRelayProcess) -> Iterator[httpx.Client]:
    with client_for(doc_relay, "coop") as c:
        yield c


@pytest.fixture(scope="module")
def sg(doc_relay: ReferenceRelayProcess) -> Iterator[httpx.Client]:
    with client_for(doc_relay, "smsgate") as c:
        yield c


def test_docs_are_where_the_tests_expect_them() -> None:
    docs = Path("/work/shared/relay-docs")
    if docs.exists():
        assert {"phonerelay.md", "relaysms.md", "coop.md", "smsgate.md"} <= {p.name for p in docs.iterdir()}


# --- phonerelay -------------------------------------------------------------------------------------

SEND_EXAMPLE = {"phone_id": "phone_main", "channel": "sms", "to": "+15551234567", "text": "hello",
                "source": "my-app", "idempotency_key": "my-unique-id-001"}


def test_phonerelay_send_then_duplicate(pr: httpx.Client) -> None:
    first = pr.post("/api/v1/messages", json=SEND_EXAMPLE)
    assert first.status_code == 202
    body = first.json()
    assert body["success"] is True and body["status"] == "queued"
    assert body["message_id"].startswith("msg_")
    assert body["idempotency_key"] == "my-unique-id-001"
    again = pr.post("/api/v1/messages", json=SEND_EXAMPLE)
    assert again.status_code == 200
    dup = again.json()
    assert dup["success"] is True and dup["duplicate"] is True
    assert dup["message_id"] == body["message_id"]
    assert dup["idempotency_key"] == "my-unique-id-001"
    assert dup["status"] in ("queued", "sending", "sent", "failed")


@pytest.mark.parametrize("source", ["curl", "python", "cpp", "node", "go", "java", "csharp"])
def test_phonerelay_language_examples_share_one_message(pr: httpx.Client, source: str) -> None:
    payload = {"phone_id": "phone_main", "channel": "sms", "to": "+15551234567", "text": "hello",
               "source": source, "idempotency_key": "sms-001"}
    response = pr.post("/api/v1/messages", json=payload)
    assert response.status_code in (200, 202)
    ids = {pr.post("/api/v1/messages", json=payload).json()["message_id"] for _ in range(2)}
    assert ids == {response.json()["message_id"]}
    listed = pr.get("/api/v1/messages", params={"limit": 500}).json()["messages"]
    assert sum(1 for m in listed if m["idempotency_key"] == "sms-001") == 1


@pytest.mark.parametrize(("payload", "status"), [
    ({"phone_id": "phone_main", "channel": "wa", "to": "+15551234567", "text": "hello"}, "queued"),
    ({"phone_id": "phone_main", "channel": "tg", "to": "@name", "text": "hello"}, "queued"),
    ({"phone_id": "phone_main", "channel": "notify", "title": "Alert", "text": "hello"}, "queued"),
    ({"phone_id": "phone_main", "channel": "email", "to": "me@example.com", "subject": "Hi", "text": "hello"}, "sent"),
    ({"phone_id": "phone_main", "channel": "tg_bot", "to": "123456789", "bot_token": "...", "text": "hello"}, "sent"),
])
def test_phonerelay_quick_variants(pr: httpx.Client, payload: dict[str, str], status: str) -> None:
    response = pr.post("/api/v1/messages", json=payload)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == status


def test_phonerelay_check_status_and_delivery(pr: httpx.Client) -> None:
    sent = pr.post("/api/v1/messages", json={**SEND_EXAMPLE, "idempotency_key": "status-check"}).json()
    message = pr.get(f"/api/v1/messages/{sent['message_id']}").json()
    assert message["success"] is True
    fields = message["message"]
    assert {"message_id", "status", "last_error", "created_at", "delivered_at"} <= fields.keys()
    assert fields["status"] in ("queued", "sending", "sent", "failed")
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00$", fields["created_at"])
    done = wait_until(lambda: pr.get(f"/api/v1/messages/{sent['message_id']}").json()["message"],
                      lambda m: m["delivered_at"] is not None, "phonerelay delivery")
    assert done["status"] == "sent" and done["last_error"] is None


def test_phonerelay_list_recent_and_health(pr: httpx.Client) -> None:
    pr.post("/api/v1/messages", json={**SEND_EXAMPLE, "idempotency_key": "list-check"})
    listed = pr.get("/api/v1/messages", params={"limit": 50})
    assert listed.status_code == 200
    body = listed.json()
    assert body["success"] is True and 1 <= len(body["messages"]) <= 50
    assert pr.get("/health").status_code == 200


def test_phonerelay_inbound_query_example(pr: httpx.Client, doc_relay: ReferenceRelayProcess) -> None:
    with httpx.Client(base_url=doc_relay.base_url, headers={"Authorization": f"Bearer {API_KEY}"}) as sim:
        for event_type, duration in (("missed", None), ("answered", 30), ("call", 12)):
            r = sim.post("/_sim/inbound", json={
                "dialect": "phonerelay", "channel": "wa", "from": "+15550001111", "to": "+15551234567",
                "event_type": event_type, "duration_sec": duration, "tags": ["vip"], "phone_id": "phone_main"})
            assert r.status_code == 201, r.text
    pr.post("/api/v1/messages", json={"phone_id": "phone_main", "channel": "wa", "to": "+15550001111",
                                      "text": "call you back"})
    query = {"phone_id": "phone_main", "range": "7d", "channels": ["sms", "wa", "tg"],
             "event_types": ["call", "missed", "answered"], "tags": ["vip", "support"], "tag_mode": "any",
             "source_contains": "+1555", "min_duration_sec": 10, "has_response": True, "sort": "slowest",
             "limit": 200}
    response = pr.post("/api/v1/webchat/inbound/query", json=query)
    assert response.status_code == 200, response.text
    body = response.json()
    for key in ("success", "summary", "sent_summary", "sent_by_channel", "sent_by_day", "sent_by_person",
                "sent_by_tag", "sent_events", "email_report", "hourly", "top_contacts", "events", "count"):
        assert key in body
    for key in ("inbound_total", "calls_total", "messages_total", "answered_calls", "missed_calls",
                "avg_call_duration_sec", "median_response_min", "channels"):
        assert key in body["summary"]
    for key in ("inbound_total", "sent_total", "top_inbound_senders", "top_sent_recipients", "domains", "by_day"):
        assert key in body["email_report"]
    # min_duration_sec 10 drops the missed call (no duration); the reply came after both calls.
    assert body["count"] == 2
    assert {e["event_type"] for e in body["events"]} == {"answered", "call"}
    assert body["summary"]["avg_call_duration_sec"] == 21
    assert body["summary"]["answered_calls"] == 1 and body["summary"]["missed_calls"] == 0


def test_phonerelay_callbacks_example(pr: httpx.Client) -> None:
    created = pr.post("/api/v1/webchat/callbacks/inbound", json={
        "callback_url": "https://example.com/inbound-hook", "channels": ["sms", "wa"], "source_filter": "+1555",
        "event_types": ["call", "missed", "answered"], "keyword_filter": "support", "min_duration_sec": 5,
        "max_duration_sec": 900, "callback_token": "secret-token", "active": True})
    assert created.status_code in (200, 201), created.text
    callback = created.json()["callback"]
    assert callback["callback_url"] == "https://example.com/inbound-hook"
    assert "callback_token" not in callback and "secret-token" not in created.text
    listed = pr.get("/api/v1/webchat/callbacks/inbound").json()["callbacks"]
    assert callback["id"] in {c["id"] for c in listed}
    assert pr.delete("/api/v1/webchat/callbacks/inbound", params={"id": callback["id"]}).status_code == 200
    assert callback["id"] not in {c["id"] for c in pr.get("/api/v1/webchat/callbacks/inbound").json()["callbacks"]}


# --- relaysms ---------------------------------------------------------------------------------------


def _envelope(response: httpx.Response, status: int = 200) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    body = response.json()
    assert ISO_Z.match(body["timestamp"]) and isinstance(body["unix_timestamp"], int)
    return body["data"]  # type: ignore[no-any-return]


def test_relaysms_send_get_log_list(rs: httpx.Client) -> None:
    data = _envelope(rs.post("/api/v1/sms/send", json={
        "to": "+1234567890", "from": "+1987654321", "body": "Hello from Relay!", "metadata": {"order_id": "12345"}}),
        202)
    assert UUID.match(data["id"]) and data["client_reference_id"] == data["id"]
    assert data["status"] == "accepted" and data["to"] == "+1234567890" and data["from"] == "+1987654321"
    assert ISO_Z.match(data["created_at"]) and "Poll GET /sms/{id}" in data["message"]
    got = wait_until(lambda: _envelope(rs.get(f"/api/v1/sms/{data['id']}")), lambda d: d["status"] == "delivered",
                     "relaysms delivery")
    assert got["body"] == "Hello from Relay!" and got["direction"] == "outbound" and got["segments"] == "1"
    assert got["metadata"] == {"order_id": "12345"} and ISO_Z.match(got["delivered_at"])
    log = _envelope(rs.get(f"/api/v1/messages/{data['id']}/log"))
    assert [t["status"] for t in log["timeline"]] == ["accepted", "queued", "sent", "delivered"]
    assert log["client_reference_id"] == data["id"]
    listed = _envelope(rs.get("/api/v1/messages", params={"limit": 100, "direction": "outbound",
                                                          "status": "delivered"}))
    assert data["id"] in {m["client_reference_id"] for m in listed["messages"]}
    assert listed["page"] == 1 and listed["limit"] == 100 and isinstance(listed["has_more"], bool)


def test_relaysms_batch_example(rs: httpx.Client) -> None:
    data = _envelope(rs.post("/api/v1/sms/batch", json={"from": "+1987654321", "messages": [
        {"to": "+1234567890", "body": "Hello Alice!"}, {"to": "+1234567891", "body": "Hello Bob!"},
        {"to": "+1234567892", "body": "Hello Charlie!"}]}), 202)
    assert data["batch_id"].startswith("batch_")
    assert (data["accepted"], data["rejected"], data["total"]) == (3, 0, 3)
    assert [r["index"] for r in data["results"]] == [0, 1, 2]
    assert all(r["status"] == "accepted" and r["client_reference_id"] for r in data["results"])
    progress = wait_until(lambda: _envelope(rs.get(f"/api/v1/sms/batch/{data['batch_id']}")),
                          lambda d: d["status"] == "completed", "batch completion")
    assert progress["job_id"] == data["batch_id"]
    assert (progress["total"], progress["processed"], progress["completed"], progress["failed"]) == (3, 3, 3, 0)
    assert progress["from_number"] == "+1987654321" and progress["channel"] == "api"
    items = _envelope(rs.get(f"/api/v1/sms/batch/{data['batch_id']}/messages", params={"page": 1}))
    assert items["total"] == 3 and items["has_more"] is False and items["page"] == 1
    assert [i["to"] for i in items["items"]] == ["+1234567890", "+1234567891", "+1234567892"]
    assert all(i["status"] == "delivered" and i["id"] == i["client_reference_id"] for i in items["items"])


def test_relaysms_numbers_balance_transactions(rs: httpx.Client) -> None:
    numbers = _envelope(rs.get("/api/v1/numbers"))
    assert numbers["total"] == 2
    assert {"phone": "+1987654321"}.items() <= numbers["numbers"][0].items()
    assert "inbound_callback" in numbers["numbers"][0] and ISO_Z.match(numbers["numbers"][0]["created_at"])
    before = _envelope(rs.get("/api/v1/balance"))
    assert before["currency"] == "USD"
    _envelope(rs.post("/api/v1/sms/send", json={"to": "+1234567890", "from": "+1987654321", "body": "x"}), 202)
    after = _envelope(rs.get("/api/v1/balance"))
    assert after["balance"] == pytest.approx(before["balance"] - 0.015)
    tx = _envelope(rs.get("/api/v1/transactions", params={"limit": 1, "page": 1}))
    latest = tx["transactions"][0]
    assert latest["type"] == "debit" and latest["amount"] == pytest.approx(0.015)
    assert latest["balance_after"] == pytest.approx(after["balance"]) and isinstance(latest["timestamp"], int)
    assert tx["has_more"] is True and tx["total"] >= 2


def test_relaysms_webhook_configuration(rs: httpx.Client) -> None:
    urls = {"status_url": "https://example.com/webhooks/status", "inbound_url": "https://example.com/webhooks/inbound"}
    assert _envelope(rs.put("/api/v1/webhooks", json=urls)) == urls
    assert _envelope(rs.get("/api/v1/webhooks")) == urls
    number = _envelope(rs.put("/api/v1/numbers/+1987654321/webhooks",
                              json={"inbound_callback": "https://example.com/webhooks/inbound/+1987654321"}))
    assert number == {"phone": "+1987654321", "inbound_callback": "https://example.com/webhooks/inbound/+1987654321"}
    assert _envelope(rs.get("/api/v1/numbers/%2B1987654321/webhooks")) == number


def test_relaysms_webhook_test_bins(rs: httpx.Client, doc_relay: ReferenceRelayProcess) -> None:
    with httpx.Client(base_url=doc_relay.url("relaysms")) as anonymous:
        assert anonymous.post("/api/v1/status/bin", json={"test": "status payload"}).status_code == 200
        assert anonymous.post("/api/v1/messages/bin", json={"test": "message payload"}).status_code == 200
        assert anonymous.get("/api/v1/status/bin").status_code == 401
    status_bin = _envelope(rs.get("/api/v1/status/bin"))
    assert status_bin["items"][0]["payload"] == {"test": "status payload"}
    assert _envelope(rs.get("/api/v1/messages/bin"))["items"][0]["payload"] == {"test": "message payload"}


def test_relaysms_spam_diagnosis(rs: httpx.Client) -> None:
    path = "/api/v1/numbers/%2B18882034193/spam-diagnosis"
    missing = rs.get(path, params={"hours": 72, "limit": 50, "max_pages": 5})
    assert missing.status_code == 404
    assert missing.json()["error"] == {"code": "NOT_FOUND",
                                       "message": "No outbound message found for this number in the requested window"}
    sent = _envelope(rs.post("/api/v1/sms/send", json={"to": "+1234560000", "from": "+18882034193", "body": "x"}), 202)
    wait_until(lambda: _envelope(rs.get(f"/api/v1/sms/{sent['id']}"))["status"], lambda s: s == "failed",
               "the 0000 number to fail")
    data = _envelope(rs.get(path, params={"hours": 72, "limit": 50, "max_pages": 5}))
    assert data["number"] == "+18882034193" and data["spam_filtered"] is True
    assert data["diagnosis_reason"] == "provider_spam_signal_detected"
    assert data["delivery_status"] == "delivery_failed" and data["message_content_included"] is False
    assert (data["checked_messages"], data["scanned_pages"], data["window_hours"]) == (1, 1, 72)
    assert data["latest_message"]["status"] == "delivery_failed"


def test_relaysms_error_codes(doc_relay: ReferenceRelayProcess, rs: httpx.Client) -> None:
    with httpx.Client(base_url=doc_relay.url("relaysms")) as anonymous:
        assert anonymous.get("/api/v1/balance").json()["error"]["code"] == "UNAUTHORIZED"
    assert rs.get("/api/v1/sms/nope").json()["error"]["code"] == "NOT_FOUND"
    bad = rs.post("/api/v1/sms/send", json={"to": "+1234567890", "from": "+1987654321", "body": "x" * 1601})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_REQUEST"
    assert "body" in bad.json()["error"]["message"]


def test_relaysms_regenerate_rotates_key(start_relay) -> None:  # type: ignore[no-untyped-def]
    relay = start_relay()
    with client_for(relay, "relaysms") as rs_old:
        new_key = _envelope(rs_old.post("/api/v1/api-key/regenerate"))["api_key"]
        assert new_key and new_key != relay.api_key
        assert rs_old.get("/api/v1/balance").status_code == 401
    with httpx.Client(base_url=relay.url("relaysms"), headers={"X-API-Key": new_key}) as rs_new:
        assert rs_new.get("/api/v1/balance").status_code == 200
    # Other dialects keep the configured key.
    with client_for(relay, "coop") as c:
        assert c.get("/api/v1/messages/queue/stats").status_code == 200


def test_relaysms_insufficient_balance(start_relay) -> None:  # type: ignore[no-untyped-def]
    relay = start_relay(extra_args=["--balance", "0.02"])
    with client_for(relay, "relaysms") as c:
        ok = c.post("/api/v1/sms/send", json={"to": "+1234567890", "from": "+1987654321", "body": "one"})
        assert ok.status_code == 202
        broke = c.post("/api/v1/sms/send", json={"to": "+1234567890", "from": "+1987654321", "body": "two"})
        assert broke.status_code == 402 and broke.json()["error"]["code"] == "INSUFFICIENT_BALANCE"


# --- coop -------------------------------------------------------------------------------------------


def test_coop_send_status_list_attachments(coop: httpx.Client) -> None:
    sent = coop.post("/api/v1/messages", json={"to": "+15551234567", "body": "Hello!",
                                               "attachments": ["https://example.com/a.png"], "priority": 0})
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["id"].startswith("msg_") and body["status"] == "queued" and body["to"] == "+15551234567"
    assert body["body"] == "Hello!" and body["priority"] == 0 and ISO_Z.match(body["createdAt"])
    status = wait_until(lambda: coop.get(f"/api/v1/messages/{body['id']}/status").json(),
                        lambda s: s["status"] == "delivered", "coop delivery")
    assert status["id"] == body["id"] and status["attempts"] == 1 and status["lastError"] is None
    assert all(ISO_Z.match(status[k]) for k in ("queuedAt", "sentAt", "deliveredAt"))
    attachments = coop.get(f"/api/v1/messages/{body['id']}/attachments").json()
    assert attachments["attachments"][0]["downloadUrl"] == "https://example.com/a.png"
    listed = coop.get("/api/v1/messages", params={"direction": "sent", "participant": "+15551234567",
                                                  "page": 1, "limit": 20}).json()
    assert body["id"] in {m["id"] for m in listed["messages"]} and listed["page"] == 1


def test_coop_queue_stats_and_bulk(coop: httpx.Client) -> None:
    stats = coop.get("/api/v1/messages/queue/stats").json()
    assert set(stats) == {"pending", "processing", "failed", "deadLetter"}
    messages = [{"to": f"+1555123{i:04d}", "body": f"Hello {i}"} for i in range(1, 50)] + [
        {"to": "+15551230000", "body": "fails"}]
    created = coop.post("/api/v1/messages/bulk", json={"messages": messages})
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["jobId"].startswith("bulk_") and job["status"] == "processing" and job["totalRecipients"] == 50
    assert ISO_Z.match(job["createdAt"])
    done = wait_until(lambda: coop.get(f"/api/v1/messages/bulk/{job['jobId']}").json(),
                      lambda j: j["status"] == "completed", "bulk completion")
    assert (done["delivered"], done["failed"], done["processed"]) == (49, 1, 50)
    results = coop.get(f"/api/v1/messages/bulk/{job['jobId']}/results").json()["results"]
    assert len(results) == 50 and results[-1]["status"] == "failed" and results[-1]["error"]
    assert {r["status"] for r in results[:-1]} == {"delivered"}
    assert job["jobId"] in {j["jobId"] for j in coop.get("/api/v1/messages/bulk").json()["jobs"]}
    assert coop.get("/api/v1/messages/queue/stats").json()["failed"] >= 1


# --- smsgate ----------------------------------------------------------------------------------------


def test_smsgate_samples(sg: httpx.Client) -> None:
    sent = sg.post("/api/3rdparty/v1/messages", json={
        "phoneNumbers": ["+12025550100"], "textMessage": {"text": "Hello from API"}, "withDeliveryReport": True})
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["id"]
    assert UUID.match(message_id)
    assert sent.json()["recipients"] == [{"phoneNumber": "+12025550100", "state": "Pending", "error": None}]
    listed = sg.get("/api/3rdparty/v1/messages", params={"skip": 0, "limit": 20})
    assert listed.status_code == 200 and isinstance(listed.json(), list)
    first = listed.json()[0]
    assert {"id", "state", "createdAt"} <= first.keys()
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", first["createdAt"])
    got = wait_until(lambda: sg.get(f"/api/3rdparty/v1/messages/{message_id}").json(),
                     lambda m: m["state"] == "Delivered", "smsgate delivery")
    assert got["id"] == message_id
    assert got["recipients"] == [{"phoneNumber": "+12025550100", "state": "Delivered", "error": None}]


def test_smsgate_curl_example_and_basic_header(doc_relay: ReferenceRelayProcess) -> None:
    with httpx.Client(base_url=doc_relay.url("smsgate"), **auth_for(doc_relay, "smsgate")) as c:
        r = c.post("/api/3rdparty/v1/messages", json={"phoneNumbers": ["+12025550100"],
                                                      "textMessage": {"text": "Hello!"}})
        assert r.status_code == 200 and r.json()["id"]


def test_smsgate_client_id_conflict_and_jwt(sg: httpx.Client, doc_relay: ReferenceRelayProcess) -> None:
    body = {"id": "order-42-reminder", "phoneNumbers": ["+12025550100"], "textMessage": {"text": "hi"}}
    assert sg.post("/api/3rdparty/v1/messages", json=body).status_code == 200
    again = sg.post("/api/3rdparty/v1/messages", json=body)
    assert again.status_code == 409 and "message" in again.json()
    token = sg.post("/api/3rdparty/v1/auth/token", json={"ttl": 600})
    assert token.status_code == 201
    jwt = token.json()["accessToken"]
    with httpx.Client(base_url=doc_relay.url("smsgate"), headers={"Authorization": f"Bearer {jwt}"}) as c:
        assert c.get("/api/3rdparty/v1/messages/order-42-reminder").status_code == 200
        # A JWT cannot mint more JWTs: token issue takes Basic auth only.
        assert c.post("/api/3rdparty/v1/auth/token").status_code == 401
    with httpx.Client(base_url=doc_relay.url("smsgate"), headers={"Authorization": f"Bearer {jwt}x"}) as c:
        assert c.get("/api/3rdparty/v1/messages").status_code == 401


def test_smsgate_webhook_endpoints(sg: httpx.Client) -> None:
    created = sg.post("/api/3rdparty/v1/webhooks", json={"url": "https://example.com/hook", "event": "sms:received"})
    assert created.status_code == 201
    hook = created.json()
    assert hook["url"] == "https://example.com/hook" and hook["event"] == "sms:received" and hook["id"]
    assert hook["id"] in {h["id"] for h in sg.get("/api/3rdparty/v1/webhooks").json()}
    assert sg.delete(f"/api/3rdparty/v1/webhooks/{hook['id']}").status_code == 204
    assert sg.delete(f"/api/3rdparty/v1/webhooks/{hook['id']}").status_code == 404
    bad = sg.post("/api/3rdparty/v1/webhooks", json={"url": "https://example.com/hook", "event": "sms:bogus"})
    assert bad.status_code == 400 and "event" in bad.json()["message"]


def test_smsgate_rollup_with_a_failing_recipient(sg: httpx.Client) -> None:
    sent = sg.post("/api/3rdparty/v1/messages", json={"phoneNumbers": ["+12025550100", "+12025550000"],
                                                      "textMessage": {"text": "two"}}).json()
    got = wait_until(lambda: sg.get(f"/api/3rdparty/v1/messages/{sent['id']}").json(),
                     lambda m: all(r["state"] in ("Delivered", "Failed") for r in m["recipients"]), "final states")
    assert [r["state"] for r in got["recipients"]] == ["Delivered", "Failed"]
    assert got["recipients"][1]["error"] and got["state"] == "Sent"


# --- root mounting ----------------------------------------------------------------------------------


def test_dialect_at_root_serves_doc_paths_verbatim(start_relay) -> None:  # type: ignore[no-untyped-def]
    relay = start_relay(extra_args=["--dialect", "relaysms"])
    with httpx.Client(base_url=relay.base_url, headers={"X-API-Key": relay.api_key}) as c:
        data = _envelope(c.post("/api/v1/sms/send", json={"to": "+1234567890", "from": "+1987654321",
                                                          "body": "root"}), 202)
        assert _envelope(c.get(f"/api/v1/sms/{data['id']}"))["body"] == "root"
        # Errors at the root come in the root dialect's shape too.
        assert c.get("/api/v1/sms/nope").json()["error"]["code"] == "NOT_FOUND"
    assert httpx.get(relay.base_url + "/health").json()["status"] == "ok"
    assert httpx.get(relay.base_url + "/docs").status_code == 200

"""The phonerelay inbound query: each filter and each section, against traffic injected through /_sim."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from relay_server_helpers import client_for, sim_client, wait_until

from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

EVENTS: list[dict[str, Any]] = [
    {"channel": "sms", "from": "+15550000001", "text": "hi", "tags": ["vip"]},
    {"channel": "sms", "from": "+15550000001", "text": "again", "tags": ["vip", "support"]},
    {"channel": "wa", "from": "+15550000002", "event_type": "missed", "tags": ["support"]},
    {"channel": "wa", "from": "+15550000002", "event_type": "answered", "duration_sec": 120},
    {"channel": "tg", "from": "@alice", "event_type": "call", "duration_sec": 30, "tags": ["vip"]},
    {"channel": "email", "from": "ops@vendor.com", "text": "invoice"},
    {"channel": "email", "from": "ops@vendor.com", "text": "invoice 2"},
    {"channel": "email", "from": "bob@other.org", "text": "hello"},
    {"channel": "sms", "from": "+15550000009", "text": "other phone", "phone_id": "phone_b"},
]


@pytest.fixture(scope="module")
def stats_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRelayProcess]:
    tmp = tmp_path_factory.mktemp("stats-relay")
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key="stats-key", delivery_latency=0.05,
                               log_path=tmp / "relay.log") as relay:
        with sim_client(relay) as sim:
            for event in EVENTS:
                body = {"dialect": "phonerelay", "to": "+15551234567", "phone_id": "phone_main", **event}
                sim.post("/inbound", json=body).raise_for_status()
        with client_for(relay, "phonerelay") as pr:
            for to, channel, extra in (("+15550000001", "sms", {"tags": ["support"]}),
                                       ("+15550000001", "sms", {}),
                                       ("client@acme.com", "email", {"subject": "re"}),
                                       ("+15559990000", "sms", {})):  # fails: never counted as sent
                r = pr.post("/api/v1/messages", json={"phone_id": "phone_main", "channel": channel, "to": to,
                                                      "text": "reply", **extra})
                r.raise_for_status()
            failing = r.json()["message_id"]
            wait_until(lambda: pr.get(f"/api/v1/messages/{failing}").json()["message"]["status"],
                       lambda s: s == "failed", "the 0000 reply to fail")
        yield relay


@pytest.fixture(scope="module")
def query(stats_relay: ReferenceRelayProcess) -> Iterator[Any]:
    client = client_for(stats_relay, "phonerelay")

    def run(**filters: Any) -> dict[str, Any]:
        r = client.post("/api/v1/webchat/inbound/query", json={"phone_id": "phone_main", **filters})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    yield run
    client.close()


def test_summary(query: Any) -> None:
    summary = query()["summary"]
    assert summary["inbound_total"] == 8  # phone_b's event is filtered out by phone_id
    assert (summary["calls_total"], summary["messages_total"]) == (3, 5)
    assert (summary["answered_calls"], summary["missed_calls"]) == (1, 1)
    assert summary["avg_call_duration_sec"] == 75
    assert summary["channels"] == {"sms": 2, "wa": 2, "tg": 1, "email": 3}
    assert summary["median_response_min"] is not None and summary["median_response_min"] >= 0


def test_filters(query: Any) -> None:
    assert query(channels=["wa"])["count"] == 2
    assert query(event_types=["missed"])["count"] == 1
    assert query(tags=["vip", "support"], tag_mode="any")["count"] == 4
    assert query(tags=["vip", "support"], tag_mode="all")["count"] == 1
    assert query(source_contains="+1555000000")["count"] == 4
    assert query(min_duration_sec=60)["count"] == 1
    assert query(max_duration_sec=60)["count"] == 1
    responded = query(has_response=True)
    assert {e["source"] for e in responded["events"]} == {"+15550000001"}
    assert query(has_response=False)["count"] == 6
    assert query(range="24h")["count"] == 8 and query(range="today")["count"] == 8
    assert query(limit=3)["count"] == 3


def test_sorting(query: Any) -> None:
    newest = [e["message_id"] for e in query(sort="newest")["events"]]
    oldest = [e["message_id"] for e in query(sort="oldest")["events"]]
    assert newest == list(reversed(oldest))
    longest = query(sort="longest")["events"]
    assert longest[0]["duration_sec"] == 120 and longest[1]["duration_sec"] == 30
    slowest = query(sort="slowest")["events"]
    assert slowest[-1]["response_min"] is not None  # answered ones come after the unanswered


def test_sent_sections(query: Any) -> None:
    body = query()
    assert body["sent_summary"] == {"sent_total": 3, "channels": {"sms": 2, "email": 1}}
    assert body["sent_by_channel"] == {"sms": 2, "email": 1}
    assert sum(d["count"] for d in body["sent_by_day"]) == 3
    assert body["sent_by_person"][0]["destination"] == "+15550000001" and body["sent_by_person"][0]["total"] == 2
    assert body["sent_by_person"][0]["last_sent"]
    assert body["sent_by_tag"] == [{"tag": "support", "count": 1}]
    assert {e["destination"] for e in body["sent_events"]} == {"+15550000001", "client@acme.com"}


def test_email_report_hourly_top_contacts(query: Any) -> None:
    body = query()
    report = body["email_report"]
    assert (report["inbound_total"], report["sent_total"]) == (3, 1)
    assert report["top_inbound_senders"][0] == {"sender": "ops@vendor.com", "count": 2}
    assert report["top_sent_recipients"] == [{"recipient": "client@acme.com", "count": 1}]
    assert {d["domain"]: d["count"] for d in report["domains"]} == {"vendor.com": 2, "other.org": 1, "acme.com": 1}
    assert sum(d["count"] for d in report["by_day"]) == 4
    assert sum(h["count"] for h in body["hourly"]) == 8 and all(0 <= h["hour"] <= 23 for h in body["hourly"])
    top = body["top_contacts"][0]
    assert top["total"] == 2 and top["source"] in ("+15550000001", "+15550000002", "ops@vendor.com")


def test_get_form_and_errors(stats_relay: ReferenceRelayProcess) -> None:
    with client_for(stats_relay, "phonerelay") as pr:
        r = pr.get("/api/v1/webchat/inbound/query", params={"channels": "sms,wa", "phone_id": "phone_main"})
        assert r.status_code == 200 and r.json()["count"] == 4
        bad = pr.get("/api/v1/webchat/inbound/query", params={"tag_mode": "some"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("tag_mode")
    assert httpx.post(stats_relay.url("phonerelay") + "/api/v1/webchat/inbound/query", json={}).status_code == 401

"""Issue #14, reference relay: bounds at the edge, strict E.164, key rotation semantics, capped bins, --no-sim."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from relay_server_helpers import auth_for, client_for, sim_client, wait_until

from relay_integrations.dialects import get_dialect
from relay_integrations.errors import RelayValidationError
from relay_integrations.models import OutboundMessage
from relay_integrations.process import ReferenceRelayProcess
from relay_integrations.server.bounds import MAX_FIELD_BYTES, MAX_JSON_DEPTH, depth_violation

pytestmark = pytest.mark.e2e


def nested(levels: int) -> str:
    """A JSON object nested ``levels`` deep: {"a":{"a":...1...}}."""
    return '{"a":' * (levels - 1) + '{"a":1' + "}" * levels


def balance(relay: ReferenceRelayProcess) -> float:
    with client_for(relay, "relaysms") as c:
        return float(c.get("/api/v1/balance").json()["data"]["balance"])


def relaysms_field(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error", "timestamp", "unix_timestamp"}, body
    return str(body["error"].get("field"))


# --- 1. bounds ---------------------------------------------------------------------------------

@pytest.mark.parametrize("levels", [40, 963, 964, 965, 966, 967, 2000])
def test_deep_metadata_is_refused_naming_the_field_before_any_debit(relay: ReferenceRelayProcess,
                                                                      levels: int) -> None:
    before = balance(relay)
    with sim_client(relay) as sim:
        stored_before = sim.get("/messages", params={"dialect": "relaysms"}).json()["count"]
    body = '{"from":"+1987654321","to":"+12025550100","body":"deep","metadata":' + nested(levels) + "}"
    with client_for(relay, "relaysms") as c:
        r = c.post("/api/v1/sms/send", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert relaysms_field(r) == "metadata"
        assert "nested deeper" in r.json()["error"]["message"]
        batch = ('{"from":"+1987654321","messages":[{"to":"+12025550100","body":"ok"},'
                 '{"to":"+12025550101","body":"deep","metadata":' + nested(levels) + "}]}")
        r = c.post("/api/v1/sms/batch", content=batch, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert relaysms_field(r) == "messages[1].metadata"
    assert balance(relay) == before
    with sim_client(relay) as sim:
        listing = sim.get("/messages", params={"dialect": "relaysms"})
        assert listing.status_code == 200
        assert listing.json()["count"] == stored_before


def test_metadata_within_the_body_depth_but_over_the_field_caps_is_refused(relay: ReferenceRelayProcess) -> None:
    with client_for(relay, "relaysms") as c:
        r = c.post("/api/v1/sms/send", headers={"Content-Type": "application/json"},
                   content='{"from":"+1987654321","to":"+12025550100","body":"x","metadata":' + nested(20) + "}")
        assert r.status_code == 400 and relaysms_field(r) == "metadata", r.text
        big = {"from": "+1987654321", "to": "+12025550100", "body": "x",
               "metadata": {"blob": "x" * (MAX_FIELD_BYTES + 1)}}
        r = c.post("/api/v1/sms/send", json=big)
        assert r.status_code == 400 and relaysms_field(r) == "metadata", r.text
        # A batch refuses the one item, naming it, and debits nothing for it.
        before = balance(relay)
        r = c.post("/api/v1/sms/batch", json={"from": "+1987654321", "messages": [big]})
        assert r.status_code in (202, 400), r.text
        if r.status_code == 202:
            result = r.json()["data"]["results"][0]
            assert result["status"] == "rejected" and result["error"].startswith("messages[0].metadata:"), result
        else:
            assert "messages[0].metadata" in r.text
        assert balance(relay) == before


def test_metadata_at_the_caps_is_stored_and_reads_back(relay: ReferenceRelayProcess) -> None:
    metadata = json.loads(nested(16))
    with client_for(relay, "relaysms") as c:
        r = c.post("/api/v1/sms/send",
                   json={"from": "+1987654321", "to": "+12025550100", "body": "x", "metadata": metadata})
        assert r.status_code == 202, r.text
        message_id = r.json()["data"]["id"]
        got = c.get(f"/api/v1/sms/{message_id}")
        assert got.status_code == 200 and got.json()["data"]["metadata"] == metadata
    with sim_client(relay) as sim:
        listing = sim.get("/messages", params={"dialect": "relaysms"})
        assert listing.status_code == 200
        assert any(m["id"] == message_id and m["extra"]["metadata"] == metadata for m in listing.json()["messages"])


@pytest.mark.parametrize("dialect,path", [
    ("phonerelay", "/api/v1/messages"),
    ("coop", "/api/v1/messages"),
    ("coop", "/api/v1/messages/bulk"),
    ("smsgate", "/api/3rdparty/v1/messages"),
    ("smsgate", "/api/3rdparty/v1/webhooks"),
    ("relaysms", "/api/v1/status/bin"),
])
def test_every_dialect_refuses_deep_json_with_a_4xx_naming_the_field(relay: ReferenceRelayProcess,
                                                                       dialect: str, path: str) -> None:
    body = '{"text":"x","extra":' + nested(965) + "}"
    with httpx.Client(base_url=relay.url(dialect), timeout=10, **auth_for(relay, dialect)) as c:
        r = c.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert "extra: nested deeper" in r.text


def test_depth_scanner_ignores_brackets_inside_strings() -> None:
    text = json.dumps({"text": "[" * 5000 + "{" * 5000, "k": '"\\[{'}).encode()
    assert depth_violation(text) is None
    assert depth_violation(("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)).encode()) == "body"


# --- 4. E.164 ----------------------------------------------------------------------------------

TRAILING_NEWLINE = "+12025550100\n"


@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms", "coop", "smsgate"])
def test_trailing_newline_is_not_e164_client_side(dialect: str) -> None:
    extra: dict[str, Any] = {"phone_id": "phone-1"} if dialect == "phonerelay" else {}
    message = OutboundMessage(to=TRAILING_NEWLINE, text="hi", channel="sms", **extra)
    with pytest.raises(RelayValidationError) as info:
        get_dialect(dialect).build_send(message)
    assert info.value.field in ("to", "to[0]")


@pytest.mark.parametrize("dialect,path,body,field", [
    ("phonerelay", "/api/v1/messages", {"phone_id": "p1", "channel": "sms", "to": TRAILING_NEWLINE, "text": "x"}, "to"),
    ("relaysms", "/api/v1/sms/send", {"from": "+1987654321", "to": TRAILING_NEWLINE, "body": "x"}, "to"),
    ("coop", "/api/v1/messages", {"to": TRAILING_NEWLINE, "body": "x"}, "to"),
    ("smsgate", "/api/3rdparty/v1/messages", {"phoneNumbers": [TRAILING_NEWLINE], "textMessage": {"text": "x"}},
     "phoneNumbers[0]"),
])
def test_trailing_newline_is_not_e164_relay_side(relay: ReferenceRelayProcess, dialect: str, path: str,
                                                 body: dict[str, Any], field: str) -> None:
    with httpx.Client(base_url=relay.url(dialect), timeout=10, **auth_for(relay, dialect)) as c:
        r = c.post(path, json=body)
    assert r.status_code == 400, r.text
    assert field in r.text


# --- 5. key rotation -------------------------------------------------------------------------

def test_relaysms_key_rotation_is_the_relaysms_accounts_only(start_relay: Any) -> None:
    relay: ReferenceRelayProcess = start_relay(api_key="configured-key")
    with client_for(relay, "relaysms") as c:
        new_key = c.post("/api/v1/api-key/regenerate").json()["data"]["api_key"]
        # The old key no longer opens relaysms ...
        assert c.get("/api/v1/balance").status_code == 401
    with httpx.Client(base_url=relay.url("relaysms"), timeout=10, headers={"X-API-Key": new_key}) as c:
        assert c.get("/api/v1/balance").status_code == 200
    # ... the new relaysms key opens nothing else ...
    bearer_new = {"Authorization": f"Bearer {new_key}"}
    assert httpx.get(relay.url("phonerelay") + "/api/v1/messages/x", headers=bearer_new).status_code == 401
    assert httpx.get(relay.url("coop") + "/api/v1/messages/queue/stats", headers=bearer_new).status_code == 401
    assert httpx.get(relay.url("smsgate") + "/api/3rdparty/v1/messages",
                     auth=(relay.login, new_key)).status_code == 401
    assert httpx.get(relay.base_url + "/_sim/messages", headers=bearer_new).status_code == 401
    # ... and the other dialects and /_sim keep the configured key.
    with client_for(relay, "coop") as c:
        assert c.get("/api/v1/messages/queue/stats").status_code == 200
    with client_for(relay, "smsgate") as c:
        assert c.get("/api/3rdparty/v1/messages").status_code == 200
    with sim_client(relay) as sim:
        assert sim.get("/messages").status_code == 200
    # The rotation survives a restart.
    relay.restart()
    assert httpx.get(relay.url("relaysms") + "/api/v1/balance",
                     headers={"X-API-Key": "configured-key"}).status_code == 401
    assert httpx.get(relay.url("relaysms") + "/api/v1/balance",
                     headers={"X-API-Key": new_key}).status_code == 200


# --- 6. bins and --no-sim ------------------------------------------------------------------------

def test_bins_cap_body_size_and_entries(start_relay: Any) -> None:
    from relay_integrations.server.app import MAX_BIN_BODY_BYTES
    from relay_integrations.server.routes_relaysms import MAX_BIN_ITEMS

    relay: ReferenceRelayProcess = start_relay()
    url = relay.url("relaysms") + "/api/v1/status/bin"
    r = httpx.post(url, content=b'"' + b"x" * MAX_BIN_BODY_BYTES + b'"', headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and relaysms_field(r) == "body"
    with httpx.Client(timeout=10) as c:
        for i in range(MAX_BIN_ITEMS + 15):
            assert c.post(url, json={"n": i}).status_code == 200
        c.post(relay.url("relaysms") + "/api/v1/messages/bin", json={"other": True})
        got = c.get(url, params={"limit": 100}, headers={"X-API-Key": relay.api_key}).json()["data"]
    assert got["total"] == MAX_BIN_ITEMS
    assert [item["payload"]["n"] for item in got["items"]][:3] == [MAX_BIN_ITEMS + 14, MAX_BIN_ITEMS + 13,
                                                                  MAX_BIN_ITEMS + 12]
    assert min(item["payload"]["n"] for item in got["items"]) == 15


def test_no_sim_turns_the_test_hooks_off(start_relay: Any) -> None:
    relay: ReferenceRelayProcess = start_relay(sim=False)
    headers = {"Authorization": f"Bearer {relay.api_key}"}
    assert httpx.get(relay.base_url + "/_sim/messages", headers=headers).status_code == 404
    assert httpx.post(relay.base_url + "/_sim/inbound", headers=headers,
                      json={"dialect": "coop", "from": "+12025550100", "text": "x"}).status_code == 404
    assert "/_sim/messages" not in httpx.get(relay.base_url + "/openapi.json").json()["paths"]
    with client_for(relay, "coop") as c:
        assert c.get("/api/v1/messages/queue/stats").status_code == 200


def test_create_app_without_sim() -> None:
    from fastapi.testclient import TestClient

    from relay_integrations.server import create_app

    with TestClient(create_app(sim=False)) as c:
        assert c.get("/_sim/messages", headers={"Authorization": "Bearer dev-key"}).status_code == 404
    with TestClient(create_app()) as c:
        assert c.get("/_sim/messages", headers={"Authorization": "Bearer dev-key"}).status_code == 200


# --- 7. the OpenAPI document tells the truth --------------------------------------------------------

def test_schema_violations_are_refused_and_405s_name_every_method(relay: ReferenceRelayProcess) -> None:
    with client_for(relay, "phonerelay") as c:
        r = c.post("/api/v1/webchat/inbound/query", json={"has_response": 0})
        assert r.status_code == 400 and "has_response" in r.text
        r = c.post("/api/v1/webchat/callbacks/inbound", json={"callback_url": "http://127.0.0.1:9/x",
                                                              "min_duration_sec": True})
        assert r.status_code == 400 and "min_duration_sec" in r.text
    for dialect, path, allow in (("relaysms", "/api/v1/sms/send", "POST"),
                                 ("smsgate", "/api/3rdparty/v1/auth/token/refresh", "POST"),
                                 ("smsgate", "/api/3rdparty/v1/messages", "GET, POST")):
        r = httpx.request("OPTIONS", relay.url(dialect) + path, **auth_for(relay, dialect))
        assert r.status_code == 405 and r.headers["allow"] == allow, (path, r.headers.get("allow"))


def test_openapi_lists_each_routes_errors_in_its_dialects_shape(relay: ReferenceRelayProcess) -> None:
    document = httpx.get(relay.base_url + "/openapi.json").json()
    send = document["paths"]["/relaysms/api/v1/sms/send"]["post"]["responses"]
    assert {"200", "202", "400", "401", "402", "413", "503"} <= set(send) and "422" not in send
    assert send["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/RelaysmsError")
    sg = document["paths"]["/smsgate/api/3rdparty/v1/messages/{message_id}"]["delete"]["responses"]
    assert {"204", "401", "403", "404", "409"} <= set(sg)
    assert sg["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/SmsgateError")
    health = document["paths"]["/smsgate/api/3rdparty/v1/health/live"]["get"]["responses"]
    assert "401" not in health


def test_smsgate_valid_until_in_the_past_fails_the_message(relay: ReferenceRelayProcess) -> None:
    with client_for(relay, "smsgate") as c:
        r = c.post("/api/3rdparty/v1/messages", json={"phoneNumbers": ["+12025550150"], "textMessage": {"text": "x"},
                                                      "validUntil": "2001-01-01T00:00:00Z"})
        assert r.status_code == 200, r.text
        final = wait_until(lambda: c.get(f"/api/3rdparty/v1/messages/{r.json()['id']}").json(),
                           lambda m: m["state"] in ("Failed", "Delivered"), "the expired message's end")
    assert final["state"] == "Failed" and "expired" in final["recipients"][0]["error"]

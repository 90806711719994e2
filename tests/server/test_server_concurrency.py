"""Concurrent requests with one idempotency key (or smsgate client id) create exactly one message."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from relay_server_helpers import client_for, sim_client

from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

THREADS = 16


def _race(relay: ReferenceRelayProcess, dialect: str, path: str, body: dict) -> list:  # type: ignore[type-arg]
    barrier = threading.Barrier(THREADS)

    def one(_: int) -> tuple[int, dict]:  # type: ignore[type-arg]
        with client_for(relay, dialect) as c:
            barrier.wait()
            r = c.post(path, json=body)
            return r.status_code, r.json()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def test_same_idempotency_key_creates_one_message(relay: ReferenceRelayProcess) -> None:
    key = f"race-{uuid.uuid4()}"
    results = _race(relay, "phonerelay", "/api/v1/messages",
                    {"phone_id": "p", "channel": "sms", "to": "+15551234567", "text": "race", "idempotency_key": key})
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * (THREADS - 1) + [202]
    assert len({b["message_id"] for _, b in results}) == 1
    assert sum(1 for _, b in results if b.get("duplicate")) == THREADS - 1
    with sim_client(relay) as sim:
        stored = sim.get("/messages", params={"dialect": "phonerelay", "limit": 100_000}).json()["messages"]
    assert sum(1 for m in stored if m["idempotency_key"] == key) == 1


def test_same_smsgate_id_gets_one_200_and_409s(relay: ReferenceRelayProcess) -> None:
    client_id = f"race-{uuid.uuid4().hex[:20]}"
    results = _race(relay, "smsgate", "/api/3rdparty/v1/messages",
                    {"id": client_id, "phoneNumbers": ["+12025550100"], "textMessage": {"text": "race"}})
    assert sorted(s for s, _ in results) == [200] + [409] * (THREADS - 1)
    with sim_client(relay) as sim:
        stored = sim.get("/messages", params={"dialect": "smsgate", "limit": 100_000}).json()["messages"]
    assert sum(1 for m in stored if m["id"] == client_id) == 1


def test_same_relaysms_client_reference_creates_one_message(relay: ReferenceRelayProcess) -> None:
    ref = f"race-{uuid.uuid4()}"
    results = _race(relay, "relaysms", "/api/v1/sms/send",
                    {"to": "+1234567890", "from": "+1987654321", "body": "race", "client_reference_id": ref})
    assert {s for s, _ in results} <= {200, 202}
    assert sum(1 for s, _ in results if s == 202) == 1
    assert len({b["data"]["id"] for _, b in results}) == 1
    with client_for(relay, "relaysms") as c:
        assert c.get(f"/api/v1/sms/{ref}").json()["data"]["client_reference_id"] == ref

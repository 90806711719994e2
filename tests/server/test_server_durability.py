"""kill -9 of a real relay process: every acknowledged message survives, with its state; no key maps to two."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from relay_server_helpers import client_for, sim_client, wait_until

from relay_integrations.models import MessageState

pytestmark = pytest.mark.e2e

RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3}


def test_kill_9_loses_nothing_acknowledged(start_relay) -> None:  # type: ignore[no-untyped-def]
    # A long latency keeps messages in every state when the process dies.
    relay = start_relay(delivery_latency=1.5)
    acked: dict[str, tuple[str, str]] = {}  # message id -> (dialect, state seen at acknowledgement)
    keys: dict[str, str] = {}  # phonerelay idempotency key -> message id
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        clients = {d: client_for(relay, d) for d in ("phonerelay", "relaysms", "coop", "smsgate")}
        n = 0
        try:
            while not stop.is_set():
                n += 1
                try:
                    key = f"w{worker}-{n}"
                    r = clients["phonerelay"].post("/api/v1/messages", json={
                        "phone_id": "p", "channel": "sms", "to": "+15551234567", "text": "x", "idempotency_key": key})
                    if r.status_code in (200, 202):
                        with lock:
                            acked[r.json()["message_id"]] = ("phonerelay", "queued")
                            keys[key] = r.json()["message_id"]
                    r = clients["relaysms"].post("/api/v1/sms/batch", json={
                        "from": "+1987654321", "messages": [{"to": "+1234567890", "body": f"b{i}"} for i in range(20)]})
                    if r.status_code == 202:
                        with lock:
                            for item in r.json()["data"]["results"]:
                                acked[item["id"]] = ("relaysms", "queued")
                    r = clients["coop"].post("/api/v1/messages", json={"to": "+15551234567", "body": "c"})
                    if r.status_code == 201:
                        with lock:
                            acked[r.json()["id"]] = ("coop", "queued")
                    r = clients["smsgate"].post("/api/3rdparty/v1/messages", json={
                        "id": f"sg-{worker}-{n}", "phoneNumbers": ["+12025550100"], "textMessage": {"text": "s"}})
                    if r.status_code == 200:
                        with lock:
                            acked[r.json()["id"]] = ("smsgate", "queued")
                except httpx.TransportError:
                    return  # the relay died mid-request: that request was never acknowledged
        finally:
            for c in clients.values():
                c.close()

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(sender, i) for i in range(4)]
        wait_until(lambda: len(acked), lambda n: n >= 300, "some acknowledged traffic")

        def states_now() -> dict[str, str]:
            with sim_client(relay) as sim:
                rows = sim.get("/messages", params={"limit": 100_000}).json()["messages"]
            return {m["id"]: m["state"] for m in rows}

        # States just before the crash (none may move backwards). Wait until delivery has moved some
        # messages on, so the crash also hits the worker mid-way; how soon depends on machine speed.
        snapshot = wait_until(states_now, lambda snap: set(snap.values()) - {"queued"}, "messages past queued")
        relay.kill()
        stop.set()
        for f in futures:
            f.result()

    before_restart = dict(acked)
    relay.start()
    with sim_client(relay) as sim:
        stored = {m["id"]: m for m in sim.get("/messages", params={"limit": 100_000}).json()["messages"]}
    missing = [mid for mid in before_restart if mid not in stored]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
    for mid, (dialect, state_at_ack) in before_restart.items():
        assert stored[mid]["dialect"] == dialect
        assert RANK[stored[mid]["state"]] >= RANK[state_at_ack]
    for mid, state in snapshot.items():
        assert RANK[stored[mid]["state"]] >= RANK[state], (mid, state, stored[mid]["state"])
    assert {s for s in snapshot.values()} - {"queued"}, "the crash should hit messages past queued too"

    # No idempotency key maps to two messages, and retrying a key after the crash returns its message.
    phonerelay_keys = [m["idempotency_key"] for m in stored.values() if m["idempotency_key"]]
    assert len(phonerelay_keys) == len(set(phonerelay_keys))
    with client_for(relay, "phonerelay") as pr:
        for key, message_id in list(keys.items())[:20]:
            again = pr.post("/api/v1/messages", json={"phone_id": "p", "channel": "sms", "to": "+15551234567",
                                                       "text": "x", "idempotency_key": key})
            assert again.status_code == 200 and again.json()["message_id"] == message_id

    # Delivery resumes after the restart: everything reaches a final state.
    with sim_client(relay) as sim:
        wait_until(lambda: sim.get("/messages", params={"limit": 100_000}).json()["messages"],
                   lambda ms: all(MessageState(m["state"]).is_final for m in ms), "delivery to resume")

"""``relay serve`` start-up behaviour, the failure rate, and create_app served in-process over a real socket."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from relay_server_helpers import client_for, sim_client, wait_until

from relay_integrations.cli import build_parser
from relay_integrations.process import ServiceProcess, free_port
from relay_integrations.server import create_app

pytestmark = pytest.mark.e2e


def test_serve_options_and_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_PORT", "6001")
    monkeypatch.setenv("RELAY_DELIVERY_LATENCY", "0.25")
    monkeypatch.setenv("RELAY_NUMBERS", "+1987654321,+18882034193")
    args = build_parser().parse_args(["serve", "--db", ":memory:", "--webhook-url", "coop=http://127.0.0.1:9/x"])
    assert (args.port, args.delivery_latency, args.numbers) == (6001, 0.25, ["+1987654321", "+18882034193"])
    assert args.webhook_url == [("coop", "http://127.0.0.1:9/x")]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--webhook-url", "fax=http://x"])


def test_serve_without_key_uses_dev_key_and_prints_urls(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with ServiceProcess(["serve", "--port", str(port), "--db", ":memory:"], port=port, log_path=log,
                        env={"RELAY_API_KEY": ""}):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.get("/coop/api/v1/messages/queue/stats", headers={"Authorization": "Bearer dev-key"}
                         ).status_code == 200
    text = log.read_text()
    assert "dev-key" in text
    for dialect in ("phonerelay", "relaysms", "coop", "smsgate"):
        assert f"http://127.0.0.1:{port}/{dialect}" in text


def test_key_from_environment_never_printed(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with ServiceProcess(["serve", "--port", str(port), "--db", str(tmp_path / "r.db")], port=port, log_path=log,
                        env={"RELAY_API_KEY": "env-secret-key-123"}):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.get("/phonerelay/api/v1/messages", headers={"Authorization": "Bearer env-secret-key-123"}
                         ).status_code == 200
            assert c.get("/phonerelay/api/v1/messages", headers={"Authorization": "Bearer dev-key"}).status_code == 401
    assert "env-secret-key-123" not in log.read_text()


def test_failure_rate_is_seeded_by_message_id(start_relay) -> None:  # type: ignore[no-untyped-def]
    relay = start_relay(failure_rate=0.5, delivery_latency=0.05)
    with client_for(relay, "relaysms") as rs:
        batch = rs.post("/api/v1/sms/batch", json={"from": "+1987654321", "messages": [
            {"to": "+1234567890", "body": f"m{i}"} for i in range(60)]}).json()["data"]
        progress = wait_until(lambda: rs.get(f"/api/v1/sms/batch/{batch['batch_id']}").json()["data"],
                              lambda d: d["status"] == "completed", "batch completion")
    assert 0 < progress["failed"] < 60 and progress["completed"] + progress["failed"] == 60
    with sim_client(relay) as sim:
        failed = [m for m in sim.get("/messages", params={"dialect": "relaysms"}).json()["messages"]
                  if m["state"] == "failed"]
    assert all(m["error"] for m in failed)


@pytest.fixture
def in_process_url(tmp_path: Path) -> Iterator[str]:
    app = create_app(db_path=str(tmp_path / "inproc.db"), api_key="k", delivery_latency=0.05, dialect="coop")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    wait_until(lambda: server.started, bool, "in-process server start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_create_app_in_process(in_process_url: str) -> None:
    with httpx.Client(base_url=in_process_url, headers={"Authorization": "Bearer k"}) as c:
        sent = c.post("/api/v1/messages", json={"to": "+15551234567", "body": "root mounted coop"})
        assert sent.status_code == 201
        status = wait_until(lambda: c.get(f"/coop/api/v1/messages/{sent.json()['id']}/status").json(),
                            lambda s: s["status"] == "delivered", "in-process delivery")
        assert status["attempts"] == 1
        assert c.get("/openapi.json").json()["info"]["title"]

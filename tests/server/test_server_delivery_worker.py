"""The delivery worker on its own: one step per pass, capped passes, coop priority order."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from relay_integrations.server import create_app
from relay_integrations.server.delivery import DeliveryWorker


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_capped_passes_take_higher_priority_first(tmp_path: Path) -> None:
    # No lifespan here, so no background worker: the test drives the worker by hand.
    app = create_app(db_path=str(tmp_path / "w.db"), api_key="k", delivery_latency=3.0)
    ctx = app.state.relay
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://relay",
                                 headers={"Authorization": "Bearer k"}) as c:
        ids = {}
        for priority in (5, 90, 0, 50):
            r = await c.post("/coop/api/v1/messages", json={"to": "+15551234567", "body": "x", "priority": priority})
            ids[priority] = r.json()["id"]
        worker = DeliveryWorker(ctx, rows_per_step=1)
        later = 10**10  # everything is due
        left_queue: list[str] = []
        for _ in range(4):  # same clock: moved messages are not due again, so only the queue advances
            assert worker.advance(at=later) >= 1
            moved = {r["id"] for r in ctx.store.query("SELECT id FROM messages WHERE state != 'queued'")}
            left_queue += sorted(moved - set(left_queue))
        # One message leaves the queue per pass, highest priority first.
        assert left_queue == [ids[90], ids[50], ids[5], ids[0]]
        # Each pass moves a message one step at most: after enough passes all are delivered.
        for k in range(1, 20):
            worker.advance(at=later + 10 * k)
        statuses = [(await c.get(f"/coop/api/v1/messages/{i}/status")).json()["status"] for i in ids.values()]
        assert statuses == ["delivered"] * 4


@pytest.mark.anyio
async def test_one_step_per_pass(tmp_path: Path) -> None:
    app = create_app(db_path=str(tmp_path / "s.db"), api_key="k", delivery_latency=0.0)
    ctx = app.state.relay
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://relay",
                                 headers={"X-API-Key": "k"}) as c:
        sent = (await c.post("/relaysms/api/v1/sms/send", json={"to": "+1234567890", "from": "+1987654321",
                                                                "body": "x"})).json()["data"]
        worker = DeliveryWorker(ctx)
        seen = []
        for _ in range(3):
            worker.advance(at=10**10)
            seen.append((await c.get(f"/relaysms/api/v1/sms/{sent['id']}")).json()["data"]["status"])
        assert seen == ["queued", "sent", "delivered"]
        log = (await c.get(f"/relaysms/api/v1/messages/{sent['id']}/log")).json()["data"]["timeline"]
        assert [t["status"] for t in log] == ["accepted", "queued", "sent", "delivered"]

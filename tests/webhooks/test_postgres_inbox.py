"""Issue 12 item 9: two receiver processes behind one URL share a PostgreSQL inbox; each event is stored once.

Both receivers get the same signed deliveries at the same time (and duplicates, and the smsgate app's
re-send of one status under a new envelope id): de-duplication is by the database's unique constraints,
so whichever receiver commits second stores nothing. Read back through both receivers' ``GET /events``
and through ``WebhookInbox`` opened on the database URL, as a sensor on another worker would.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import httpx
import pytest
from webhook_payloads import (
    API_KEY,
    SECRET,
    coop_event,
    encode,
    phonerelay_inbound,
    relaysms_status,
    signed_headers,
    smsgate_received,
    smsgate_status,
)

from relay_integrations.models import MessageState
from relay_integrations.process import WebhookReceiverProcess
from relay_integrations.signing import derive_relaysms_url_token
from relay_integrations.webhooks import WebhookInbox

pytestmark = pytest.mark.e2e


def _deliveries(n: int) -> list[tuple[str, bytes, str]]:
    """(dialect, body, delivery id) for n distinct events over every dialect."""
    out: list[tuple[str, bytes, str]] = []
    for i in range(n):
        uid = f"{i}-{uuid.uuid4().hex[:8]}"
        body = [
            ("smsgate", smsgate_status(f"sg-{uid}", "+15550000001")),
            ("smsgate", smsgate_received(f"sg-in-{uid}", "+15550000002", f"reply {i}")),
            ("coop", coop_event(f"co-{uid}")),
            ("relaysms", relaysms_status(f"rs-{uid}")),
            ("phonerelay", phonerelay_inbound(f"pr-{uid}", "+15550000003", f"inbound {i}")),
        ][i % 5]
        out.append((body[0], encode(body[1]), f"msg_{uuid.uuid4().hex}"))
    return out


@pytest.mark.anyio
async def test_two_receivers_on_one_postgres_store_each_event_once(tmp_path: Path, postgres_url: str) -> None:
    receivers = [
        WebhookReceiverProcess(db_path=postgres_url, secrets=[SECRET], api_key=API_KEY,
                               log_path=tmp_path / f"receiver{i}.log")
        for i in range(2)
    ]
    for receiver in receivers:
        receiver.start()
    try:
        deliveries = _deliveries(100)
        # The real smsgate app re-sends a status under a fresh envelope id: still one event.
        resent = smsgate_status("sg-resent", "+15550000001")
        again = dict(resent, id=f"evt_{uuid.uuid4().hex}")
        extra = [("smsgate", encode(resent), "x1"), ("smsgate", encode(again), "x2")]
        statuses: list[int] = []

        async def post(client: httpx.AsyncClient, receiver: WebhookReceiverProcess, dialect: str, raw: bytes,
                       delivery_id: str) -> None:
            # Signed once per delivery (same webhook-id), as a sender retrying to either receiver does.
            headers = signed_headers(dialect, raw, event_id=delivery_id)
            response = await client.post(receiver.url(dialect), content=raw, headers=headers)
            statuses.append(response.status_code)

        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=32)) as client:
            async with anyio.create_task_group() as tg:
                for dialect, raw, delivery_id in deliveries + extra:
                    for copy in range(3):  # the same delivery three times, spread over both receivers
                        tg.start_soon(post, client, receivers[copy % 2], dialect, raw, delivery_id)
            # relaysms at the secret URL, unsigned, to both receivers at once.
            token = derive_relaysms_url_token(SECRET)
            raw = encode(relaysms_status("rs-secret-url"))

            async def post_unsigned(receiver: WebhookReceiverProcess) -> None:
                response = await client.post(f"{receiver.base_url}/webhooks/relaysms/{token}", content=raw)
                statuses.append(response.status_code)

            async with anyio.create_task_group() as tg:
                for receiver in receivers * 2:
                    tg.start_soon(post_unsigned, receiver)
        assert set(statuses) == {200}
        expected = len(deliveries) + 2  # + sg-resent once + rs-secret-url

        for receiver in receivers:
            with WebhookInbox.remote(receiver.base_url, API_KEY) as remote:
                events = remote.query(limit=1000)
            assert len(events) == expected
            assert len({(e.dialect, e.event_id) for e in events}) == expected
            cursors = [e.cursor for e in events]
            assert cursors == sorted(cursors) and len(set(cursors)) == expected
        with WebhookInbox(postgres_url) as local:  # a sensor on any worker: the database URL
            assert len(local.query(limit=1000)) == expected
            assert len(local.query(message_id="sg-resent")) == 1
            assert local.message_state("sg-resent") is MessageState.DELIVERED
            assert len(local.query(dialect="relaysms", message_id="rs-secret-url")) == 1
            page = local.query(limit=10)
            assert local.query(after=page[-1].cursor, limit=1000)[0].cursor == events[10].cursor
            assert "password" not in repr(local)
    finally:
        for receiver in receivers:
            receiver.stop()


def test_postgres_refuses_what_it_cannot_hold_with_a_400(tmp_path: Path, postgres_url: str) -> None:
    # PostgreSQL text has no NUL: refused at the edge, naming the field, never a 500.
    with WebhookReceiverProcess(db_path=postgres_url, secrets=[SECRET], api_key=API_KEY) as receiver:
        raw = encode(phonerelay_inbound("pr-nul", "+15550000003", "a\u0000b"))
        answer = httpx.post(receiver.url("phonerelay"), content=raw, headers=signed_headers("phonerelay", raw))
        assert answer.status_code == 400 and answer.json()["field"] == "events[0].text"
        query = httpx.get(f"{receiver.base_url}/events", params={"sender": "a\u0000b"},
                          headers={"Authorization": f"Bearer {API_KEY}"})
        assert query.status_code == 400 and query.json()["field"] == "sender"

"""Issue 14's attacks on the receiver: nothing it accepts can break a reader, and one bad delivery never
fails the ones committed beside it.

Before the bounds, an authentic event nested 199-254 levels deep was stored with 200 and from then on
``GET /events`` answered 500 for every query; at 255+ levels the receiver answered 500 and the group
commit rolled back the normal deliveries sent alongside it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import anyio
import httpx
import pytest
from webhook_payloads import (
    API_KEY,
    SECRET,
    ServedReceiver,
    coop_event,
    encode,
    phonerelay_inbound,
    signed_headers,
    smsgate_status,
)

from relay_integrations.webhooks import WebhookInbox
from relay_integrations.webhooks.bounds import MAX_JSON_DEPTH, MAX_TEXT_CHARS

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _nested_smsgate(depth: int, message_id: str) -> bytes:
    """A signed-able smsgate status whose ``payload.extra`` nests so that the whole body is ``depth`` deep.

    Built as text: ``json.dumps`` itself cannot write what it cannot recurse into.
    """
    envelope = encode(smsgate_status(message_id, "+15550000001"))
    inner = depth - 2  # the envelope and its payload are the first two levels
    nested = '{"x":' * (inner - 1) + "{}" + "}" * (inner - 1)
    return envelope[:-2] + b',"extra":' + nested.encode() + b"}}"


def _depth(raw: bytes) -> int:
    def walk(value: object) -> int:
        if isinstance(value, dict):
            return 1 + max((walk(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((walk(v) for v in value), default=0)
        return 0

    return walk(json.loads(raw))


def _readable_everywhere(receiver: ServedReceiver) -> list[dict[str, object]]:
    """Every stored event, read back by every reader the issue names."""
    everything = receiver.events(limit=1000)
    with WebhookInbox.remote(receiver.base_url, API_KEY) as remote:
        assert len(remote.query(limit=1000)) == len(everything)
    with WebhookInbox(receiver.db_path) as local:
        assert len(local.query(limit=1000)) == len(everything)
    return everything


def test_the_nesting_bound_is_what_it_says() -> None:
    assert _depth(_nested_smsgate(MAX_JSON_DEPTH, "m")) == MAX_JSON_DEPTH


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 199, 230, 254, 255, 300, 5000, 100_000])
def test_deeply_nested_authentic_event_is_refused_naming_the_body(receiver: ServedReceiver, depth: int) -> None:
    raw = _nested_smsgate(depth, f"deep-{depth}")
    answer = receiver.post("smsgate", raw)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == "body" and f"deeper than {MAX_JSON_DEPTH} levels" in answer.json()["error"]
    assert _readable_everywhere(receiver) == []


def test_event_at_the_nesting_bound_is_stored_and_read_back_by_every_reader(receiver: ServedReceiver) -> None:
    raw = _nested_smsgate(MAX_JSON_DEPTH, "at-the-bound")
    assert receiver.post("smsgate", raw).status_code == 200
    (event,) = _readable_everywhere(receiver)
    assert event["message_id"] == "at-the-bound"
    # The Prefect events bridge turns it into an event too (the payload is JSON-serialisable).
    from relay_integrations.models import WebhookEvent

    WebhookEvent.model_validate(event).model_dump_json()


@pytest.mark.anyio
async def test_deep_events_never_fail_the_normal_deliveries_sent_alongside(receiver: ServedReceiver) -> None:
    # The attack: 180 normal signed webhooks while deep ones (199-254 and 255+ levels) arrive.
    normal = [encode(coop_event(f"normal-{i}-{uuid.uuid4().hex[:6]}")) for i in range(180)]
    deep = [_nested_smsgate(depth, f"deep-{depth}") for depth in (199, 220, 254, 255, 400, 1000, 20_000)]
    answers: dict[bytes, int] = {}

    async def post(client: httpx.AsyncClient, dialect: str, raw: bytes) -> None:
        response = await client.post(receiver.url(dialect), content=raw, headers=signed_headers(dialect, raw))
        answers[raw] = response.status_code

    limits = httpx.Limits(max_connections=24)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client, anyio.create_task_group() as tg:
        for i, raw in enumerate(normal):
            tg.start_soon(post, client, "coop", raw)
            if i % 25 == 0 and deep:
                tg.start_soon(post, client, "smsgate", deep.pop())
    assert [answers[raw] for raw in normal] == [200] * 180
    assert sorted(set(answers.values())) == [200, 400]
    assert len(_readable_everywhere(receiver)) == 180


def test_too_many_events_in_one_delivery_is_refused_naming_events(receiver: ServedReceiver) -> None:
    body = phonerelay_inbound("in-0", "+15550000001", "hi")
    body["events"] = [dict(body["events"][0], message_id=f"in-{i}") for i in range(1001)]
    answer = receiver.post("phonerelay", body)
    assert answer.status_code == 400 and answer.json()["field"] == "events"
    assert receiver.events() == []


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("text", "x" * (MAX_TEXT_CHARS + 1), "longer than"),
        ("text", "nul \u0000 inside", "NUL"),
        ("text", "lone \ud800 surrogate", "surrogate"),
        ("sender", "+1" + "5" * 300, "longer than"),
    ],
)
def test_fields_the_store_cannot_hold_are_refused_naming_them(
    start_receiver: Callable[..., ServedReceiver], field: str, value: str, problem: str
) -> None:
    receiver = start_receiver(max_body_bytes=4 * 1024 * 1024)
    payload = {"text": value, "sender": "+15550000001"}
    body = phonerelay_inbound("in-x", payload["sender"] if field != "sender" else value,
                              payload["text"] if field == "text" else "hi")
    raw = json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as \\ud800
    answer = receiver.post("phonerelay", raw)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == f"events[0].{field}" and problem in answer.json()["error"]
    assert _readable_everywhere(receiver) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [({"after": "99999999999999999999999"}, "after"), ({"after": "-1"}, "after"), ({"limit": "0"}, "limit"),
     ({"limit": "100000"}, "limit"), ({"after": "1e3"}, "after"), ({"message_id": "a\u0000b"}, "message_id"),
     ({"nope": "1"}, "nope")],
)
def test_bad_queries_answer_400_naming_the_parameter(shared_receiver: ServedReceiver, params: dict[str, str],
                                                      field: str) -> None:
    answer = httpx.get(f"{shared_receiver.base_url}/events", params=params, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert answer.json()["field"] == field and field in answer.json()["error"]


def test_huge_after_through_the_inbox_is_a_clear_error(shared_receiver: ServedReceiver) -> None:
    with WebhookInbox(shared_receiver.db_path) as local, pytest.raises(ValueError, match="after"):
        local.query(after=10**23)


def test_master_secret_never_signs_directly(receiver: ServedReceiver) -> None:
    # The master secret itself opens no dialect: only the secrets derived from it do.
    raw = encode(smsgate_status("direct", "+15550000001"))
    assert receiver.post("smsgate", raw, secret=SECRET, verbatim=True).status_code == 401

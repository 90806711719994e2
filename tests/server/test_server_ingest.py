"""The batch ingestion path's building blocks: the depth pre-check, time-ordered ids, off-loop writes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_integrations.server.bounds import _walk, depth_violation
from relay_integrations.server.common import new_message_id, new_message_ids
from relay_integrations.server.delivery import _step_sql
from relay_integrations.server.store import (
    MESSAGE_COLUMNS,
    QUEUED_COLUMNS,
    SCHEMA,
    Store,
    insert_message,
    insert_queued_messages,
    message_row,
    queued_row,
)

# Bodies made of the characters that matter to the scan: brackets, quotes, escapes, separators.
JSONISH = st.lists(st.sampled_from(['{', '}', '[', ']', '"', '\\', 'a', ',', ':', '\n', ' ', '"k":']),
                   max_size=80).map(lambda parts: "".join(parts).encode())


@settings(deadline=None, max_examples=2000)
@given(body=JSONISH, limit=st.integers(min_value=1, max_value=6))
def test_depth_pre_check_agrees_with_the_exact_scan(body: bytes, limit: int) -> None:
    assert depth_violation(body, limit) == _walk(body, limit)


@settings(deadline=None, max_examples=200)
@given(depth=st.integers(min_value=1, max_value=40), items=st.integers(min_value=0, max_value=50))
def test_depth_pre_check_on_batches_nested_to_a_given_depth(depth: int, items: int) -> None:
    inner = "[" * depth + "]" * depth
    body = ('{"messages":[' + ",".join(f'{{"to":"+1415555{i:04d}","body":"a [{{ \\" b","x":{inner}}}'
                                          for i in range(items)) + "]}").encode()
    expected = None if items == 0 or depth + 3 <= 32 else "messages[0].x"
    assert depth_violation(body) == expected == _walk(body, 32)


def test_message_ids_are_uuid7_unique_and_sort_by_creation() -> None:
    first = new_message_ids(5000)
    assert len(set(first)) == 5000
    for value in first[:200]:
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    start_ms = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == start_ms:  # wait for the next millisecond, by condition
        pass
    later = new_message_id()
    assert later > max(first)


def test_prefixed_message_ids_keep_their_shape() -> None:
    ids = new_message_ids(100, "msg_")
    assert len(set(ids)) == 100
    for value in ids:
        assert value.startswith("msg_") and len(value) == 36
        int(value[4:], 16)


def test_write_async_commits_before_returning_and_rolls_back_on_error(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    store = Store(str(path))

    def insert(value: str):  # type: ignore[no-untyped-def]
        return lambda conn: conn.execute("INSERT INTO settings(key, value) VALUES (?, ?)", (value, value))

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO settings(key, value) VALUES ('doomed', 'x')")
        raise ValueError("refused")

    async def scenario() -> list[str]:
        await asyncio.gather(*(store.write_async(insert(f"k{i:03d}")) for i in range(50)))
        # Committed: another connection sees every row as soon as the awaits returned.
        other = sqlite3.connect(str(path))
        seen = [row[0] for row in other.execute("SELECT key FROM settings WHERE key LIKE 'k%' ORDER BY rowid")]
        other.close()
        with pytest.raises(ValueError, match="refused"):
            await store.write_async(insert_then_fail)
        return seen

    try:
        seen = asyncio.run(scenario())
        assert seen == [f"k{i:03d}" for i in range(50)]  # one writer thread: in submission order
        assert store.get_setting("doomed") is None
    finally:
        store.close()


def test_a_queued_row_reads_back_as_the_full_row_of_a_new_outbound_message(tmp_path: Path) -> None:
    """The batch paths bind only the columns a new message sets; what they store is what the
    single-send path (every column bound) stores for the same message."""
    store = Store(str(tmp_path / "relay.db"))
    try:
        fast = queued_row("id-1", "coop", "imessage", "+14155550100", None, "hi", "bulk_1", 7, 5, 1, 0, 1, 100.0,
                          100.5, '{"attachments":["https://x.test/a.png"]}')
        slow = message_row(id="id-2", dialect="coop", channel="imessage", state="queued", to_addr="+14155550100",
                           body="hi", batch_id="bulk_1", batch_index=7, priority=5, fail_mode=1, created_at=100.0,
                           next_at=100.5, extra={"attachments": ["https://x.test/a.png"]})
        store.write(lambda conn: insert_queued_messages(conn, [fast, fast]))  # the repeat is skipped
        assert store.write(lambda conn: insert_message(conn, slow))
        stored = {r["id"]: dict(r) for r in store.query("SELECT * FROM messages WHERE id IN ('id-1', 'id-2')")}
        assert len(store.query("SELECT 1 FROM messages WHERE id = 'id-1'")) == 1
        for row in stored.values():
            del row["seq"], row["id"]
        assert stored["id-1"] == stored["id-2"]
        assert set(QUEUED_COLUMNS) < set(MESSAGE_COLUMNS)
    finally:
        store.close()


def _plan(conn: sqlite3.Connection, sql: str, params: dict[str, float] | tuple[float, ...]) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_delivery_steps_read_only_their_own_state_from_an_index(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "relay.db"))
    try:
        conn = store._conn
        for from_state in ("queued", "sending", "sent"):
            for with_events in (True, False):
                sql = _step_sql(from_state, frozenset({"coop"}), with_events=with_events)
                plan = _plan(conn, sql, {"now": 1.0, "next": 2.0, "limit": 1000})
                assert "COVERING INDEX messages_due_by_state (state=? AND next_at" in plan, plan
        gate = ("SELECT 1 FROM messages WHERE state IN ('queued', 'sending', 'sent') AND next_at IS NOT NULL "
                "AND next_at <= ? LIMIT 1")
        assert "COVERING INDEX messages_due_by_state (state=?" in _plan(conn, gate, (1.0,))
    finally:
        store.close()


def test_a_database_from_before_gets_the_state_keyed_due_index(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(str(path))
    # The schema as it was: the same tables, the due index on next_at alone.
    before = "\n".join(line for line in SCHEMA.splitlines() if "messages_due" not in line)
    old.executescript(before + "\nCREATE INDEX messages_due ON messages(next_at) WHERE next_at IS NOT NULL;")
    old.close()
    store = Store(str(path))
    try:
        names = {row[0] for row in store.query("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        store.close()
    assert "messages_due_by_state" in names and "messages_due" not in names

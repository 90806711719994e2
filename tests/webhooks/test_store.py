"""The SQLite event store and the receiver's group commit, without HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_integrations.models import MessageState, WebhookEvent
from relay_integrations.webhooks.receiver import _GroupCommit
from relay_integrations.webhooks.store import EventQuery, EventStore, StoreError, StoreResult


def _event(i: int, *, message_id: str | None = None, state: MessageState = MessageState.SENT) -> WebhookEvent:
    return WebhookEvent(event_id=f"evt-{i}", dialect="coop", kind="status", event_type=f"message.{state.value}",
                        message_id=message_id or f"m-{i}", state=state, raw_state=state.value, recipient="+15550000001")


def test_events_survive_reopening_and_cursors_only_grow(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    first = store.add([_event(1), _event(2)])
    store.close()
    reopened = EventStore(tmp_path / "events.db")
    second = reopened.add([_event(3)])
    cursors = [e.cursor for e in first.stored + second.stored]
    assert cursors == sorted(cursors) and len(set(cursors)) == 3
    assert [e.event_id for e in reopened.query(EventQuery())] == ["evt-1", "evt-2", "evt-3"]
    assert reopened.query(EventQuery(after=cursors[1]))[0].event_id == "evt-3"
    assert (tmp_path / "events.db-wal").exists()  # WAL mode


def test_duplicates_inside_one_batch_and_across_batches(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    same_id = _event(1)
    same_natural_key = _event(2, message_id="m-1").model_copy(update={"event_type": "message.sent"})
    results = store.add_many([([same_id], None), ([same_id], None), ([same_natural_key], None),
                              ([_event(3)], "delivery-1"), ([_event(4)], "delivery-1")])
    assert [(len(r.stored), r.duplicates) for r in results] == [(1, 0), (0, 1), (0, 1), (1, 0), (0, 1)]
    assert store.count() == 2


_small = st.integers(min_value=0, max_value=4)


@given(deliveries=st.lists(st.tuples(st.lists(st.tuples(_small, _small, st.sampled_from(["coop", "smsgate"])),
                                              max_size=4),
                                     st.one_of(st.none(), st.sampled_from(["d-1", "d-2", "d-3"]))),
                           min_size=1, max_size=12),
       split=st.integers(min_value=0, max_value=12))
@settings(max_examples=60)
def test_a_group_commit_stores_what_storing_each_delivery_alone_in_order_would(
    tmp_path_factory: pytest.TempPathFactory, deliveries: list[tuple[list[tuple[int, int, str]], str | None]],
    split: int,
) -> None:
    # Events drawn from a small pool, so ids, natural keys and delivery ids repeat inside a batch and
    # across batches. One store takes the deliveries in two group commits, the other one at a time.
    def events(spec: list[tuple[int, int, str]]) -> list[WebhookEvent]:
        return [_event(i, message_id=f"m-{m}").model_copy(update={"dialect": dialect}) for i, m, dialect in spec]

    work = tmp_path_factory.mktemp("batch")
    batched, alone = EventStore(work / "batched.db"), EventStore(work / "alone.db")
    given_deliveries = [(events(spec), delivery_id) for spec, delivery_id in deliveries]
    split = min(split, len(given_deliveries))
    results = batched.add_many(given_deliveries[:split]) + batched.add_many(given_deliveries[split:])
    expected = [alone.add(evs, delivery_id=delivery_id) for evs, delivery_id in given_deliveries]
    assert [([e.event_id for e in r.stored], r.duplicates) for r in results] == \
        [([e.event_id for e in r.stored], r.duplicates) for r in expected]
    stored = batched.query(EventQuery(limit=1000))
    alone_stored = alone.query(EventQuery(limit=1000))
    assert [(e.dialect, e.event_id) for e in stored] == [(e.dialect, e.event_id) for e in alone_stored]
    # Each stored event came back with the cursor the store gave it.
    assert {e.cursor for r in results for e in r.stored} == {e.cursor for e in stored}


def test_message_state_ignores_inbound_and_never_goes_back(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "events.db")
    store.add([_event(1, message_id="m", state=MessageState.DELIVERED)])
    store.add([_event(2, message_id="m", state=MessageState.SENDING)])
    inbound = WebhookEvent(event_id="in", dialect="coop", kind="inbound", event_type="message.received",
                           message_id="m", state=MessageState.QUEUED)
    store.add([inbound])
    assert store.message_state("m") is MessageState.DELIVERED
    assert store.message_state("other") is None


def test_synchronous_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        EventStore(tmp_path / "x.db", synchronous="SOMETIMES")


class _SlowStore(EventStore):
    """Records the size of every committed batch; commits take a while so requests pile up."""

    def __init__(self, path: Path, fail_first: bool = False) -> None:
        super().__init__(path)
        self.batches: list[int] = []
        self.fail_next = fail_first
        self.lock = threading.Lock()

    def add_many(self, deliveries: Sequence[tuple[Sequence[WebhookEvent], str | None]]) -> list[StoreResult]:
        time.sleep(0.05)
        with self.lock:
            self.batches.append(len(deliveries))
            if self.fail_next:
                self.fail_next = False
                raise OSError("disk full")
        return super().add_many(deliveries)


@pytest.mark.anyio
async def test_group_commit_batches_concurrent_deliveries(tmp_path: Path) -> None:
    store = _SlowStore(tmp_path / "events.db")
    commit = _GroupCommit(store)
    results: dict[int, StoreResult] = {}

    async def deliver(i: int) -> None:
        results[i] = await commit.add([_event(i)], None)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(deliver, i)
    assert sorted(len(r.stored) for r in results.values()) == [1] * 20
    assert sum(store.batches) == 20
    assert len(store.batches) < 20  # concurrent deliveries shared commits
    assert store.count() == 20


def test_group_commit_writer_stops_on_close_and_the_next_delivery_starts_another(tmp_path: Path) -> None:
    # What a served app's lifespan does at shutdown (receiver.close), then the same app served again.
    store = EventStore(tmp_path / "events.db")
    commit = _GroupCommit(store)

    async def deliver(i: int) -> StoreResult:
        return await commit.add([_event(i)], None)

    assert len(anyio.run(deliver, 1).stored) == 1
    first = commit._thread
    assert first is not None and first.is_alive()
    commit.close()
    assert not first.is_alive()
    assert len(anyio.run(deliver, 2).stored) == 1  # a new event loop, a new writer
    second = commit._thread
    assert second is not None and second is not first
    commit.close()
    assert not second.is_alive()
    assert [e.event_id for e in store.query(EventQuery())] == ["evt-1", "evt-2"]


@pytest.mark.anyio
async def test_group_commit_failure_reaches_every_waiter_and_the_next_batch_still_commits(tmp_path: Path) -> None:
    store = _SlowStore(tmp_path / "events.db", fail_first=True)
    commit = _GroupCommit(store)
    outcomes: dict[int, str] = {}

    async def deliver(i: int) -> None:
        try:
            await commit.add([_event(i)], None)
            outcomes[i] = "stored"
        except OSError:
            outcomes[i] = "error"

    async with anyio.create_task_group() as tg:
        tg.start_soon(deliver, 0)
        await anyio.sleep(0.01)  # 0 is being committed (and will fail); the rest queue behind it
        for i in range(1, 6):
            tg.start_soon(deliver, i)
    assert outcomes[0] == "error"
    assert [outcomes[i] for i in range(1, 6)] == ["stored"] * 5
    assert store.count() == 5


class _PoisonStore(EventStore):
    """The database refuses any event whose id starts with ``poison`` (as PostgreSQL refuses a NUL)."""

    def _insert(self, conn, rows, delivery_id, now):  # type: ignore[no-untyped-def]
        if any(ev.event_id.startswith("poison") for ev, _ in rows):
            from sqlalchemy.exc import DataError

            raise DataError("INSERT", {}, ValueError("refused"))
        return super()._insert(conn, rows, delivery_id, now)


def test_a_delivery_the_database_refuses_is_rolled_back_alone(tmp_path: Path) -> None:
    store = _PoisonStore(tmp_path / "events.db")
    poison = _event(99).model_copy(update={"event_id": "poison-1"})
    results = store.add_many([([_event(1)], None), ([_event(2), poison], None), ([_event(3)], None)])
    assert [len(r.stored) for r in results] == [1, 0, 1]
    assert results[1].error is not None and "refused" in results[1].error and results[0].error is None
    assert [e.event_id for e in store.query(EventQuery())] == ["evt-1", "evt-3"]  # evt-2 rolled back with its delivery


def test_a_statement_the_database_itself_refuses_rolls_back_only_its_delivery(tmp_path: Path) -> None:
    # A real refusal from SQLite (a trigger aborting the INSERT), raised by the driver's cursor the store
    # writes with: the batch is written again with a savepoint per delivery, and the error names
    # neither the statement's values nor the text.
    import sqlite3

    path = tmp_path / "events.db"
    EventStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TRIGGER refuse_poison BEFORE INSERT ON events WHEN NEW.event_id LIKE 'poison%'"
                    " BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END")
    store = EventStore(path)
    poison = _event(99).model_copy(update={"event_id": "poison-1", "text": "secret text 123"})
    results = store.add_many([([_event(1)], "d-1"), ([_event(2), poison], "d-2"), ([_event(3)], "d-3")])
    assert [len(r.stored) for r in results] == [1, 0, 1]
    assert results[1].error == "the store refused this delivery (IntegrityError)"
    assert [e.event_id for e in store.query(EventQuery())] == ["evt-1", "evt-3"]
    # Its delivery id was rolled back with it: the sender's retry is not taken for a repeat.
    with pytest.raises(StoreError, match="refused") as refused:
        store.add([poison], delivery_id="d-2")
    assert "secret text" not in str(refused.value) and "poison" not in str(refused.value)
    assert len(store.add([_event(2)], delivery_id="d-2").stored) == 1


class _RefusesAfterWriting(EventStore):
    """The database refuses a delivery holding a ``poison`` event after its other rows were written."""

    def _insert(self, conn, rows, delivery_id, now):  # type: ignore[no-untyped-def]
        result = super()._insert(conn, rows, delivery_id, now)
        if any(ev.event_id.startswith("poison") for ev, _ in rows):
            from sqlalchemy.exc import DataError

            raise DataError("INSERT", {}, ValueError("refused"))
        return result


def test_a_delivery_written_alone_that_the_database_refuses_leaves_nothing_behind(tmp_path: Path) -> None:
    store = _RefusesAfterWriting(tmp_path / "events.db")
    poison = _event(99).model_copy(update={"event_id": "poison-1"})
    [result] = store.add_many([([_event(1), poison], "delivery-1")])
    assert result.error is not None and "refused" in result.error and result.stored == []
    with pytest.raises(StoreError, match="refused"):
        store.add([_event(1), poison], delivery_id="delivery-1")
    assert store.count() == 0  # evt-1 and the delivery id were rolled back with it
    assert [len(store.add([_event(1)], delivery_id="delivery-1").stored)] == [1]  # not taken for a repeat


class _BatchKiller(EventStore):
    """Fails any whole batch holding a ``poison`` event (a failure the savepoints cannot contain)."""

    def add_many(self, deliveries: Sequence[tuple[Sequence[WebhookEvent], str | None]]) -> list[StoreResult]:
        if len(deliveries) > 1 and any(e.event_id.startswith("poison") for events, _ in deliveries for e in events):
            raise OSError("batch failed")
        if any(e.event_id.startswith("poison") for events, _ in deliveries for e in events):
            raise OSError("poison alone")
        time.sleep(0.02)
        return super().add_many(deliveries)


@pytest.mark.anyio
async def test_group_commit_isolates_a_failing_delivery_from_the_others(tmp_path: Path) -> None:
    store = _BatchKiller(tmp_path / "events.db")
    commit = _GroupCommit(store)
    outcomes: dict[str, str] = {}

    async def deliver(event: WebhookEvent) -> None:
        try:
            await commit.add([event], None)
            outcomes[event.event_id] = "stored"
        except OSError:
            outcomes[event.event_id] = "error"

    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(deliver, _event(i))
            if i % 10 == 5:
                tg.start_soon(deliver, _event(100 + i).model_copy(update={"event_id": f"poison-{i}"}))
    assert sorted(k for k, v in outcomes.items() if v == "error") == ["poison-15", "poison-25", "poison-5"]
    assert store.count() == 30


def test_store_url_errors_never_show_the_password() -> None:
    from relay_integrations.webhooks.store import StoreError

    with pytest.raises(StoreError) as info:
        EventStore("postgresql://inbox:hunter2-pw@127.0.0.1:1/events")
    assert "hunter2-pw" not in str(info.value) and "***" in str(info.value)
    with pytest.raises(StoreError, match="unsupported"):
        EventStore("mysql://u:hunter2-pw@127.0.0.1/db")


def _open_files(path: Path) -> int:
    """How many of this process's file descriptors point at the SQLite file (or its WAL)."""
    import os

    fds = Path("/proc/self/fd")
    names = {str(path), f"{path}-wal"}
    count = 0
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) in names:
                count += 1
        except OSError:
            continue
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_close_closes_the_connections_every_thread_read_through(tmp_path: Path) -> None:
    """A trigger or receiver reads from many threads; close() from one must release them all."""
    db = tmp_path / "inbox.db"
    store = EventStore(db)
    barrier = threading.Barrier(4)

    def read() -> None:
        barrier.wait(timeout=30)  # four readers at once: four pooled connections
        store.query(EventQuery(limit=5))
        barrier.wait(timeout=30)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert _open_files(db) >= 2
    store.close()
    assert _open_files(db) == 0

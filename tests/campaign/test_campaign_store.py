"""The campaign store on both backends: schema, relay identity, leases, states, secrets."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from relay_integrations.campaign.campaign_store import (
    SCHEMA_VERSION,
    Accepted,
    CampaignStore,
    CampaignStoreError,
    RelayIdentity,
    schema_table,
)

RELAY = RelayIdentity("relaysms", "http://127.0.0.1:1/relaysms", "key:0123")
OTHER_RELAY = RelayIdentity("relaysms", "http://127.0.0.1:2/relaysms", "key:0123")


@pytest.fixture
def store_location(store_location: str, tmp_path: Path) -> str:
    """The shared store locations, the SQLite file in a directory that does not exist yet (the store makes it)."""
    if store_location.startswith("postgresql"):
        return store_location
    return str(tmp_path / "dir" / "ledger.sqlite")


def _accept(store: CampaignStore, relay: RelayIdentity, campaign: str, n: int) -> None:
    rows = [(f"k{i}", f"+1555000{i:04d}", i) for i in range(n)]
    assert len(store.claim(relay, campaign, rows)) == n
    assert store.mark_sending(relay, campaign, [k for k, _, _ in rows]) == {k for k, _, _ in rows}
    store.record_accepted(relay, campaign, [Accepted(k, message_id=f"m{k}") for k, _, _ in rows])


def test_schema_is_created_once_with_a_version_row(store_location: str) -> None:
    for _ in range(2):
        with CampaignStore.open(store_location) as store:
            with store._require().connect() as conn:
                assert [tuple(r) for r in conn.execute(schema_table.select().with_only_columns(
                    schema_table.c.version))] == [(SCHEMA_VERSION,)]


def test_entries_are_per_relay_identity(store_location: str) -> None:
    with CampaignStore.open(store_location) as store:
        _accept(store, RELAY, "c", 3)
        assert store.count(RELAY, "c") == 3
        assert store.count(OTHER_RELAY, "c") == 0
        assert store.lookup(OTHER_RELAY, "c", ["k0"]) == {}
        assert len(store.claim(OTHER_RELAY, "c", [("k0", "+15550000000", 0)])) == 1


def test_tracking_interface_streams_and_never_moves_states_back(store_location: str) -> None:
    now = datetime.now(timezone.utc)
    with CampaignStore.open(store_location) as store:
        _accept(store, RELAY, "c", 5)
        store.record_states(RELAY, "c", {"mk0": ("delivered", now), "mk1": ("sent", now)})
        store.record_states(RELAY, "c", {"mk0": ("queued", now + timedelta(seconds=1)), "mk1": ("failed", now)})
        assert store.count_states(RELAY, "c") == {None: 3, "delivered": 1, "failed": 1}
        entries = list(store.iter_accepted(RELAY, "c", batch_size=2))
        assert [e.message_id for e in entries] == [f"mk{i}" for i in range(5)]
        assert entries[0].state == "delivered" and entries[0].address == "+15550000000" and entries[0].row == 0
        assert [e.message_id for e in store.iter_accepted(RELAY, "c", states=[None])] == ["mk2", "mk3", "mk4"]
        assert [e.message_id for e in store.iter_accepted(RELAY, "c", states=["failed", None])] == [
            "mk1", "mk2", "mk3", "mk4"]


def test_a_live_lease_is_never_taken_an_expired_one_is(store_location: str) -> None:
    with CampaignStore.open(store_location, lease_seconds=60) as first, \
            CampaignStore.open(store_location, lease_seconds=60) as second:
        assert [c.idempotency_key for c in first.claim(RELAY, "c", [("a", "+1", 1), ("b", "+2", 2)])] == ["a", "b"]
        assert first.mark_sending(RELAY, "c", ["a"]) == {"a"}
        assert second.claim(RELAY, "c", [("a", "+1", 1), ("b", "+2", 2)]) == []
        assert second.mark_sending(RELAY, "c", ["a"]) == set()
        first.lease_seconds = -1  # as if the first run died and its leases ran out
        first.renew()
        taken = {c.idempotency_key: c.status for c in second.claim(RELAY, "c", [("a", "+1", 1), ("b", "+2", 2)])}
        assert taken == {"a": "sending", "b": "claimed"}  # "a" may be on the relay: reconcile, not resend


def test_release_keeps_rows_in_doubt_and_drops_unsent_claims(store_location: str) -> None:
    with CampaignStore.open(store_location) as first, CampaignStore.open(store_location) as second:
        first.claim(RELAY, "c", [("a", "+1", 1), ("b", "+2", 2)])
        first.mark_sending(RELAY, "c", ["a"])
        first.release()
        assert {k: e.status for k, e in second.lookup(RELAY, "c", ["a", "b"]).items()} == {"a": "sending"}
        assert [(c.idempotency_key, c.status) for c in second.claim(RELAY, "c", [("a", "+1", 1)])] == [
            ("a", "sending")]


def test_unreachable_postgresql_is_a_clear_error_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CampaignStoreError) as info:
        CampaignStore.open(f"postgresql://alice:s3cret-pw@127.0.0.1:{port}/db")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "alice" in message
    assert "s3cret-pw" not in message and "s3cret-pw" not in repr(info.value)
    assert "s3cret-pw" not in caplog.text
    assert "s3cret-pw" not in repr(CampaignStore(f"postgresql://alice:s3cret-pw@127.0.0.1:{port}/db"))


def test_a_path_and_a_sqlite_url_are_the_same_store(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with CampaignStore.open(path) as store:
        _accept(store, RELAY, "c", 2)
    with CampaignStore.open(f"sqlite:///{path}") as store:
        assert store.count(RELAY, "c") == 2


def test_the_heartbeat_keeps_a_live_runs_lease_and_stopping_it_lets_the_lease_run_out(store_location: str) -> None:
    import time

    with CampaignStore.open(store_location, lease_seconds=1.5) as alive, \
            CampaignStore.open(store_location, lease_seconds=1.5) as retry:
        assert len(alive.claim(RELAY, "c", [("a", "+1", 1)])) == 1
        alive.start_heartbeat()
        until = time.monotonic() + 4  # well past the lease: only renewals keep it
        while time.monotonic() < until:
            assert retry.claim(RELAY, "c", [("a", "+1", 1)]) == []
            time.sleep(0.1)
        alive.stop_heartbeat()
        deadline = time.monotonic() + 30
        taken: list[object] = []
        while not taken and time.monotonic() < deadline:
            taken = list(retry.claim(RELAY, "c", [("a", "+1", 1)]))
            time.sleep(0.1)
        assert taken and alive.heartbeat_error is None


def _open_and_close(path: str) -> str:
    from relay_integrations.campaign.campaign_store import CampaignStore as Store

    try:
        Store.open(path).close()
        return "ok"
    except Exception as exc:  # reported to the test, which names it
        return str(exc)


def test_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Two workers starting one campaign: a fresh file switched to WAL by several processes at the same
    moment answered "database is locked" at once, without SQLite's busy wait (seen in CI)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(8) as pool:
        for attempt in range(30):
            path = str(tmp_path / f"store{attempt}.sqlite")
            failures = [r for r in pool.map(_open_and_close, [path] * 8) if r != "ok"]
            assert not failures, failures


def test_statements_that_find_rows_by_key_use_the_primary_key_on_sqlite(tmp_path: Path) -> None:
    # Without table statistics SQLite may pick the lease-owner index for "... key IN (...) AND
    # lease_owner = ?", visiting every row the run holds for each chunk (a cost that grows with
    # the square of the campaign). Each statement the hot path ran is planned again here.
    import sqlite3

    import sqlalchemy as sa

    ran: list[tuple[str, tuple[object, ...]]] = []
    with CampaignStore.open(tmp_path / "ledger.sqlite") as store:
        sa.event.listen(store._require(), "before_cursor_execute",
                        lambda _c, _cur, sql, params, _ctx, many: ran.append((sql, params[0] if many else params)))
        rows = [(f"k{i}", f"+1555000{i:04d}", i) for i in range(40)]
        store.claim(RELAY, "c", rows)
        store.claim(RELAY, "c", rows)  # the rows exist now: the update path
        keys = [k for k, _, _ in rows]
        store.write_together(RELAY, "c", [keys[:20]], [Accepted(k, message_id=f"m{k}") for k in keys[20:30]],
                             settled=keys[30:])
        store.lookup(RELAY, "c", keys)
    by_key = [(sql, params) for sql, params in ran if "idempotency_key IN (" in sql or "idempotency_key = ?" in sql]
    assert {sql.split()[0] for sql, _ in by_key} == {"UPDATE", "DELETE", "SELECT"}
    with sqlite3.connect(tmp_path / "ledger.sqlite") as conn:
        for sql, params in by_key:
            plan = " ".join(str(step[3]) for step in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "sqlite_autoindex_relay_campaign_entries_1" in plan, (sql, plan)


def test_a_sqlite_ledger_checkpoints_rarely_and_loses_nothing_when_closed(tmp_path: Path) -> None:
    # The WAL may hold 10,000 pages before a checkpoint (an fsync per ~10 commits of a large campaign
    # instead of per commit): what was committed is read back by another connection while it is all
    # in the WAL, and after the store is closed the WAL is gone and the rows are in the file.
    import sqlite3
    import uuid
    from contextlib import closing

    path = tmp_path / "ledger.sqlite"
    keys = [str(uuid.uuid4()) for _ in range(10_000)]  # random, as idempotency keys are
    with CampaignStore.open(path) as store:
        for at in range(0, len(keys), 1000):
            chunk = keys[at:at + 1000]
            store.claim(RELAY, "c", [(k, f"+1555{i:07d}", i) for i, k in enumerate(chunk, start=at)])
            store.mark_sending(RELAY, "c", chunk)
            store.record_accepted(RELAY, "c", [Accepted(k, message_id=f"m-{k}") for k in chunk])
        with CampaignStore.open(path) as other:
            assert other.accepted_count("c") == len(keys)
        with closing(sqlite3.connect(path)) as conn:  # frames written since the last checkpoint (this runs one)
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert frames > 2000, frames  # SQLite's default checkpoints at 1,000
    assert not path.with_name(path.name + "-wal").exists()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM relay_campaign_entries WHERE status = 'accepted'"
                            ).fetchone() == (len(keys),)

"""The campaign's ledger group commit, on a real store: who commits, what is grouped, what each
writer is told. Sync writers lead their own commits; async ones never commit on the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from campaign_relay_helpers import wait_until

from relay_integrations.campaign.campaign_store import CampaignStore, CampaignStoreError, RelayIdentity
from relay_integrations.campaign.group_commit import GroupCommit, LedgerWrite

RELAY = RelayIdentity("smsgate", "http://127.0.0.1:1/smsgate", "key:0123")
CAMPAIGN = "group-commit"


class _Watched:
    """Wraps a store's write_together: records which thread ran each transaction, and can hold the
    first one until a condition holds or fail the next one."""

    def __init__(self, store: CampaignStore) -> None:
        self.store = store
        self.threads: list[threading.Thread] = []
        self.hold_first_until: Callable[[], bool] | None = None
        self.fail_next: BaseException | None = None
        self._original = store.write_together
        store.write_together = self._write_together  # type: ignore[method-assign]

    def _write_together(self, *args: Any, **kwargs: Any) -> list[set[str]]:
        self.threads.append(threading.current_thread())
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        if self.hold_first_until is not None and len(self.threads) == 1:
            wait_until(self.hold_first_until, "the other writes to queue up")
        return self._original(*args, **kwargs)


@pytest.fixture
def store(store_location: str) -> Iterator[CampaignStore]:
    with CampaignStore.open(store_location) as opened:
        yield opened


def _claimed(store: CampaignStore, n: int) -> list[str]:
    keys = [f"key-{i}" for i in range(n)]
    assert len(store.claim(RELAY, CAMPAIGN, [(k, f"+1555000{i:04d}", i) for i, k in enumerate(keys)])) == n
    return keys


def _statuses(store: CampaignStore, keys: list[str]) -> set[str]:
    return {entry.status for entry in store.lookup(RELAY, CAMPAIGN, keys).values()}


def test_a_lone_sync_write_is_committed_by_its_own_thread(store: CampaignStore) -> None:
    watched = _Watched(store)
    keys = _claimed(store, 3)
    ledger = GroupCommit(store, RELAY, CAMPAIGN)
    try:
        assert ledger.commit(LedgerWrite(marks=keys)) == set(keys)
        assert watched.threads == [threading.current_thread()]
        assert ledger.transactions == 1
        assert _statuses(store, keys) == {"sending"}
    finally:
        ledger.close()


def test_writes_queued_during_a_commit_go_together_to_the_writer_thread(store: CampaignStore) -> None:
    watched = _Watched(store)
    keys = _claimed(store, 16)
    ledger = GroupCommit(store, RELAY, CAMPAIGN)
    # The first writer's transaction waits until the fifteen others are queued behind it.
    watched.hold_first_until = lambda: len(ledger._queued) == 15

    def write(key: str) -> set[str]:
        return ledger.commit(LedgerWrite(marks=[key]))

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            first = pool.submit(write, keys[0])
            wait_until(lambda: len(watched.threads) == 1, "the first write's transaction")  # it leads
            others = [pool.submit(write, k) for k in keys[1:]]
            answers = [f.result(60) for f in [first, *others]]
    finally:
        ledger.close()
    assert answers == [{k} for k in keys]  # each writer learns only its own keys
    assert ledger.transactions == 2  # the first alone, the fifteen queued behind it in one
    assert watched.threads[0].name.startswith("ThreadPoolExecutor")
    assert watched.threads[1].name == "relay-campaign-ledger"
    assert _statuses(store, keys) == {"sending"}


def test_an_async_write_never_commits_on_the_event_loop(store: CampaignStore) -> None:
    watched = _Watched(store)
    keys = _claimed(store, 4)
    ledger = GroupCommit(store, RELAY, CAMPAIGN)

    async def main() -> tuple[list[set[str]], threading.Thread]:
        futures = [asyncio.wrap_future(ledger.submit(LedgerWrite(marks=[k]))) for k in keys]
        return list(await asyncio.gather(*futures)), threading.current_thread()

    try:
        answers, loop_thread = asyncio.run(main())
    finally:
        ledger.close()
    assert answers == [{k} for k in keys]
    assert watched.threads and loop_thread not in watched.threads
    assert _statuses(store, keys) == {"sending"}


def test_a_failed_commit_is_raised_to_its_writer_and_the_next_write_still_commits(store: CampaignStore) -> None:
    watched = _Watched(store)
    keys = _claimed(store, 2)
    ledger = GroupCommit(store, RELAY, CAMPAIGN)
    watched.fail_next = CampaignStoreError("the ledger went away")
    try:
        with pytest.raises(CampaignStoreError, match="went away"):
            ledger.commit(LedgerWrite(marks=[keys[0]]))
        assert ledger.commit(LedgerWrite(marks=[keys[1]])) == {keys[1]}
        assert asyncio.run(_awaited(ledger.submit(LedgerWrite(marks=[keys[0]])))) == {keys[0]}
    finally:
        ledger.close()
    assert _statuses(store, keys) == {"sending"}


async def _awaited(future: Any) -> Any:
    return await asyncio.wrap_future(future)


def test_an_empty_write_is_answered_without_a_transaction(store: CampaignStore) -> None:
    watched = _Watched(store)
    ledger = GroupCommit(store, RELAY, CAMPAIGN)
    assert ledger.commit(LedgerWrite()) == set()
    assert ledger.submit(LedgerWrite()).result(0) == set()
    ledger.close()
    assert watched.threads == [] and ledger.transactions == 0

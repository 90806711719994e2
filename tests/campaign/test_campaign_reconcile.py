"""The core reconciler: any list order, our key where echoed, else address and exact text, bounded."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from relay_integrations.campaign.reconcile import Reconciler, Wanted, reconcile
from relay_integrations.models import MessagePage, MessageSummary

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _summary(message_id: str, to: str, text: str, minutes_ago: float, **raw: Any) -> MessageSummary:
    return MessageSummary(message_id=message_id, to=to, text=text, direction="outbound",
                          created_at=NOW - timedelta(minutes=minutes_ago), raw=raw)


def test_oldest_first_lists_are_read_to_the_end() -> None:
    wanted = [Wanted("k1", "+1", "hi"), Wanted("k2", "+2", "hi")]
    pages = [MessagePage(messages=[_summary("old", "+2", "hi", 600)]),   # before the window: not ours
             MessagePage(messages=[_summary("m1", "+1", "hi", 3)]),
             MessagePage(messages=[_summary("m2", "+2", "hi", 1)])]
    reconciler = Reconciler(wanted, since=NOW - timedelta(minutes=10))
    done = [reconciler.feed(p) for p in pages]
    assert done == [False, False, True]
    assert reconciler.finish(exhausted=False).found == {"k1": "m1", "k2": "m2"}


def test_an_echoed_key_decides_and_another_key_never_matches_by_content() -> None:
    wanted = [Wanted("k1", "+1", "same"), Wanted("k2", "+1", "same")]
    page = MessagePage(messages=[
        _summary("theirs", "+1", "same", 1, metadata={"idempotency_key": "someone-else"}),
        _summary("m2", "+1", "same", 1, metadata={"idempotency_key": "k2"}),
        _summary("m1", "+1", "same", 2),
    ])
    reconciler = Reconciler(wanted, since=NOW - timedelta(minutes=5))
    assert reconciler.feed(page)
    assert reconciler.finish(exhausted=True).found == {"k2": "m2", "k1": "m1"}


def test_one_listed_message_matches_one_wanted_and_what_is_missing_is_reported() -> None:
    wanted = [Wanted("k1", "+1", "hi"), Wanted("k2", "+1", "hi")]
    reconciler = Reconciler(wanted)
    reconciler.feed(MessagePage(messages=[_summary("m1", "+1", "hi", 1), _summary("m1", "+1", "hi", 1)]))
    outcome = reconciler.finish(exhausted=True)
    assert outcome.found == {"k1": "m1"} and outcome.missing == ["k2"] and outcome.complete


class _Pages:
    def __init__(self, pages: list[MessagePage]) -> None:
        self.pages = pages

    def iter_messages(self, *, max_pages: int | None = None, **_: Any) -> Any:
        return iter(self.pages[:max_pages])


def test_a_list_longer_than_the_bound_leaves_the_rest_unchecked_not_missing() -> None:
    pages = [MessagePage(messages=[_summary(f"x{i}", "+9", "other", 1)]) for i in range(5)]
    outcome = reconcile(_Pages(pages), [Wanted("k1", "+1", "hi")], max_pages=3)
    assert outcome.missing == ["k1"] and not outcome.complete
    outcome = reconcile(_Pages(pages), [Wanted("k1", "+1", "hi")], max_pages=10)
    assert outcome.missing == ["k1"] and outcome.complete

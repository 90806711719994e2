"""The one polling loop: transient relay errors are waited through, others end the wait, sync and async alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from relay_integrations.errors import RelayAuthError, RelayUnavailableError
from relay_integrations.polling import apoll_until, poll_until


def _asker(outcomes: list[Any]) -> Callable[[], Any]:
    it: Iterator[Any] = iter(outcomes)

    def ask() -> Any:
        outcome = next(it)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return ask


def _both(outcomes: list[Any], **kwargs: Any) -> list[Any]:
    sync_answer = poll_until(_asker(outcomes), lambda n: n >= 3, interval=0, **kwargs)
    ask = _asker(outcomes)

    async def aask() -> Any:
        return ask()

    async_answer = anyio.run(lambda: apoll_until(aask, lambda n: n >= 3, interval=0, **kwargs))
    return [sync_answer, async_answer]


def test_transient_errors_are_waited_through() -> None:
    assert _both([1, RelayUnavailableError("busy"), 2, 3, 4], timeout=None) == [3, 3]


def test_other_errors_end_the_wait() -> None:
    with pytest.raises(RelayAuthError):
        poll_until(_asker([1, RelayAuthError("no")]), lambda n: False, interval=0, timeout=None)

    async def aask() -> Any:
        raise RelayAuthError("no")

    with pytest.raises(RelayAuthError):
        anyio.run(lambda: apoll_until(aask, lambda n: False, interval=0, timeout=None))


def test_a_time_out_returns_the_last_answer() -> None:
    assert _both([1, 2, 2, 2, 2, 2, 2, 2], timeout=0) == [1, 1]


def test_the_async_message_waiter_adapts_its_status_requests(relay: Any) -> None:
    """``concurrency="auto"`` (the default): the campaign's adaptive limiter paces the status requests."""
    from relay_integrations import AsyncRelayClient, OutboundMessage, RelayClient
    from relay_integrations.concurrency import AdaptiveConcurrency
    from relay_integrations.message_waiter import MessageWaiter
    from relay_integrations.models import MessageState

    kwargs = {"base_url": relay.url("phonerelay"), "dialect": "phonerelay", "api_key": relay.api_key,
              "phone_id": "phone_main"}
    with RelayClient(**kwargs) as client:
        ids = [client.send(OutboundMessage(to=f"+1555777{i:04d}", text="status pacing")).message_id
               for i in range(1, 41)]
    waiter = MessageWaiter(ids, MessageState.SENT)
    assert isinstance(waiter.limiter, AdaptiveConcurrency)

    async def wait() -> Any:
        async with AsyncRelayClient(**kwargs) as aclient:
            return await waiter.await_over(aclient, timeout=120, poll_interval=0.05)

    verdict = anyio.run(wait)
    assert verdict.done and not verdict.failed
    assert set(waiter.reports) == set(ids)

"""Each task written once: an async implementation becomes the async task and its sync twin.

Prefect's integrations offer ``aname`` for async flows and ``name``, which runs the sync task in
sync flows and hands async flows the async task's coroutine (``async_dispatch``). Here both tasks
run the same ``async def``: the sync one drives it to completion on an event loop of its own, so
the two never drift apart and every parameter, default and docstring is written once.

The sync task's function has the implementation's signature and docstring (``functools.wraps``), so
Prefect shows the same parameters for both, and ``send_message.__wrapped__`` is the sync task, for
``.with_options(...)`` or ``.submit(...)``.

``async_dispatch`` is the dispatcher Prefect's own integrations use; Prefect keeps it in an internal
module and offers no public one.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from prefect import task
from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.tasks import Task

P = ParamSpec("P")
R = TypeVar("R")


def run_to_completion(coroutine: Coroutine[Any, Any, R]) -> R:
    """Run ``coroutine`` from sync code and return its result.

    On a fresh event loop in this thread, which sees this thread's context (Prefect's task run
    context included). When this thread already runs a loop (a sync task called directly inside
    an async flow), in a worker thread with a copy of the context: a loop cannot be re-entered.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-sync-task") as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()


def sync_twin(implementation: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """A sync function with ``implementation``'s signature and docstring that runs it to completion."""

    @functools.wraps(implementation)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_to_completion(implementation(*args, **kwargs))

    return run


def task_pair(
    implementation: Callable[P, Coroutine[Any, Any, R]], *, name: str, **options: Any
) -> tuple[Task[P, Coroutine[Any, Any, R]], Callable[P, R | Coroutine[Any, Any, R]]]:
    """The async task ``a<name>`` and the dispatching ``<name>``, both running ``implementation``.

    :param name: the sync task's name; the async task's is ``"a" + name`` (``asend_message``,
        ``await_for_message_status``).
    :param options: Prefect task options for both (``cache_policy``, ``retries``...).
    """
    async_task: Task[P, Coroutine[Any, Any, R]] = task(name="a" + name, **options)(implementation)
    sync_task: Task[P, R] = task(name=name, **options)(sync_twin(implementation))
    dispatching: Callable[P, R | Coroutine[Any, Any, R]] = async_dispatch(async_task)(sync_task)
    return async_task, dispatching

"""What a relay task knows of its run: the retry rules of the send tasks, when an earlier try began,
the run-scoped idempotency key, and which ledger a task uses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.tasks import Task

from prefect_blocks.credentials import (
    RelayCredentials,
    aresolve_ledger_reference,
    resolve_ledger_reference,
)
from relay_integrations.campaign.campaign_store import StoreLocation, display_url
from relay_integrations.dialects import get_dialect
from relay_integrations.errors import RelayError
from relay_integrations.idempotency import single_send_key
from relay_integrations.models import (
    OutboundMessage,
)
from relay_integrations.retry_policy import could_send_twice, worth_retrying

SEND_RETRIES = 2
SEND_RETRY_DELAYS: list[float] = [1.0, 10.0]


class SendOutcomeUnknownError(RuntimeError):
    """The relay may or may not have taken the message (its answer was lost), and it cannot
    recognise a repeated send (no client idempotency keys: relaysms, coop), so the task is not
    retried: check the relay's message list before sending again.
    """

    retry_safe = False


def retry_transient_failures(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """``retry_condition_fn`` of the send tasks: retry unless no retry can fix the error, or a
    retry could send a message twice (errors with ``retry_safe = False``)."""
    del task, task_run
    # The engine hands over Failed(data=<exception>); read it instead of calling state.result(),
    # which is a coroutine in async tasks.
    error = state.data
    return not isinstance(error, BaseException) or worth_retrying(error)


# The send tasks' options: retried on transient failures only (see retry_transient_failures).
SEND_TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "retries": SEND_RETRIES,
    "retry_delay_seconds": SEND_RETRY_DELAYS,
    "retry_condition_fn": retry_transient_failures,
}


def relay_dedupes(credentials: RelayCredentials) -> bool:
    """Whether the relay recognises a repeated send by its idempotency key (phonerelay, smsgate)."""
    return get_dialect(credentials.dialect).capabilities.client_idempotency_keys


def _outcome_unknown(credentials: RelayCredentials, error: RelayError) -> SendOutcomeUnknownError | None:
    """The error to raise instead of ``error`` when a task retry could send the message twice."""
    # A flow-run retry looks the message up first; a task retry does not, hence retry_looks_first=False.
    if not could_send_twice(error, relay_dedupes=relay_dedupes(credentials), retry_looks_first=False):
        return None
    return SendOutcomeUnknownError(
        f"{credentials.dialect} may have taken the message ({error}); not retried because this relay cannot "
        "recognise a repeated send (a flow-run retry looks it up on the relay first)"
    )


def _earlier_try_since() -> datetime | None:
    """When the first try began, if this task run or its flow run is a retry; else None."""
    task_context = TaskRunContext.get()
    flow_context = FlowRunContext.get()
    flow_run = flow_context.flow_run if flow_context is not None else None
    retried = (task_context is not None and task_context.task_run.run_count > 1) or (
        flow_run is not None and flow_run.run_count > 1)
    if not retried:
        return None
    started = None
    if flow_run is not None:
        started = flow_run.start_time or flow_run.expected_start_time
    if started is None and task_context is not None:
        started = task_context.task_run.start_time or task_context.task_run.expected_start_time
    return started.astimezone(timezone.utc) if started else datetime.now(timezone.utc) - timedelta(days=1)


def _is_local(location: StoreLocation | None) -> bool:
    return location is None or display_url(location).startswith("sqlite")


def _ledger_for(credentials: RelayCredentials, ledger: str | None) -> StoreLocation | None:
    if ledger:
        return resolve_ledger_reference(ledger)
    return credentials.ledger_location()


async def _aledger_for(credentials: RelayCredentials, ledger: str | None) -> StoreLocation | None:
    if ledger:
        return await aresolve_ledger_reference(ledger)
    return await credentials.aledger_location()


def run_scoped_idempotency_key(*parts: str, message: OutboundMessage | None = None) -> str | None:
    """A key stable across retries of the calling task run and of its flow run, ``None`` outside a task.

    Built from the flow run id, the task's key and its dynamic key (its position among the flow's
    calls of that task) -- all of which a task retry and a flow retry keep -- ``parts`` and
    ``message`` (its content, so different messages from one task call get different keys).
    """
    context = TaskRunContext.get()
    if context is None:
        return None
    task_run = context.task_run
    scope = str(task_run.flow_run_id) if task_run.flow_run_id else str(task_run.id)
    return single_send_key("prefect", scope, task_run.task_key, task_run.dynamic_key, *parts, message=message)

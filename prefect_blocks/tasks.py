"""Prefect tasks: send messages and campaigns through a relay, and wait for what happens to them.

Every task has an async twin named with an ``a`` prefix (``asend_message``...). The plain name
dispatches: it runs the sync task in sync flows and returns the async one's coroutine in async
flows, as Prefect's own integrations do.

Sends are safe to retry: each message carries an idempotency key derived from the flow run, the
task's position in it and the message, so a task retry (same task run) or a flow retry re-sends
with the same key and relays that de-duplicate (phonerelay, smsgate) answer with the message they
already took. Campaigns also keep a local ledger of accepted rows, so a retry skips them on every
relay. The send tasks therefore retry transient failures by default (2 retries, after 1 s and
10 s); bad input, bad credentials and unsupported operations are never retried.

The dispatching name is a plain function, so Prefect task options live on the tasks behind it:
``asend_message.with_options(retries=5)`` (async) or ``send_message.__wrapped__.with_options(...)``
(sync).

Relays without client idempotency keys (relaysms, coop) cannot recognise a repeated send whose
answer was lost. There an error that may have reached the relay (``RelayError.maybe_sent``: a
500/502/504, a read timeout) fails ``send_message`` with :class:`SendOutcomeUnknownError` and
Prefect does not retry it. A flow-run retry (or a retry of a campaign task) runs the core
reconciler first: every message an earlier try may have sent is looked up on the relay's
outbound list and only what is not there is sent.

Many workers: give the tasks a ``ledger`` (or set ``RelayCredentials.ledger``): a database URL
or a saved ``sqlalchemy-connector``/``secret`` block every worker reaches. Without one, the ledger
is a local SQLite file, and a retry that may run elsewhere reconciles against the relay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import anyio
from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.context import FlowRunContext, TaskRunContext
from prefect.tasks import Task

from prefect_blocks.artifacts import (
    PROGRESS_UPDATE_INTERVAL,
    CampaignProgressArtifact,
    acreate_report_artifacts,
    acreate_validation_artifact,
)
from prefect_blocks.artifacts import artifact_key as campaign_artifact_key
from prefect_blocks.credentials import (
    RelayCredentials,
    RelayWebhookInbox,
    aresolve_ledger_reference,
    resolve_ledger_reference,
)
from prefect_blocks.task_pairs import task_pair
from relay_integrations.campaign import Campaign, CampaignReport, CampaignValidationError
from relay_integrations.campaign.campaign_store import CampaignStore, StoreLocation, display_url
from relay_integrations.campaign.single import send_once
from relay_integrations.client import RelayClient
from relay_integrations.dialects import get_dialect
from relay_integrations.errors import RelayError
from relay_integrations.idempotency import single_send_key
from relay_integrations.message_waiter import MessageWaiter
from relay_integrations.models import (
    InboundQuery,
    InboundStats,
    MessageState,
    OutboundMessage,
    SendReceipt,
    StatusReport,
    WebhookEvent,
)
from relay_integrations.retry_policy import could_send_twice, worth_retrying
from relay_integrations.tracking import CampaignRef, CampaignWaiter, RelayIdentity, TrackingStatus, campaign_result
from relay_integrations.waiting import has_reached
from relay_integrations.webhooks.inbox import EventFilter, WebhookInbox

SEND_RETRIES = 2
SEND_RETRY_DELAYS: list[float] = [1.0, 10.0]


class MessageNotDeliveredError(RuntimeError):
    """A message being waited for ended in a state it can never leave (failed or cancelled).

    :param reports: the final status of every message that did not reach the wanted state.
    """

    def __init__(self, reports: Sequence[StatusReport], wanted: MessageState) -> None:
        self.reports = list(reports)
        self.wanted = wanted
        details = "; ".join(f"{r.message_id}: {r.state.value}" + (f" ({r.error})" if r.error else "") for r in reports)
        super().__init__(f"{len(self.reports)} message(s) will never be {wanted.value}: {details}")


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
_SEND_TASK_OPTIONS: dict[str, Any] = {
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


def _send_once(credentials: RelayCredentials, client: RelayClient, message: OutboundMessage,
               location: StoreLocation | None, earlier: datetime | None, logger: Any) -> SendReceipt:
    """Claim (with a ledger), reconcile on a retry, send; ``earlier``: when the first try began."""
    store = CampaignStore.open(location) if location is not None else None
    try:
        return send_once(client, message, store=store, campaign_id="prefect.send_message",
                         retry=earlier is not None, since=earlier, log=logger)
    except RelayError as exc:
        raise (_outcome_unknown(credentials, exc) or exc) from exc
    finally:
        if store is not None:
            store.close()


# --- idempotency -------------------------------------------------------------------------------


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


def _build_message(
    to: str | list[str] | None,
    text: str | None,
    channel: str,
    subject: str | None,
    sender: str | None,
    idempotency_key: str | None,
    options: Mapping[str, Any] | None,
) -> OutboundMessage:
    data: dict[str, Any] = dict(options or {})
    data.update({"to": to, "text": text, "channel": channel})
    if subject is not None:
        data["subject"] = subject
    if sender is not None:
        data["sender"] = sender
    message = OutboundMessage.model_validate(data)
    if idempotency_key is None:
        idempotency_key = message.idempotency_key or run_scoped_idempotency_key(message=message)
    return message.model_copy(update={"idempotency_key": idempotency_key})


def _log_receipt(receipt: SendReceipt) -> None:
    get_run_logger().info(
        "Relay accepted message %s (%s)%s",
        receipt.message_id,
        receipt.state.value,
        " -- already sent earlier with this idempotency key" if receipt.duplicate else "",
    )


# --- send_message ------------------------------------------------------------------------------


async def _send_message(
    credentials: RelayCredentials,
    to: str | list[str] | None = None,
    text: str | None = None,
    channel: str = "sms",
    subject: str | None = None,
    sender: str | None = None,
    idempotency_key: str | None = None,
    options: dict[str, Any] | None = None,
    ledger: str | None = None,
) -> SendReceipt:
    """Send one message through a relay.

    The idempotency key, unless given, is derived from the flow run, this task call and the
    message, so retries of the task or the flow never send it twice on relays that de-duplicate.

    :param credentials: the relay to send through.
    :param to: recipient address, or several for relays that send one text to many (smsgate).
    :param text: the message text.
    :param channel: sms, wa, tg, email, notify, ... as the relay names them.
    :param subject: email subject (or push title).
    :param sender: sender number or name; the credentials' default when empty.
    :param idempotency_key: your own key, used as given.
    :param options: any other :class:`~relay_integrations.models.OutboundMessage` field
        (``priority``, ``attachments``, ``title``, ``phone_id``, ``metadata``...).
    :param ledger: a ledger every worker shares (database URL, SQLite path, or a saved
        ``sqlalchemy-connector/NAME`` / ``secret/NAME`` block); default ``credentials.ledger``. The
        message is claimed there before sending, so a zombie try and its retry never both send it.
    :return: the relay's receipt (``message_id``, ``state``, ``duplicate``).

    Example:
        ```python
        from prefect import flow
        from prefect_blocks import RelayCredentials
        from prefect_blocks.tasks import send_message

        @flow
        def alert_on_call():
            send_message(RelayCredentials.load("BLOCK_NAME"), to="+15551234567", text="Load finished")
        ```
    """
    message = _build_message(to, text, channel, subject, sender, idempotency_key, options)
    location = await _aledger_for(credentials, ledger)
    # The store and the reconciler are synchronous; a worker thread keeps the event loop free.
    with credentials.get_client() as client:
        receipt = await anyio.to_thread.run_sync(_send_once, credentials, client, message, location,
                                                 _earlier_try_since(), get_run_logger())
    _log_receipt(receipt)
    return receipt


asend_message, send_message = task_pair(_send_message, name="send_message", **_SEND_TASK_OPTIONS)


# --- get_message_status ------------------------------------------------------------------------


async def _get_message_status(credentials: RelayCredentials, message_id: str) -> StatusReport:
    """The message's state as the relay reports it now.

    :param credentials: the relay that took the message.
    :param message_id: the id from the send receipt.
    :return: the status report (``state``, per-recipient states, timeline where the relay has one).
    """
    async with credentials.get_async_client() as client:
        return await client.get_status(message_id)


aget_message_status, get_message_status = task_pair(
    _get_message_status, name="get_message_status", cache_policy=NO_CACHE
)


# --- wait_for_message_status -------------------------------------------------------------------


def _ids(message_id: str | Sequence[str] | Mapping[str, Any]) -> list[str]:
    if isinstance(message_id, Mapping):
        raise ValueError("message_id: a dict must be a campaign result (with campaign_id and its store)")
    ids = [message_id] if isinstance(message_id, str) else list(message_id)
    if not ids:
        raise ValueError("message_id: give at least one message id")
    return ids


def _finish_wait(ids: list[str], waiter: MessageWaiter, single: bool, raise_on_failure: bool,
                 timeout: float) -> StatusReport | list[StatusReport]:
    """The wait's result, or its error: a time-out listing what did not settle, or the failures."""
    wanted, reports = waiter.target, waiter.reports
    verdict = waiter.verdict()
    if not verdict.done:
        pending = verdict.pending
        states = ", ".join(f"{i}: {reports[i].state.value if i in reports else 'unknown'}" for i in pending[:10])
        more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
        raise TimeoutError(f"{len(pending)} message(s) not {wanted.value} within {timeout:g}s ({states}{more})")
    ordered = [reports[i] for i in ids]
    failed = [r for r in ordered if not has_reached(r.state, wanted)]
    if failed and raise_on_failure:
        raise MessageNotDeliveredError(failed, wanted)
    get_run_logger().info(
        "%d of %d message(s) reached %s", len(ordered) - len(failed), len(ordered), wanted.value
    )
    return ordered[0] if single else ordered


class CampaignNotDeliveredError(RuntimeError):
    """Messages of a tracked campaign failed or were cancelled.

    :param status: the campaign's tracking status (counts per state, a sample of failed rows).
    """

    def __init__(self, status: Mapping[str, Any]) -> None:
        self.status = dict(status)
        failed = [r for r in self.status.get("sample", []) if r.get("state") in ("failed", "cancelled")]
        shown = ", ".join(f"row {r.get('row')} ({r.get('address')})" for r in failed[:10])
        campaign = self.status.get("campaign") or {}
        super().__init__(f"campaign {campaign.get('campaign_id')}: {self.status.get('failed_count')} message(s) "
                         f"will never be {self.status.get('target_state')}: {shown}")


def _campaign_outcome(status: TrackingStatus, timeout: float, raise_on_failure: bool) -> dict[str, Any]:
    result = status.as_dict()
    if not status.done:
        raise TimeoutError(f"{status.describe()}; not done within {timeout:g}s")
    if status.failed and raise_on_failure:
        raise CampaignNotDeliveredError(result)
    get_run_logger().info("%s", status.describe())
    return result


async def _wait_for_message_status(
    credentials: RelayCredentials,
    message_id: str | list[str] | dict[str, Any],
    state: MessageState = MessageState.DELIVERED,
    timeout: float = 300.0,  # noqa: ASYNC109 -- same parameters as the sync twin, which a deployment exposes
    poll_interval: float = 2.0,
    raise_on_failure: bool = True,
    concurrency: int = 8,
) -> StatusReport | list[StatusReport] | dict[str, Any]:
    """Poll the relay until one or many messages reach ``state`` (or a later successful one).

    :param credentials: the relay that took the messages.
    :param message_id: one message id (returns one report), a list (returns a list, same order), or a
        campaign: :func:`send_campaign`'s result (or its ``campaign`` reference). A campaign's messages
        are read from its store and tracked with the relay's aggregate views, a bounded number of
        requests per poll; returns ``{campaign, target_state, done, counts, waiting, failed_count,
        sample}`` and raises :class:`CampaignNotDeliveredError` for failures (``raise_on_failure``).
    :param state: the state to wait for; ``sent`` is also satisfied by ``delivered``.
    :param timeout: seconds to wait in all before raising ``TimeoutError``.
    :param poll_interval: seconds between polls of the messages not settled yet.
    :param raise_on_failure: raise :class:`MessageNotDeliveredError` when a message ends failed
        or cancelled; otherwise return its report like the others.
    :param concurrency: status requests in flight at once.
    :raises TimeoutError: some message had not settled in time; the error lists them.
    """
    wanted = MessageState(state)
    campaign = CampaignRef.from_value(message_id)
    if campaign is not None:
        async with credentials.get_async_client() as client:
            location = await credentials.atracking_location(campaign.store)
            waiter = await anyio.to_thread.run_sync(
                lambda: CampaignWaiter(campaign, location=location, target=wanted))
            with waiter:
                status = await waiter.await_done(client, timeout=timeout, poll_interval=poll_interval)
        return _campaign_outcome(status, timeout, raise_on_failure)
    ids = _ids(message_id)
    ids_waiter = MessageWaiter(ids, wanted, concurrency=concurrency, log=get_run_logger())
    async with credentials.get_async_client() as client:
        await ids_waiter.await_over(client, timeout=timeout, poll_interval=poll_interval)
    return _finish_wait(ids, ids_waiter, isinstance(message_id, str), raise_on_failure, timeout)


await_for_message_status, wait_for_message_status = task_pair(
    _wait_for_message_status, name="wait_for_message_status", cache_policy=NO_CACHE
)


# --- query_inbound_stats -----------------------------------------------------------------------


def _inbound_query(query: InboundQuery | Mapping[str, Any] | None) -> InboundQuery | None:
    if query is None or isinstance(query, InboundQuery):
        return query
    return InboundQuery.model_validate(dict(query))


async def _query_inbound_stats(
    credentials: RelayCredentials, query: InboundQuery | dict[str, Any] | None = None
) -> InboundStats:
    """Inbound traffic statistics: messages and calls received, replies, top contacts.

    :param credentials: the relay to ask (phonerelay documents this query; others raise
        :class:`~relay_integrations.errors.UnsupportedOperationError`).
    :param query: filters as the relay's doc names them (``range``, ``channels``, ``event_types``,
        ``tags``, ``source_contains``, ``limit``...).
    """
    async with credentials.get_async_client() as client:
        return await client.inbound_stats(_inbound_query(query))


aquery_inbound_stats, query_inbound_stats = task_pair(
    _query_inbound_stats, name="query_inbound_stats", cache_policy=NO_CACHE
)


# --- wait_for_webhook_event --------------------------------------------------------------------


def _open_inbox(inbox: RelayWebhookInbox | str) -> WebhookInbox:
    if isinstance(inbox, RelayWebhookInbox):
        return inbox.get_inbox()
    if inbox.startswith(("http://", "https://")):
        raise ValueError("inbox: a receiver URL needs its API key; pass a RelayWebhookInbox block instead of a str")
    return WebhookInbox(inbox)


def _event_filter(
    match: Mapping[str, Any] | None,
    dialect: str | None,
    kind: str | None,
    event_type: str | None,
    message_id: str | None,
    state: MessageState | str | None,
    sender: str | None,
    recipient: str | None,
    text_contains: str | None,
    after: int | None,
) -> EventFilter:
    given = {
        "dialect": dialect, "kind": kind, "event_type": event_type, "message_id": message_id, "state": state,
        "sender": sender, "recipient": recipient, "text_contains": text_contains, "after": after,
    }
    return EventFilter.coerce(match, **{k: v for k, v in given.items() if v is not None})


async def _wait_for_webhook_event(
    inbox: RelayWebhookInbox | str,
    match: dict[str, Any] | None = None,
    dialect: str | None = None,
    kind: str | None = None,
    event_type: str | None = None,
    message_id: str | None = None,
    state: MessageState | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    text_contains: str | None = None,
    after: int | None = None,
    timeout: float = 300.0,  # noqa: ASYNC109 -- same parameters as the sync twin, which a deployment exposes
    poll_interval: float = 1.0,
) -> WebhookEvent:
    """Wait until the webhook inbox holds an event matching every filter given.

    Events stored before the call count too, so nothing that arrived between a send and the wait
    is missed; pass ``after`` (an event's ``cursor``) to look only at newer ones.

    :param inbox: a :class:`~prefect_blocks.RelayWebhookInbox` block (local file or receiver URL),
        or the path of the receiver's SQLite inbox.
    :param match: filters as a mapping (any :class:`~relay_integrations.webhooks.inbox.EventFilter` field);
        the keyword filters below override it.
    :param kind: ``status`` (about a message sent) or ``inbound`` (a reply or call received).
    :param state: for status events, the canonical state (``delivered``, ``failed``...).
    :param sender: for inbound events, who wrote.
    :param timeout: seconds to wait before raising ``WebhookWaitTimeout`` (a ``TimeoutError``).
    :param poll_interval: seconds between looks at the inbox.
    :return: the first matching event (lowest cursor).
    """
    wanted = _event_filter(match, dialect, kind, event_type, message_id, state, sender, recipient, text_contains,
                           after)
    # Opened in a worker thread: a local inbox creates its tables when opened.
    async with await anyio.to_thread.run_sync(_open_inbox, inbox) as opened:
        event = await opened.await_for(wanted, timeout=timeout, poll_interval=poll_interval)
    get_run_logger().info("Webhook event %s (%s) matched %s", event.event_id, event.event_type, wanted.describe())
    return event


await_for_webhook_event, wait_for_webhook_event = task_pair(
    _wait_for_webhook_event, name="wait_for_webhook_event", cache_policy=NO_CACHE
)


# --- send_campaign -----------------------------------------------------------------------------


class CampaignSendError(RuntimeError):
    """Some rows of a campaign were not taken by the relay (after the client's own retries).

    Rows the relay accepted are in the campaign's ledger, so a retry sends only the rows that
    failed. Rows whose request may have reached the relay stay marked in the ledger, and the retry
    looks them up on the relay before sending (relaysms, coop) or the relay recognises them by key
    (phonerelay, smsgate), so Prefect retries the task.

    :param report: the campaign report dict (``CampaignReport.to_dict``) of the attempt.
    :param retry_safe: whether re-sending the failed rows can never send one twice.
    """

    def __init__(self, report: Mapping[str, Any], retry_safe: bool = True) -> None:
        self.report = dict(report)
        self.retry_safe = retry_safe
        counts = self.report.get("counts", {})
        failed = [r for r in self.report.get("rows", []) if r.get("state") == "failed"]
        first = f"; first: row {failed[0].get('row')}: {failed[0].get('error')}" if failed else ""
        super().__init__(
            f"campaign {self.report.get('campaign_id')}: {counts.get('failed', 0)} of {counts.get('total', 0)} "
            f"row(s) failed, {counts.get('accepted', 0)} accepted{first}"
            + ("" if retry_safe else "; not retried automatically: this relay cannot recognise a repeated send")
        )


IdempotencyScope = Literal["flow-run", "campaign"]


def _campaign_scope_id(campaign_id: str, scope: IdempotencyScope) -> str:
    """The id the core campaign derives keys and its ledger from.

    ``flow-run``: the flow run id joins the campaign id, so retries of the task or the flow run
    never send twice while a new flow run (next week's schedule) sends again. ``campaign``: the
    campaign id alone, so the campaign goes out once whichever run sends it.
    """
    if scope == "campaign":
        return campaign_id
    context = TaskRunContext.get()
    run_id = None
    if context is not None:
        run_id = context.task_run.flow_run_id or context.task_run.id
    if run_id is None:
        raise RuntimeError("send_campaign with idempotency_scope='flow-run' must run as a Prefect task")
    return f"{campaign_id}@{run_id}"


def _make_campaign(
    template: str,
    recipients: list[dict[str, Any]] | str,
    campaign_id: str,
    scope: IdempotencyScope,
    channel: str,
    address_field: str,
    fields: dict[str, Any] | None,
    default_region: str | None,
    skip_invalid: bool,
    suppression: list[str] | None,
    concurrency: int | Literal["auto"],
    rate_limit: float | None,
    ledger: StoreLocation | None,
    progress: Any,
) -> Campaign:
    if not campaign_id or not campaign_id.strip():
        raise ValueError("campaign_id: give the campaign a name (part of every idempotency key)")
    return Campaign(
        template,
        recipients,
        campaign_id=_campaign_scope_id(campaign_id, scope),
        address_field=address_field,
        channel=channel,
        fields=fields or {},
        default_region=default_region,
        skip_invalid=skip_invalid,
        suppression=suppression or (),
        ledger=ledger,
        concurrency=concurrency,
        rate_limit=rate_limit,
        progress=progress,
    )


def _report_dict(report: CampaignReport, campaign_id: str, scope: IdempotencyScope,
                 max_rows: int | None, relay: RelayIdentity | None = None, store: str | None = None) -> dict[str, Any]:
    try:
        # Counts, bounded errors and the reference wait_for_message_status tracks it by; no id list.
        result = campaign_result(report, relay, max_rows=max_rows, store=store)
    finally:
        report.close()
    result["campaign_id"] = campaign_id
    result["idempotency_scope"] = scope
    return result


def _log_campaign(result: Mapping[str, Any]) -> None:
    counts = result["counts"]
    get_run_logger().info(
        "Campaign %s%s: %s", result["campaign_id"], " (dry run)" if result.get("dry_run") else "",
        ", ".join(f"{k} {v}" for k, v in counts.items()),
    )


def _check_sent(result: dict[str, Any], fail_on_send_errors: bool, retry_safe: bool) -> dict[str, Any]:
    if fail_on_send_errors and result["counts"].get("failed"):
        raise CampaignSendError(result, retry_safe=retry_safe)
    return result


async def _send_campaign(
    credentials: RelayCredentials,
    template: str,
    recipients: list[dict[str, Any]] | str,
    campaign_id: str,
    channel: str = "sms",
    address_field: str = "phone",
    fields: dict[str, Any] | None = None,
    default_region: str | None = None,
    skip_invalid: bool = False,
    suppression: list[str] | None = None,
    dry_run: bool = False,
    idempotency_scope: IdempotencyScope = "flow-run",
    concurrency: int | Literal["auto"] = "auto",
    rate_limit: float | None = None,
    ledger: str | None = None,
    ledger_path: str | None = None,
    fail_on_send_errors: bool = True,
    artifact_key: str | None = None,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """Send one template to many recipients: validate every row first, then send each message once.

    Progress shows in the ``<key>-progress`` artifact while sending; the run ends with a
    ``<key>-report`` table (one row per recipient: state, message id, segments, error) and a
    ``<key>-summary`` markdown artifact (counts, segments, failures). ``<key>`` is
    ``campaign-<campaign id as a key>`` unless ``artifact_key`` is given.

    :param credentials: the relay to send through.
    :param template: the message text, a Jinja2 template rendered with each recipient row.
    :param recipients: a list of row dicts, or the path of a ``.csv`` / ``.jsonl`` file on the worker.
    :param campaign_id: names the campaign; with the flow run, it makes every idempotency key.
    :param channel: sms, wa, tg, email, ... (decides how addresses are checked).
    :param address_field: the row field holding the address.
    :param fields: other message fields (``subject``, ``sender``, ``phone_id``...), str values are templates.
    :param default_region: ISO country for phone numbers written without ``+``.
    :param skip_invalid: send the good rows when some are bad; by default any bad row fails the
        task before anything is sent, with every row-level error in the message and in the
        ``<key>-validation-errors`` table artifact (and is not retried).
    :param suppression: addresses never to message (opt-outs).
    :param dry_run: validate and report, send nothing.
    :param idempotency_scope: ``flow-run`` (default): retries of the task or of the flow run never
        send twice, a new flow run sends again; ``campaign``: the campaign id alone decides, so it
        is sent once whichever run sends it.
    :param concurrency: requests in flight at once: ``"auto"`` (default) adapts to the relay, from
        one request up to 64, backing off when it slows down or answers 429/503; a number is fixed.
    :param rate_limit: at most this many messages per second.
    :param ledger: the campaign's ledger: a database URL every worker shares
        (``postgresql://...``), an SQLite path, or a saved ``sqlalchemy-connector/NAME`` or
        ``secret/NAME`` block; default ``credentials.ledger``, else a local file
        (``$RELAY_CAMPAIGN_LEDGER_DIR`` or the user cache). With a local ledger, a task or flow-run
        retry on a relay without client keys looks every planned row up on the relay first.
    :param ledger_path: the former name of ``ledger``.
    :param fail_on_send_errors: fail the task (after writing the artifacts) when rows failed, so
        Prefect retries them; accepted rows are never sent again, and rows that may have reached
        the relay are looked up there first.
    :param artifact_key: the artifact key prefix (lowercase letters, digits, dashes).
    :param max_rows: at most this many rows in the returned dict and the table (problems first).
    :return: the report as a JSON-able dict: ``counts`` (total, accepted, already_sent, invalid,
        suppressed, duplicate, failed, segments), ``rows``, ``errors`` (the first 20), and ``campaign``:
        the reference :func:`wait_for_message_status` tracks the campaign by (never every message id).
    :raises CampaignValidationError: bad rows and ``skip_invalid`` off; nothing was sent.
    :raises CampaignSendError: rows failed and ``fail_on_send_errors`` is on (retried).
    """
    key = campaign_artifact_key(campaign_id, artifact_key)
    bar = CampaignProgressArtifact(f"{key}-progress", campaign_id)
    location = await _aledger_for(credentials, ledger or ledger_path)
    campaign = _make_campaign(template, recipients, campaign_id, idempotency_scope, channel, address_field, fields,
                              default_region, skip_invalid, suppression, concurrency, rate_limit, location,
                              bar.record)
    earlier = _earlier_try_since() if _is_local(location) else None
    await bar.acreate(f"Campaign {campaign_id}: starting")

    async def pump() -> None:
        # The campaign's callback only records (it also runs in a worker thread); this pushes.
        while True:
            await bar.apush()
            await anyio.sleep(PROGRESS_UPDATE_INTERVAL)

    outcome: CampaignReport | Exception
    async with credentials.get_async_client() as client, anyio.create_task_group() as group:
        relay = RelayIdentity.from_client(client)
        group.start_soon(pump)
        try:
            outcome = await campaign.asend(client, dry_run=dry_run, earlier_try_since=earlier)
        except Exception as exc:  # re-raised below, outside the task group, unwrapped
            outcome = exc
        group.cancel_scope.cancel()
    if isinstance(outcome, CampaignValidationError):
        await acreate_validation_artifact(key, campaign_id, outcome.errors)
    if isinstance(outcome, Exception):
        raise outcome
    report = outcome
    await bar.afinish(dry_run)
    result = _report_dict(report, campaign_id, idempotency_scope, max_rows, relay,
                          credentials.tracking_reference(ledger or ledger_path))
    await acreate_report_artifacts(key, result)
    _log_campaign(result)
    return _check_sent(result, fail_on_send_errors, True)


asend_campaign, send_campaign = task_pair(_send_campaign, name="send_campaign", **_SEND_TASK_OPTIONS)

"""Prefect tasks for single messages: send one, read its status, wait until messages (or a campaign)
reach a state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import anyio
from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

from prefect_blocks.credentials import (
    RelayCredentials,
)
from prefect_blocks.task_pairs import task_pair
from prefect_blocks.task_runs import (
    SEND_TASK_OPTIONS,
    _aledger_for,
    _earlier_try_since,
    _outcome_unknown,
    run_scoped_idempotency_key,
)
from relay_integrations.campaign.campaign_store import CampaignStore, StoreLocation
from relay_integrations.campaign.single import SuppressedSend, send_once
from relay_integrations.campaign.single import honour_opt_outs as honour_opt_outs_of
from relay_integrations.client import RelayClient
from relay_integrations.errors import RelayError
from relay_integrations.message_waiter import MessageWaiter
from relay_integrations.models import (
    MessageState,
    OutboundMessage,
    SendReceipt,
    StatusReport,
)
from relay_integrations.tracking import CampaignRef, CampaignWaiter, TrackingStatus
from relay_integrations.waiting import has_reached


class MessageNotDeliveredError(RuntimeError):
    """A message being waited for ended in a state it can never leave (failed or cancelled).

    :param reports: the final status of every message that did not reach the wanted state.
    """

    def __init__(self, reports: Sequence[StatusReport], wanted: MessageState) -> None:
        self.reports = list(reports)
        self.wanted = wanted
        details = "; ".join(f"{r.message_id}: {r.state.value}" + (f" ({r.error})" if r.error else "") for r in reports)
        super().__init__(f"{len(self.reports)} message(s) will never be {wanted.value}: {details}")


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
    honour_opt_outs: bool = True,
    suppression_store: str | None = None,
) -> SendReceipt | SuppressedSend:
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
    :param honour_opt_outs: leave out recipients on the relay account's suppression list (opt-outs
        from replies, entries added by hand); ``False`` sends to them anyway.
    :param suppression_store: where that list is (SQLite path or database URL); default
        ``$RELAY_SUPPRESSION_STORE``, else a PostgreSQL ledger, else the machine's shared file.
    :return: the relay's receipt (``message_id``, ``state``, ``duplicate``), or, when every recipient
        opted out, a :class:`~relay_integrations.campaign.single.SuppressedSend` (``state``
        ``suppressed``, who and why; nothing was sent).

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
    logger = get_run_logger()
    # The store and the reconciler are synchronous; a worker thread keeps the event loop free.
    with credentials.get_client() as client:
        if honour_opt_outs:
            outcome = await anyio.to_thread.run_sync(lambda: honour_opt_outs_of(
                client, message, suppression_store=suppression_store, ledger=location, warn=logger.warning))
            if isinstance(outcome, SuppressedSend):
                return outcome
            message = outcome
        receipt = await anyio.to_thread.run_sync(_send_once, credentials, client, message, location,
                                                 _earlier_try_since(), logger)
    _log_receipt(receipt)
    return receipt


asend_message, send_message = task_pair(_send_message, name="send_message", **SEND_TASK_OPTIONS)


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
    concurrency: int | Literal["auto"] = "auto",
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
    :param concurrency: status requests in flight at once: ``"auto"`` (default) adapts like a
        campaign's sends; a number is fixed.
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

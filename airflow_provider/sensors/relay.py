"""Sensors that wait for delivery states and for webhook events (replies, receipts).

Both sensors can hand their waiting to a trigger (``deferrable=True``); the trigger waits with the same
core waiters and rules (:mod:`relay_integrations.message_waiter`, :mod:`relay_integrations.waiting`) as
poke mode, so the outcome does not depend on the mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.ledger import tracking_store_url
from airflow_provider.triggers.relay import RelayMessageStatusTrigger, RelayWebhookTrigger
from relay_integrations.errors import RelayError
from relay_integrations.message_waiter import MessageWaiter
from relay_integrations.models import MessageState
from relay_integrations.retry_policy import is_transient
from relay_integrations.tracking import CampaignNotTrackedError, CampaignRef, CampaignWaiter
from relay_integrations.waiting import (
    ENDED_BADLY,
    as_utc,
    batch_ids_from,
    event_is_recent,
    message_ids_from,
    target_state_from,
)

_FAILED = frozenset(state.value for state in ENDED_BADLY)

if TYPE_CHECKING:
    from airflow.sdk import Context


class RelayMessageFailedError(AirflowFailException):
    """A watched message failed (or was cancelled); waiting longer cannot change that.

    :param failed: message id -> the relay's error text (or state).
    """

    def __init__(self, failed: Mapping[str, str], count: int | None = None) -> None:
        self.failed = dict(failed)
        total = len(self.failed) if count is None else max(count, len(self.failed))
        shown = ", ".join(f"{mid}: {err}" for mid, err in list(self.failed.items())[:10])
        more = f" (+{total - min(10, len(self.failed))} more)" if total > min(10, len(self.failed)) else ""
        super().__init__(f"{total} message(s) failed: {shown}{more}")


class RelayMessageStatusSensor(BaseSensorOperator):
    """Wait until a message, or every message of a campaign, reaches a state (default ``delivered``).

    For message ids, returns ``{"target_state", "states": {message_id: state}, "failed": {message_id:
    error}}``. For a campaign (the :class:`~airflow_provider.operators.relay.RelayCampaignOperator`'s
    report, or its ``campaign`` reference), the messages are read from the campaign's store and tracked
    with the relay's aggregate views (batch status and lists, bulk jobs, state-filtered lists, the
    connection's webhook inbox), a bounded number of requests per poke; their states are recorded in
    the store. Returns ``{"campaign", "target_state", "done", "counts": {state: n}, "waiting",
    "failed_count", "sample": [a few rows]}``, never every id.

    :param message_ids: One message id, a list of ids, a send receipt, a list of receipts, or a campaign
        report (dicts as returned by the relay operators, e.g. ``campaign.output``). (templated)
    :param relay_conn_id: The ``relay`` connection. (templated)
    :param target_state: ``queued``, ``sending``, ``sent`` or ``delivered``; a later good state also
        counts (a delivered message has been sent). (templated)
    :param fail_on_failed: Fail the task as soon as a message failed (default). With ``False`` failed
        messages count as finished and are listed in the result.
    :param deferrable: Hand the waiting to :class:`RelayMessageStatusTrigger` on the triggerer.
    """

    template_fields: Sequence[str] = ("message_ids", "relay_conn_id", "target_state")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        message_ids: Any,
        relay_conn_id: str = RelayHook.default_conn_name,
        target_state: str = MessageState.DELIVERED.value,
        fail_on_failed: bool = True,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.message_ids = message_ids
        self.relay_conn_id = relay_conn_id
        self.target_state = target_state
        self.fail_on_failed = fail_on_failed
        self.deferrable = deferrable
        self._messages: MessageWaiter | None = None
        self._waiter: CampaignWaiter | None = None

    @cached_property
    def hook(self) -> RelayHook:
        return RelayHook(self.relay_conn_id)

    def _targets(self) -> tuple[list[str], list[str]]:
        ids, batch_ids = message_ids_from(self.message_ids), batch_ids_from(self.message_ids)
        if not ids and not batch_ids:
            raise AirflowException("message_ids: no message id to wait for")
        return ids, batch_ids

    def _campaign(self) -> CampaignRef | None:
        try:
            return CampaignRef.from_value(self.message_ids)
        except ValueError as e:
            raise AirflowFailException(str(e)) from None

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            finally:
                if self._waiter is not None:
                    self._waiter.close()
        campaign = self._campaign()
        if campaign is not None:
            self.log.info("Deferring: tracking campaign %s until %s", campaign.campaign_id, self.target_state)
            self.defer(
                trigger=RelayMessageStatusTrigger(
                    campaign=campaign.to_dict(),
                    relay_conn_id=self.relay_conn_id,
                    target_state=target_state_from(self.target_state).value,
                    fail_on_failed=self.fail_on_failed,
                    poll_interval=self.poke_interval,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
        ids, batch_ids = self._targets()
        self.log.info(
            "Deferring: waiting for %d message(s)%s to be %s",
            len(ids),
            f" and the messages of {len(batch_ids)} bulk job(s)" if batch_ids else "",
            self.target_state,
        )
        self.defer(
            trigger=RelayMessageStatusTrigger(
                message_ids=ids,
                batch_ids=batch_ids,
                relay_conn_id=self.relay_conn_id,
                target_state=target_state_from(self.target_state).value,
                fail_on_failed=self.fail_on_failed,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def _poke_campaign(self, campaign: CampaignRef) -> PokeReturnValue:
        target = target_state_from(self.target_state)
        try:
            if self._waiter is None:
                settings = self.hook.settings
                inbox = self.hook.inbox_for(settings) if settings.webhook_inbox_url else None
                self._waiter = CampaignWaiter(campaign, location=tracking_store_url(campaign.store), target=target,
                                              inbox=inbox)
            with self.hook.get_client() as client:
                status = self._waiter.poll(client)
        except CampaignNotTrackedError as e:
            raise AirflowException(str(e)) from None
        except RelayError as e:
            if not is_transient(e):
                raise
            self.log.warning("Relay busy or unreachable, will ask again: %s", e)
            return PokeReturnValue(is_done=False)
        self.log.info("%s", status.describe())
        if status.failed and self.fail_on_failed:
            raise RelayMessageFailedError(
                {str(r["message_id"] or r["row"]): str(r["state"]) for r in status.sample if r["state"] in _FAILED},
                count=status.failed,
            )
        return PokeReturnValue(is_done=status.done, xcom_value=status.as_dict() if status.done else None)

    def poke(self, context: Context) -> PokeReturnValue:
        campaign = self._campaign()
        if campaign is not None:
            return self._poke_campaign(campaign)
        if self._messages is None:
            ids, batch_ids = self._targets()
            self._messages = MessageWaiter(ids, target_state_from(self.target_state), batch_ids=batch_ids,
                                           fail_fast=self.fail_on_failed, log=self.log)
        waiter = self._messages
        with self.hook.get_client() as client:
            verdict = waiter.poll(client)
        self.log.info("%s", verdict.describe(waiter.target))
        if verdict.failed and self.fail_on_failed:
            raise RelayMessageFailedError(verdict.failed)
        done = verdict.done
        return PokeReturnValue(is_done=done, xcom_value=verdict.as_result(waiter.target) if done else None)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: the same outcome poke mode would have had."""
        status = event.get("status")
        if "campaign" in event and status in ("failed", "success"):
            if status == "failed":
                sample = event.get("sample") or []
                raise RelayMessageFailedError(
                    {str(r.get("message_id") or r.get("row")): str(r.get("state")) for r in sample
                     if r.get("state") in _FAILED},
                    count=event.get("failed_count"),
                )
            self.log.info("%s", event.get("message"))
            return {k: v for k, v in event.items() if k not in ("status", "message")}
        if status == "failed":
            raise RelayMessageFailedError(event.get("failed") or {})
        if status != "success":
            raise AirflowException(f"waiting for message states failed: {event.get('message')}")
        self.log.info("%s", event.get("message"))
        return {k: event[k] for k in ("target_state", "states", "failed")}


class RelayWebhookSensor(BaseSensorOperator):
    """Wait for a webhook event (an inbound reply, a delivery receipt) in the connection's webhook inbox.

    The inbox is the connection's ``webhook_inbox_url``: a receiver's URL (``relay webhooks serve``) or the
    path of its SQLite file. Returns the matching event as a dict.

    :param relay_conn_id: The ``relay`` connection. (templated)
    :param kind: ``inbound`` (a reply) or ``status`` (a delivery receipt). (templated)
    :param sender: Who sent the event (the number replying). (templated)
    :param recipient: Who the event is for. (templated)
    :param text_contains: Case-insensitive keyword the text must contain. (templated)
    :param message_id: The message a status event is about. (templated)
    :param state: Canonical state of a status event (``delivered``, ``failed``...). (templated)
    :param event_type: The relay's own event name. (templated)
    :param dialect: Relay dialect of the event; defaults to the connection's dialect. (templated)
    :param received_after: Ignore events stored before this datetime (or ISO string). Defaults to the
        start of the DAG run, so a reply to an earlier run never satisfies this one. (templated)
    :param include_earlier_events: Accept events from before the DAG run started too.
    :param deferrable: Hand the waiting to :class:`RelayWebhookTrigger` on the triggerer.
    """

    template_fields: Sequence[str] = (
        "relay_conn_id",
        "kind",
        "sender",
        "recipient",
        "text_contains",
        "message_id",
        "state",
        "event_type",
        "dialect",
        "received_after",
    )
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        relay_conn_id: str = RelayHook.default_conn_name,
        kind: str | None = None,
        sender: str | None = None,
        recipient: str | None = None,
        text_contains: str | None = None,
        message_id: str | None = None,
        state: str | None = None,
        event_type: str | None = None,
        dialect: str | None = None,
        received_after: datetime | str | None = None,
        include_earlier_events: bool = False,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.relay_conn_id = relay_conn_id
        self.kind = kind
        self.sender = sender
        self.recipient = recipient
        self.text_contains = text_contains
        self.message_id = message_id
        self.state = state
        self.event_type = event_type
        self.dialect = dialect
        self.received_after = received_after
        self.include_earlier_events = include_earlier_events
        self.deferrable = deferrable
        self._cursor: int | None = None

    @cached_property
    def hook(self) -> RelayHook:
        return RelayHook(self.relay_conn_id)

    def event_filter(self) -> dict[str, Any]:
        """The filter fields given (plus the connection's dialect), as plain JSON for a trigger."""
        match = {
            "dialect": self.dialect or self.hook.settings.dialect,
            "kind": self.kind,
            "sender": self.sender,
            "recipient": self.recipient,
            "text_contains": self.text_contains,
            "message_id": self.message_id,
            "state": self.state,
            "event_type": self.event_type,
        }
        return {k: v for k, v in match.items() if v not in (None, "")}

    def _since(self, context: Context) -> datetime | None:
        if self.include_earlier_events:
            return None
        if self.received_after:
            return as_utc(self.received_after)
        dag_run = context.get("dag_run")
        return as_utc(getattr(dag_run, "start_date", None)) if dag_run is not None else None

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        since = self._since(context)
        match = self.event_filter()
        self.log.info("Deferring: waiting for a webhook event matching %s", match)
        self.defer(
            trigger=RelayWebhookTrigger(
                match=match,
                relay_conn_id=self.relay_conn_id,
                received_after=since.isoformat() if since else None,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        from relay_integrations.webhooks.inbox import EventFilter

        since = self._since(context)
        wanted = EventFilter.coerce(self.event_filter(), after=self._cursor)
        with self.hook.get_webhook_inbox() as inbox:
            while True:
                events = inbox.query(wanted)
                for event in events:
                    if event_is_recent(event, since):
                        self.log.info("Matching %s event %s from %s", event.kind, event.event_id, event.sender)
                        return PokeReturnValue(is_done=True, xcom_value=event.model_dump(mode="json"))
                if not events:
                    return PokeReturnValue(is_done=False)
                # Everything seen so far is too old: never read it again.
                self._cursor = events[-1].cursor
                if len(events) < wanted.limit:
                    return PokeReturnValue(is_done=False)
                wanted = wanted.model_copy(update={"after": self._cursor})

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: return the matching event."""
        if event.get("status") != "success":
            raise AirflowException(f"waiting for a webhook event failed: {event.get('message')}")
        matched: dict[str, Any] = event["event"]
        self.log.info("Matching %s event %s", matched.get("kind"), matched.get("event_id"))
        return matched

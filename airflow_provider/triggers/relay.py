"""Triggers that wait on the triggerer for message states and webhook events.

They only wait: nothing here sends a message (a triggerer restart re-runs ``run()``, and a send
there could go out twice). Connections are read with the async APIs, as the event loop requires.
The waiting itself is the core's (:class:`~relay_integrations.message_waiter.MessageWaiter`,
:class:`~relay_integrations.tracking.CampaignWaiter`, :func:`~relay_integrations.polling.apoll_until`),
the same the sensor's poke mode and the Prefect tasks use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.ledger import atracking_store_url
from relay_integrations.errors import RelayError
from relay_integrations.message_waiter import MessageWaiter
from relay_integrations.models import MessageState
from relay_integrations.polling import apoll_until
from relay_integrations.tracking import CampaignRef, CampaignWaiter, TrackingStatus
from relay_integrations.waiting import StatusVerdict, as_utc, event_is_recent, target_state_from


class RelayMessageStatusTrigger(BaseTrigger):
    """Wait until every message reaches ``target_state``, or one fails.

    Yields one event: ``{"status": "success" | "failed" | "error", "target_state", "states",
    "failed", "message"}``; for a campaign, ``{"status", "message", **TrackingStatus.as_dict()}``
    (counts per state and a bounded sample, never every id).

    :param message_ids: Ids of the messages to watch (a few; a campaign is named by ``campaign``).
    :param campaign: A campaign reference (:class:`relay_integrations.tracking.CampaignRef` as a dict):
        its messages are read from its store and tracked with the relay's aggregate views, so the
        trigger's kwargs stay a few hundred bytes for any campaign size.
    :param batch_ids: Bulk jobs (coop) whose messages are watched once the relay lists them.
    :param relay_conn_id: The ``relay`` connection to ask.
    :param target_state: State every message must reach (``delivered`` also satisfies ``sent``).
    :param fail_on_failed: End with ``failed`` as soon as one message failed; otherwise failed
        messages count as finished and are reported.
    :param poll_interval: Seconds between rounds of status requests.
    """

    def __init__(
        self,
        message_ids: list[str] | None = None,
        relay_conn_id: str = RelayHook.default_conn_name,
        target_state: str = "delivered",
        fail_on_failed: bool = True,
        poll_interval: float = 5.0,
        batch_ids: list[str] | None = None,
        campaign: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.campaign = CampaignRef.from_value(campaign).to_dict() if campaign else None  # type: ignore[union-attr]
        if campaign and self.campaign is None:
            raise ValueError("campaign: needs a campaign_id and a store")
        self.message_ids = list(message_ids or [])
        self.batch_ids = list(batch_ids or [])
        self.relay_conn_id = relay_conn_id
        self.target_state = target_state_from(target_state).value
        self.fail_on_failed = fail_on_failed
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "message_ids": list(self.message_ids),
                "relay_conn_id": self.relay_conn_id,
                "target_state": self.target_state,
                "fail_on_failed": self.fail_on_failed,
                "poll_interval": self.poll_interval,
                "batch_ids": list(self.batch_ids),
                "campaign": self.campaign,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.campaign is not None:
            async for event in self._run_campaign():
                yield event
            return
        target = MessageState(self.target_state)
        waiter = MessageWaiter(self.message_ids, target, batch_ids=self.batch_ids, fail_fast=self.fail_on_failed,
                               log=self.log)
        try:
            client = await RelayHook(self.relay_conn_id).aget_async_client()
            async with client:

                async def one_round() -> StatusVerdict:
                    verdict = await waiter.apoll(client)
                    if not waiter.is_over(verdict):
                        self.log.info("%s", verdict.describe(target))
                    return verdict

                await apoll_until(one_round, waiter.is_over, timeout=None, interval=self.poll_interval, log=self.log)
        except (RelayError, ValueError) as e:
            yield TriggerEvent({"status": "error", "target_state": self.target_state, "message": str(e)})
            return
        verdict = waiter.verdict()
        status = "failed" if verdict.failed and self.fail_on_failed else "success"
        yield TriggerEvent({"status": status, **verdict.as_result(target), "message": verdict.describe(target)})

    async def _run_campaign(self) -> AsyncIterator[TriggerEvent]:
        """The core waiter, one round per ``poll_interval``; store I/O runs in a worker thread."""

        def is_over(status: TrackingStatus) -> bool:
            return status.done or (bool(status.failed) and self.fail_on_failed)

        try:
            ref = CampaignRef.from_value(self.campaign)
            assert ref is not None
            hook = RelayHook(self.relay_conn_id)
            settings = await hook.aget_settings()
            # Opened in a worker thread: a local inbox creates its tables when opened.
            inbox = await asyncio.to_thread(RelayHook.inbox_for, settings) if settings.webhook_inbox_url else None
            location = await atracking_store_url(ref.store)
            waiter = await asyncio.to_thread(CampaignWaiter, ref, location=location, target=self.target_state,
                                             inbox=inbox)
            client = await hook.aget_async_client()
            with waiter:
                async with client:

                    async def one_round() -> TrackingStatus:
                        status = await waiter.apoll(client)
                        if not is_over(status):
                            self.log.info("%s", status.describe())
                        return status

                    status = await apoll_until(one_round, is_over, timeout=None, interval=self.poll_interval,
                                               log=self.log)
        except (RelayError, ValueError, OSError) as e:
            yield TriggerEvent({"status": "error", "target_state": self.target_state, "message": str(e)})
            return
        assert status is not None  # no time limit: the loop ends only with an answer
        outcome = "failed" if status.failed and self.fail_on_failed else "success"
        yield TriggerEvent({"status": outcome, "message": status.describe(), **status.as_dict()})


class RelayWebhookTrigger(BaseTrigger):
    """Wait for a webhook event matching ``match`` in the connection's webhook inbox.

    Yields one event: ``{"status": "success", "event": <event dict>}`` or ``{"status": "error", "message"}``.

    :param match: Event filter fields (dialect, kind, event_type, message_id, state, sender, recipient,
        text_contains, after).
    :param relay_conn_id: The ``relay`` connection whose ``webhook_inbox_url`` names the inbox.
    :param received_after: ISO timestamp; events the receiver stored before it are ignored.
    :param poll_interval: Seconds between inbox queries.
    """

    def __init__(
        self,
        match: dict[str, Any],
        relay_conn_id: str = RelayHook.default_conn_name,
        received_after: str | None = None,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.match = dict(match)
        self.relay_conn_id = relay_conn_id
        self.received_after = received_after
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "match": dict(self.match),
                "relay_conn_id": self.relay_conn_id,
                "received_after": self.received_after,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from relay_integrations.webhooks.inbox import EventFilter, WebhookInboxError

        try:
            since: datetime | None = as_utc(self.received_after)
            wanted = EventFilter.coerce(self.match)
            inbox = await RelayHook(self.relay_conn_id).aget_webhook_inbox()
            async with inbox:
                while True:
                    try:
                        events = await inbox.aquery(wanted)
                    except WebhookInboxError as e:
                        if e.status_code is not None and e.status_code < 500:
                            raise
                        self.log.warning("Webhook inbox unavailable, still waiting: %s", e)
                        events = []
                    for event in events:
                        if event_is_recent(event, since):
                            yield TriggerEvent({"status": "success", "event": event.model_dump(mode="json")})
                            return
                    if events and len(events) >= wanted.limit:
                        # A full page of older events: read on from the last one without sleeping.
                        wanted = wanted.model_copy(update={"after": events[-1].cursor})
                        continue
                    await asyncio.sleep(self.poll_interval)
        except (RelayError, ValueError, WebhookInboxError) as e:
            yield TriggerEvent({"status": "error", "message": str(e)})

"""Prefect tasks for what comes back: inbound statistics, and waiting for a webhook event."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

from prefect_blocks.credentials import (
    RelayCredentials,
    RelayWebhookInbox,
)
from prefect_blocks.task_pairs import task_pair
from relay_integrations.models import (
    InboundQuery,
    InboundStats,
    MessageState,
    WebhookEvent,
)
from relay_integrations.webhooks.inbox import EventFilter, WebhookInbox

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

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

from prefect_blocks.campaign_tasks import (
    CampaignSendError,
    IdempotencyScope,
    asend_campaign,
    send_campaign,
)
from prefect_blocks.message_tasks import (
    CampaignNotDeliveredError,
    MessageNotDeliveredError,
    aget_message_status,
    asend_message,
    await_for_message_status,
    get_message_status,
    send_message,
    wait_for_message_status,
)
from prefect_blocks.task_runs import (
    SEND_RETRIES,
    SEND_RETRY_DELAYS,
    SendOutcomeUnknownError,
    relay_dedupes,
    retry_transient_failures,
    run_scoped_idempotency_key,
)
from prefect_blocks.webhook_tasks import (
    aquery_inbound_stats,
    await_for_webhook_event,
    query_inbound_stats,
    wait_for_webhook_event,
)

__all__ = [
    "SEND_RETRIES",
    "SEND_RETRY_DELAYS",
    "CampaignNotDeliveredError",
    "CampaignSendError",
    "IdempotencyScope",
    "MessageNotDeliveredError",
    "SendOutcomeUnknownError",
    "aget_message_status",
    "aquery_inbound_stats",
    "asend_campaign",
    "asend_message",
    "await_for_message_status",
    "await_for_webhook_event",
    "get_message_status",
    "query_inbound_stats",
    "relay_dedupes",
    "retry_transient_failures",
    "run_scoped_idempotency_key",
    "send_campaign",
    "send_message",
    "wait_for_message_status",
    "wait_for_webhook_event",
]

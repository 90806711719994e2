"""Former home of the waiting rules, kept so existing imports work.

The rules live in the core, shared with the Prefect tasks: :mod:`relay_integrations.waiting` (states,
times, what a user hands a sensor), :mod:`relay_integrations.retry_policy` (which errors to wait
through), :mod:`relay_integrations.dialects.coop` (bulk job results).
"""

from __future__ import annotations

from relay_integrations.dialects.coop import bulk_job_message_ids
from relay_integrations.retry_policy import is_transient
from relay_integrations.waiting import (
    WAITABLE_STATES,
    StatusVerdict,
    as_utc,
    batch_ids_from,
    event_is_recent,
    has_reached,
    is_settled,
    judge_states,
    message_ids_from,
    target_state_from,
)

__all__ = [
    "WAITABLE_STATES",
    "StatusVerdict",
    "as_utc",
    "batch_ids_from",
    "bulk_job_message_ids",
    "event_is_recent",
    "has_reached",
    "is_settled",
    "is_transient",
    "judge_states",
    "message_ids_from",
    "target_state_from",
]

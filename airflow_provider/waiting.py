"""What the sensors and their triggers decide, kept free of I/O so poke mode and deferrable mode agree.

Both modes feed the same functions: :func:`message_ids_from` reads what the user handed the sensor,
:func:`judge_states` decides whether the wait is over, :func:`event_is_recent` drops webhook events
that are older than the wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from relay_integrations.errors import RelayError, RelayRateLimitError, RelayUnavailableError
from relay_integrations.models import MessageState

_BAD_STATES = (MessageState.FAILED, MessageState.CANCELLED)
WAITABLE_STATES = (MessageState.QUEUED, MessageState.SENDING, MessageState.SENT, MessageState.DELIVERED)


def message_ids_from(value: Any) -> list[str]:
    """The message ids in ``value``, in order and without repeats.

    Accepts one id, a list of ids, a send receipt (``{"message_id": ...}``), a campaign report
    (``{"message_ids": [...]}`` or ``{"rows": [{"message_id": ...}, ...]}``), or a list of any of these
    (for example the receipts of a mapped send task).
    """
    found: list[str] = []

    def visit(item: Any) -> None:
        if item is None:
            return
        if isinstance(item, str):
            if item.strip():
                found.append(item.strip())
            return
        if isinstance(item, Mapping):
            if "message_ids" in item:
                visit(item["message_ids"])
            elif "message_id" in item:
                visit(item["message_id"])
            elif "rows" in item:
                visit([row.get("message_id") for row in item["rows"] if isinstance(row, Mapping)])
            else:
                raise ValueError(
                    "message_ids: a mapping needs 'message_id', 'message_ids' or 'rows' "
                    f"(got keys {sorted(map(str, item))})"
                )
            return
        if isinstance(item, Iterable):
            for element in item:
                visit(element)
            return
        raise ValueError(f"message_ids: cannot read a message id from {type(item).__name__}")

    visit(value)
    return list(dict.fromkeys(found))


def batch_ids_from(value: Any) -> list[str]:
    """Bulk job ids whose messages are not listed yet: a campaign report's ``batch_ids`` (coop bulk jobs
    answer with a job id only; the job lists its messages later)."""
    found: list[str] = []
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("batch_ids"), list | tuple):
            found.extend(str(b) for b in item["batch_ids"] if b)
    return list(dict.fromkeys(found))


def bulk_job_message_ids(answer: Any) -> list[str] | None:
    """The message ids a bulk job's results list, or ``None`` while the job has not listed them all."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("results"), list):
        return None
    ids = [
        str(mid)
        for item in answer["results"]
        if isinstance(item, Mapping) and (mid := item.get("messageId") or item.get("message_id"))
    ]
    total = answer.get("total") or answer.get("totalRecipients")
    if not ids or (isinstance(total, int) and len(ids) < total):
        return None
    return ids


def target_state_from(value: str | MessageState) -> MessageState:
    """The state to wait for; failed and cancelled are outcomes to report, not targets."""
    try:
        state = MessageState(value)
    except ValueError:
        raise ValueError(
            f"target_state: {value!r} is not one of {', '.join(s.value for s in WAITABLE_STATES)}"
        ) from None
    if state not in WAITABLE_STATES:
        raise ValueError(f"target_state: {state.value!r} is not one of {', '.join(s.value for s in WAITABLE_STATES)}")
    return state


def has_reached(state: MessageState, target: MessageState) -> bool:
    """``delivered`` also satisfies a wait for ``sent``; a failed message satisfies nothing."""
    return state not in _BAD_STATES and state.rank >= target.rank


def is_settled(state: MessageState, target: MessageState) -> bool:
    """No need to ask again: the message reached the target or ended badly."""
    return state in _BAD_STATES or has_reached(state, target)


@dataclass
class StatusVerdict:
    """Where a wait on several messages stands.

    :param states: latest known state per message id.
    :param failed: message id -> error (or state) for messages that failed or were cancelled.
    :param pending: ids that have not reached the target yet (and have not failed).
    """

    states: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return not self.pending

    def as_result(self, target: MessageState) -> dict[str, Any]:
        """The sensor's return value (XCom): plain JSON."""
        return {"target_state": target.value, "states": dict(self.states), "failed": dict(self.failed)}

    def describe(self, target: MessageState) -> str:
        reached = len(self.states) - len(self.pending) - len(self.failed)
        return (
            f"{reached}/{len(self.states)} message(s) {target.value}, {len(self.failed)} failed, "
            f"{len(self.pending)} waiting"
        )


def judge_states(states: Mapping[str, tuple[MessageState, str | None]], target: MessageState) -> StatusVerdict:
    """Sort messages into reached / failed / pending. ``states`` maps id -> (state, error text)."""
    verdict = StatusVerdict()
    for message_id, (state, error) in states.items():
        verdict.states[message_id] = state.value
        if state in _BAD_STATES:
            verdict.failed[message_id] = error or state.value
        elif not has_reached(state, target):
            verdict.pending.append(message_id)
    return verdict


def is_transient(error: RelayError) -> bool:
    """Errors worth waiting through: the relay is busy or briefly unreachable (the client already retried)."""
    return isinstance(error, RelayUnavailableError | RelayRateLimitError)


def as_utc(value: datetime | str | None) -> datetime | None:
    """A timezone-aware UTC datetime from a datetime or an ISO string; naive values are taken as UTC."""
    if value is None or value == "":
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def event_is_recent(event: Any, received_after: datetime | None) -> bool:
    """Whether a webhook event arrived at or after ``received_after`` (``None`` accepts every event)."""
    if received_after is None:
        return True
    received = as_utc(getattr(event, "received_at", None) or getattr(event, "occurred_at", None))
    return received is None or received >= received_after

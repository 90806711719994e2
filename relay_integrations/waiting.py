"""The rules of waiting for messages, free of I/O: what a wait may target, when a message is done,
what to report, and how times are read.

Every waiter uses these (the Airflow sensor in poke and deferrable mode, the Prefect wait tasks,
the campaign waiter), so a message counts as delivered, failed or still waiting the same way
wherever it is watched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, overload

from relay_integrations.models import MessageState

#: States a message never leaves and that satisfy no wait: outcomes to report, not targets.
ENDED_BADLY: frozenset[MessageState] = frozenset({MessageState.FAILED, MessageState.CANCELLED})
#: States a wait may target.
WAITABLE_STATES = (MessageState.QUEUED, MessageState.SENDING, MessageState.SENT, MessageState.DELIVERED)


def ended_badly(state: MessageState) -> bool:
    """Failed or cancelled: no later state will come, and no wait is satisfied by it."""
    return state in ENDED_BADLY


def target_state_from(value: str | MessageState) -> MessageState:
    """The state to wait for; failed and cancelled are outcomes to report, not targets."""
    try:
        state = MessageState(value)
    except ValueError:
        state = None
    if state not in WAITABLE_STATES:
        raise ValueError(f"target_state: {value!r} is not one of {', '.join(s.value for s in WAITABLE_STATES)}")
    assert state is not None
    return state


def has_reached(state: MessageState, target: MessageState) -> bool:
    """``target`` or a later good state (``delivered`` satisfies a wait for ``sent``); a failed or
    cancelled message satisfies nothing but a wait for exactly that state."""
    return state == target or (not ended_badly(state) and state.rank >= target.rank)


def is_settled(state: MessageState, target: MessageState) -> bool:
    """No need to ask again: the message reached ``target`` or a state it never leaves."""
    return state.is_final or has_reached(state, target)


@dataclass
class StatusVerdict:
    """Where a wait on several messages stands.

    :param states: latest known state per message id (watched ids not known yet are absent).
    :param failed: message id -> the relay's error text (or the state) for messages that ended badly.
    :param pending: ids that have not reached the target yet and have not ended badly (unknown ones too).
    :param unlisted_jobs: bulk jobs that do not list their messages yet (coop): their messages are unknown.
    """

    states: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    unlisted_jobs: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Every message reached the target or ended badly, and every bulk job listed its messages."""
        return not self.pending and not self.unlisted_jobs

    def as_result(self, target: MessageState) -> dict[str, Any]:
        """The outcome as plain JSON (an XCom, a trigger event)."""
        return {"target_state": target.value, "states": dict(self.states), "failed": dict(self.failed)}

    def describe(self, target: MessageState) -> str:
        total = len(self.states.keys() | set(self.pending))
        reached = total - len(self.pending) - len(self.failed)
        jobs = f"; {len(self.unlisted_jobs)} bulk job(s) not listing their messages yet" if self.unlisted_jobs else ""
        return (f"{reached}/{total} message(s) {target.value}, {len(self.failed)} failed, "
                f"{len(self.pending)} waiting{jobs}")


def judge_states(
    states: Mapping[str, tuple[MessageState, str | None]],
    target: MessageState,
    *,
    unknown: Iterable[str] = (),
    unlisted_jobs: Iterable[str] = (),
) -> StatusVerdict:
    """Sort messages into reached / failed / pending. ``states`` maps id -> (state, error text);
    ``unknown`` ids (no answer yet) are pending."""
    verdict = StatusVerdict(unlisted_jobs=list(unlisted_jobs))
    for message_id, (state, error) in states.items():
        verdict.states[message_id] = state.value
        if ended_badly(state) and state != target:
            verdict.failed[message_id] = error or state.value
        elif not has_reached(state, target):
            verdict.pending.append(message_id)
    verdict.pending.extend(m for m in dict.fromkeys(unknown) if m not in states)
    return verdict


# --- what the user handed over -------------------------------------------------------------------


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


# --- time ----------------------------------------------------------------------------------------


@overload
def as_utc(value: datetime) -> datetime: ...


@overload
def as_utc(value: datetime | str | None) -> datetime | None: ...


def as_utc(value: datetime | str | None) -> datetime | None:
    """A timezone-aware UTC datetime from a datetime or an ISO string (``Z`` allowed).

    Naive values are taken as UTC, never as the machine's local time: Airflow, Prefect, the relays
    and our stores all write UTC, and a worker's time zone must not shift a wait or a look-up.
    """
    if value is None or value == "":
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def event_is_recent(event: Any, received_after: datetime | None) -> bool:
    """Whether a webhook event arrived at or after ``received_after`` (``None`` accepts every event)."""
    since = as_utc(received_after)
    if since is None:
        return True
    received = as_utc(getattr(event, "received_at", None) or getattr(event, "occurred_at", None))
    return received is None or received >= since

"""Campaign-level tracking: one waiter, driven by the Airflow sensor (poke), its trigger (async) and
the Prefect wait task.

A campaign is named by a :class:`CampaignRef` (campaign id, the store that holds its ledger, the relay
identity), never by its list of message ids: the ids live in the store, which also keeps each
message's last state. A poll round reads the messages not final yet from the store, asks the relay
through its aggregate views, and records what it learnt:

* relaysms: ``GET /sms/batch/{id}`` per open batch; a batch's messages are listed
  (``/sms/batch/{id}/messages``, 100 a page) only when its counters say some of ours became final.
* coop: ``GET /messages/bulk/:jobId`` per open bulk job, its results listed only on the same condition.
* smsgate: the message list filtered by state (Pending, Processed, Sent, then Failed, Delivered),
  100 a page, until every open message of ours has been seen.
* phonerelay (no aggregate view), and messages sent one by one: ``GET`` per open message.
* a webhook inbox, where configured: status events since the last round, at no cost to the relay.

Every round has a request budget (:func:`round_budget`: 100 plus one per 100 open messages, e.g.
1,100 for 100,000), so a round over a huge campaign never turns into a GET per message; what a round
could not reach is first in line next round. The round itself (:func:`round_flow`) is a sans-IO flow
(:mod:`relay_integrations._operations`): both clients drive it, so sync and async waits agree.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from relay_integrations.campaign.campaign_store import CampaignStore, RelayIdentity, StoreLocation, hide_password
from relay_integrations.dialects import get_dialect
from relay_integrations.dialects.base import Dialect, RelayRequest
from relay_integrations.errors import RelayNotFoundError
from relay_integrations.models import MessageState
from relay_integrations.polling import apoll_until, poll_until
from relay_integrations.retry_policy import TRANSIENT_ERRORS

if TYPE_CHECKING:
    from relay_integrations._operations import Flow, RelayResponse
    from relay_integrations.client import AsyncRelayClient, RelayClient
    from relay_integrations.webhooks.inbox import WebhookInbox

logger = logging.getLogger(__name__)

#: Messages one list page holds (the relays' documented maximum ``limit``).
PAGE_SIZE = 100
#: Requests a round may spend beyond one per page of open messages (batch status reads and the like).
ROUND_OVERHEAD = 100
#: Rows of a result listed in full (failed and not-yet-final first); the rest are counted only.
SAMPLE_SIZE = 20

FINAL_STATES = frozenset(s.value for s in MessageState if s.is_final)
_BAD_STATES = frozenset({MessageState.FAILED.value, MessageState.CANCELLED.value})


# --- what the waiter needs from the campaign store -------------------------------------------------


def identity_dict(relay: RelayIdentity) -> dict[str, str]:
    return {"dialect": relay.dialect, "base_url": relay.base_url, "account": relay.account}


class TrackedEntry(Protocol):
    """One accepted message as the store gives it back."""

    @property
    def message_id(self) -> str | None: ...
    @property
    def batch_id(self) -> str | None: ...
    @property
    def address(self) -> str: ...
    @property
    def row(self) -> int | None: ...
    @property
    def state(self) -> str | None: ...


class TrackingStore(Protocol):
    """The part of the campaign store the waiter uses.

    ``states`` filters on the last recorded state; ``None`` in it selects messages with no state yet.
    ``record_states`` never moves a message's state backwards.
    """

    def iter_accepted(
        self, relay: Any, campaign_id: str, *, states: Collection[str | None] | None = None, batch_size: int = 1000
    ) -> Iterator[TrackedEntry]: ...

    def record_states(self, relay: Any, campaign_id: str, states: Mapping[str, tuple[str, Any]]) -> Any: ...

    def count_states(self, relay: Any, campaign_id: str) -> Mapping[str | None, int]: ...


@dataclass(frozen=True)
class CampaignRef:
    """What names a campaign for tracking: a few hundred bytes whatever its size.

    :param campaign_id: the campaign id.
    :param store: where its ledger is: a file path, a SQLAlchemy URL without a password, or a name the
        adapter resolves (an Airflow connection id, a Prefect block). A password never goes in here.
    :param relay: the relay it went to; ``None`` means "the relay of the client that tracks it".
    """

    campaign_id: str
    store: str
    relay: RelayIdentity | None = None

    def __post_init__(self) -> None:
        if not self.campaign_id:
            raise ValueError("campaign: campaign_id is empty")
        if not self.store:
            raise ValueError(f"campaign {self.campaign_id}: no store (ledger) to track it in")
        if hide_password(self.store) != self.store:  # it would end up in XComs, trigger rows and logs
            raise ValueError(
                f"campaign {self.campaign_id}: the store URL carries a password; "
                "name a connection or block that holds it instead"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "store": self.store,
            "relay": identity_dict(self.relay) if self.relay else None,
        }

    @classmethod
    def from_value(cls, value: Any) -> CampaignRef | None:
        """A reference from what a user hands a sensor or task: a :class:`CampaignRef`, its dict, or a
        campaign report dict (``{"campaign": {...}}`` as the campaign operator and task return it).
        ``None`` when ``value`` names no campaign (message ids, receipts)."""
        if isinstance(value, CampaignRef):
            return value
        if not isinstance(value, Mapping):
            return None
        if "campaign" in value and value["campaign"] is None:
            return None  # a dry run's report: nothing was sent, nothing to track
        if isinstance(value.get("campaign"), Mapping):
            value = value["campaign"]
        store = value.get("store") or value.get("ledger") or value.get("ledger_path")
        if not value.get("campaign_id") or not store:
            return None
        relay = value.get("relay")
        identity = (
            RelayIdentity(str(relay["dialect"]), str(relay["base_url"]), str(relay.get("account") or ""))
            if isinstance(relay, Mapping) and relay.get("dialect") and relay.get("base_url")
            else None
        )
        return cls(str(value["campaign_id"]), str(store), identity)


def open_store(reference: StoreLocation) -> TrackingStore:
    """The campaign store behind ``reference``: a SQLAlchemy URL or a file path that exists here."""
    if isinstance(reference, (str, Path)) and "://" not in str(reference):
        path = Path(reference).expanduser()
        if not path.is_file():
            # Never create an empty store here: it would report a campaign as done with nothing tracked.
            raise CampaignNotTrackedError(
                f"campaign store {reference} does not exist on this machine; a local ledger is only on the "
                "worker that sent the campaign (use a shared PostgreSQL ledger on many workers)"
            )
    return CampaignStore.open(reference)


class CampaignNotTrackedError(ValueError):
    """The campaign's store cannot be found, or holds none of its messages for this relay."""


# --- one round, without I/O ---------------------------------------------------------------------------


def round_budget(open_messages: int) -> int:
    """Requests one round may make: one per page of open messages, plus :data:`ROUND_OVERHEAD`."""
    return ROUND_OVERHEAD + math.ceil(open_messages / PAGE_SIZE)


def open_states(target: MessageState) -> tuple[str | None, ...]:
    """Stored states that still wait for ``target`` (``None``: nothing known yet)."""
    return (None, *(s.value for s in MessageState if not s.is_final and s.rank < target.rank))


@dataclass
class RoundPlan:
    """What one round asks about, built from the store's open entries (:func:`plan_round`).

    :param batches: batch / bulk job id -> our open message ids in it (relaysms, coop).
    :param listed: open message ids looked up in state-filtered lists (smsgate).
    :param singles: open message ids asked one by one, in the order to ask them.
    :param without_id: open entries with no message id yet (nothing to ask about).
    """

    dialect: str
    target: MessageState
    budget: int
    batches: dict[str, set[str]] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)
    singles: list[str] = field(default_factory=list)
    without_id: int = 0

    @property
    def open_messages(self) -> int:
        return sum(map(len, self.batches.values())) + len(self.listed) + len(self.singles)


def plan_round(
    dialect: Dialect | str,
    entries: Iterable[TrackedEntry],
    *,
    target: MessageState = MessageState.DELIVERED,
    max_requests: int | None = None,
    first: Collection[str] = (),
) -> RoundPlan:
    """Sort open entries by how the relay can answer for them. ``first``: batches and ids a previous
    round could not reach, asked before the others."""
    d = get_dialect(dialect)
    plan = RoundPlan(dialect=d.name, target=target, budget=0)
    singles: dict[str, None] = {}
    aggregate = d.capabilities.batch in ("batch", "bulk")
    for entry in entries:
        message_id = entry.message_id
        if not message_id:
            plan.without_id += 1
            continue
        if d.capabilities.batch == "recipients":
            plan.listed.add(message_id)
        elif aggregate and entry.batch_id:
            plan.batches.setdefault(entry.batch_id, set()).add(message_id)
        else:
            singles[message_id] = None
    if len(plan.listed) <= len(_LIST_ORDER):
        # Fewer open messages than state lists to read: asking each one is cheaper.
        singles.update(dict.fromkeys(sorted(plan.listed)))
        plan.listed = set()
    if first:
        wanted = set(first)
        plan.batches = dict(sorted(plan.batches.items(), key=lambda kv: kv[0] not in wanted))
        plan.singles = sorted(singles, key=lambda m: m not in wanted)
    else:
        plan.singles = list(singles)
    budget = round_budget(plan.open_messages)
    plan.budget = budget if max_requests is None else max(1, min(budget, max_requests))
    return plan


@dataclass
class RoundOutcome:
    """What one round learnt. ``updates``: message id -> (state, when learnt); ``unreached``: batches and
    ids the budget (or a busy relay) left for the next round."""

    updates: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    requests: int = 0
    unreached: list[str] = field(default_factory=list)
    interrupted: str | None = None


# smsgate's state-filtered lists, open states first: an open message of ours missing from them is final.
_LIST_ORDER = (MessageState.QUEUED, MessageState.SENDING, MessageState.SENT, MessageState.FAILED,
               MessageState.DELIVERED)


class _RoundOver(Exception):
    """The budget is spent, or the relay is busy: end the round with what it learnt so far."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def round_flow(dialect: Dialect | str, plan: RoundPlan) -> Flow[RoundOutcome]:
    """One poll round as a flow: yields requests, receives answers, returns a :class:`RoundOutcome`."""
    d = get_dialect(dialect)
    outcome = RoundOutcome()

    def ask(request: RelayRequest) -> Flow[RelayResponse | None]:
        if outcome.requests >= plan.budget:
            raise _RoundOver
        outcome.requests += 1
        try:
            response = yield request
        except RelayNotFoundError:
            return None  # the relay forgot it (or never had it): nothing to learn, not a reason to stop
        except TRANSIENT_ERRORS as e:
            outcome.interrupted = str(e)
            raise _RoundOver from None
        return response

    def learn(message_id: str, state: MessageState | None, wanted: set[str]) -> None:
        if state is not None and message_id in wanted:
            outcome.updates[message_id] = (state.value, _now())
            wanted.discard(message_id)

    todo: list[str] = list(plan.batches)
    done = 0  # how many of ``todo`` were handled; the rest are first in line next round
    try:
        # relaysms batches, coop bulk jobs: a counter read per batch, its list only when it moved.
        for batch_id in todo:
            wanted = set(plan.batches[batch_id])
            answer = yield from ask(d.build_get_batch(batch_id))
            if answer is not None and _batch_may_have_news(d, answer.body, len(wanted), plan.target):
                page = 1
                while wanted:
                    request, per_page = _batch_page_request(d, batch_id, page)
                    answer = yield from ask(request)
                    if answer is None:
                        break
                    listed = _batch_page(d, answer.body)
                    for m in listed.messages:
                        learn(m.message_id, m.state, wanted)
                    if not listed.messages or listed.has_more is False or len(listed.messages) < per_page:
                        break
                    page += 1
            done += 1

        # smsgate: lists filtered by state, open states first; what is not open any more is final.
        unresolved = set(plan.listed)
        if unresolved:
            settled_state = getattr(d, "settled_state", None)
            # Lists also hold other campaigns' messages; keep some requests to ask for ours one by one,
            # so a long foreign history never starves them.
            list_budget = plan.budget - min(plan.budget // 2, ROUND_OVERHEAD // 2, len(unresolved))
            for state in _LIST_ORDER:
                skip = 0
                while unresolved and outcome.requests < list_budget:
                    answer = yield from ask(d.build_list_messages(state=state, skip=skip, limit=PAGE_SIZE))
                    items = answer.body if answer is not None and isinstance(answer.body, list) else []
                    for item in items:
                        if isinstance(item, Mapping) and item.get("id") is not None:
                            found = settled_state(item) if settled_state else state
                            learn(str(item["id"]), found, unresolved)
                    if len(items) < PAGE_SIZE:
                        break
                    skip += len(items)
                if not unresolved:
                    break

        # One by one: relays without an aggregate view, single sends, and what the lists missed.
        todo, done = [*plan.singles, *sorted(unresolved)], 0
        for message_id in todo:
            answer = yield from ask(d.build_get_status(message_id))
            if answer is not None:
                learn(message_id, _single_state(d, answer.body), {message_id})
            done += 1
    except _RoundOver:
        outcome.unreached = todo[done:]
    return outcome


def _batch_may_have_news(d: Dialect, body: Any, ours_open: int, target: MessageState) -> bool:
    """Whether a batch's counters say some of our open messages may have moved (always, when waiting for
    an intermediate state: the counters only count final messages)."""
    if target is not MessageState.DELIVERED:
        return True
    progress = d.parse_batch_progress(body)
    raw = progress.raw.get("data", progress.raw) if isinstance(progress.raw, Mapping) else {}
    rejected = raw.get("rejected") if isinstance(raw, Mapping) else None
    # relaysms counts rejected messages in ``total``; they were never ours to track.
    never_taken = rejected if isinstance(rejected, int) else 0
    relay_open = progress.total - progress.processed - never_taken
    finished = progress.total > 0 and progress.processed + never_taken >= progress.total
    return finished or relay_open < ours_open


def _batch_page_request(d: Dialect, batch_id: str, page: int) -> tuple[RelayRequest, int]:
    """One page of a batch's messages, and how many a full page holds."""
    if d.capabilities.batch == "bulk":
        # A coop bulk job is at most 1000 messages: one page of results.
        per_page = PAGE_SIZE * 10
        return d.build_bulk_results(batch_id, page=page, limit=per_page), per_page  # type: ignore[attr-defined]
    return d.build_list_batch_messages(batch_id, page=page, limit=PAGE_SIZE), PAGE_SIZE  # type: ignore[attr-defined]


def _batch_page(d: Dialect, body: Any) -> Any:
    if d.capabilities.batch == "bulk":
        return d.parse_bulk_results(body)  # type: ignore[attr-defined]
    return d.parse_message_page(body)


def _single_state(d: Dialect, body: Any) -> MessageState:
    settled_state = getattr(d, "settled_state", None)
    if settled_state is not None and isinstance(body, Mapping):
        found = settled_state(body)
        if found is not None:
            return MessageState(found)
    return d.parse_status(body).state


# --- the waiter ---------------------------------------------------------------------------------------


@dataclass
class TrackingStatus:
    """Where a campaign stands after a round.

    :param counts: stored state -> messages (``unknown``: nothing learnt yet; ``no_message_id``: an
        accepted row the relay has not named yet).
    :param waiting: messages not at the target state yet (and not failed).
    :param requests: relay requests the last round made; ``budget`` what it was allowed.
    """

    campaign: CampaignRef
    target: MessageState
    counts: dict[str, int]
    waiting: int
    failed: int
    requests: int = 0
    budget: int = 0
    rounds: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)
    interrupted: str | None = None

    @property
    def done(self) -> bool:
        return self.waiting == 0

    def describe(self) -> str:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()) if v)
        return (f"campaign {self.campaign.campaign_id}: {self.waiting} waiting for {self.target.value}, "
                f"{self.failed} failed ({shown}); last round {self.requests} request(s)")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON of bounded size (counts and a sample, never every id): XCom, task results, events."""
        return {
            "campaign": self.campaign.to_dict(),
            "target_state": self.target.value,
            "done": self.done,
            "counts": dict(self.counts),
            "waiting": self.waiting,
            "failed_count": self.failed,
            "rounds": self.rounds,
            "requests_last_round": self.requests,
            "sample": list(self.sample),
        }


def _state_key(state: str | None) -> str:
    return state if state is not None else "unknown"


class CampaignWaiter:
    """Tracks one campaign in its store until every message is final (or the target state).

    :param campaign: the campaign reference.
    :param store: its store (:func:`open_store` of ``location`` or ``campaign.store`` when omitted).
    :param location: where the store is, when ``campaign.store`` names it indirectly (an Airflow
        connection, a Prefect block): the URL the adapter resolved, password included.
    :param relay: the relay identity entries are keyed by (``campaign.relay``, else from the client).
    :param target: wait until every message reached this state or failed (default ``delivered``).
    :param max_requests_per_round: a lower cap than :func:`round_budget`'s.
    :param inbox: a webhook inbox whose status events are read every round before asking the relay.
    """

    def __init__(
        self,
        campaign: CampaignRef,
        store: TrackingStore | None = None,
        *,
        location: StoreLocation | None = None,
        relay: RelayIdentity | None = None,
        target: MessageState | str = MessageState.DELIVERED,
        max_requests_per_round: int | None = None,
        inbox: WebhookInbox | None = None,
        sample_size: int = SAMPLE_SIZE,
    ) -> None:
        self.campaign = campaign
        self._owns_store = store is None
        self.store = store if store is not None else open_store(location or campaign.store)
        self.relay = relay or campaign.relay
        self.target = MessageState(target)
        if self.target.is_final and self.target is not MessageState.DELIVERED:
            raise ValueError(f"target_state: {self.target.value!r} is an outcome, not a state to wait for")
        self.max_requests_per_round = max_requests_per_round
        self.inbox = inbox
        self.sample_size = sample_size
        self.rounds = 0
        self._first: list[str] = []
        self._inbox_cursor: int | None = None

    def close(self) -> None:
        """Close the store if the waiter opened it (and the inbox it was given)."""
        if self._owns_store:
            close = getattr(self.store, "close", None)
            if close is not None:
                close()
        if self.inbox is not None:
            self.inbox.close()

    def __enter__(self) -> CampaignWaiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _identity(self, client: RelayClient | AsyncRelayClient) -> RelayIdentity:
        if self.relay is None:
            self.relay = RelayIdentity.from_client(client)
        return self.relay

    # Store I/O, the same for both drivers (the async one runs them in a worker thread).
    def plan(self, dialect: Dialect | str) -> RoundPlan:
        entries = self.store.iter_accepted(self.relay, self.campaign.campaign_id, states=open_states(self.target))
        return plan_round(dialect, entries, target=self.target, max_requests=self.max_requests_per_round,
                          first=self._first)

    def inbox_states(self, events: Iterable[Any]) -> dict[str, tuple[str, datetime]]:
        found: dict[str, tuple[str, datetime]] = {}
        for event in events:
            if event.message_id and event.state is not None:
                at = event.occurred_at or _now()
                previous = found.get(event.message_id)
                if previous is None or MessageState(previous[0]).rank < event.state.rank:
                    found[event.message_id] = (event.state.value, at)
            if event.cursor is not None:
                self._inbox_cursor = max(self._inbox_cursor or 0, event.cursor)
        return found

    def _inbox_filter(self, dialect: str) -> Any:
        from relay_integrations.webhooks.inbox import EventFilter

        return EventFilter(dialect=dialect, kind="status", after=self._inbox_cursor, limit=1000)

    def record(self, outcome: RoundOutcome, plan: RoundPlan) -> TrackingStatus:
        if outcome.updates:
            self.store.record_states(self.relay, self.campaign.campaign_id, outcome.updates)
        self.rounds += 1
        self._first = list(outcome.unreached)
        return self.status(requests=outcome.requests, budget=plan.budget, interrupted=outcome.interrupted)

    def status(self, *, requests: int = 0, budget: int = 0, interrupted: str | None = None) -> TrackingStatus:
        """Counts from the store, and a bounded sample (failed first, then those still waiting)."""
        raw = self.store.count_states(self.relay, self.campaign.campaign_id)
        if not any(raw.values()):
            relay = f" on {self.relay.dialect} {self.relay.base_url}" if self.relay else ""
            raise CampaignNotTrackedError(
                f"campaign {self.campaign.campaign_id}: its store {self.campaign.store} holds no accepted "
                f"message{relay}"
            )
        counts = {_state_key(k): int(v) for k, v in raw.items() if v}
        waiting_states = set(open_states(self.target))
        waiting = sum(int(v) for k, v in raw.items() if k in waiting_states)
        failed = sum(int(v) for k, v in raw.items() if k in _BAD_STATES)
        sample: list[dict[str, Any]] = []
        for states in (tuple(_BAD_STATES), open_states(self.target)):
            if len(sample) >= self.sample_size:
                break
            for entry in self.store.iter_accepted(self.relay, self.campaign.campaign_id, states=states,
                                                  batch_size=self.sample_size):
                sample.append({"row": entry.row, "address": entry.address, "message_id": entry.message_id,
                               "state": entry.state})
                if len(sample) >= self.sample_size:
                    break
        return TrackingStatus(self.campaign, self.target, counts, waiting, failed, requests=requests,
                              budget=budget, rounds=self.rounds, sample=sample, interrupted=interrupted)

    # --- sync driver ------------------------------------------------------------------------
    def poll(self, client: RelayClient) -> TrackingStatus:
        """One round: inbox events, then the relay's aggregate views, within the round's budget."""
        self._identity(client)
        if self.inbox is not None:
            from relay_integrations.webhooks.inbox import WebhookInboxError

            try:
                found = self.inbox_states(self.inbox.query(self._inbox_filter(client.dialect.name)))
            except WebhookInboxError as e:  # the relay still answers; the inbox is a shortcut, not a need
                logger.warning("webhook inbox unavailable, asking the relay only: %s", e)
                found = {}
            if found:
                self.store.record_states(self.relay, self.campaign.campaign_id, found)
        plan = self.plan(client.dialect)
        outcome = client._run(round_flow(client.dialect, plan)) if plan.open_messages else RoundOutcome()
        return self.record(outcome, plan)

    def wait(self, client: RelayClient, *, timeout: float, poll_interval: float = 5.0) -> TrackingStatus:
        """Poll until done or ``timeout`` seconds passed; returns the last status (check ``done``)."""
        status = poll_until(lambda: self.poll(client), _is_done, timeout=timeout, interval=poll_interval)
        return status if status is not None else self.status()

    # --- async driver -----------------------------------------------------------------------
    async def apoll(self, client: AsyncRelayClient) -> TrackingStatus:
        """:meth:`poll` on an event loop; store reads and writes run in a worker thread."""
        self._identity(client)
        if self.inbox is not None:
            from relay_integrations.webhooks.inbox import WebhookInboxError

            try:
                found = self.inbox_states(await self.inbox.aquery(self._inbox_filter(client.dialect.name)))
            except WebhookInboxError as e:
                logger.warning("webhook inbox unavailable, asking the relay only: %s", e)
                found = {}
            if found:
                await asyncio.to_thread(self.store.record_states, self.relay, self.campaign.campaign_id, found)
        plan = await asyncio.to_thread(self.plan, client.dialect)
        outcome = await client._run(round_flow(client.dialect, plan)) if plan.open_messages else RoundOutcome()
        return await asyncio.to_thread(self.record, outcome, plan)

    async def await_done(
        self, client: AsyncRelayClient, *, timeout: float, poll_interval: float = 5.0
    ) -> TrackingStatus:
        """:meth:`wait` on an event loop."""
        status = await apoll_until(lambda: self.apoll(client), _is_done, timeout=timeout, interval=poll_interval)
        return status if status is not None else await asyncio.to_thread(self.status)


def _is_done(status: TrackingStatus) -> bool:
    return status.done


#: Validation errors listed in a campaign result; the rest are counted in ``error_count``.
MAX_RESULT_ERRORS = 20


def campaign_result(
    report: Any,
    relay: RelayIdentity | None,
    *,
    max_rows: int | None = 100,
    max_errors: int = MAX_RESULT_ERRORS,
    store: str | None = None,
) -> dict[str, Any]:
    """A campaign report as an XCom / task result: counts, at most ``max_rows`` rows (problem rows first),
    at most ``max_errors`` errors, and ``campaign``, the reference a status sensor or wait task tracks
    the campaign by. Its size does not grow with the number of recipients (unless ``max_rows`` is None).

    :param store: how trackers find the store, when not the report's ledger (a connection id, a block
        name). A ledger URL's password is never copied into the result.
    """
    result: dict[str, Any] = report.to_dict(max_rows=max_rows)
    result["errors"] = list(result.get("errors") or [])[:max_errors]
    if isinstance(result.get("ledger_path"), str):
        result["ledger_path"] = hide_password(result["ledger_path"])
    sent = int(result["counts"].get("accepted") or 0) + int(result["counts"].get("already_sent") or 0)
    location = store or (hide_password(report.ledger_path) if report.ledger_path else None)
    result["campaign"] = (
        CampaignRef(report.campaign_id, location, relay).to_dict()
        if location and not report.dry_run and sent
        else None
    )
    return result

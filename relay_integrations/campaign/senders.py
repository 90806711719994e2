"""How a campaign's messages go to a relay: the best path each dialect offers.

* ``batch`` (relaysms): many different messages per ``/sms/batch`` request, up to the relay's
  maximum (1000), via ``client.send_batch``.
* ``bulk`` (coop): a bulk job per chunk, via ``client.send_batch``.
* ``recipients`` (smsgate): rows with identical content become one message with up to 100
  phone numbers. Grouping is deterministic (content hash, then row order, over every row that is
  or was to be sent), and the message id is derived from its members' keys, so a re-run after a
  crash sends the same message id and the relay refuses it as a repeat.
* ``single`` (phonerelay and anything without a batch path): one request per message, several in
  flight at once (threads for the sync client, tasks for the async one).

A request is a :class:`SendUnit`; running one yields a :class:`~relay_integrations.campaign.store.RowResult`
per row. Errors the client gave up on become ``failed`` rows; authentication errors stop the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from relay_integrations.campaign.report import ACCEPTED, ALREADY_SENT, FAILED, READY
from relay_integrations.campaign.store import PlannedRow, RowResult, ScratchStore
from relay_integrations.dialects.coop import bulk_message_ids_by_index
from relay_integrations.errors import RelayAuthError, RelayError
from relay_integrations.idempotency import key_to_uuid
from relay_integrations.models import BatchReceipt, OutboundMessage, SendReceipt

Strategy = Literal["batch", "bulk", "recipients", "single"]


def choose_strategy(batch_kind: str) -> Strategy:
    """The strategy for a dialect's ``capabilities.batch``."""
    if batch_kind in ("batch", "bulk", "recipients"):
        return batch_kind  # type: ignore[return-value]
    return "single"


@dataclass
class SendUnit:
    """One request: the rows it carries and what to send for them."""

    rows: list[PlannedRow]
    strategy: Strategy
    message: OutboundMessage | None = None
    messages: list[OutboundMessage] | None = None

    @property
    def size(self) -> int:
        return len(self.rows)


def _outbound(planned: PlannedRow) -> OutboundMessage:
    assert planned.message is not None
    return OutboundMessage.model_validate(planned.message)


def plan_units(
    store: ScratchStore,
    strategy: Strategy,
    *,
    campaign_id: str,
    max_batch_size: int,
    rate_limit: float | None = None,
) -> Iterator[SendUnit]:
    """The requests for every ``ready`` row in the store, lazily, page by page."""
    chunk_limit = max(1, max_batch_size)
    if rate_limit and strategy in ("batch", "bulk"):
        # Keep each request within one second's allowance so a rate limit paces smoothly.
        chunk_limit = max(1, min(chunk_limit, int(rate_limit)))
    if strategy == "single":
        for planned in store.iter_rows([READY]):
            yield SendUnit([planned], strategy, message=_outbound(planned))
        return
    if strategy == "recipients":
        yield from _group_units(store, campaign_id=campaign_id, limit=chunk_limit)
        return
    chunk: list[PlannedRow] = []
    sender: Any = None
    for planned in store.iter_rows([READY]):
        assert planned.message is not None
        this_sender = planned.message.get("sender")
        if chunk and (len(chunk) >= chunk_limit or this_sender != sender):
            yield SendUnit(chunk, strategy, messages=[_outbound(p) for p in chunk])
            chunk = []
        sender = this_sender
        chunk.append(planned)
    if chunk:
        yield SendUnit(chunk, strategy, messages=[_outbound(p) for p in chunk])


def _group_units(store: ScratchStore, *, campaign_id: str, limit: int) -> Iterator[SendUnit]:
    # Chunks are cut over rows that are ready *or already sent*, so that after a crash the rows
    # still to send fall into the same chunks as in the first run and get the same message ids.
    def emit(chunk: list[PlannedRow]) -> SendUnit | None:
        ready = [p for p in chunk if p.state == READY]
        if not ready:
            return None
        first = ready[0]
        assert first.message is not None
        material = "\x1f".join([campaign_id, first.group_key or "", *(p.idempotency_key or "" for p in ready)])
        data = dict(first.message)
        data["to"] = [p.address for p in ready]
        data["idempotency_key"] = key_to_uuid(material)
        metadata = dict(data.get("metadata") or {})
        metadata.pop("idempotency_key", None)
        data["metadata"] = metadata
        return SendUnit(ready, "recipients", message=OutboundMessage.model_validate(data))

    chunk: list[PlannedRow] = []
    for planned in store.iter_rows([READY, ALREADY_SENT], by_group=True):
        if chunk and (len(chunk) >= limit or planned.group_key != chunk[0].group_key):
            unit = emit(chunk)
            if unit:
                yield unit
            chunk = []
        chunk.append(planned)
    if chunk:
        unit = emit(chunk)
        if unit:
            yield unit


# --- turning answers into row results -------------------------------------------------------
def results_from_receipt(unit: SendUnit, receipt: SendReceipt) -> list[RowResult]:
    state = ALREADY_SENT if receipt.duplicate else ACCEPTED
    return [RowResult(p.row, state, message_id=receipt.message_id) for p in unit.rows]


def results_from_batch(unit: SendUnit, receipt: BatchReceipt) -> list[RowResult]:
    by_index = {item.index: item for item in receipt.results}
    results: list[RowResult] = []
    for index, planned in enumerate(unit.rows):
        item = by_index.get(index)
        if item is None:
            if receipt.results or receipt.rejected:
                # The relay listed results but not this one, or rejected some without saying which.
                results.append(RowResult(planned.row, FAILED, batch_id=receipt.batch_id,
                                         error="the relay did not confirm this message"))
            else:  # a bulk job answers with a job id only; the job holds every message
                results.append(RowResult(planned.row, ACCEPTED, batch_id=receipt.batch_id))
            continue
        if item.error or (item.message_id is None and item.state is None):
            results.append(RowResult(planned.row, FAILED, batch_id=receipt.batch_id,
                                     error=item.error or "rejected by the relay"))
            continue
        state = ALREADY_SENT if item.duplicate else ACCEPTED
        results.append(RowResult(planned.row, state, message_id=item.message_id, batch_id=receipt.batch_id))
    return results


def with_bulk_message_ids(unit: SendUnit, results: list[RowResult], answer: Any) -> list[RowResult]:
    """Fill message ids from a coop bulk job's per-recipient results (read by the coop dialect)."""
    by_index = bulk_message_ids_by_index(answer, [p.address for p in unit.rows])
    return [
        replace(r, message_id=by_index[i]) if r.message_id is None and r.state == ACCEPTED and i in by_index else r
        for i, r in enumerate(results)
    ]


def _wants_bulk_ids(unit: SendUnit, receipt: BatchReceipt, results: list[RowResult]) -> bool:
    return unit.strategy == "bulk" and bool(receipt.batch_id) and any(
        r.state == ACCEPTED and r.message_id is None for r in results
    )


def failed_results(unit: SendUnit, exc: BaseException) -> list[RowResult]:
    # No answer, or a server error: the request may have been taken. A re-run checks first.
    in_doubt = exc.maybe_sent if isinstance(exc, RelayError) else True
    text = str(exc) if isinstance(exc, RelayError) else f"{type(exc).__name__}: {exc}"
    if in_doubt:
        text += " (the relay may have taken it; a re-run checks before sending again)"
    return [RowResult(p.row, FAILED, error=text, in_doubt=in_doubt) for p in unit.rows]


@dataclass(frozen=True)
class Sent:
    """What sending one unit gave: its rows' results, and whether the relay answered 429 or 503 on
    the way (to this request or, with requests in flight beside it, to one of those): the adaptive
    concurrency backs off on it even when a retry got the message through."""

    results: list[RowResult]
    overloaded: bool


def run_unit(client: Any, unit: SendUnit) -> Sent:
    """Send one unit with a sync client; relay refusals become failed rows."""
    refusals = client.overload_answers
    results = _send_unit(client, unit)
    return Sent(results, overloaded=client.overload_answers > refusals)


async def arun_unit(client: Any, unit: SendUnit) -> Sent:
    """Send one unit with an async client; relay refusals become failed rows."""
    refusals = client.overload_answers
    results = await _asend_unit(client, unit)
    return Sent(results, overloaded=client.overload_answers > refusals)


def _send_unit(client: Any, unit: SendUnit) -> list[RowResult]:
    try:
        if unit.messages is None:
            assert unit.message is not None
            return results_from_receipt(unit, client.send(unit.message))
        receipt = client.send_batch(unit.messages)
    except RelayAuthError:
        raise
    except RelayError as exc:
        return failed_results(unit, exc)
    results = results_from_batch(unit, receipt)
    if _wants_bulk_ids(unit, receipt, results):
        try:  # best effort: the job holds the messages whether or not its results can be read yet
            results = with_bulk_message_ids(unit, results, client.bulk_results(receipt.batch_id))
        except RelayError:
            pass
    return results


async def _asend_unit(client: Any, unit: SendUnit) -> list[RowResult]:
    try:
        if unit.messages is None:
            assert unit.message is not None
            return results_from_receipt(unit, await client.send(unit.message))
        receipt = await client.send_batch(unit.messages)
    except RelayAuthError:
        raise
    except RelayError as exc:
        return failed_results(unit, exc)
    results = results_from_batch(unit, receipt)
    if _wants_bulk_ids(unit, receipt, results):
        try:
            results = with_bulk_message_ids(unit, results, await client.bulk_results(receipt.batch_id))
        except RelayError:
            pass
    return results


class Pacer:
    """A rate limit in messages per second, shared by every worker (thread-safe)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate_limit must be a positive number of messages per second")
        self.rate = rate
        self._next = 0.0
        self._lock = threading.Lock()

    def delay_for(self, count: int) -> float:
        """Seconds to wait before sending ``count`` messages (reserving their share of the rate)."""
        if not self.rate:
            return 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + count / self.rate
            return start - now

"""What a campaign tells its caller: progress while it runs, a report when it is done, and the
validation error that stops it before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from relay_integrations.campaign.store import ReportRows, ScratchStore
from relay_integrations.errors import RelayValidationError

# Row states in a report.
ACCEPTED = "accepted"
ALREADY_SENT = "already_sent"
INVALID = "invalid"
SUPPRESSED = "suppressed"
DEFERRED = "deferred"  # outside its send window, or scheduled later: a re-run from not_before sends it
DUPLICATE = "duplicate"
FAILED = "failed"
WOULD_SEND = "would_send"
READY = "ready"  # internal: validated, not yet sent
IN_DOUBT = "in_doubt"  # internal: an earlier run handed it to the relay and died before the answer

COUNT_KEYS = ("total", ACCEPTED, ALREADY_SENT, INVALID, SUPPRESSED, DEFERRED, DUPLICATE, FAILED, WOULD_SEND)

# How many validation errors an exception or a report lists in full; all of them stay in the rows.
MAX_LISTED_ERRORS = 1000

Phase = Literal["validating", "sending", "done"]


@dataclass
class CampaignProgress:
    """A snapshot handed to the ``progress`` callback.

    While validating, ``processed`` counts rows read and ``total`` is None (a stream has no known
    length). While sending, ``total`` is the number of messages to send in this run and
    ``processed`` how many have an outcome (accepted, already sent per the relay, or failed).
    """

    campaign_id: str
    phase: Phase
    total: int | None
    processed: int = 0
    accepted: int = 0
    already_sent: int = 0
    failed: int = 0
    invalid: int = 0
    suppressed: int = 0
    duplicate: int = 0
    deferred: int = 0

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.processed / self.total)


@dataclass
class CampaignReport:
    """The outcome of a campaign run.

    :param counts: ``total`` rows read; ``accepted`` messages accepted by the relay in this run;
        ``already_sent`` rows found in the ledger or reported duplicate by the relay; ``invalid``,
        ``suppressed``, ``duplicate`` (address seen earlier in the list), ``failed`` (still refused
        after the client's retries), ``would_send`` (dry runs), and ``segments``: SMS parts of the
        messages sent in this run (or that a dry run would send); ``reconciled``: rows an earlier
        try may have sent, found on the relay's outbound list (counted in ``already_sent`` too).
    :param rows: one dict per recipient row, in row order: ``row``, ``address``, ``message_id``,
        ``state`` (one of the count names; ``ready`` in the report of a
        :class:`CampaignValidationError`: valid, not sent because other rows were bad), ``error``,
        ``segments``, ``idempotency_key``, ``batch_id`` (relaysms batch or coop bulk job).
    :param concurrency: what the send pass chose: ``mode`` (``auto`` or ``fixed``), ``peak``
        requests in flight, ``final`` limit; and ``overload_answers``, the 429 and 503 answers the
        relay gave during the run, retried or not (each made an ``auto`` limit back off). None for a
        dry run.
    :param validation_workers: worker processes that checked rows in the validation pass besides this
        one (0: all in this process; see ``Campaign(validation_workers=...)``).
    :param next_run_at: when deferred rows (``state`` ``deferred``, each with its ``not_before``) may
        first go: run the campaign again then (ISO 8601, UTC); None when nothing is deferred. A
        ``suppressed`` or ``deferred`` row says why in ``reason``.
    """

    campaign_id: str
    counts: dict[str, int]
    rows: Sequence[dict[str, Any]]
    dialect: str | None = None
    strategy: str | None = None
    dry_run: bool = False
    ledger_path: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    concurrency: dict[str, Any] | None = None
    next_run_at: str | None = None
    validation_workers: int = 0
    _store: ScratchStore | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_store(cls, store: ScratchStore, campaign_id: str, *, reconciled: int = 0,
                   **kwargs: Any) -> CampaignReport:
        counts = {"total": store.count()}
        for key in COUNT_KEYS[1:]:
            counts[key] = store.count(key)
        counts["segments"] = store.segment_total([ACCEPTED, WOULD_SEND])
        counts["reconciled"] = reconciled
        return cls(
            campaign_id=campaign_id,
            counts=counts,
            rows=ReportRows(store),
            errors=store.errors(MAX_LISTED_ERRORS),
            error_count=store.error_count(),
            next_run_at=store.earliest_not_before(DEFERRED),
            _store=store,
            **kwargs,
        )

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing was invalid."""
        return not self.counts.get(FAILED) and not self.counts.get(INVALID)

    @property
    def message_ids(self) -> list[str]:
        """Distinct relay message ids of this campaign's messages (sent now or before), in row order."""
        if self._store is not None:
            return self._store.message_ids()
        seen: dict[str, None] = {}
        for r in self.rows:
            if r.get("message_id"):
                seen.setdefault(r["message_id"], None)
        return list(seen)

    def to_dict(self, max_rows: int | None = None) -> dict[str, Any]:
        """A JSON-able dict (for XCom, artifacts, the CLI).

        :param max_rows: include at most this many rows (rows with a problem first, then the rest
            in row order); None includes every row. ``rows_omitted`` says how many were left out.
        """
        if max_rows is None:
            rows = list(self.rows)
        else:
            rows = self._pick_rows(max(0, max_rows))
        return {
            "campaign_id": self.campaign_id,
            "dialect": self.dialect,
            "strategy": self.strategy,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "counts": dict(self.counts),
            "errors": list(self.errors),
            "error_count": self.error_count,
            "ledger_path": self.ledger_path,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "concurrency": self.concurrency,
            "validation_workers": self.validation_workers,
            "next_run_at": self.next_run_at,
            "rows": rows,
            "rows_omitted": len(self.rows) - len(rows),
        }

    def _pick_rows(self, max_rows: int) -> list[dict[str, Any]]:
        if max_rows >= len(self.rows):
            return list(self.rows)
        picked: list[dict[str, Any]] = []
        problem_states = (FAILED, INVALID)
        for r in self.rows:
            if len(picked) >= max_rows:
                break
            if r["state"] in problem_states:
                picked.append(r)
        if len(picked) < max_rows:
            taken = {r["row"] for r in picked}
            for r in self.rows:
                if len(picked) >= max_rows:
                    break
                if r["row"] not in taken:
                    picked.append(r)
        picked.sort(key=lambda r: r["row"])
        return picked

    def close(self) -> None:
        """Remove the temporary file behind ``rows`` (also done when the report is garbage-collected)."""
        if self._store is not None:
            self._store.close()


def next_pass_at(result: Mapping[str, Any]) -> datetime | None:
    """When a campaign whose report is ``result`` (``CampaignReport.to_dict``) should run again to
    send its deferred rows: ``next_run_at``, unless it was a dry run or rows failed (a failure is the
    caller's to handle first); None when there is nothing to come back for."""
    moment = result.get("next_run_at")
    if not moment or result.get("dry_run") or (result.get("counts") or {}).get(FAILED):
        return None
    return datetime.fromisoformat(moment)


@dataclass
class ValidationReport:
    """What :meth:`Campaign.validate` found; it raises nothing.

    :param counts: ``total``, ``valid`` (would be sent), ``invalid``, ``suppressed``, ``deferred``, ``duplicate``,
        ``already_sent`` (0 unless a ledger was consulted) and ``segments``.
    :param errors: ``{row, field, message}`` for the first :data:`MAX_LISTED_ERRORS` problems; ``row``
        is None for a problem with the template itself.
    :param validation_workers: worker processes that checked rows besides this one.
    """

    campaign_id: str
    counts: dict[str, int]
    errors: list[dict[str, Any]]
    error_count: int
    dialect: str | None = None
    validation_workers: int = 0

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "dialect": self.dialect,
            "ok": self.ok,
            "counts": dict(self.counts),
            "errors": list(self.errors),
            "error_count": self.error_count,
            "validation_workers": self.validation_workers,
        }


class CampaignValidationError(RelayValidationError):
    """Rows (or the template) are bad and ``skip_invalid`` is off: nothing was sent.

    :param errors: ``{row, field, message}`` dicts (the first :data:`MAX_LISTED_ERRORS`).
    :param error_count: how many problems there are in all.
    :param report: the dry report of the run (every row with its state), when rows were read.
    """

    def __init__(
        self,
        errors: Sequence[Mapping[str, Any]],
        *,
        error_count: int | None = None,
        report: CampaignReport | None = None,
    ) -> None:
        self.errors = [dict(e) for e in errors]
        self.error_count = len(self.errors) if error_count is None else error_count
        self.report = report
        first = self.errors[0] if self.errors else {}
        where = f"row {first.get('row')}" if first.get("row") is not None else "template"
        summary = (
            f"{self.error_count} validation error(s); nothing was sent. "
            f"First: {where}, field {first.get('field')!r}: {first.get('message')}"
            if first
            else "validation failed; nothing was sent"
        )
        super().__init__(summary, field=first.get("field"))

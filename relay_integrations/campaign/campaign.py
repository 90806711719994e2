"""One template, many recipients: validate everything first, send fast, never twice.

A run makes two passes. The validation pass reads every recipient row, checks the address,
renders the templates, counts SMS segments, drops suppressed and duplicate addresses, looks
each message's idempotency key up in the ledger, and writes the outcome of every row to a
temporary store. Nothing is sent unless every row is good (or ``skip_invalid`` is set). The send
pass then reads the rows to send back from the store and sends them the best way the relay
offers, recording each accepted message in the ledger before moving on.

Why the passes do not overlap even with ``skip_invalid``, where no row waits for the others: sending
each 1,000 rows while the next 1,000 were validated was built and measured against this design
(``relay campaign``, relaysms, 2 cores). It was within the noise at 10 and 50 ms each way and 10-20%
slower on loopback: validation, request bodies and the ledger's per-row writes all run Python in this
one process, so they share one interpreter lock and only take turns, and validation workers cannot
be forked once requests run on threads.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, time, timezone
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from relay_integrations.campaign.addresses import (
    AddressError,
    NumberCheck,
    normalize_address,
    normalize_suppressed,
)
from relay_integrations.campaign.campaign_store import ACCEPTED as ENTRY_ACCEPTED
from relay_integrations.campaign.campaign_store import SENDING as ENTRY_SENDING
from relay_integrations.campaign.campaign_store import (
    CampaignStore,
    RelayIdentity,
    StoreLocation,
    lease_seconds_default,
)
from relay_integrations.campaign.ledger import default_ledger_path
from relay_integrations.campaign.recipients import RecipientSource, RowReadError, open_recipients
from relay_integrations.campaign.report import (
    ALREADY_SENT,
    DEFERRED,
    DUPLICATE,
    IN_DOUBT,
    INVALID,
    MAX_LISTED_ERRORS,
    READY,
    SUPPRESSED,
    WOULD_SEND,
    CampaignProgress,
    CampaignReport,
    CampaignValidationError,
    ValidationReport,
)
from relay_integrations.campaign.segments import count_segments
from relay_integrations.campaign.send_pass import LOOKUP_CHUNK, Blocking, SendPass, Steps, _chunks, adrive, drive
from relay_integrations.campaign.send_window import (
    SendWindow,
    SendWindowError,
    iso,
    parse_moment,
    zone,
    zones_for_number,
)
from relay_integrations.campaign.senders import Pacer, SendUnit, Strategy, choose_strategy, key_to_uuid, plan_units
from relay_integrations.campaign.store import PlannedRow, RowResult, ScratchStore, row_values
from relay_integrations.campaign.suppression import Suppression, SuppressionList, suppression_location
from relay_integrations.campaign.templates import FieldError, MessageTemplates, load_template_source
from relay_integrations.campaign.validation_pool import Judged, JudgedRows, WorkersSetting, check_workers, workers_for
from relay_integrations.concurrency import concurrency_limiter
from relay_integrations.dialects.base import Dialect
from relay_integrations.models import OutboundMessage

if TYPE_CHECKING:
    from relay_integrations.client import AsyncRelayClient, RelayClient

SEGMENTED_CHANNELS = frozenset({"sms"})
# Message fields a campaign sets itself; the rest of OutboundMessage may come from ``fields``.
_RESERVED_FIELDS = frozenset({"to", "text", "channel", "idempotency_key", "schedule_at"})
# Left out of a message's idempotency key: moving a send later must not make it a new message.
_NOT_CONTENT = frozenset({"to", "metadata", "schedule_at"})
_PROGRESS_EVERY_ROWS = 1000

ProgressCallback = Callable[[CampaignProgress], None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


# json.dumps with these options builds a new encoder per call; one per row adds up.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))


def _canonical(value: Any) -> str:
    """One stable text for a message's content (what its idempotency key and group are derived from)."""
    return _CANONICAL_JSON.encode(value)


class Campaign:
    """A templated message to many recipients.

    :param template: the message text as a Jinja2 template; a :class:`~pathlib.Path` is read from disk.
        Rendered in a sandbox with strict undefined variables; the recipient row is the context.
    :param recipients: a list of dicts, any iterable of mappings (read once and spooled to a
        temporary file), or the path of a ``.csv`` (with a header row) or ``.jsonl`` file.
    :param campaign_id: names the campaign; part of every idempotency key, so the same id and the
        same recipients never send twice. Use a new id for a new campaign.
    :param address_field: the row field holding the recipient's address.
    :param channel: the message channel (``sms``, ``wa``, ``email``, ...); decides how addresses are checked.
    :param fields: other message fields (``subject``, ``title``, ``sender``, ``phone_id``, ``priority``,
        ...); str values are templates too.
    :param default_region: ISO country code for phone numbers written without ``+``.
    :param number_check: ``"possible"`` (length fits the country) or ``"valid"`` (allocated range).
    :param skip_invalid: send the good rows when some are bad (the bad ones are reported);
        by default any bad row stops the campaign before the first send.
    :param dedupe: send once per address (the first row wins; later rows are reported ``duplicate``).
    :param suppression: addresses that must not be messaged, in addition to the relay account's
        suppression list; compared after normalising.
    :param honour_opt_outs: skip the addresses on the relay account's suppression list (opt-outs from
        replies, entries added by hand; see :mod:`~relay_integrations.campaign.suppression`); they are
        reported ``suppressed`` with when and why. ``False`` sends to them anyway.
    :param suppression_store: where that list is (an SQLite path or a database URL); default
        :func:`~relay_integrations.campaign.suppression.suppression_location`.
    :param send_window: quiet hours: only send between these local times of the recipient, e.g.
        ``("08:00", "21:00")`` (a start after the end spans midnight). Rows outside it are reported
        ``deferred`` with ``not_before``, the first moment they may go; the report's ``next_run_at``
        says when to run the campaign again (a re-run sends each of them once).
    :param timezone_field: the row field holding the recipient's IANA time zone (``Europe/Paris``);
        without it a phone number's zones come from phonenumbers (a number spanning several zones
        gets the narrowest common window), anything else uses ``default_timezone``.
    :param default_timezone: the zone for recipients whose zone is unknown (default ``UTC``).
    :param send_at: send no earlier than this moment (a datetime, or ISO 8601 text; without an
        offset it is read in ``default_timezone``); a row's ``send_at_field`` overrides it. smsgate
        is handed the time (its ``scheduleAt``) and holds the message itself; for other relays the
        rows are ``deferred`` like rows outside the send window.
    :param send_at_field: the row field holding a row's own ``send_at``.
    :param clock: returns the current time (aware); for tests and back-fills. Default: the system clock.
    :param ledger: the campaign store: an SQLite file path or a SQLAlchemy URL such as
        ``postgresql://user:pass@host:5432/db`` (shared by every worker that may run or retry the
        campaign); default: an SQLite file per campaign, see
        :func:`~relay_integrations.campaign.ledger.default_ledger_path`.
    :param ledger_path: the former name of ``ledger`` (still accepted).
    :param lease_seconds: how long a run's claim on its rows holds without renewal (a heartbeat
        renews it while the run lives); default ``$RELAY_CAMPAIGN_LEASE_SECONDS`` or 30. A retry
        after a run died waits this long before taking the run's rows over.
    :param concurrency: requests in flight at once: ``"auto"`` (default) adapts to the relay (from one
        at a time up to 64, or the client's connection limit), backing off when its latency rises or it
        answers 429/503; a number fixes it.
    :param rate_limit: at most this many messages per second (None: as fast as the relay takes them).
    :param progress: called with a :class:`CampaignProgress` as rows are validated and sent. If it
        raises, the campaign stops after the requests in flight finish (their results are recorded).
    :param batch_size: at most this many messages (or smsgate recipients) per request; default the
        relay's maximum (relaysms and coop 1000, smsgate 100).
    :param validation_workers: processes that check rows in the validation pass besides this one.
        ``"auto"`` (default): one per core beyond this process's own, at most two, once the input
        passes 2,000 rows; only on Linux and only when this process runs no other thread (workers are
        forked); otherwise none. ``0`` checks every row in this process; a number asks for that many
        workers (Linux only). The outcome is the same either way.
    """

    def __init__(
        self,
        template: str | Path,
        recipients: Iterable[Mapping[str, Any]] | str | os.PathLike[str],
        *,
        campaign_id: str,
        address_field: str = "phone",
        channel: str = "sms",
        fields: Mapping[str, Any] | None = None,
        default_region: str | None = None,
        number_check: NumberCheck = "possible",
        skip_invalid: bool = False,
        dedupe: bool = True,
        suppression: Iterable[str] = (),
        ledger: StoreLocation | None = None,
        ledger_path: str | os.PathLike[str] | None = None,
        lease_seconds: float | None = None,
        concurrency: int | Literal["auto"] = "auto",
        rate_limit: float | None = None,
        progress: ProgressCallback | None = None,
        batch_size: int | None = None,
        honour_opt_outs: bool = True,
        suppression_store: StoreLocation | None = None,
        send_window: SendWindow | Sequence[str | time] | str | None = None,
        timezone_field: str = "timezone",
        default_timezone: str = "UTC",
        send_at: datetime | str | None = None,
        send_at_field: str = "send_at",
        clock: Callable[[], datetime] | None = None,
        validation_workers: WorkersSetting = "auto",
    ) -> None:
        if not campaign_id or not str(campaign_id).strip():
            raise ValueError("campaign_id must be a non-empty string")
        if number_check not in ("possible", "valid"):
            raise ValueError("number_check must be 'possible' or 'valid'")
        concurrency_limiter(concurrency)  # validates the value now rather than at send time
        check_workers(validation_workers)
        self.validation_workers = validation_workers
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = batch_size
        self.campaign_id = str(campaign_id)
        self.address_field = address_field
        self.channel = channel
        self.fields = self._check_fields(fields or {})
        self.default_region = default_region
        self.number_check: NumberCheck = number_check
        self.skip_invalid = skip_invalid
        self.dedupe = dedupe
        if ledger is not None and ledger_path is not None:
            raise ValueError("pass ledger or ledger_path (its former name), not both")
        location = ledger if ledger is not None else ledger_path
        self.ledger: StoreLocation = (
            location if location not in (None, "") else default_ledger_path(self.campaign_id))
        self.lease_seconds = lease_seconds_default() if lease_seconds is None else float(lease_seconds)
        if self.lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        Pacer(rate_limit)  # validates the value now rather than at send time
        self.progress = progress
        self.templates = MessageTemplates(load_template_source(template), self.fields)
        self.source: RecipientSource = open_recipients(recipients)
        self.suppression = frozenset(
            normalize_suppressed(s, channel, default_region=default_region) for s in suppression if str(s).strip()
        )
        self.honour_opt_outs = honour_opt_outs
        self.suppression_store = suppression_store
        self.send_window = SendWindow.parse(send_window) if send_window is not None else None
        self.timezone_field = timezone_field
        self.default_timezone: ZoneInfo = zone(default_timezone, "default_timezone")
        self.send_at = parse_moment(send_at, self.default_timezone, "send_at") if send_at not in (None, "") else None
        self.send_at_field = send_at_field
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        # Per run: the moment rows are judged at, and the account's suppression list.
        self._judged_at = self.clock()
        self._opted_out: Mapping[str, Suppression] = {}
        self._timing_cache: dict[tuple[datetime, tuple[ZoneInfo, ...]], Any] = {}
        self._validation_workers_used = 0

    @property
    def ledger_path(self) -> str:
        """Where the campaign store is, for display (a URL's password hidden)."""
        from relay_integrations.campaign.campaign_store import display_url

        return display_url(self.ledger)

    @staticmethod
    def _check_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
        known = set(OutboundMessage.model_fields)
        checked: dict[str, Any] = {}
        for name, value in fields.items():
            key = "sender" if name == "from" else name
            if key == "schedule_at":
                raise ValueError(f"fields[{name!r}]: use send_at (or a row's send_at field) to schedule a campaign")
            if key in _RESERVED_FIELDS:
                raise ValueError(f"fields[{name!r}]: set by the campaign (template, address_field, channel)")
            if key not in known:
                expected = ", ".join(sorted(known - _RESERVED_FIELDS))
                raise ValueError(f"fields[{name!r}]: not a message field; expected one of {expected}")
            checked[key] = value
        return checked

    # --- one row ------------------------------------------------------------------------
    def _evaluate(
        self,
        number: int,
        item: Mapping[str, Any] | RowReadError,
        *,
        dialect: Dialect | None,
    ) -> tuple[PlannedRow, list[FieldError], dict[str, Any]]:
        """The validation pass for one row: ``(planned row, errors, rendered values)``, before
        de-duplication (:meth:`_repeats`), which depends on the rows before it."""
        if isinstance(item, RowReadError):
            error = FieldError("row", item.message, number)
            return PlannedRow(number, None, INVALID, error=f"row: {item.message}"), [error], {}
        errors: list[FieldError] = []
        raw_address = item.get(self.address_field)
        address: str | None = None
        try:
            address = normalize_address(
                raw_address, self.channel, default_region=self.default_region, number_check=self.number_check
            )
        except AddressError as exc:
            errors.append(FieldError(self.address_field, str(exc), number))
        if address is not None and (address in self.suppression or address in self._opted_out):
            entry = self._opted_out.get(address)
            reason = entry.describe() if entry is not None else "in the campaign's suppression list"
            return PlannedRow(number, address, SUPPRESSED, reason=reason), [], {}
        values, render_errors = self.templates.render(item, number)
        errors.extend(render_errors)
        text = values.get("text")
        segments: int | None = None
        if isinstance(text, str):
            if not text.strip():
                errors.append(FieldError("text", "empty text after rendering", number))
            else:
                limit = dialect.capabilities.max_text_length if dialect is not None else None
                if dialect is not None and limit is not None and len(text) > limit:
                    too_long = f"text is {len(text)} characters; {dialect.name} takes at most {limit}"
                    errors.append(FieldError("text", too_long, number))
                if self.channel in SEGMENTED_CHANNELS:
                    segments = count_segments(text).segments
        message: dict[str, Any] = {**values, "to": address, "channel": self.channel}
        if not errors and self.fields:  # text, to and channel alone are already known to fit the model
            try:
                OutboundMessage.model_validate(message)
            except ValidationError as exc:
                for err in exc.errors():
                    field = str(err["loc"][0]) if err["loc"] else "message"
                    errors.append(FieldError(field, err["msg"], number))
        not_before, schedule_at, when = self._timing(item, address, number, dialect, errors)
        shown = str(raw_address) if address is None and raw_address is not None else address
        if errors:
            summary = "; ".join(f"{e.field}: {e.message}" for e in errors)
            return PlannedRow(number, shown, INVALID, error=summary, segments=segments), errors, values
        assert address is not None
        content = _canonical({k: v for k, v in message.items() if k not in _NOT_CONTENT})
        key = key_to_uuid("\x1f".join((self.campaign_id, address, content)))
        if not_before is not None:
            return PlannedRow(number, address, DEFERRED, segments=segments, idempotency_key=key, reason=when,
                              not_before=not_before), [], values
        message["metadata"] = {**dict(values.get("metadata") or {}), "campaign_id": self.campaign_id,
                               "idempotency_key": key}
        message["idempotency_key"] = key
        group = content
        if schedule_at is not None:  # one smsgate message per moment: recipients grouped only with their own
            message["schedule_at"] = schedule_at
            group += iso(schedule_at)
        planned = PlannedRow(number, address, READY, segments=segments, idempotency_key=key,
                             group_key=hashlib.sha256(group.encode()).hexdigest()[:32], message=message,
                             reason=when)
        return planned, [], values

    # --- when a row may go --------------------------------------------------------------
    def _timing(self, item: Mapping[str, Any], address: str | None, number: int, dialect: Dialect | None,
                errors: list[FieldError]) -> tuple[str | None, datetime | None, str | None]:
        """``(not_before, schedule_at, reason)``: a deferred row's first allowed moment (ISO 8601, UTC),
        or for a row the relay schedules itself (smsgate) the moment to hand it; all None: send now."""
        send_at = self.send_at
        raw = item.get(self.send_at_field)
        if raw not in (None, ""):
            try:
                send_at = parse_moment(raw, self.default_timezone, self.send_at_field)
            except SendWindowError as exc:
                errors.append(FieldError(exc.field, exc.problem, number))
                return None, None, None
        if send_at is None and self.send_window is None:
            return None, None, None
        now = self._judged_at
        start = send_at if send_at is not None and send_at > now else now
        zones: tuple[ZoneInfo, ...] = ()
        if self.send_window is not None:
            zones = self._zones(item, address, number, errors)
            if not zones:
                return None, None, None
        # Every row with this start and these zones has the same answer: worked out once per run.
        key = (start, zones)
        outcome = self._timing_cache.get(key)
        if outcome is None:
            outcome = self._timing_cache[key] = self._outcome(start, zones, dialect)
        if outcome is _NO_MOMENT:
            names = ", ".join(z.key for z in zones)
            errors.append(FieldError(self.timezone_field, f"{address} may be in {names}: no moment is inside the "
                                     f"send window {self.send_window} in all of them; give the row a "
                                     f"{self.timezone_field}", number))
            return None, None, None
        return outcome

    def _outcome(self, start: datetime, zones: tuple[ZoneInfo, ...],
                 dialect: Dialect | None) -> tuple[str | None, datetime | None, str | None]:
        now = self._judged_at
        earliest: datetime | None = start
        if self.send_window is not None:
            earliest = self.send_window.earliest(start, zones)
            if earliest is None:
                return _NO_MOMENT
        assert earliest is not None
        if earliest <= now:
            return None, None, None
        parts = []
        if start > now:
            parts.append(f"scheduled for {iso(start)}")
        if earliest > start:
            names = ", ".join(z.key for z in zones[:3]) + (f" and {len(zones) - 3} more" if len(zones) > 3 else "")
            parts.append(f"outside the send window {self.send_window} in {names}")
        reason = "; ".join(parts)
        if start > now and dialect is not None and dialect.capabilities.scheduled_send:
            return None, earliest, f"{reason}; handed to {dialect.name} to send at {iso(earliest)}"
        return iso(earliest), None, reason

    def _zones(self, item: Mapping[str, Any], address: str | None, number: int,
               errors: list[FieldError]) -> tuple[ZoneInfo, ...]:
        """The recipient's zones: the row's field, else the number's, else the default zone."""
        raw = item.get(self.timezone_field)
        if raw not in (None, ""):
            try:
                return (zone(str(raw), self.timezone_field),)
            except SendWindowError as exc:
                errors.append(FieldError(exc.field, exc.problem, number))
                return ()
        if address is not None and address.startswith("+"):
            names = zones_for_number(address)
            if names:
                return _zones_named(names)
        return (self.default_timezone,)

    def _template_errors(self, dialect: Dialect | None) -> list[dict[str, Any]]:
        errors = [e.as_dict() for e in self.templates.errors]
        if dialect is not None and self.channel not in dialect.capabilities.channels:
            errors.append({"row": None, "field": "channel",
                           "message": f"{dialect.name} has no channel {self.channel!r}; it offers "
                                      f"{', '.join(sorted(dialect.capabilities.channels))}"})
        return errors

    # --- preview and validation ---------------------------------------------------------
    def preview(self, n: int = 5, *, dialect: str | Dialect | None = None) -> list[dict[str, Any]]:
        """The first ``n`` rows rendered: address, text and other fields, segments, state, errors."""
        resolved = _resolve_dialect(dialect)
        seen: set[str] = set()

        def first_time(address: str) -> bool:
            if address in seen:
                return False
            seen.add(address)
            return True

        out: list[dict[str, Any]] = []
        if n <= 0:
            return out
        for number, item in self.source:
            planned, errors, values = self._evaluate(number, item, dialect=resolved)
            if self._repeats(planned.state, planned.address, first_time):
                planned = _duplicate(number, planned.address, planned.segments)
            text = values.get("text")
            seg = count_segments(text) if isinstance(text, str) and self.channel in SEGMENTED_CHANNELS else None
            out.append({
                "row": number,
                "address": planned.address,
                "state": "ok" if planned.state == READY else planned.state,
                "text": text,
                "fields": {k: v for k, v in values.items() if k != "text"},
                "segments": seg.segments if seg else None,
                "encoding": seg.encoding if seg else None,
                "idempotency_key": planned.idempotency_key,
                "errors": [e.as_dict() for e in errors],
            })
            if len(out) >= n:
                break
        return out

    def validate(self, dialect: str | Dialect | None = None) -> ValidationReport:
        """Check every row without sending (or touching the ledger); raises nothing about the rows."""
        resolved = _resolve_dialect(dialect)
        template_errors = self._template_errors(resolved)
        if template_errors:
            return ValidationReport(self.campaign_id, {"total": 0}, template_errors, len(template_errors),
                                    dialect=resolved.name if resolved else None)
        store = self._plan(resolved, keep_messages=False)
        try:
            counts = {
                "total": store.count(), "valid": store.count(READY), "invalid": store.count(INVALID),
                "suppressed": store.count(SUPPRESSED), "deferred": store.count(DEFERRED),
                "duplicate": store.count(DUPLICATE), "already_sent": 0, "segments": store.segment_total([READY]),
            }
            return ValidationReport(self.campaign_id, counts, store.errors(MAX_LISTED_ERRORS), store.error_count(),
                                    dialect=resolved.name if resolved else None,
                                    validation_workers=self._validation_workers_used)
        finally:
            store.close()

    # --- the validation pass ------------------------------------------------------------
    def _plan(self, dialect: Dialect | None, *, keep_messages: bool = True) -> ScratchStore:
        """The validation pass; ``keep_messages=False`` (dry runs) stores outcomes, not message bodies.

        Rows are judged here or on worker processes (:mod:`.validation_pool`); de-duplication, which
        depends on the rows before, is decided here, in input order.
        """
        store = ScratchStore()
        self._judged_at = self.clock().astimezone(timezone.utc)  # one moment for every row of the run
        self._timing_cache = {}
        judge = partial(self._judge, dialect, keep_messages)
        try:
            progress = CampaignProgress(self.campaign_id, "validating", None)
            judged = JudgedRows(self.source, judge, workers_for(self.validation_workers))
            for values, errors in judged:
                state = values[_STATE]
                if self._repeats(state, values[_ADDRESS], store.first_time_seen):
                    values, state = row_values(_duplicate(values[_ROW], values[_ADDRESS], values[_SEGMENTS])), DUPLICATE
                store.add_values(values, errors)
                progress.processed += 1
                if state in _COUNTED:
                    setattr(progress, state, getattr(progress, state) + 1)
                if self.progress and progress.processed % _PROGRESS_EVERY_ROWS == 0:
                    self.progress(progress)
            store.finish_planning()
            self._validation_workers_used = judged.workers_used
            if self.progress:
                self.progress(progress)
        except BaseException:
            store.close()
            raise
        return store

    def _repeats(self, state: str, address: str | None, first_time_seen: Callable[[str], bool]) -> bool:
        """Whether a row judged ``state`` is a repeat of an earlier row's address (the first row wins)."""
        if not self.dedupe or state not in _DEDUPED:
            return False
        assert address is not None  # a ready or deferred row has one
        return not first_time_seen(address)

    def _judge(self, dialect: Dialect | None, keep_messages: bool, number: int,
               item: Mapping[str, Any] | RowReadError) -> Judged:
        """One row's outcome as the scratch store keeps it, before de-duplication (a worker process
        may run this; see :meth:`_plan`)."""
        planned, errors, _ = self._evaluate(number, item, dialect=dialect)
        if not keep_messages:
            planned.message = None
        return row_values(planned), [(e.field, e.message) for e in errors]

    def _open_store(self, *, read_only: bool) -> CampaignStore:
        return CampaignStore.open(self.ledger, lease_seconds=self.lease_seconds, read_only=read_only)

    def _prepare(self, dialect: Dialect | None, store: CampaignStore, relay: RelayIdentity | None,
                 dry_run: bool, check_all: bool = False) -> tuple[ScratchStore, str]:
        template_errors = self._template_errors(dialect)
        if template_errors:
            raise CampaignValidationError(template_errors)
        started = _now()
        self._opted_out = self._load_opt_outs(relay) if relay is not None and self.honour_opt_outs else {}
        scratch = self._plan(dialect, keep_messages=not dry_run and dialect is not None)
        try:
            if relay is not None:
                self._look_up(scratch, store, relay, check_all=check_all)
            if scratch.count(INVALID) and not self.skip_invalid:
                report = CampaignReport.from_store(
                    scratch, self.campaign_id, dialect=dialect.name if dialect else None, dry_run=True,
                    ledger_path=store.url_for_display, started_at=started, finished_at=_now(),
                    validation_workers=self._validation_workers_used,
                )
                raise CampaignValidationError(report.errors, error_count=report.error_count, report=report)
        except CampaignValidationError:
            raise  # its report reads the scratch store's rows
        except BaseException:
            scratch.close()
            raise
        return scratch, started

    def _load_opt_outs(self, relay: RelayIdentity) -> dict[str, Suppression]:
        """The relay account's suppression list, by address (it fits in memory: one entry per opt-out).

        A list that cannot be read stops the campaign before the first send: sending to people who
        asked to stop is worse than sending late."""
        location = suppression_location(self.suppression_store, self.ledger)
        # Read only: a campaign never writes the list (nor creates a store where there is none).
        with SuppressionList.open(location, relay, read_only=True, channel=self.channel,
                                  default_region=self.default_region) as listed:
            return {entry.address: entry for entry in listed.entries()}

    def _look_up(self, scratch: ScratchStore, store: CampaignStore, relay: RelayIdentity, *,
                 check_all: bool = False) -> None:
        """Rows the store knows: accepted ones are ``already_sent``, ones handed over before are in doubt.

        ``check_all``: rows the store does not know are in doubt too (a retry after a try elsewhere).
        A deferred row the store has as accepted (sent by an earlier run) is ``already_sent`` too.
        """
        for chunk in _chunks(scratch.iter_rows([READY, DEFERRED], with_message=False), LOOKUP_CHUNK):
            found = store.lookup(relay, self.campaign_id, [p.idempotency_key or "" for p in chunk])
            results: list[RowResult] = []
            for p in chunk:
                entry = found.get(p.idempotency_key or "")
                if entry is not None and entry.status == ENTRY_ACCEPTED:
                    results.append(RowResult(p.row, ALREADY_SENT, message_id=entry.message_id,
                                             batch_id=entry.batch_id))
                elif p.state == DEFERRED:
                    continue  # not to be sent in this run: whatever else the store says waits for the run that is
                elif entry is None:
                    if check_all:
                        results.append(RowResult(p.row, IN_DOUBT))
                elif entry.status == ENTRY_SENDING:
                    results.append(RowResult(p.row, IN_DOUBT))
            if results:
                scratch.set_results(results)

    def _report(self, store: ScratchStore, dialect: Dialect | None, strategy: Strategy | None,
                started: str, dry_run: bool, *, ledger: str, reconciled: int = 0,
                concurrency: dict[str, Any] | None = None) -> CampaignReport:
        return CampaignReport.from_store(
            store, self.campaign_id, dialect=dialect.name if dialect else None, strategy=strategy,
            dry_run=dry_run, ledger_path=ledger, started_at=started, finished_at=_now(), reconciled=reconciled,
            concurrency=concurrency, validation_workers=self._validation_workers_used,
        )

    def _units(self, store: ScratchStore, dialect: Dialect, strategy: Strategy) -> Iterable[SendUnit]:
        limit = dialect.capabilities.max_batch_size
        if self.batch_size is not None:
            limit = min(limit, self.batch_size)
        return plan_units(store, strategy, campaign_id=self.campaign_id, max_batch_size=limit,
                          rate_limit=self.rate_limit)

    def _sending_progress(self, store: ScratchStore) -> CampaignProgress:
        return CampaignProgress(
            self.campaign_id, "sending", store.count(READY),
            already_sent=store.count(ALREADY_SENT), invalid=store.count(INVALID),
            suppressed=store.count(SUPPRESSED), duplicate=store.count(DUPLICATE), deferred=store.count(DEFERRED),
        )

    def _finish(self, progress: CampaignProgress) -> None:
        progress.phase = "done"
        if self.progress:
            self.progress(progress)

    # --- sending ------------------------------------------------------------------------
    def send(self, client: RelayClient | None, *, dry_run: bool = False,
             earlier_try_since: datetime | None = None) -> CampaignReport:
        """Validate every row, then send the good ones with a :class:`~relay_integrations.client.RelayClient`.

        :param client: the client (its dialect decides limits and the sending strategy); may be
            None for a dry run without a relay in mind (the ledger is then not consulted).
        :param dry_run: validate and consult the ledger, send nothing; rows to send are ``would_send``.
        :param earlier_try_since: this is a retry, and an earlier try that began at this moment may
            have sent rows this ledger does not know (it ran on another machine with a local
            ledger): on a relay without client keys every planned row is first looked up on the
            relay's outbound list.
        :raises CampaignValidationError: rows are bad and ``skip_invalid`` is off (nothing was sent).
        :raises RelayAuthError: the relay refused the credentials (accepted messages stay in the ledger).
        :raises CampaignStoreError: the ledger cannot be reached (before the first send) or was lost
            midway (a re-run finishes the campaign).
        """
        return drive(self._steps(client, dry_run, earlier_try_since), client)

    async def asend(self, client: AsyncRelayClient | None, *, dry_run: bool = False,
                    earlier_try_since: datetime | None = None) -> CampaignReport:
        """:meth:`send` with an :class:`~relay_integrations.client.AsyncRelayClient`.

        The validation pass and every ledger write run in worker threads, never on the event loop
        (so the progress callback is called from a worker thread while validating); sends run as
        tasks, at most ``concurrency`` at once.
        """
        return await adrive(self._steps(client, dry_run, earlier_try_since), client)

    def _steps(self, client: RelayClient | AsyncRelayClient | None, dry_run: bool,
               earlier_try_since: datetime | None) -> Steps[CampaignReport]:
        """The whole run as steps (see :mod:`~relay_integrations.campaign.send_pass`), for either driver."""
        dialect: Dialect | None = client.dialect if client is not None else None
        if client is None and not dry_run:
            raise ValueError("a client is needed unless dry_run=True")
        relay = RelayIdentity.from_client(client) if client is not None else None
        store: CampaignStore = yield Blocking(partial(self._open_store, read_only=dry_run))
        try:
            scratch, started = yield Blocking(
                partial(self._prepare, dialect, store, relay, dry_run, earlier_try_since is not None))
            strategy = choose_strategy(dialect.capabilities.batch) if dialect else None
            if dry_run or dialect is None:
                scratch.relabel(IN_DOUBT, WOULD_SEND)
                scratch.relabel(READY, WOULD_SEND)
                return self._report(scratch, dialect, strategy, started, True, ledger=store.url_for_display)
            assert strategy is not None and client is not None and relay is not None
            run = SendPass(self, store, relay, scratch, dialect, strategy, max_connections=client.max_connections,
                           earlier_try_since=earlier_try_since)
            refusals = client.overload_answers
            yield from run.steps()
            self._finish(run.progress)
            concurrency = {**run.concurrency, "overload_answers": client.overload_answers - refusals}
            return self._report(scratch, dialect, strategy, started, False, ledger=store.url_for_display,
                                reconciled=run.reconciled, concurrency=concurrency)
        finally:
            yield Blocking(store.close)


# A timing outcome: the zones share no moment of the window (the row is invalid, naming its address).
_NO_MOMENT: Any = (None, None, "no moment")


# Positions in a scratch-store row (store.row_values) the validation pass reads back.
_ROW, _ADDRESS, _STATE, _SEGMENTS = 0, 1, 2, 4
_DEDUPED = frozenset({READY, DEFERRED})  # a row in another state is not compared with earlier rows
_COUNTED = frozenset({INVALID, SUPPRESSED, DEFERRED, DUPLICATE, ALREADY_SENT})


def _duplicate(number: int, address: str | None, segments: int | None) -> PlannedRow:
    """Row ``number``, a repeat of an earlier row's address: reported, never sent, no key of its own."""
    return PlannedRow(number, address, DUPLICATE, segments=segments)


@lru_cache(maxsize=4096)
def _zones_named(names: tuple[str, ...]) -> tuple[ZoneInfo, ...]:
    return tuple(zone(n) for n in names)


def _resolve_dialect(dialect: str | Dialect | None) -> Dialect | None:
    if dialect is None:
        return None
    from relay_integrations.dialects import get_dialect

    return get_dialect(dialect)

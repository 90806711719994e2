"""RelayCampaignOperator: one template to many recipients, validated first, each message sent once."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.keys import derive_campaign_id
from airflow_provider.ledger import is_local, ledger_reference, resolve_ledger, warn_if_local_ledger
from airflow_provider.retries import first_try_began, task_failure
from relay_integrations.campaign.report import next_pass_at
from relay_integrations.errors import RelayError
from relay_integrations.tracking import RelayIdentity, campaign_result

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

    from relay_integrations.campaign import Campaign, CampaignReport
    from relay_integrations.campaign.report import CampaignProgress

# How many row-level validation errors go into the task log and the exception text.
_ERRORS_SHOWN = 50


class _ProgressLog:
    """Logs a campaign's progress at most every ``interval`` seconds, and always at phase changes."""

    def __init__(self, log: Any, interval: float) -> None:
        self.log = log
        self.interval = interval
        self._last = 0.0
        self._phase: str | None = None

    def __call__(self, progress: CampaignProgress) -> None:
        now = time.monotonic()
        if progress.phase == self._phase and now - self._last < self.interval and progress.phase != "done":
            return
        self._last, self._phase = now, progress.phase
        share = f" ({progress.fraction:.0%})" if progress.fraction is not None else ""
        self.log.info(
            "Campaign %s %s: %d/%s processed%s, %d accepted, %d already sent, %d failed, %d invalid, %d suppressed,"
            " %d deferred",
            progress.campaign_id,
            progress.phase,
            progress.processed,
            "?" if progress.total is None else progress.total,
            share,
            progress.accepted,
            progress.already_sent,
            progress.failed,
            progress.invalid,
            progress.suppressed,
            progress.deferred,
        )


class RelayCampaignOperator(BaseOperator):
    """Send one templated message to every recipient and return the campaign report.

    ``template`` (and the templates in ``fields``) are rendered per recipient by the campaign's sandbox,
    with the recipient's columns as variables (``Hi {{ name }}``). Airflow does not render them with the
    run's context, so recipient placeholders are never mistaken for Airflow ones; a ``.j2`` file name is
    looked up like any Airflow template file (DAG folder, ``template_searchpath``).

    Rows are validated before anything is sent: with ``skip_invalid=False`` (default) a bad row fails the
    task with the row-level errors and nothing goes out. Each row's idempotency key derives from the
    campaign id, which defaults to one derived from the run, so a retried task sends only what the
    first try did not.

    Returns ``report.to_dict(max_rows=max_report_rows)`` with at most 20 errors, plus ``campaign``: the
    reference (campaign id, ledger, relay) :class:`~airflow_provider.sensors.relay.RelayMessageStatusSensor`
    tracks the campaign by. Its size does not grow with the recipients: no list of every message id.

    :param template: Message text template, inline or a ``.j2`` file name. (templated: file lookup only)
    :param recipients: A list of dicts, an upstream XCom (``other_task.output``), or a CSV/JSONL path. (templated)
    :param campaign_id: Defaults to ``<dag>.<task>-<hash of the run>``. (templated)
    :param address_field: The recipient column holding the address. (templated)
    :param channel: Channel of every message. (templated)
    :param fields: Other message fields, may be templates (subject, title, sender, phone_id...).
        (templated: rendered per recipient like ``template``)
    :param default_region: Region for numbers without a country code, e.g. ``US``. (templated)
    :param number_check: ``possible`` or ``valid`` (phonenumbers' stricter check).
    :param skip_invalid: Send to the valid rows and report the invalid ones instead of failing.
    :param dedupe: Send once per address.
    :param suppression: Addresses never to message (opt-outs). (templated)
    :param ledger: The campaign store: an SQLite path or a SQLAlchemy URL. (templated)
    :param ledger_path: The former name of ``ledger``. (templated)
    :param ledger_conn_id: A database connection every worker shares for the campaign store (a
        ``postgres`` connection, or any whose URI SQLAlchemy takes); defaults to the relay
        connection's extra ``ledger_conn_id``. Without either, a local SQLite file on the worker:
        then, on relays that cannot refuse a repeat (relaysms, coop), a retry (``try_number > 1``)
        looks every planned row up on the relay before sending, and a warning is logged when the
        executor may run the retry on another machine. (templated)
    :param concurrency: Sends in flight: ``"auto"`` (default) adapts to the relay (from one request up
        to 64, backing off when it slows down or answers 429/503); a number is fixed.
    :param rate_limit: At most this many sends per second.
    :param validation_workers: Processes that check rows besides the task's own: ``"auto"`` (default)
        forks one per spare core (at most two) once the input passes 2,000 rows, on Linux when the task
        process runs no other thread; ``0`` checks every row in the task process.
    :param dry_run: Validate and report what would be sent, send nothing.
    :param max_report_rows: Rows kept in the returned report (problem rows first); ``None`` keeps all.
    :param progress_interval: Seconds between progress lines in the task log.
    :param relay_conn_id: The ``relay`` connection. (templated)
    :param honour_opt_outs: Skip recipients on the relay account's suppression list (opt-outs from
        replies, entries added by hand); they are reported ``suppressed`` with since when and why.
        ``False`` sends to them anyway.
    :param suppression_store: Where that list is: an SQLite path or a database URL; default
        ``$RELAY_SUPPRESSION_STORE``, else the shared ledger database, else the worker's shared file. (templated)
    :param send_window: Quiet hours in each recipient's local time, e.g. ``("08:00", "21:00")``; rows
        outside it are ``deferred``. (templated)
    :param timezone_field: The row field with a recipient's IANA time zone (else the number's zones,
        else ``default_timezone``). (templated)
    :param default_timezone: The zone of recipients with none known. (templated)
    :param send_at: Send no earlier than this (ISO 8601, e.g. ``{{ data_interval_end }}``); a row's
        ``send_at`` field overrides it. smsgate holds the messages itself; other relays' rows are
        deferred. (templated)
    :param wait_for_send_window: When rows are deferred, the task defers itself on a time trigger
        until the first may go (the triggerer only waits; sending happens on a worker), sends them,
        and repeats until none is left; the ledger keeps every row to one message. ``False``: the task
        ends with them deferred and the result's ``next_run_at`` says when to run again.
    """

    template_fields: Sequence[str] = (
        "template",
        "recipients",
        "campaign_id",
        "address_field",
        "channel",
        "fields",
        "default_region",
        "suppression",
        "ledger",
        "ledger_path",
        "ledger_conn_id",
        "relay_conn_id",
        "suppression_store",
        "send_window",
        "timezone_field",
        "default_timezone",
        "send_at",
    )
    template_ext: Sequence[str] = (".j2",)
    template_fields_renderers = {"template": "jinja", "fields": "json"}
    # Rendered per recipient by the campaign, not by Airflow with the run's context.
    _PER_RECIPIENT_FIELDS = frozenset({"template", "fields"})
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        template: str,
        recipients: Any,
        campaign_id: str | None = None,
        address_field: str = "phone",
        channel: str = "sms",
        fields: Mapping[str, str] | None = None,
        default_region: str | None = None,
        number_check: Literal["possible", "valid"] = "possible",
        skip_invalid: bool = False,
        dedupe: bool = True,
        suppression: Iterable[str] | None = None,
        ledger: str | None = None,
        ledger_path: str | None = None,
        ledger_conn_id: str | None = None,
        concurrency: int | Literal["auto"] = "auto",
        rate_limit: float | None = None,
        validation_workers: int | Literal["auto"] = "auto",
        dry_run: bool = False,
        max_report_rows: int | None = 100,
        progress_interval: float = 5.0,
        relay_conn_id: str = RelayHook.default_conn_name,
        honour_opt_outs: bool = True,
        suppression_store: str | None = None,
        send_window: Sequence[str] | str | None = None,
        timezone_field: str = "timezone",
        default_timezone: str = "UTC",
        send_at: str | datetime | None = None,
        wait_for_send_window: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.honour_opt_outs = honour_opt_outs
        self.suppression_store = suppression_store
        self.send_window = send_window
        self.timezone_field = timezone_field
        self.default_timezone = default_timezone
        self.send_at = send_at
        self.wait_for_send_window = wait_for_send_window
        self.template = template
        self.recipients = recipients
        self.campaign_id = campaign_id
        self.address_field = address_field
        self.channel = channel
        self.fields = dict(fields or {})
        self.default_region = default_region
        self.number_check = number_check
        self.skip_invalid = skip_invalid
        self.dedupe = dedupe
        self.suppression = list(suppression or [])
        self.ledger = ledger
        self.ledger_path = ledger_path
        self.ledger_conn_id = ledger_conn_id
        self.concurrency = concurrency
        self.rate_limit = rate_limit
        self.validation_workers = validation_workers
        # Not ``self.dry_run``: BaseOperator.dry_run() is the method behind ``airflow tasks test --dry-run``.
        self.dry_run_only = dry_run
        self.max_report_rows = max_report_rows
        self.progress_interval = progress_interval
        self.relay_conn_id = relay_conn_id

    @cached_property
    def hook(self) -> RelayHook:
        return RelayHook(self.relay_conn_id)

    def _do_render_template_fields(
        self,
        parent: Any,
        template_fields: Iterable[str],
        context: Context,
        jinja_env: jinja2.Environment,
        seen_oids: set[int],
    ) -> None:
        if parent is self:
            template_fields = [f for f in template_fields if f not in self._PER_RECIPIENT_FIELDS]
            self.template = self._template_source(jinja_env)
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)

    def _template_source(self, jinja_env: jinja2.Environment) -> str:
        """The raw template: a ``.j2`` file's content (found by Airflow's template loader) or the text."""
        template = self.template
        if isinstance(template, str) and template.endswith(tuple(self.template_ext)) and "\n" not in template:
            if jinja_env.loader is None:
                raise AirflowFailException(f"template: cannot look up {template!r} without a template loader")
            try:
                source: str = jinja_env.loader.get_source(jinja_env, template)[0]
            except Exception as e:
                raise AirflowFailException(f"template: cannot read {template!r}: {e}") from None
            return source
        return template

    def _recipients(self) -> Any:
        recipients = self.recipients
        if isinstance(recipients, str | Path):
            return str(recipients)
        if isinstance(recipients, Mapping):
            raise AirflowFailException("recipients: expected a list of rows or a CSV/JSONL path, got one mapping")
        return list(recipients)

    def execute(self, context: Context) -> dict[str, Any]:
        return self._send_pass(context, self.campaign_id or derive_campaign_id(context), 1)

    def execute_after_window(self, context: Context, event: Any = None, *, campaign_id: str,
                             pass_number: int) -> dict[str, Any]:
        """Back from the time trigger: the deferred rows' moment has come; send what may go now."""
        self.log.info("Campaign %s: pass %d, sending the rows deferred until now", campaign_id, pass_number)
        return self._send_pass(context, campaign_id, pass_number)

    def _send_pass(self, context: Context, campaign_id: str, pass_number: int) -> dict[str, Any]:
        result = self._send(context, campaign_id)
        result["pass"] = pass_number
        moment = next_pass_at(result)
        if moment is not None and self.wait_for_send_window:
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            self.log.info("Campaign %s: %d row(s) deferred; the task waits on the triggerer until %s",
                          campaign_id, result["counts"].get("deferred", 0), result["next_run_at"])
            self.defer(trigger=DateTimeTrigger(moment=moment),
                       method_name="execute_after_window",
                       kwargs={"campaign_id": campaign_id, "pass_number": pass_number + 1})
        return result

    def _send(self, context: Context, campaign_id: str) -> dict[str, Any]:
        from relay_integrations.campaign import Campaign, CampaignValidationError
        from relay_integrations.campaign.campaign_store import CampaignStoreError

        location = resolve_ledger(self.ledger or self.ledger_path, self.ledger_conn_id,
                                  self.hook.settings.ledger_conn_id)
        try:
            campaign = self._campaign(Campaign, campaign_id, location)
        except ValueError as e:
            raise AirflowFailException(f"campaign {campaign_id}: {e}") from None
        mode = "dry run, nothing will be sent" if self.dry_run_only else "sending"
        self.log.info("Campaign %s: %s (ledger %s)", campaign_id, mode, campaign.ledger_path)
        try:
            with self.hook.get_client() as client:
                warn_if_local_ledger(self.log, location, client)
                earlier: datetime | None = None
                no_keys = not client.capabilities.client_idempotency_keys
                if context["ti"].try_number > 1 and is_local(location) and no_keys:
                    # An earlier try may have run elsewhere with its own local ledger: check the relay.
                    earlier = first_try_began(context) or datetime.now(timezone.utc) - timedelta(days=1)
                    self.log.info("Try %s with a local ledger on %s: every planned row is looked up on the relay "
                                  "before sending", context["ti"].try_number, client.dialect.name)
                report = campaign.send(client, dry_run=self.dry_run_only, earlier_try_since=earlier)
                relay = RelayIdentity.from_client(client)
        except CampaignStoreError as e:
            raise AirflowException(f"campaign {campaign_id}: {e}") from None
        except RelayError as e:  # what stopped the whole campaign (bad credentials, say)
            raise task_failure(e, f"campaign {campaign_id}") from None
        except CampaignValidationError as e:
            for error in e.errors[:_ERRORS_SHOWN]:
                self.log.error(
                    "row %s, field %s: %s",
                    "template" if error.get("row") is None else error.get("row"),
                    error.get("field"),
                    error.get("message"),
                )
            raise AirflowFailException(
                f"campaign {campaign_id}: {e.error_count} validation error(s), nothing was sent; "
                + "; ".join(
                    f"row {err.get('row')} {err.get('field')}: {err.get('message')}" for err in e.errors[:10]
                )
            ) from None
        # A ledger named by a connection is found again through it: its password stays out of the XCom.
        store = None if self.ledger or self.ledger_path else ledger_reference(
            self.ledger_conn_id or self.hook.settings.ledger_conn_id)
        return self._report_for_xcom(report, relay, store)

    def _campaign(self, campaign_class: type[Campaign], campaign_id: str, location: Any = None) -> Campaign:
        return campaign_class(
            self.template,
            self._recipients(),
            campaign_id=campaign_id,
            address_field=self.address_field,
            channel=self.channel,
            fields=self.fields,
            default_region=self.default_region,
            number_check=self.number_check,
            skip_invalid=self.skip_invalid,
            dedupe=self.dedupe,
            suppression=self.suppression,
            ledger=location,
            concurrency=self.concurrency,
            rate_limit=self.rate_limit,
            validation_workers=self.validation_workers,
            progress=_ProgressLog(self.log, self.progress_interval),
            honour_opt_outs=self.honour_opt_outs,
            suppression_store=self.suppression_store or None,
            send_window=self.send_window or None,
            timezone_field=self.timezone_field,
            default_timezone=self.default_timezone,
            send_at=self.send_at or None,
        )

    def _report_for_xcom(self, report: CampaignReport, relay: RelayIdentity | None = None,
                         store: str | None = None) -> dict[str, Any]:
        try:
            result = campaign_result(report, relay, max_rows=self.max_report_rows, store=store)
        finally:
            report.close()
        counts = result["counts"]
        self.log.info(
            "Campaign %s done: %s",
            result["campaign_id"],
            ", ".join(f"{k} {v}" for k, v in counts.items() if v),
        )
        if counts.get("suppressed"):
            self.log.info("Campaign %s: %d recipient(s) on the suppression list were not messaged",
                          result["campaign_id"], counts["suppressed"])
        if result.get("next_run_at"):
            self.log.info("Campaign %s: %d row(s) deferred; the first may go at %s", result["campaign_id"],
                          counts.get("deferred", 0), result["next_run_at"])
        if counts.get("failed"):
            for row in result["rows"]:
                if row.get("state") == "failed":
                    self.log.warning("row %s (%s) failed: %s", row.get("row"), row.get("address"), row.get("error"))
        return result

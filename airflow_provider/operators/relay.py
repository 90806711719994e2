"""Operators that send through a relay, run campaigns, read inbound stats and manage webhooks.

Sends run on the worker and never defer (a triggerer restart could send twice). Every operator
returns plain JSON for XCom.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from pydantic import ValidationError

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.keys import derive_campaign_id, derive_idempotency_key
from airflow_provider.ledger import is_local, ledger_reference, resolve_ledger, warn_if_local_ledger
from relay_integrations.errors import RelayError, UnsupportedOperationError
from relay_integrations.models import InboundQuery, OutboundMessage
from relay_integrations.tracking import RelayIdentity, campaign_result

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

    from relay_integrations.campaign import Campaign, CampaignReport
    from relay_integrations.campaign.campaign_store import CampaignStore
    from relay_integrations.campaign.report import CampaignProgress

# How many row-level validation errors go into the task log and the exception text.
_ERRORS_SHOWN = 50


def _validation_problems(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'message'}: {item['msg']}" for item in error.errors()
    )


def _first_try_began(context: Context) -> datetime | None:
    """When the DAG run started: the earliest moment an earlier try of this task can have sent."""
    started = getattr(context.get("dag_run"), "start_date", None)
    return started.astimezone(timezone.utc) if started else None


def _open_store(location: Any) -> CampaignStore | None:
    from relay_integrations.campaign.campaign_store import CampaignStore, CampaignStoreError

    if location is None:
        return None
    try:
        return CampaignStore.open(location)
    except CampaignStoreError as e:
        raise AirflowException(str(e)) from None


class RelaySendMessageOperator(BaseOperator):
    """Send one message through a relay and return the relay's receipt (a dict) to XCom.

    A retry of the task never sends twice: the idempotency key defaults to one derived from dag_id,
    run_id, task_id and map_index, which every try shares. Relays that honour client keys (phonerelay,
    smsgate) return the first message instead of sending again. On relays that take no key (relaysms,
    coop), a retry first looks the message up on the relay's outbound list (by our idempotency key
    where the relay echoes metadata, else recipient and exact text, since the DAG run started) and
    returns that one (``duplicate: true``) instead of sending again.

    Retry safety: a failure that surely never reached the relay (connection refused, 4xx) is retried
    as usual; one that may have been taken (500/502/504, read timeout: ``RelayError.maybe_sent``) is
    retried only because the retry reconciles first, and fails without retry
    (``AirflowFailException``) when ``look_for_earlier_send`` is off on a relay without client keys.
    With ``ledger_conn_id`` (or the relay connection's extra ``ledger_conn_id``) the message is also
    claimed in that shared database before sending, so a zombie try and its retry never both send it.

    :param to: Recipient address, or several for smsgate. (templated)
    :param text: Message text. (templated)
    :param channel: ``sms``, ``wa``, ``tg``, ``email``, ``notify``... as the relay knows them. (templated)
    :param subject: Email subject. (templated)
    :param title: Notification title. (templated)
    :param sender: Sending number/address; defaults to the connection's ``sender``. (templated)
    :param phone_id: phonerelay device; defaults to the connection's ``phone_id``. (templated)
    :param attachments: Attachment URLs (coop). (templated)
    :param metadata: Metadata the relay keeps with the message (relaysms). (templated)
    :param priority: Relay priority (coop 0-100, smsgate).
    :param idempotency_key: Overrides the derived key. (templated)
    :param message_fields: Any other :class:`~relay_integrations.models.OutboundMessage` field, e.g.
        ``{"schedule_at": ..., "status_callback": ...}``. (templated)
    :param relay_conn_id: The ``relay`` connection. (templated)
    :param look_for_earlier_send: On retries through relays without client keys, look for the message an
        earlier try sent before sending (default). Turn off when the same text legitimately goes to the
        same recipient twice within one DAG run.
    :param ledger_conn_id: A database connection (``postgres``, or any whose URI SQLAlchemy takes) every
        worker shares; defaults to the relay connection's extra ``ledger_conn_id``. (templated)
    """

    template_fields: Sequence[str] = (
        "to",
        "text",
        "channel",
        "subject",
        "title",
        "sender",
        "phone_id",
        "attachments",
        "metadata",
        "idempotency_key",
        "message_fields",
        "relay_conn_id",
        "ledger_conn_id",
    )
    template_fields_renderers = {"text": "jinja", "metadata": "json", "message_fields": "json"}
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        to: str | list[str] | None = None,
        text: str | None = None,
        channel: str = "sms",
        subject: str | None = None,
        title: str | None = None,
        sender: str | None = None,
        phone_id: str | None = None,
        attachments: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
        message_fields: dict[str, Any] | None = None,
        relay_conn_id: str = RelayHook.default_conn_name,
        look_for_earlier_send: bool = True,
        ledger_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.look_for_earlier_send = look_for_earlier_send
        self.ledger_conn_id = ledger_conn_id
        self.to = to
        self.text = text
        self.channel = channel
        self.subject = subject
        self.title = title
        self.sender = sender
        self.phone_id = phone_id
        self.attachments = attachments
        self.metadata = metadata
        self.priority = priority
        self.idempotency_key = idempotency_key
        self.message_fields = message_fields
        self.relay_conn_id = relay_conn_id

    @cached_property
    def hook(self) -> RelayHook:
        return RelayHook(self.relay_conn_id)

    def build_message(self, context: Context) -> OutboundMessage:
        """The message to send, with the derived idempotency key unless one was given."""
        fields: dict[str, Any] = dict(self.message_fields or {})
        given = {
            "to": self.to,
            "text": self.text,
            "channel": self.channel,
            "subject": self.subject,
            "title": self.title,
            "from": self.sender,
            "phone_id": self.phone_id,
            "attachments": self.attachments,
            "metadata": self.metadata,
            "priority": self.priority,
        }
        fields.update({k: v for k, v in given.items() if v is not None})
        fields["idempotency_key"] = self.idempotency_key or derive_idempotency_key(context)
        try:
            return OutboundMessage.model_validate(fields)
        except ValidationError as e:
            raise AirflowFailException(f"invalid message: {_validation_problems(e)}") from None

    def execute(self, context: Context) -> dict[str, Any]:
        from relay_integrations.campaign.single import send_once

        message = self.build_message(context)
        retry = context["ti"].try_number > 1
        location = resolve_ledger(None, self.ledger_conn_id, self.hook.settings.ledger_conn_id)
        store = _open_store(location)
        try:
            with self.hook.get_client() as client:
                no_keys = not client.capabilities.client_idempotency_keys
                if retry and no_keys and not self.look_for_earlier_send:
                    self.log.warning("%s takes no client idempotency key and the lookup is off: this retry sends "
                                     "again", client.dialect.name)
                try:
                    receipt = send_once(client, message, store=store, campaign_id="airflow.send_message",
                                        retry=retry and self.look_for_earlier_send, since=_first_try_began(context),
                                        log=self.log)
                except RelayError as e:
                    if e.maybe_sent and no_keys and not self.look_for_earlier_send:
                        raise AirflowFailException(
                            f"{e}; the relay may have taken the message and cannot refuse a repeat, so the task is "
                            "not retried (turn look_for_earlier_send on to retry safely)") from None
                    raise
        finally:
            if store is not None:
                store.close()
        self.log.info(
            "%s message %s to %s: %s (idempotency key %s)",
            "Relay already had" if receipt.duplicate else "Relay accepted",
            receipt.message_id,
            ", ".join(message.recipients) or message.channel,
            receipt.state.value,
            receipt.idempotency_key or message.idempotency_key,
        )
        return receipt.model_dump(mode="json", exclude={"raw"})


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
            "Campaign %s %s: %d/%s processed%s, %d accepted, %d already sent, %d failed, %d invalid, %d suppressed",
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
    :param concurrency: Sends in flight.
    :param rate_limit: At most this many sends per second.
    :param dry_run: Validate and report what would be sent, send nothing.
    :param max_report_rows: Rows kept in the returned report (problem rows first); ``None`` keeps all.
    :param progress_interval: Seconds between progress lines in the task log.
    :param relay_conn_id: The ``relay`` connection. (templated)
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
        concurrency: int = 8,
        rate_limit: float | None = None,
        dry_run: bool = False,
        max_report_rows: int | None = 100,
        progress_interval: float = 5.0,
        relay_conn_id: str = RelayHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        from relay_integrations.campaign import Campaign, CampaignValidationError
        from relay_integrations.campaign.campaign_store import CampaignStoreError

        campaign_id = self.campaign_id or derive_campaign_id(context)
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
                    earlier = _first_try_began(context) or datetime.now(timezone.utc) - timedelta(days=1)
                    self.log.info("Try %s with a local ledger on %s: every planned row is looked up on the relay "
                                  "before sending", context["ti"].try_number, client.dialect.name)
                report = campaign.send(client, dry_run=self.dry_run_only, earlier_try_since=earlier)
                relay = RelayIdentity.from_client(client)
        except CampaignStoreError as e:
            raise AirflowException(f"campaign {campaign_id}: {e}") from None
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
            progress=_ProgressLog(self.log, self.progress_interval),
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
        if counts.get("failed"):
            for row in result["rows"]:
                if row.get("state") == "failed":
                    self.log.warning("row %s (%s) failed: %s", row.get("row"), row.get("address"), row.get("error"))
        return result


class RelayInboundStatsOperator(BaseOperator):
    """Run phonerelay's inbound traffic query and return the stats dict (summary, per channel/day/tag...).

    :param phone_id: Device to report on; defaults to the connection's. (templated)
    :param range: Time range, e.g. ``7d``. (templated)
    :param channels: Channels to include (``sms``, ``wa``, ``tg``...). (templated)
    :param event_types: ``message``, ``call``, ``missed``, ``answered``. (templated)
    :param tags: Tags to filter on. (templated)
    :param tag_mode: ``any`` or ``all``.
    :param source_contains: Substring of the source address. (templated)
    :param min_duration_sec: Shortest call to include.
    :param max_duration_sec: Longest call to include.
    :param has_response: Only events that got (or did not get) a response.
    :param sort: Sort order, e.g. ``slowest``. (templated)
    :param limit: At most this many events.
    :param relay_conn_id: The ``relay`` connection (phonerelay). (templated)
    """

    template_fields: Sequence[str] = (
        "phone_id",
        "range",
        "channels",
        "event_types",
        "tags",
        "source_contains",
        "sort",
        "relay_conn_id",
    )
    ui_color = "#eef7ee"

    def __init__(
        self,
        *,
        phone_id: str | None = None,
        range: str | None = None,
        channels: list[str] | None = None,
        event_types: list[str] | None = None,
        tags: list[str] | None = None,
        tag_mode: Literal["any", "all"] | None = None,
        source_contains: str | None = None,
        min_duration_sec: int | None = None,
        max_duration_sec: int | None = None,
        has_response: bool | None = None,
        sort: str | None = None,
        limit: int | None = None,
        relay_conn_id: str = RelayHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.phone_id = phone_id
        self.range = range
        self.channels = channels
        self.event_types = event_types
        self.tags = tags
        self.tag_mode = tag_mode
        self.source_contains = source_contains
        self.min_duration_sec = min_duration_sec
        self.max_duration_sec = max_duration_sec
        self.has_response = has_response
        self.sort = sort
        self.limit = limit
        self.relay_conn_id = relay_conn_id

    @cached_property
    def hook(self) -> RelayHook:
        return RelayHook(self.relay_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        values = {
            "phone_id": self.phone_id or self.hook.settings.phone_id,
            "range": self.range,
            "channels": self.channels,
            "event_types": self.event_types,
            "tags": self.tags,
            "tag_mode": self.tag_mode,
            "source_contains": self.source_contains,
            "min_duration_sec": self.min_duration_sec,
            "max_duration_sec": self.max_duration_sec,
            "has_response": self.has_response,
            "sort": self.sort,
            "limit": self.limit,
        }
        try:
            query = InboundQuery.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as e:
            raise AirflowFailException(f"invalid inbound query: {_validation_problems(e)}") from None
        with self.hook.get_client() as client:
            if not client.capabilities.inbound_stats:
                raise AirflowFailException(f"{client.dialect.name} has no inbound stats query (phonerelay has)")
            stats = client.inbound_stats(query)
        result: dict[str, Any] = stats.model_dump(mode="json", exclude={"raw"})
        self.log.info("Inbound stats: %d event(s), summary %s", stats.count, stats.summary)
        return result


class RelayManageWebhooksOperator(BaseOperator):
    """List, register or remove the relay's webhooks (smsgate webhooks, relaysms status/inbound URLs,
    phonerelay inbound callbacks). coop documents no registration API: its webhooks are set up in its
    dashboard.

    Returns the relay's answer: the list of webhooks, or what the relay said to the change.

    :param action: ``list``, ``register`` or ``remove``.
    :param url: The receiver URL to register, e.g. ``http://127.0.0.1:8099/webhooks/smsgate``. (templated)
    :param event: What to receive: smsgate ``sms:received``/``sms:delivered``...; relaysms ``status`` or
        ``inbound``; phonerelay ``inbound`` (its only kind). (templated)
    :param webhook_id: The webhook (smsgate) or callback (phonerelay) to remove, or an id to register
        under (smsgate). (templated)
    :param options: Further registration fields as the relay documents them, e.g. phonerelay filters
        ``{"channels": ["sms"], "keyword_filter": "support", "callback_token": "..."}``. (templated)
    :param relay_conn_id: The ``relay`` connection. (templated)
    """

    template_fields: Sequence[str] = ("url", "event", "webhook_id", "options", "relay_conn_id")
    ui_color = "#eef7ee"

    def __init__(
        self,
        *,
        action: Literal["list", "register", "remove"] = "list",
        url: str | None = None,
        event: str | None = None,
        webhook_id: str | None = None,
        options: dict[str, Any] | None = None,
        relay_conn_id: str = RelayHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if action not in ("list", "register", "remove"):
            raise ValueError(f"action: expected 'list', 'register' or 'remove', got {action!r}")
        self.action = action
        self.url = url
        self.event = event
        self.webhook_id = webhook_id
        self.options = options
        self.relay_conn_id = relay_conn_id

    @cached_property
    def hook(self) -> RelayHook:
        return RelayHook(self.relay_conn_id)

    def execute(self, context: Context) -> Any:
        from airflow.sdk.log import mask_secret

        options = dict(self.options or {})
        if options.get("callback_token"):
            mask_secret(str(options["callback_token"]))
        try:
            with self.hook.get_client() as client:
                if self.action == "list":
                    hooks = client.list_webhooks()
                    self.log.info("%d webhook(s) registered", len(hooks))
                    return hooks
                if self.action == "register":
                    if not self.url:
                        raise AirflowFailException("url: required to register a webhook")
                    answer = client.register_webhook(self.url, self.event, webhook_id=self.webhook_id, **options)
                    self.log.info("Registered %s for %s", self.url, self.event or "the relay's events")
                    return answer
                if not self.webhook_id:
                    raise AirflowFailException("webhook_id: required to remove a webhook")
                answer = client.delete_webhook(self.webhook_id)
                self.log.info("Removed webhook %s", self.webhook_id)
                return answer
        except UnsupportedOperationError as e:
            raise AirflowFailException(str(e)) from None
        except RelayError as e:
            raise AirflowException(f"webhook {self.action} failed: {e}") from e

"""The Prefect campaign task: validate every row, then send each message once, with artifacts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal

import anyio
from prefect import get_run_logger
from prefect.context import TaskRunContext

from prefect_blocks.artifacts import (
    PROGRESS_UPDATE_INTERVAL,
    CampaignProgressArtifact,
    acreate_report_artifacts,
    acreate_validation_artifact,
)
from prefect_blocks.artifacts import artifact_key as campaign_artifact_key
from prefect_blocks.credentials import (
    RelayCredentials,
)
from prefect_blocks.task_pairs import task_pair
from prefect_blocks.task_runs import (
    SEND_TASK_OPTIONS,
    _aledger_for,
    _earlier_try_since,
    _is_local,
)
from relay_integrations.campaign import Campaign, CampaignReport, CampaignValidationError
from relay_integrations.campaign.campaign_store import StoreLocation
from relay_integrations.campaign.report import next_pass_at
from relay_integrations.tracking import RelayIdentity, campaign_result

# --- send_campaign -----------------------------------------------------------------------------


class CampaignSendError(RuntimeError):
    """Some rows of a campaign were not taken by the relay (after the client's own retries).

    Rows the relay accepted are in the campaign's ledger, so a retry sends only the rows that
    failed. Rows whose request may have reached the relay stay marked in the ledger, and the retry
    looks them up on the relay before sending (relaysms, coop) or the relay recognises them by key
    (phonerelay, smsgate), so Prefect retries the task.

    :param report: the campaign report dict (``CampaignReport.to_dict``) of the attempt.
    :param retry_safe: whether re-sending the failed rows can never send one twice.
    """

    def __init__(self, report: Mapping[str, Any], retry_safe: bool = True) -> None:
        self.report = dict(report)
        self.retry_safe = retry_safe
        counts = self.report.get("counts", {})
        failed = [r for r in self.report.get("rows", []) if r.get("state") == "failed"]
        first = f"; first: row {failed[0].get('row')}: {failed[0].get('error')}" if failed else ""
        super().__init__(
            f"campaign {self.report.get('campaign_id')}: {counts.get('failed', 0)} of {counts.get('total', 0)} "
            f"row(s) failed, {counts.get('accepted', 0)} accepted{first}"
            + ("" if retry_safe else "; not retried automatically: this relay cannot recognise a repeated send")
        )


IdempotencyScope = Literal["flow-run", "campaign"]


def _campaign_scope_id(campaign_id: str, scope: IdempotencyScope) -> str:
    """The id the core campaign derives keys and its ledger from.

    ``flow-run``: the flow run id joins the campaign id, so retries of the task or the flow run
    never send twice while a new flow run (next week's schedule) sends again. ``campaign``: the
    campaign id alone, so the campaign goes out once whichever run sends it.
    """
    if scope == "campaign":
        return campaign_id
    context = TaskRunContext.get()
    run_id = None
    if context is not None:
        run_id = context.task_run.flow_run_id or context.task_run.id
    if run_id is None:
        raise RuntimeError("send_campaign with idempotency_scope='flow-run' must run as a Prefect task")
    return f"{campaign_id}@{run_id}"


def _make_campaign(
    template: str,
    recipients: list[dict[str, Any]] | str,
    campaign_id: str,
    scope: IdempotencyScope,
    channel: str,
    address_field: str,
    fields: dict[str, Any] | None,
    default_region: str | None,
    skip_invalid: bool,
    suppression: list[str] | None,
    concurrency: int | Literal["auto"],
    rate_limit: float | None,
    ledger: StoreLocation | None,
    progress: Any,
    timing: Mapping[str, Any] | None = None,
) -> Campaign:
    if not campaign_id or not campaign_id.strip():
        raise ValueError("campaign_id: give the campaign a name (part of every idempotency key)")
    return Campaign(
        template,
        recipients,
        campaign_id=_campaign_scope_id(campaign_id, scope),
        address_field=address_field,
        channel=channel,
        fields=fields or {},
        default_region=default_region,
        skip_invalid=skip_invalid,
        suppression=suppression or (),
        ledger=ledger,
        concurrency=concurrency,
        rate_limit=rate_limit,
        progress=progress,
        **dict(timing or {}),
    )


def _report_dict(report: CampaignReport, campaign_id: str, scope: IdempotencyScope,
                 max_rows: int | None, relay: RelayIdentity | None = None, store: str | None = None) -> dict[str, Any]:
    try:
        # Counts, bounded errors and the reference wait_for_message_status tracks it by; no id list.
        result = campaign_result(report, relay, max_rows=max_rows, store=store)
    finally:
        report.close()
    result["campaign_id"] = campaign_id
    result["idempotency_scope"] = scope
    return result


def _log_campaign(result: Mapping[str, Any]) -> None:
    counts = result["counts"]
    get_run_logger().info(
        "Campaign %s%s: %s", result["campaign_id"], " (dry run)" if result.get("dry_run") else "",
        ", ".join(f"{k} {v}" for k, v in counts.items()),
    )


def _check_sent(result: dict[str, Any], fail_on_send_errors: bool, retry_safe: bool) -> dict[str, Any]:
    if fail_on_send_errors and result["counts"].get("failed"):
        raise CampaignSendError(result, retry_safe=retry_safe)
    return result


async def _send_campaign(
    credentials: RelayCredentials,
    template: str,
    recipients: list[dict[str, Any]] | str,
    campaign_id: str,
    channel: str = "sms",
    address_field: str = "phone",
    fields: dict[str, Any] | None = None,
    default_region: str | None = None,
    skip_invalid: bool = False,
    suppression: list[str] | None = None,
    dry_run: bool = False,
    idempotency_scope: IdempotencyScope = "flow-run",
    concurrency: int | Literal["auto"] = "auto",
    rate_limit: float | None = None,
    ledger: str | None = None,
    ledger_path: str | None = None,
    fail_on_send_errors: bool = True,
    artifact_key: str | None = None,
    max_rows: int | None = None,
    honour_opt_outs: bool = True,
    suppression_store: str | None = None,
    send_window: tuple[str, str] | list[str] | str | None = None,
    timezone_field: str = "timezone",
    default_timezone: str = "UTC",
    send_at: datetime | str | None = None,
    wait_for_send_window: bool = False,
) -> dict[str, Any]:
    """Send one template to many recipients: validate every row first, then send each message once.

    Progress shows in the ``<key>-progress`` artifact while sending; the run ends with a
    ``<key>-report`` table (one row per recipient: state, message id, segments, error) and a
    ``<key>-summary`` markdown artifact (counts, segments, failures). ``<key>`` is
    ``campaign-<campaign id as a key>`` unless ``artifact_key`` is given.

    :param credentials: the relay to send through.
    :param template: the message text, a Jinja2 template rendered with each recipient row.
    :param recipients: a list of row dicts, or the path of a ``.csv`` / ``.jsonl`` file on the worker.
    :param campaign_id: names the campaign; with the flow run, it makes every idempotency key.
    :param channel: sms, wa, tg, email, ... (decides how addresses are checked).
    :param address_field: the row field holding the address.
    :param fields: other message fields (``subject``, ``sender``, ``phone_id``...), str values are templates.
    :param default_region: ISO country for phone numbers written without ``+``.
    :param skip_invalid: send the good rows when some are bad; by default any bad row fails the
        task before anything is sent, with every row-level error in the message and in the
        ``<key>-validation-errors`` table artifact (and is not retried).
    :param suppression: addresses never to message (opt-outs).
    :param dry_run: validate and report, send nothing.
    :param idempotency_scope: ``flow-run`` (default): retries of the task or of the flow run never
        send twice, a new flow run sends again; ``campaign``: the campaign id alone decides, so it
        is sent once whichever run sends it.
    :param concurrency: requests in flight at once: ``"auto"`` (default) adapts to the relay, from
        one request up to 64, backing off when it slows down or answers 429/503; a number is fixed.
    :param rate_limit: at most this many messages per second.
    :param ledger: the campaign's ledger: a database URL every worker shares
        (``postgresql://...``), an SQLite path, or a saved ``sqlalchemy-connector/NAME`` or
        ``secret/NAME`` block; default ``credentials.ledger``, else a local file
        (``$RELAY_CAMPAIGN_LEDGER_DIR`` or the user cache). With a local ledger, a task or flow-run
        retry on a relay without client keys looks every planned row up on the relay first.
    :param ledger_path: the former name of ``ledger``.
    :param fail_on_send_errors: fail the task (after writing the artifacts) when rows failed, so
        Prefect retries them; accepted rows are never sent again, and rows that may have reached
        the relay are looked up there first.
    :param artifact_key: the artifact key prefix (lowercase letters, digits, dashes).
    :param max_rows: at most this many rows in the returned dict and the table (problems first).
    :param honour_opt_outs: skip recipients on the relay account's suppression list (opt-outs from
        replies, entries added by hand), reported ``suppressed`` with when and why; ``False`` sends
        to them anyway.
    :param suppression_store: where that list is (SQLite path or database URL); default
        ``$RELAY_SUPPRESSION_STORE``, else a PostgreSQL ledger, else the machine's shared file.
    :param send_window: quiet hours in each recipient's local time, e.g. ``("08:00", "21:00")``;
        rows outside it are ``deferred`` (with ``not_before``), and the result's ``next_run_at``
        says when the first of them may go.
    :param timezone_field: the row field holding a recipient's IANA time zone (else the number's
        zones, else ``default_timezone``).
    :param default_timezone: the zone of recipients with none known.
    :param send_at: send no earlier than this (a row's ``send_at`` field overrides it); smsgate holds
        the messages itself, other relays' rows are deferred.
    :param wait_for_send_window: when rows are deferred, wait in this task until ``next_run_at`` and
        send them, until none is left (re-runs never send a row twice). Off (default): the task returns
        with them deferred; schedule a follow-up flow run at ``next_run_at``, e.g.
        ``run_deployment(name, scheduled_time=datetime.fromisoformat(result["next_run_at"]))``.
    :return: the report as a JSON-able dict: ``counts`` (total, accepted, already_sent, invalid,
        suppressed, deferred, duplicate, failed, segments), ``rows``, ``errors`` (the first 20),
        ``next_run_at``, and ``campaign``: the reference :func:`wait_for_message_status` tracks the
        campaign by (never every message id).
    :raises CampaignValidationError: bad rows and ``skip_invalid`` off; nothing was sent.
    :raises CampaignSendError: rows failed and ``fail_on_send_errors`` is on (retried).
    """
    key = campaign_artifact_key(campaign_id, artifact_key)
    bar = CampaignProgressArtifact(f"{key}-progress", campaign_id)
    location = await _aledger_for(credentials, ledger or ledger_path)
    timing = {"honour_opt_outs": honour_opt_outs, "suppression_store": suppression_store,
              "send_window": send_window, "timezone_field": timezone_field, "default_timezone": default_timezone,
              "send_at": send_at}
    campaign = _make_campaign(template, recipients, campaign_id, idempotency_scope, channel, address_field, fields,
                              default_region, skip_invalid, suppression, concurrency, rate_limit, location,
                              bar.record, timing)
    earlier = _earlier_try_since() if _is_local(location) else None
    store = credentials.tracking_reference(ledger or ledger_path)
    while True:
        result = await _campaign_pass(credentials, campaign, campaign_id, bar, key, dry_run, earlier,
                                      idempotency_scope, max_rows, store)
        moment = next_pass_at(result)
        if moment is None or not wait_for_send_window:
            break
        delay = (moment - datetime.now(timezone.utc)).total_seconds()
        get_run_logger().info("Campaign %s: %d row(s) deferred; waiting until %s to send them",
                              campaign_id, result["counts"].get("deferred", 0), result["next_run_at"])
        await anyio.sleep(max(0.0, delay))
        earlier = None
        bar = CampaignProgressArtifact(f"{key}-progress", campaign_id)
        campaign.progress = bar.record
    return _check_sent(result, fail_on_send_errors, True)


async def _campaign_pass(credentials: RelayCredentials, campaign: Campaign, campaign_id: str,
                         bar: CampaignProgressArtifact, key: str, dry_run: bool, earlier: datetime | None,
                         idempotency_scope: IdempotencyScope, max_rows: int | None,
                         store: str | None) -> dict[str, Any]:
    """One run of the campaign with its progress, report and summary artifacts; the result dict."""
    await bar.acreate(f"Campaign {campaign_id}: starting")

    async def pump() -> None:
        # The campaign's callback only records (it also runs in a worker thread); this pushes.
        while True:
            await bar.apush()
            await anyio.sleep(PROGRESS_UPDATE_INTERVAL)

    outcome: CampaignReport | Exception
    async with credentials.get_async_client() as client, anyio.create_task_group() as group:
        relay = RelayIdentity.from_client(client)
        group.start_soon(pump)
        try:
            outcome = await campaign.asend(client, dry_run=dry_run, earlier_try_since=earlier)
        except Exception as exc:  # re-raised below, outside the task group, unwrapped
            outcome = exc
        group.cancel_scope.cancel()
    if isinstance(outcome, CampaignValidationError):
        await acreate_validation_artifact(key, campaign_id, outcome.errors)
    if isinstance(outcome, Exception):
        raise outcome
    report = outcome
    await bar.afinish(dry_run)
    result = _report_dict(report, campaign_id, idempotency_scope, max_rows, relay, store)
    await acreate_report_artifacts(key, result)
    _log_campaign(result)
    return result


asend_campaign, send_campaign = task_pair(_send_campaign, name="send_campaign", **SEND_TASK_OPTIONS)

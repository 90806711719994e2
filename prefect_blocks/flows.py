"""A ready flow: send a templated campaign, wait for delivery, summarise the replies.

Deploy it as is (every parameter is JSON)::

    from prefect_blocks.flows import relay_campaign_flow

    relay_campaign_flow.serve(name="relay-campaign")          # or .deploy(...) to a work pool

then run it from the UI or ``prefect deployment run 'relay-campaign/relay-campaign' -p ...``.

No ``from __future__ import annotations`` here: ``serve()`` pickles this module by value, and
Prefect validates flow parameters against the signature's annotations when a run starts, so
they must be the classes themselves, not strings naming globals the pickle may not carry.
"""

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Literal, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from prefect_blocks.artifacts import artifact_key as campaign_artifact_key
from prefect_blocks.credentials import RelayCredentials, RelayWebhookInbox
from prefect_blocks.tasks import send_campaign
from relay_integrations.dialects import get_dialect
from relay_integrations.message_waiter import MessageWaiter
from relay_integrations.models import InboundQuery, MessageState, StatusReport, WebhookEvent
from relay_integrations.replies import summarize_replies
from relay_integrations.tracking import CampaignRef, CampaignWaiter, TrackingStatus
from relay_integrations.waiting import as_utc
from relay_integrations.webhooks.inbox import EventFilter

MAX_LISTED = 50
_SENT_STATES = ("accepted", "already_sent")


def _load_credentials(credentials: RelayCredentials | str) -> RelayCredentials:
    if isinstance(credentials, RelayCredentials):
        return credentials
    return cast(RelayCredentials, RelayCredentials.load(credentials))


def _load_inbox(inbox: RelayWebhookInbox | str | None) -> RelayWebhookInbox | None:
    if inbox is None or isinstance(inbox, RelayWebhookInbox):
        return inbox
    return cast(RelayWebhookInbox, RelayWebhookInbox.load(inbox))


# --- delivery ----------------------------------------------------------------------------------


def summarize_delivery(
    reports: Mapping[str, StatusReport], pending: Iterable[str], wanted: MessageState
) -> dict[str, Any]:
    """Recipient-level state counts over status reports (a report without recipients counts once)."""
    by_state: Counter[str] = Counter()
    failed: list[dict[str, Any]] = []
    for report in reports.values():
        if report.recipients:
            for recipient in report.recipients:
                by_state[recipient.state.value] += 1
                if recipient.state in (MessageState.FAILED, MessageState.CANCELLED):
                    failed.append({"message_id": report.message_id, "address": recipient.address,
                                   "error": recipient.error or report.error})
        else:
            by_state[report.state.value] += 1
            if report.state in (MessageState.FAILED, MessageState.CANCELLED):
                failed.append({"message_id": report.message_id, "address": None, "error": report.error})
    not_settled = list(pending)
    return {
        "wanted": wanted.value,
        "complete": not not_settled,
        "messages": len(reports),
        "by_state": dict(sorted(by_state.items())),
        "failed": failed[:MAX_LISTED],
        "not_settled": not_settled[:MAX_LISTED],
        "not_settled_count": len(not_settled),
    }


def summarize_tracking(status: TrackingStatus) -> dict[str, Any]:
    """:func:`summarize_delivery`'s shape from a tracked campaign (counts from its store, sampled rows)."""
    sample = status.sample
    return {
        "wanted": status.target.value,
        "complete": status.done,
        "messages": sum(status.counts.values()),
        "by_state": dict(sorted(status.counts.items())),
        "failed": [{"message_id": r["message_id"], "address": r["address"], "error": None}
                   for r in sample if r["state"] in ("failed", "cancelled")][:MAX_LISTED],
        "not_settled": [r["message_id"] for r in sample if r["state"] not in ("failed", "cancelled")][:MAX_LISTED],
        "not_settled_count": status.waiting,
    }


@task(name="wait-for-campaign-delivery", cache_policy=NO_CACHE)
def wait_for_campaign_delivery(
    credentials: RelayCredentials,
    message_ids: list[str] | dict[str, Any],
    state: MessageState = MessageState.DELIVERED,
    timeout: float = 600.0,
    poll_interval: float = 5.0,
) -> dict[str, Any]:
    """Wait until every campaign message settles, then count states (never raises on failures or time-outs).

    ``message_ids``: the ids, or :func:`send_campaign`'s result, tracked by the core campaign waiter."""
    wanted = MessageState(state)
    campaign = CampaignRef.from_value(message_ids)
    if campaign is not None:
        location = credentials.tracking_location(campaign.store)
        with credentials.get_client() as client, \
                CampaignWaiter(campaign, location=location, target=wanted) as waiter:
            summary = summarize_tracking(waiter.wait(client, timeout=timeout, poll_interval=poll_interval))
    else:
        ids_waiter = MessageWaiter(list(message_ids), wanted, log=get_run_logger())
        with credentials.get_client() as client:
            verdict = ids_waiter.wait(client, timeout=timeout, poll_interval=poll_interval)
        summary = summarize_delivery(ids_waiter.reports, verdict.pending, wanted)
    get_run_logger().info("Delivery: %s%s", summary["by_state"],
                          "" if summary["complete"] else f", {summary['not_settled_count']} not settled in time")
    return summary


# --- replies -----------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    try:
        return as_utc(str(value)) if value else None
    except ValueError:
        return None


def _inbox_events(inbox: RelayWebhookInbox, after: int | None, kind: str | None) -> Iterator[WebhookEvent]:
    page = EventFilter(kind=kind, after=after, limit=1000)  # type: ignore[arg-type]
    with inbox.get_inbox() as opened:
        while True:
            events = opened.query(page)
            yield from events
            if len(events) < page.limit:
                return
            page = page.model_copy(update={"after": events[-1].cursor})


def _inbound_query_events(credentials: RelayCredentials) -> list[dict[str, Any]]:
    with credentials.get_client() as client:
        stats = client.inbound_stats(InboundQuery(range="7d", event_types=["message"], limit=1000))
    return stats.events


@task(name="mark-reply-baseline", cache_policy=NO_CACHE)
def mark_reply_baseline(credentials: RelayCredentials, inbox: RelayWebhookInbox | None = None) -> dict[str, Any]:
    """What had arrived before the campaign, so its summary counts only newer replies.

    With an inbox: its last cursor (exact). With the relay's inbound query: the start of the
    current second (relays stamp events to the second) and the ids of the events already there.
    """
    if inbox is not None:
        cursor = None
        for event in _inbox_events(inbox, None, None):
            cursor = event.cursor
        return {"source": "webhook-inbox", "after": cursor}
    if not get_dialect(credentials.dialect).capabilities.inbound_stats:
        return {"source": None}
    since = datetime.now(timezone.utc).replace(microsecond=0)
    seen = [str(e["message_id"]) for e in _inbound_query_events(credentials) if e.get("message_id")]
    return {"source": "inbound-query", "since": since.isoformat(), "seen": seen}


@task(name="summarize-campaign-replies", cache_policy=NO_CACHE)
def summarize_campaign_replies(
    credentials: RelayCredentials,
    addresses: list[str],
    baseline: dict[str, Any],
    inbox: RelayWebhookInbox | None = None,
) -> dict[str, Any]:
    """Replies from the campaign's recipients that arrived after ``baseline`` (:func:`mark_reply_baseline`):
    from the webhook inbox when there is one, else from the relay's inbound query (phonerelay)."""
    wanted = set(addresses)
    source = baseline.get("source")
    if source == "webhook-inbox" and inbox is not None:
        replies = [{"sender": e.sender, "text": e.text} for e in _inbox_events(inbox, baseline.get("after"), "inbound")]
        return summarize_replies(replies, wanted, source)
    if source == "inbound-query":
        since = _parse_time(baseline.get("since"))
        seen = set(baseline.get("seen", []))
        replies = []
        for event in _inbound_query_events(credentials):
            created = _parse_time(event.get("created_at"))
            if str(event.get("message_id")) in seen or (since and created and created < since):
                continue
            replies.append({"sender": event.get("source"), "text": event.get("text")})
        return summarize_replies(replies, wanted, source)
    return {"source": None, "replies": None,
            "note": f"{credentials.dialect} has no inbound query; give the flow a webhook inbox to count replies"}


# --- the flow ----------------------------------------------------------------------------------


def _outcome_markdown(result: Mapping[str, Any]) -> str:
    counts = result["campaign"]["counts"]
    lines = [f"# Campaign `{result['campaign_id']}`", "",
             f"Rows: {counts.get('total', 0)}; accepted {counts.get('accepted', 0)}, already sent "
             f"{counts.get('already_sent', 0)}, invalid {counts.get('invalid', 0)}, suppressed "
             f"{counts.get('suppressed', 0)}, failed {counts.get('failed', 0)}; "
             f"SMS segments {counts.get('segments', 0)}.",
             ""]
    delivery = result.get("delivery")
    if delivery:
        states = ", ".join(f"{k} {v}" for k, v in delivery["by_state"].items()) or "none"
        lines += [f"Delivery (waited for {delivery['wanted']}): {states}"
                  + ("" if delivery["complete"] else f"; {delivery['not_settled_count']} not settled in time") + ".",
                  ""]
    replies = result.get("replies")
    if replies and replies.get("replies") is not None:
        lines += [f"Replies ({replies['source']}): {replies['replies']} from {replies['repliers']} recipient(s), "
                  f"reply rate {replies['reply_rate']:.1%}, opt-outs {replies['opt_out_count']}.", ""]
    elif replies:
        lines += [f"Replies: {replies.get('note')}", ""]
    return "\n".join(lines)


@flow(name="relay-campaign", log_prints=False)
def relay_campaign_flow(
    credentials: RelayCredentials | str,
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
    wait_for_state: Literal["sent", "delivered"] | None = "delivered",
    delivery_timeout: float = 600.0,
    poll_interval: float = 5.0,
    inbox: RelayWebhookInbox | str | None = None,
    reply_window_seconds: float = 0.0,
    honour_opt_outs: bool = True,
    send_window: list[str] | None = None,
    default_timezone: str = "UTC",
    send_at: str | None = None,
    wait_for_send_window: bool = False,
) -> dict[str, Any]:
    """Send a templated campaign through a relay, wait for delivery, and summarise the replies.

    Retrying the flow run (or its send task) never sends a message twice; a new flow run of the
    same campaign sends again. Artifacts: ``campaign-<id>-progress``, ``-report``, ``-summary``
    and ``-outcome`` (this flow's summary).

    Args:
        credentials: A RelayCredentials block, or the name of a saved one.
        template: The message text, a Jinja2 template rendered with each recipient row
            (``Hi {{ first_name }}``).
        recipients: The rows (a list of objects), or a ``.csv``/``.jsonl`` path on the worker.
        campaign_id: Names the campaign and its artifacts (``campaign-<id>-...``).
        channel: sms, wa, tg, email... (what the relay offers).
        address_field: The row field holding the address.
        fields: Other message fields (``subject``, ``sender``...); templates allowed.
        default_region: ISO country code for numbers written without ``+`` (``US``, ``DE``).
        skip_invalid: Send the good rows when some are bad (by default nothing is sent then).
        suppression: Addresses never to message.
        dry_run: Validate and report only; nothing is sent.
        wait_for_state: ``delivered``, ``sent``, or empty not to wait.
        delivery_timeout: Seconds to wait for delivery before summarising what is known.
        poll_interval: Seconds between status polls.
        inbox: A RelayWebhookInbox block or a saved one's name, to count replies from webhooks;
            without one, replies come from the relay's inbound query where it has one (phonerelay).
        reply_window_seconds: Seconds to wait for replies after delivery before summarising.
        honour_opt_outs: Skip recipients on the relay account's suppression list (opt-outs from
            replies, entries added by hand); off sends to them anyway.
        send_window: Quiet hours in each recipient's local time, ``["08:00", "21:00"]``; rows outside
            it are deferred (the result's ``campaign.next_run_at`` says until when).
        default_timezone: The zone of recipients whose zone neither the row (``timezone``) nor the
            number tells.
        send_at: Send no earlier than this ISO 8601 moment (smsgate holds the messages itself).
        wait_for_send_window: Wait in the flow until deferred rows may go and send them; off (default),
            schedule a follow-up run of the same campaign at ``next_run_at``.

    Returns:
        ``{campaign_id, campaign: <report without rows>, delivery, replies}``.
    """
    relay = _load_credentials(credentials)
    replies_inbox = _load_inbox(inbox)
    baseline = mark_reply_baseline(relay, replies_inbox) if not dry_run else {}
    report: dict[str, Any] = send_campaign(  # type: ignore[assignment]  # a sync flow gets the sync task
        relay, template, recipients, campaign_id, channel=channel, address_field=address_field, fields=fields,
        default_region=default_region, skip_invalid=skip_invalid, suppression=suppression, dry_run=dry_run,
        honour_opt_outs=honour_opt_outs, send_window=send_window, default_timezone=default_timezone,
        send_at=send_at, wait_for_send_window=wait_for_send_window,
    )
    result: dict[str, Any] = {
        "campaign_id": campaign_id,
        "campaign": {k: v for k, v in report.items() if k != "rows"},
        "delivery": None,
        "replies": None,
    }
    if not dry_run:
        if wait_for_state and report.get("campaign"):
            result["delivery"] = wait_for_campaign_delivery(
                relay, report, MessageState(wait_for_state), delivery_timeout, poll_interval
            )
        if reply_window_seconds > 0:
            time.sleep(reply_window_seconds)
        addresses = [r["address"] for r in report["rows"] if r.get("state") in _SENT_STATES and r.get("address")]
        result["replies"] = summarize_campaign_replies(relay, addresses, baseline, replies_inbox)
    create_markdown_artifact(
        markdown=_outcome_markdown(result), key=f"{campaign_artifact_key(campaign_id)}-outcome",
        description=f"Campaign {campaign_id}: sent, delivered, replies",
    )
    return result

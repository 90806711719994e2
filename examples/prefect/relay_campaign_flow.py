"""Example flow: the delivery-day SMS campaign of the Airflow example, as a Prefect flow.

Sends a templated message to every good row of ``examples/data/recipients.csv`` (bad rows are
skipped and reported, the duplicate is sent once), waits until every message is delivered or
failed (one recipient is unreachable on purpose), simulates a customer's reply on the reference
relay (DEMO ONLY), waits for that reply in the webhook inbox, reads the relay's inbound stats
(phonerelay) and leaves artifacts: the campaign's progress, report table and summary, and this
flow's outcome.

Where the relay and the inbox are comes from environment variables (``make demo`` sets them)::

    RELAY_BASE_URL=http://127.0.0.1:5110/phonerelay RELAY_DIALECT=phonerelay RELAY_API_KEY=dev-key
    RELAY_PHONE_ID=phone_main RELAY_SENDER=+1987654321 RELAY_REFERENCE_URL=http://127.0.0.1:5110
    RELAY_WEBHOOK_INBOX_URL=http://127.0.0.1:5111 RELAY_WEBHOOK_INBOX_API_KEY=dev-key

Run it with ``python examples/prefect/relay_campaign_flow.py``: without ``PREFECT_API_URL``
Prefect starts a temporary local server for the run. In your own flows, load saved blocks
instead: ``RelayCredentials.load("my-relay")``, ``RelayWebhookInbox.load("my-inbox")``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from prefect_blocks import RelayCredentials, RelayWebhookInbox
from prefect_blocks.flows import mark_reply_baseline, summarize_campaign_replies, wait_for_campaign_delivery
from prefect_blocks.tasks import query_inbound_stats, send_campaign, wait_for_webhook_event
from relay_integrations.dialects import get_dialect
from relay_integrations.models import MessageState

RECIPIENTS_CSV = Path(__file__).resolve().parents[1] / "data" / "recipients.csv"
TEMPLATE = (
    "Hi {{ first_name }}, your order {{ order_id }} arrives today around {{ eta }}. "
    "Reply YES to confirm or STOP to opt out."
)
# The reference relay fails numbers ending in 0000: the recipients file has one on purpose.
EXPECTED_UNREACHABLE = "0000"
DEFAULT_RELAY = "http://127.0.0.1:5110"


def credentials_from_env() -> RelayCredentials:
    """Relay credentials from ``RELAY_*`` variables (defaults: the demo's reference relay)."""
    dialect = os.environ.get("RELAY_DIALECT", "phonerelay")
    return RelayCredentials(
        base_url=os.environ.get("RELAY_BASE_URL", f"{DEFAULT_RELAY}/{dialect}"),
        dialect=dialect,  # type: ignore[arg-type]
        api_key=os.environ.get("RELAY_API_KEY", "dev-key"),  # type: ignore[arg-type]
        login=os.environ.get("RELAY_LOGIN") or None,
        phone_id=os.environ.get("RELAY_PHONE_ID") or None,
        sender=os.environ.get("RELAY_SENDER") or None,
    )


def inbox_from_env() -> RelayWebhookInbox:
    """The webhook receiver's inbox from ``RELAY_WEBHOOK_INBOX_URL`` / ``_API_KEY``."""
    return RelayWebhookInbox(
        location=os.environ.get("RELAY_WEBHOOK_INBOX_URL", "http://127.0.0.1:5111"),
        api_key=os.environ.get("RELAY_WEBHOOK_INBOX_API_KEY", "dev-key"),  # type: ignore[arg-type]
    )


@task(name="simulate-customer-reply", cache_policy=NO_CACHE)
def simulate_customer_reply(credentials: RelayCredentials, reply_from: str) -> dict[str, Any]:
    """DEMO ONLY: make the reference relay receive a reply, as if the customer had answered.

    ``POST /_sim/inbound`` exists only on the reference relay (``relay serve``); a real relay gets
    real replies. The relay stores the reply and posts it, signed, to the webhook receiver.
    """
    reference_url = os.environ.get("RELAY_REFERENCE_URL", DEFAULT_RELAY).rstrip("/")
    reply = {
        "dialect": credentials.dialect,
        "channel": "sms",
        "from": reply_from,
        "to": credentials.sender or "+1987654321",
        "text": "YES, see you then!",
        "phone_id": credentials.phone_id,
    }
    answer = httpx.post(
        f"{reference_url}/_sim/inbound",
        headers={"Authorization": f"Bearer {credentials.api_key.get_secret_value()}"},
        json={k: v for k, v in reply.items() if v is not None},
        timeout=10,
    )
    answer.raise_for_status()
    return {"from": reply_from, "text": reply["text"], "id": answer.json()["id"]}


def _outcome_markdown(summary: dict[str, Any]) -> str:
    return "\n".join([
        f"# Campaign `{summary['campaign_id']}`",
        "",
        "| rows | invalid | sent | delivered | failed | replies |",
        "|---|---|---|---|---|---|",
        f"| {summary['rows']} | {summary['invalid']} | {summary['sent']} | {summary['delivered']} "
        f"| {len(summary['failed'])} | {summary['replies']} |",
        "",
        f"Failed (expected: the number ending in {EXPECTED_UNREACHABLE}): {', '.join(summary['failed']) or 'none'}.",
        f"Reply from {summary['reply']['from']}: \"{summary['reply']['text']}\".",
    ])


@flow(name="relay-campaign-example")
def relay_campaign_example(
    campaign_id: str = "delivery-day",
    recipients: str = str(RECIPIENTS_CSV),
    delivery_timeout: float = 300.0,
    reply_timeout: float = 60.0,
    poll_interval: float = 0.5,
) -> dict[str, Any]:
    """Send the campaign, wait for delivery and a reply, and summarise.

    :param campaign_id: names the campaign and its artifacts; each flow run sends it anew.
    :param recipients: the CSV of recipients (phone, first_name, order_id, eta).
    :param delivery_timeout: seconds to wait for every message to be delivered or failed.
    :param reply_timeout: seconds to wait for the simulated reply to reach the webhook inbox.
    :param poll_interval: seconds between looks at the relay and the inbox.
    :return: counts (rows, invalid, sent, delivered, failed, replies), the reply, the inbound stats.
    """
    logger = get_run_logger()
    credentials = credentials_from_env()
    inbox = inbox_from_env()
    baseline = mark_reply_baseline(credentials, inbox)

    report = send_campaign(credentials, TEMPLATE, recipients, campaign_id, skip_invalid=True)
    # The report names the campaign; the waiter reads its messages from the ledger, not from a list of ids.
    delivery = wait_for_campaign_delivery(credentials, report, MessageState.DELIVERED, delivery_timeout, poll_interval)
    address_of = {row["message_id"]: row["address"] for row in report["rows"] if row.get("message_id")}
    failed = sorted(f["address"] or address_of.get(f["message_id"], f["message_id"]) for f in delivery["failed"])
    unexpected = [a for a in failed if not str(a).endswith(EXPECTED_UNREACHABLE)]
    if unexpected or not delivery["complete"]:
        raise RuntimeError(f"delivery: unexpected failures {unexpected}, "
                           f"{delivery['not_settled_count']} message(s) not settled")

    delivered = [a for mid, a in address_of.items() if a not in failed]
    reply = simulate_customer_reply(credentials, delivered[0])
    event = wait_for_webhook_event(inbox, kind="inbound", dialect=credentials.dialect, sender=reply["from"],
                                   text_contains="yes", after=baseline.get("after"), timeout=reply_timeout,
                                   poll_interval=poll_interval)
    logger.info("Reply %s from %s reached the inbox: %r", event.event_id, event.sender, event.text)

    stats = None
    if get_dialect(credentials.dialect).capabilities.inbound_stats:
        stats = query_inbound_stats(credentials, {"range": "1d", "event_types": ["message"]})
    replies = summarize_campaign_replies(credentials, list(address_of.values()), baseline, inbox)

    summary: dict[str, Any] = {
        "campaign_id": campaign_id,
        "rows": report["counts"]["total"],
        "invalid": report["counts"]["invalid"],
        "sent": report["counts"]["accepted"] + report["counts"]["already_sent"],
        "delivered": delivery["by_state"].get("delivered", 0),
        "failed": failed,
        "replies": replies["replies"],
        "reply": {"from": event.sender, "text": event.text},
        "inbound_stats": stats.summary if stats is not None else None,
    }
    create_markdown_artifact(markdown=_outcome_markdown(summary), key="relay-campaign-example-outcome",
                             description=f"Campaign {campaign_id}: sent, delivered, failed, replies")
    print(f"Prefect flow: rows {summary['rows']}, invalid {summary['invalid']}, sent {summary['sent']}, "
          f"delivered {summary['delivered']}, failed {len(failed)} ({', '.join(failed)}), "
          f"replies {summary['replies']}")
    return summary


if __name__ == "__main__":
    relay_campaign_example()

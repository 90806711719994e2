"""Sending one message at most once across task retries, with or without a campaign store.

The Airflow send operator and the Prefect send task share this. With a store, the message's row
is claimed (leased) before the request, so a zombie try and its retry never both send it, and an
accepted message is answered from the store. On a relay that takes no client idempotency key
(relaysms, coop), a message an earlier try may have handed over (its row left ``sending``, or the
caller says this is a retry) is first looked up on the relay with the core reconciler.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from relay_integrations.campaign.campaign_store import (
    ACCEPTED,
    SENDING,
    Accepted,
    CampaignStore,
    RelayIdentity,
)
from relay_integrations.campaign.reconcile import Wanted, reconcile
from relay_integrations.errors import RelayError
from relay_integrations.models import MessageState, OutboundMessage, SendReceipt


class UncheckedSendError(RelayError):
    """An earlier try may have sent the message and the relay's list could not be read to its end."""

    def _default_maybe_sent(self) -> bool:
        return True


def _found(client: Any, message: OutboundMessage, message_id: str | None) -> SendReceipt:
    return SendReceipt(message_id=message_id or "", state=MessageState.QUEUED, idempotency_key=message.idempotency_key,
                       duplicate=True, recipients=message.recipients, dialect=client.dialect.name)


def send_once(
    client: Any,
    message: OutboundMessage,
    *,
    store: CampaignStore | None = None,
    campaign_id: str = "single-sends",
    retry: bool = False,
    since: datetime | None = None,
    log: Any = None,
) -> SendReceipt:
    """Send ``message`` (which must carry an ``idempotency_key``) unless an earlier try did.

    :param store: a campaign store shared by every try (None: only the relay is consulted).
    :param retry: this is a retry of a task whose earlier try may have sent the message; on a relay
        without client keys the relay's outbound list is checked first.
    :param since: when the first try began (bounds the list read).
    :raises UncheckedSendError: the list was too long to check; nothing was sent.
    """
    key = message.idempotency_key
    if not key:
        raise ValueError("send_once needs a message with an idempotency_key")
    no_keys = not client.capabilities.client_idempotency_keys
    relay = RelayIdentity.from_client(client) if store is not None else None
    in_doubt = retry
    if store is not None and relay is not None:
        address = ",".join(message.recipients)
        while True:
            claims = store.claim(relay, campaign_id, [(key, address, None)])
            if claims:
                in_doubt = in_doubt or claims[0].status == SENDING
                if claims[0].started_at is not None and (since is None or claims[0].started_at < since):
                    since = claims[0].started_at
                break
            existing = store.lookup(relay, campaign_id, [key]).get(key)
            if existing is not None and existing.status == ACCEPTED:
                if log is not None:
                    log.info("The campaign store has message %s for key %s: not sending again",
                             existing.message_id, key)
                return _found(client, message, existing.message_id)
            time.sleep(max(0.05, min(1.0, store.lease_seconds / 4)))  # another try holds it: wait out its lease
    try:
        if in_doubt and no_keys and len(message.recipients) == 1:
            outcome = reconcile(client, [Wanted(key, message.recipients[0], message.text)], since=since)
            if key in outcome.found:
                if log is not None:
                    log.info("%s already has message %s from an earlier try: not sending again",
                             client.dialect.name, outcome.found[key])
                if store is not None and relay is not None:
                    store.record_accepted(relay, campaign_id, [Accepted(key, message_id=outcome.found[key])])
                return _found(client, message, outcome.found[key])
            if not outcome.complete:
                raise UncheckedSendError(
                    f"an earlier try may have sent {key} and the relay's outbound list was too long to check; "
                    "not sent again", dialect=client.dialect.name)
        if store is not None and relay is not None and not store.mark_sending(relay, campaign_id, [key]):
            raise UncheckedSendError(f"lost the claim on {key} to another try; not sent", dialect=client.dialect.name,
                                     maybe_sent=False)
        try:
            receipt: SendReceipt = client.send(message)
        except RelayError as exc:
            if store is not None and relay is not None and not exc.maybe_sent:
                store.record_accepted(relay, campaign_id, [], settled=[key])
            raise
        if store is not None and relay is not None:
            store.record_accepted(relay, campaign_id, [Accepted(key, message_id=receipt.message_id)])
        return receipt
    finally:
        if store is not None:
            store.release()

"""Sending one message at most once across task retries, with or without a campaign store.

The Airflow send operator and the Prefect send task share this. With a store, the message's row
is claimed (leased) before the request, so a zombie try and its retry never both send it, and an
accepted message is answered from the store. On a relay that takes no client idempotency key
(relaysms, coop), a message an earlier try may have handed over (its row left ``sending``, or the
caller says this is a retry) is first looked up on the relay with the core reconciler.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from relay_integrations.campaign.campaign_store import (
    ACCEPTED,
    SENDING,
    Accepted,
    CampaignStore,
    RelayIdentity,
)
from relay_integrations.campaign.reconcile import Wanted, reconcile
from relay_integrations.campaign.suppression import Suppression, SuppressionList, suppression_location
from relay_integrations.errors import RelayError
from relay_integrations.models import MessageState, OutboundMessage, SendReceipt


def without_opt_outs(client: Any, message: OutboundMessage, *, suppression_store: Any = None,
                     ledger: Any = None) -> tuple[OutboundMessage | None, list[Suppression]]:
    """``message`` without the recipients on the relay account's suppression list, and their entries.

    The message is None when every recipient is on the list (send nothing). Where the list is:
    :func:`~relay_integrations.campaign.suppression.suppression_location` (``ledger``: the send's
    shared campaign store, if any). A list that cannot be read raises ``CampaignStoreError``: better
    not to send than to message someone who asked to stop.
    """
    recipients = message.recipients
    if not recipients:
        return message, []
    relay = RelayIdentity.from_client(client)
    with SuppressionList.open(suppression_location(suppression_store, ledger), relay, read_only=True,
                              channel=message.channel) as listed:
        by_address = {a: listed.normalize(a) for a in recipients}
        found = listed.lookup(by_address.values())
    if not found:
        return message, []
    kept = [a for a in recipients if by_address[a] not in found]
    entries = [found[n] for n in dict.fromkeys(by_address[a] for a in recipients if by_address[a] in found)]
    if not kept:
        return None, entries
    to: str | list[str] = kept[0] if isinstance(message.to, str) else kept
    return message.model_copy(update={"to": to}), entries


class SuppressedSend(BaseModel):
    """What a single send answers when every recipient is on the suppression list: nothing was sent.

    ``suppressed`` says who, since when and why (``Suppression.as_dict``)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["suppressed"] = "suppressed"
    message_id: None = None
    recipients: list[str]
    idempotency_key: str | None = None
    suppressed: list[dict[str, Any]]

    @property
    def duplicate(self) -> bool:
        return False


def suppressed_result(message: OutboundMessage, entries: list[Suppression]) -> SuppressedSend:
    """The :class:`SuppressedSend` of ``message``, whose recipients are all in ``entries``."""
    return SuppressedSend(recipients=message.recipients, idempotency_key=message.idempotency_key,
                          suppressed=[e.as_dict() for e in entries])


def honour_opt_outs(client: Any, message: OutboundMessage, *, suppression_store: Any = None, ledger: Any = None,
                    warn: Callable[[str], object] | None = None) -> OutboundMessage | SuppressedSend:
    """What a single send does with the suppression list, for every adapter: the message to send
    (without the suppressed recipients), or the :class:`SuppressedSend` to answer when none is left.

    ``warn`` is told about each recipient left out (``Not sending to +1555...: opted out by ...``).
    Raises ``CampaignStoreError`` when the list cannot be read (nothing is sent then).
    """
    kept, entries = without_opt_outs(client, message, suppression_store=suppression_store, ledger=ledger)
    if warn is not None:
        for entry in entries:
            warn(f"Not sending to {entry.address}: {entry.describe()}")
    return kept if kept is not None else suppressed_result(message, entries)


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

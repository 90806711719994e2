"""RelaySendMessageOperator: one message, sent at most once across the task's tries."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException
from pydantic import ValidationError

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.keys import derive_idempotency_key
from airflow_provider.ledger import resolve_ledger
from airflow_provider.retries import first_try_began, invalid_input, task_failure
from relay_integrations.errors import RelayError
from relay_integrations.models import OutboundMessage

if TYPE_CHECKING:
    from airflow.sdk import Context

    from relay_integrations.campaign.campaign_store import CampaignStore


def open_store(location: Any) -> CampaignStore | None:
    """The campaign store a send claims its message in (``None``: no shared ledger)."""
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
    :param honour_opt_outs: Leave out recipients on the relay account's suppression list (opt-outs from
        replies, entries added by hand). When every recipient is on it nothing is sent and the task
        returns ``{"state": "suppressed", "message_id": None, "suppressed": [who, since when, why]}``.
        ``False`` sends to them anyway.
    :param suppression_store: Where that list is: an SQLite path or a database URL; default
        ``$RELAY_SUPPRESSION_STORE``, else the shared ledger database, else the worker's shared file. (templated)
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
        "suppression_store",
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
        honour_opt_outs: bool = True,
        suppression_store: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.honour_opt_outs = honour_opt_outs
        self.suppression_store = suppression_store
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
            raise invalid_input("message", e) from None

    def execute(self, context: Context) -> dict[str, Any]:
        from relay_integrations.campaign.campaign_store import CampaignStoreError
        from relay_integrations.campaign.single import SuppressedSend, honour_opt_outs, send_once

        message = self.build_message(context)
        retry = context["ti"].try_number > 1
        location = resolve_ledger(None, self.ledger_conn_id, self.hook.settings.ledger_conn_id)
        store = open_store(location)
        try:
            with self.hook.get_client() as client:
                if self.honour_opt_outs:
                    try:
                        outcome = honour_opt_outs(client, message, suppression_store=self.suppression_store,
                                                  ledger=location, warn=self.log.warning)
                    except CampaignStoreError as e:
                        raise AirflowException(f"{e} (nothing was sent: the suppression list could not be read)") \
                            from None
                    if isinstance(outcome, SuppressedSend):
                        return outcome.model_dump(mode="json")
                    message = outcome
                no_keys = not client.capabilities.client_idempotency_keys
                if retry and no_keys and not self.look_for_earlier_send:
                    self.log.warning("%s takes no client idempotency key and the lookup is off: this retry sends "
                                     "again", client.dialect.name)
                try:
                    receipt = send_once(client, message, store=store, campaign_id="airflow.send_message",
                                        retry=retry and self.look_for_earlier_send, since=first_try_began(context),
                                        log=self.log)
                except RelayError as e:
                    raise task_failure(e, "send", relay_dedupes=not no_keys,
                                       retry_looks_first=self.look_for_earlier_send) from None
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

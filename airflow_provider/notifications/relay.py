"""RelayNotifier: a message through a relay from task and DAG callbacks.

::

    from airflow_provider.notifications.relay import RelayNotifier

    @dag(on_failure_callback=[RelayNotifier(to="+15551234567", text="{{ dag.dag_id }} failed: {{ ti.task_id }}")])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier
from pydantic import ValidationError

from airflow_provider.hooks.relay import RelayHook
from relay_integrations.idempotency import single_send_key
from relay_integrations.models import OutboundMessage, SendReceipt

if TYPE_CHECKING:
    from airflow.sdk import Context


def notification_key(context: Mapping[str, Any], text: str) -> str | None:
    """The same key for the same notification about the same try, so a repeated callback sends once.

    ``None`` when the context names no DAG run (the triggerer's deadline callbacks get none).
    """
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    parts: list[str] = ["notify", text]
    if ti is not None:
        parts += [str(ti.dag_id), str(ti.run_id), str(ti.task_id), str(getattr(ti, "map_index", -1)),
                  str(getattr(ti, "try_number", ""))]
    elif dag_run is not None:
        parts += [str(getattr(dag_run, "dag_id", getattr(dag, "dag_id", ""))), str(dag_run.run_id)]
    else:
        return None
    return single_send_key("airflow", *parts)


class RelayNotifier(BaseNotifier):
    """Send a message through a relay when a task or DAG run changes state.

    Use it in ``on_failure_callback``, ``on_success_callback``, ``on_retry_callback`` or the DAG-level
    callbacks. ``notify`` runs where Airflow runs callbacks; ``async_notify`` (the triggerer's deadline
    alerts) reads the connection with the async APIs.

    :param text: Message text, rendered with the callback's context. (templated)
    :param to: Recipient address. (templated)
    :param channel: Channel (``sms``, ``wa``, ``tg``, ``email``, ``notify``...). (templated)
    :param subject: Email subject. (templated)
    :param title: Notification title. (templated)
    :param sender: Sending number; defaults to the connection's. (templated)
    :param phone_id: phonerelay device; defaults to the connection's. (templated)
    :param relay_conn_id: The ``relay`` connection. (templated)
    """

    template_fields: Sequence[str] = ("text", "to", "channel", "subject", "title", "sender", "phone_id",
                                      "relay_conn_id")

    def __init__(
        self,
        *,
        text: str,
        to: str | list[str] | None = None,
        channel: str = "sms",
        subject: str | None = None,
        title: str | None = None,
        sender: str | None = None,
        phone_id: str | None = None,
        relay_conn_id: str = RelayHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.to = to
        self.channel = channel
        self.subject = subject
        self.title = title
        self.sender = sender
        self.phone_id = phone_id
        self.relay_conn_id = relay_conn_id

    def build_message(self, context: Mapping[str, Any]) -> OutboundMessage:
        """The message for ``context`` (fields already rendered by Airflow)."""
        fields: dict[str, Any] = {
            "to": self.to,
            "text": self.text,
            "channel": self.channel,
            "subject": self.subject,
            "title": self.title,
            "from": self.sender,
            "phone_id": self.phone_id,
            "idempotency_key": notification_key(context, str(self.text)),
        }
        try:
            return OutboundMessage.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as e:
            problems = "; ".join(f"{'.'.join(map(str, i['loc']))}: {i['msg']}" for i in e.errors())
            raise ValueError(f"RelayNotifier: invalid message: {problems}") from None

    def _log_receipt(self, receipt: SendReceipt) -> None:
        self.log.info("Notification %s through the relay: message %s (%s)",
                      "already sent" if receipt.duplicate else "sent", receipt.message_id, receipt.state.value)

    def get_template_env(self, dag: Any = None) -> Any:
        # DAG-level callbacks under dag.test() hand over a SerializedDAG, which has no template env of
        # its own; fall back to Airflow's sandboxed default rather than failing the alert.
        if dag is not None and not hasattr(dag, "get_template_env"):
            dag = None
        return super().get_template_env(dag=dag)

    def notify(self, context: Context) -> None:
        message = self.build_message(context)
        with RelayHook(self.relay_conn_id).get_client() as client:
            receipt = client.send(message)
        self._log_receipt(receipt)

    async def async_notify(self, context: Context) -> None:
        message = self.build_message(context)
        client = await RelayHook(self.relay_conn_id).aget_async_client()
        async with client:
            receipt = await client.send(message)
        self._log_receipt(receipt)


send_relay_notification = RelayNotifier

"""RelayManageWebhooksOperator: list, register and remove the relay's webhooks."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.retries import task_failure
from relay_integrations.errors import RelayError

if TYPE_CHECKING:
    from airflow.sdk import Context


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
        except RelayError as e:
            failure = task_failure(e, f"webhook {self.action}")
            if isinstance(failure, AirflowException):  # no retry can fix it (unsupported, refused...)
                raise failure from None
            raise AirflowException(f"webhook {self.action} failed: {e}") from e

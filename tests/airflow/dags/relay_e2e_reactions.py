"""End-to-end test DAG: react to a reply, survive a retry after a send, alert on failure.

The test passes ``receiver_url`` (a webhook receiver process) and ``reply_from`` in the run conf.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pendulum
from airflow.sdk import Context, dag, task

from airflow_provider.hooks.relay import RelayHook
from airflow_provider.notifications.relay import RelayNotifier
from airflow_provider.operators.relay import RelayManageWebhooksOperator, RelaySendMessageOperator
from airflow_provider.sensors.relay import RelayMessageStatusSensor, RelayWebhookSensor


class SendThenCrashOperator(RelaySendMessageOperator):
    """Sends, then dies on the first try, as a worker lost after the relay took the message would."""

    def execute(self, context: Context) -> dict[str, Any]:
        receipt = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated crash after the send")
        return receipt


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["relay-e2e"],
    # DAG-level alert: the run fails (explode), so this fires once per run.
    on_failure_callback=[
        RelayNotifier(
            relay_conn_id="relay_phonerelay",
            to="+15550107777",
            text="DAG ALERT {{ dag.dag_id }} run failed",
        )
    ],
)
def relay_e2e_reactions() -> None:
    register = RelayManageWebhooksOperator(
        task_id="register_inbound_webhook",
        relay_conn_id="relay_smsgate",
        action="register",
        url="{{ dag_run.conf['receiver_url'] }}/webhooks/smsgate",
        event="sms:received",
    )

    @task
    def simulate_reply(**context: Any) -> str:
        """The recipient answers: the relay gets an inbound SMS and posts it to the receiver."""
        settings = RelayHook("relay_smsgate").settings
        relay_root = settings.base_url.rsplit("/smsgate", 1)[0]
        answer = httpx.post(
            f"{relay_root}/_sim/inbound",
            headers={"Authorization": f"Bearer {settings.api_key}"},
            json={"dialect": "smsgate", "from": context["dag_run"].conf["reply_from"], "to": "+1987654321",
                  "text": "YES please, confirm order 42"},
            timeout=10,
        )
        answer.raise_for_status()
        return str(answer.json()["id"])

    @task
    def log_the_key() -> str:
        """Careless code logs the key: the task's secrets masker must already know it.

        (dag.test() prints task logs unmasked; a deployment's log files go through this masker.)
        """
        from airflow.sdk._shared.secrets_masker import redact

        settings = RelayHook("relay_smsgate").settings
        return str(redact(f"connecting with key {settings.api_key} (inbox {settings.webhook_inbox_api_key})"))

    reply = simulate_reply()
    register >> reply
    wait_reply = RelayWebhookSensor(
        task_id="wait_for_reply",
        relay_conn_id="relay_smsgate",
        kind="inbound",
        sender="{{ dag_run.conf['reply_from'] }}",
        text_contains="yes",
        poke_interval=0.2,
        timeout=60,
    )
    wait_reply_deferred = RelayWebhookSensor(
        task_id="wait_for_reply_deferred",
        relay_conn_id="relay_smsgate",
        kind="inbound",
        sender="{{ dag_run.conf['reply_from'] }}",
        text_contains="confirm order",
        deferrable=True,
        poke_interval=0.2,
        timeout=60,
    )
    reply >> [wait_reply, wait_reply_deferred]

    # smsgate dedupes on our key; relaysms and coop take none, so the retry looks for its earlier send.
    for dialect in ("smsgate", "relaysms", "coop"):
        send = SendThenCrashOperator(
            task_id=f"send_once_{dialect}",
            relay_conn_id=f"relay_{dialect}",
            to="+15550109999",
            text="RETRY-PROBE for {{ dag.dag_id }}",
            retries=2,
            retry_delay=timedelta(seconds=0),
        )
        RelayMessageStatusSensor(
            task_id=f"send_once_{dialect}_delivered",
            relay_conn_id=f"relay_{dialect}",
            message_ids=send.output,
            poke_interval=0.2,
            timeout=60,
        )

    @task(
        retries=0,
        on_failure_callback=[
            RelayNotifier(
                relay_conn_id="relay_phonerelay",
                to="+15550106666",
                text="ALERT {{ dag.dag_id }}.{{ ti.task_id }} failed: {{ exception }}",
            )
        ],
    )
    def explode() -> None:
        raise ValueError("disk full")

    explode()
    log_the_key()


relay_e2e_reactions()

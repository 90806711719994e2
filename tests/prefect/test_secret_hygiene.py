"""Secret hygiene: a Prefect flow run with a known, distinctive API key never shows that key.

A flow runs against a reference relay process with a saved ``RelayCredentials`` block: a single
send, a campaign with an invalid row skipped, the ready ``relay_campaign_flow`` as a subflow that
loads the block by name and waits for delivery, a ``RelayNotification``, a send the relay refuses,
a send with a wrong key (401), and the flow logging the credentials block itself. Every logger of
the core and the Prefect package is at DEBUG. Then the key (and the wrong key, and the smsgate
Basic credential built from the key) is looked for in:

* everything written to stdout/stderr during the run,
* every log record captured by pytest's logging plugin,
* the Prefect logs read back from the server through the client,
* the flow runs' parameters, task run results, and the artifacts, read back from the server,
* the reference relay's own log file (uvicorn at debug level).
"""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

import httpx
import pytest
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL
from relay_prefect_helpers import credentials_for

from prefect_blocks import RelayCredentials, RelayNotification
from prefect_blocks.flows import relay_campaign_flow
from prefect_blocks.tasks import send_campaign, send_message
from relay_integrations.errors import RelayError

pytestmark = pytest.mark.e2e

API_KEY = "hygiene-prefect-key-Hb2n9QeL5r"
WRONG_KEY = "hygiene-prefect-wrong-key-Pc6yW1"
LOGIN = "relay"


def _secrets() -> dict[str, str]:
    basic = base64.b64encode(f"{LOGIN}:{API_KEY}".encode()).decode()
    return {"api key": API_KEY, "wrong key": WRONG_KEY, "smsgate Basic credential": basic}


def _leaks(where: str, text: str) -> list[str]:
    return [f"{name} in {where}" for name, secret in _secrets().items() if secret in text]


def _server_records(path: str, body: dict[str, Any]) -> str:
    """Every record a Prefect API filter endpoint returns, as raw JSON text (paged)."""
    texts: list[str] = []
    offset = 0
    while True:
        answer = httpx.post(f"{PREFECT_API_URL.value()}{path}", json={**body, "limit": 200, "offset": offset},
                            timeout=30)
        answer.raise_for_status()
        page = answer.json()
        texts.append(answer.text)
        if len(page) < 200:
            return "\n".join(texts)
        offset += 200


def test_a_flow_run_never_logs_the_api_key(
    start_relay: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    relay = start_relay(api_key=API_KEY, login=LOGIN, delivery_latency=0.1, extra_args=["--log-level", "debug"])
    for name in ("relay_integrations", "prefect_blocks", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    block_name = f"hygiene-{uuid.uuid4().hex[:8]}"
    credentials_for(relay, "smsgate", max_retries=1).save(block_name, overwrite=True)
    phonerelay = credentials_for(relay, "phonerelay", max_retries=1)
    relaysms = credentials_for(relay, "relaysms", max_retries=1)
    wrong = credentials_for(relay, "coop", api_key=WRONG_KEY, max_retries=1)
    campaign_id = f"hygiene {uuid.uuid4().hex[:8]}"
    rows = [{"phone": "+15550188001", "name": "Ada"}, {"phone": "+15550188002", "name": "Grace"},
            {"phone": "not-a-number", "name": "Broken"}]

    @flow(name="relay-secret-hygiene")
    def hygiene() -> dict[str, Any]:
        logger = get_run_logger()
        logger.info("secret-hygiene flow started")
        loaded = RelayCredentials.load(block_name)
        logger.info("credentials block %r, client %r", loaded, phonerelay.get_client())
        receipt = send_message(phonerelay, to="+15550188010", text="hygiene single send")
        report = send_campaign(relaysms, template="Hi {{ name }}", recipients=rows, campaign_id=campaign_id,
                               skip_invalid=True)
        outcome = relay_campaign_flow(credentials=block_name, template="Same text for all", recipients=rows[:2],
                                      campaign_id=f"{campaign_id} sub", wait_for_state="delivered",
                                      delivery_timeout=60, poll_interval=0.2)
        RelayNotification(credentials=phonerelay, to=["+15550188011"]).notify("hygiene notification", "Hygiene")
        errors: dict[str, str] = {}
        # Permanent errors (bad input, bad credentials) are not retried by the send task.
        try:
            send_message(relaysms, to="+15550188012", text="not our number", sender="+15550199999")
        except RelayError as exc:
            errors["refused"] = f"{type(exc).__name__}: {exc}"
        try:
            send_message(wrong, to="+15550188013", text="never accepted")
        except RelayError as exc:
            errors["unauthorised"] = f"{type(exc).__name__} {exc.status_code}: {exc}"
        return {"receipt": receipt.message_id, "accepted": report["counts"]["accepted"], "outcome": outcome,
                **errors}

    result = hygiene()
    APILogWorker.drain_all(timeout=10)  # the flow's logs reach the server before they are read back
    captured = capfd.readouterr()

    # The run did what it was meant to: good paths worked, the refused and unauthorised sends failed.
    assert result["receipt"] and result["accepted"] == 2, result
    assert result.get("refused") and "401" in result.get("unauthorised", ""), result

    logs = _server_records("/logs/filter", {})
    assert "secret-hygiene flow started" in logs, "the flow's logs should be on the server"
    leaks = _leaks("stdout/stderr", captured.out + captured.err)
    leaks += _leaks("log records", caplog.text)
    leaks += _leaks("log record arguments", " ".join(repr(r.args) for r in caplog.records))
    leaks += _leaks("Prefect logs read back from the server", logs)
    leaks += _leaks("flow runs (parameters, states)", _server_records("/flow_runs/filter", {}))
    leaks += _leaks("task runs", _server_records("/task_runs/filter", {}))
    leaks += _leaks("artifacts", _server_records("/artifacts/filter", {}))
    leaks += _leaks("the flow's result", repr(result))
    assert relay.log_path is not None
    relay_log = relay.log_path.read_text(errors="replace")
    assert "reference relay on" in relay_log
    leaks += _leaks("the relay's log", relay_log)
    assert leaks == []
    with get_client(sync_client=True) as client:
        client.delete_block_document(client.read_block_document_by_name(block_name, "relay-credentials").id)

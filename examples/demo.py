"""``make demo``: the campaign example end to end on this machine, with no outside service.

Starts the reference relay and the webhook receiver on loopback (the default ports 5110/5111, or
free ones if those are taken), runs the Airflow DAG with ``airflow dags test`` in the Airflow
environment, then the Prefect flow in the Prefect environment, prints what happened to every
message, and stops what it started -- also on Ctrl-C or failure. Safe to run again and again:
each run starts from empty databases under ``.demo/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from relay_integrations.process import (
    ReferenceRelayProcess,
    WebhookReceiverProcess,
    free_port,
    port_is_free,
)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".demo"
AIRFLOW_BIN = ROOT / ".venvs" / "airflow" / "bin"
PREFECT_BIN = ROOT / ".venvs" / "prefect" / "bin"
DIALECT = os.environ.get("RELAY_DEMO_DIALECT", "phonerelay")
DAG_ID = "relay_campaign"


def _port(preferred: int) -> int:
    return preferred if port_is_free(preferred) else free_port()


def register_webhooks(relay: ReferenceRelayProcess, receiver: WebhookReceiverProcess, secret: str) -> None:
    """Point every dialect's webhooks at the receiver, each the way its API does it."""
    auth = {"Authorization": f"Bearer {relay.api_key}"}
    with httpx.Client(timeout=10) as http:
        http.post(f"{relay.url('phonerelay')}/api/v1/webchat/callbacks/inbound", headers=auth, json={
            "callback_url": receiver.url("phonerelay"), "callback_token": secret, "active": True,
        }).raise_for_status()
        for event in ("sms:sent", "sms:delivered", "sms:failed", "sms:received"):
            http.post(f"{relay.url('smsgate')}/api/3rdparty/v1/webhooks", auth=(relay.login, relay.api_key),
                      json={"url": receiver.url("smsgate"), "event": event}).raise_for_status()
        http.put(f"{relay.url('relaysms')}/api/v1/webhooks", headers={"X-API-Key": relay.api_key}, json={
            "status_url": receiver.url("relaysms"), "inbound_url": receiver.url("relaysms"),
        }).raise_for_status()
        http.post(f"{relay.base_url}/_sim/webhooks", headers=auth,
                  json={"dialect": "coop", "url": receiver.url("coop")}).raise_for_status()


def example_env(relay: ReferenceRelayProcess, receiver: WebhookReceiverProcess) -> dict[str, str]:
    """What both examples read: where the relay and the inbox are, and their keys."""
    return {
        "RELAY_BASE_URL": relay.url(DIALECT),
        "RELAY_DIALECT": DIALECT,
        "RELAY_API_KEY": relay.api_key,
        "RELAY_LOGIN": relay.login,
        "RELAY_PHONE_ID": "phone_main",
        "RELAY_SENDER": "+1987654321",
        "RELAY_REFERENCE_URL": relay.base_url,
        "RELAY_WEBHOOK_INBOX_URL": receiver.base_url,
        "RELAY_WEBHOOK_INBOX_API_KEY": receiver.api_key,
        # Campaign ledgers (what was accepted, so a retry never re-sends) stay in .demo/, not the user cache.
        "RELAY_CAMPAIGN_LEDGER_DIR": str(WORK / "ledgers"),
    }


def airflow_env(base: dict[str, str]) -> dict[str, str]:
    home = WORK / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    conn = {
        "conn_type": "relay",
        "host": base["RELAY_BASE_URL"],
        "login": base["RELAY_LOGIN"],
        "password": base["RELAY_API_KEY"],
        "extra": {
            "dialect": DIALECT,
            "phone_id": base["RELAY_PHONE_ID"],
            "sender": base["RELAY_SENDER"],
            "webhook_inbox_url": base["RELAY_WEBHOOK_INBOX_URL"],
            "webhook_inbox_api_key": base["RELAY_WEBHOOK_INBOX_API_KEY"],
        },
    }
    return {
        **os.environ,
        **base,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "examples" / "airflow" / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_RELAY_DEFAULT": json.dumps(conn),
    }


def prefect_env(base: dict[str, str]) -> dict[str, str]:
    home = WORK / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    # Only loopback is ever a target: no telemetry from the temporary Prefect server.
    env = {
        **os.environ,
        **base,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The temporary server's default 20 s start-up budget is too tight on a busy laptop.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    env.pop("PREFECT_API_URL", None)  # the flow runs against a temporary local Prefect server
    return env


def run(cmd: list[str], env: dict[str, str], title: str) -> None:
    print(f"\n=== {title}: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}", flush=True)
    subprocess.run(cmd, env=env, cwd=ROOT, check=True)


def summary(relay: ReferenceRelayProcess) -> dict[str, Any]:
    """What the relay holds: outbound messages by state, and inbound replies."""
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {relay.api_key}"}) as http:
        rows = http.get(f"{relay.base_url}/_sim/messages").json()["messages"]
    outbound = [r for r in rows if r.get("direction") == "outbound"]
    states: Counter[str] = Counter(str(r.get("state") or r.get("status")) for r in outbound)
    return {
        "sent": len(outbound),
        "by_state": dict(states),
        "replies": sum(1 for r in rows if r.get("direction") == "inbound"),
    }


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    secret = "whsec_" + __import__("base64").b64encode(secrets.token_bytes(24)).decode()
    relay = ReferenceRelayProcess(
        db_path=WORK / "relay.db", api_key="dev-key", port=_port(5110), delivery_latency=0.5,
        webhook_secret=secret, log_path=WORK / "relay.log",
    )
    receiver = WebhookReceiverProcess(
        db_path=WORK / "webhooks.db", secrets=[secret], api_key="dev-key", port=_port(5111),
        log_path=WORK / "webhooks.log",
    )
    try:
        relay.start()
        receiver.start()
        print(f"reference relay  {relay.base_url}  (log {relay.log_path})")
        print(f"webhook receiver {receiver.base_url}  (log {receiver.log_path})")
        register_webhooks(relay, receiver, secret)
        base = example_env(relay, receiver)
        env = airflow_env(base)
        run([str(AIRFLOW_BIN / "airflow"), "db", "migrate"], env, "Airflow metadata DB")
        run([str(AIRFLOW_BIN / "airflow"), "dags", "test", DAG_ID], env, "Airflow DAG")
        run([str(PREFECT_BIN / "python"), str(ROOT / "examples" / "prefect" / "relay_campaign_flow.py")],
            prefect_env(base), "Prefect flow")
        result = summary(relay)
        print("\n=== Summary (what the reference relay holds)")
        print(f"sent: {result['sent']}  delivered: {result['by_state'].get('delivered', 0)}  "
              f"failed: {result['by_state'].get('failed', 0)}  replies: {result['replies']}")
        print(f"by state: {result['by_state']}")
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"\ndemo step failed with exit code {exc.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the servers", file=sys.stderr)
        return 130
    finally:
        receiver.stop()
        relay.stop()


if __name__ == "__main__":
    raise SystemExit(main())

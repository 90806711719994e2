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
import time
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
    """Point every dialect's webhooks at the receiver, each the way its API does it.

    ``secret`` is the master secret both were started with: the phonerelay callback gets phonerelay's
    own secret derived from it, and relaysms (unsigned, as its doc has it) posts to the secret URL.
    """
    from relay_integrations.signing import derive_dialect_secret, derive_relaysms_url_token

    auth = {"Authorization": f"Bearer {relay.api_key}"}
    relaysms_url = f"{receiver.base_url}/webhooks/relaysms/{derive_relaysms_url_token(secret)}"
    with httpx.Client(timeout=10) as http:
        http.post(f"{relay.url('phonerelay')}/api/v1/webchat/callbacks/inbound", headers=auth, json={
            "callback_url": receiver.url("phonerelay"), "callback_token": derive_dialect_secret(secret, "phonerelay"),
            "active": True,
        }).raise_for_status()
        for event in ("sms:sent", "sms:delivered", "sms:failed", "sms:received"):
            http.post(f"{relay.url('smsgate')}/api/3rdparty/v1/webhooks", auth=(relay.login, relay.api_key),
                      json={"url": receiver.url("smsgate"), "event": event}).raise_for_status()
        http.put(f"{relay.url('relaysms')}/api/v1/webhooks", headers={"X-API-Key": relay.api_key}, json={
            "status_url": relaysms_url, "inbound_url": relaysms_url,
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


def run(cmd: list[str], env: dict[str, str], title: str, timings: dict[str, float],
        log_path: Path | None = None) -> None:
    """Run one step; its output goes to the terminal, or to ``log_path`` when given (kept quiet)."""
    shown = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))
    print(f"\n=== {title}: {shown}" + (f"  (output in {log_path})" if log_path else ""), flush=True)
    started = time.monotonic()
    try:
        if log_path is None:
            subprocess.run(cmd, env=env, cwd=ROOT, check=True)
        else:
            with log_path.open("wb") as log:
                subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=log, stderr=subprocess.STDOUT)
    finally:
        timings[title] = time.monotonic() - started
    print(f"=== {title}: done in {timings[title]:.0f} s", flush=True)


def summary(relay: ReferenceRelayProcess) -> dict[str, Any]:
    """What the relay holds: outbound messages by state and per recipient, and inbound replies."""
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {relay.api_key}"}) as http:
        rows = http.get(f"{relay.base_url}/_sim/messages").json()["messages"]
    outbound = [r for r in rows if r.get("direction") == "outbound"]
    states: Counter[str] = Counter(str(r.get("state") or r.get("status")) for r in outbound)
    return {
        "sent": len(outbound),
        "by_state": dict(states),
        "per_recipient": Counter(str(r.get("to")) for r in outbound),
        "replies": sum(1 for r in rows if r.get("direction") == "inbound"),
    }


def print_summary(result: dict[str, Any], timings: dict[str, float], examples: int) -> bool:
    """Print the summary; True when every recipient got exactly one message from each example."""
    per_recipient: Counter[str] = result["per_recipient"]
    once_each = bool(per_recipient) and set(per_recipient.values()) == {examples}
    print("\n=== Summary (what the reference relay holds, both examples together)")
    print(f"sent: {result['sent']}  delivered: {result['by_state'].get('delivered', 0)}  "
          f"failed: {result['by_state'].get('failed', 0)} (the number ending in 0000, on purpose)  "
          f"replies: {result['replies']}")
    print(f"recipients: {len(per_recipient)}, each got "
          + ("exactly one message from each example" if once_each else f"uneven counts: {dict(per_recipient)}"))
    print("timings: " + ", ".join(f"{title} {seconds:.0f} s" for title, seconds in timings.items()))
    return once_each


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
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        relay.start()
        receiver.start()
        print(f"reference relay  {relay.base_url}  (log {relay.log_path})")
        print(f"webhook receiver {receiver.base_url}  (log {receiver.log_path})")
        register_webhooks(relay, receiver, secret)
        timings["servers"] = time.monotonic() - started
        base = example_env(relay, receiver)
        env = airflow_env(base)
        run([str(AIRFLOW_BIN / "airflow"), "db", "migrate"], env, "Airflow metadata DB", timings,
            log_path=WORK / "airflow-db-migrate.log")
        run([str(AIRFLOW_BIN / "airflow"), "dags", "test", DAG_ID], env, "Airflow DAG", timings)
        run([str(PREFECT_BIN / "python"), str(ROOT / "examples" / "prefect" / "relay_campaign_flow.py")],
            prefect_env(base), "Prefect flow", timings)
        timings["total"] = time.monotonic() - started
        if not print_summary(summary(relay), timings, examples=2):
            print("demo finished, but the relay does not hold what the examples should have sent", file=sys.stderr)
            return 1
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"\ndemo step failed with exit code {exc.returncode}; logs in {WORK}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the servers", file=sys.stderr)
        return 130
    finally:
        receiver.stop()
        relay.stop()


if __name__ == "__main__":
    raise SystemExit(main())

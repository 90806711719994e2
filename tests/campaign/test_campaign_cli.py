"""``relay campaign``, ``relay send`` and ``relay status`` as subprocesses against the reference relay."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from campaign_relay_helpers import SENDER, messages_per_address, numbers

from relay_integrations.campaign.campaign_store import CampaignStore
from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e


def write_csv(path: Path, addresses: list[str], *, start: int = 1) -> None:
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if new:
            writer.writerow(["phone", "name"])
        for i, address in enumerate(addresses, start=start):
            writer.writerow([address, f"Person {i}"])


def relay_env(relay: ReferenceRelayProcess, dialect: str) -> dict[str, str]:
    return {**os.environ, "RELAY_BASE_URL": relay.url(dialect), "RELAY_DIALECT": dialect,
            "RELAY_API_KEY": relay.api_key, "RELAY_LOGIN": "relay", "RELAY_PHONE_ID": "phone_main",
            "RELAY_SENDER": SENDER, "RELAY_CAMPAIGN_LEASE_SECONDS": "2"}


def run_relay(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay_integrations", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("dialect", ["relaysms", "smsgate"])
def test_campaign_command_rerun_sends_only_what_is_missing(
    relay: ReferenceRelayProcess, dialect: str, tmp_path: Path
) -> None:
    addresses = numbers(40)
    recipients = tmp_path / "people.csv"
    write_csv(recipients, addresses[:30])
    template = tmp_path / "message.txt"
    template.write_text("Hello {{ name }}!\n")
    args = ["campaign", "--template", str(template), "--recipients", str(recipients),
            "--campaign-id", f"cli-{dialect}", "--ledger", str(tmp_path / "ledger.sqlite")]
    env = relay_env(relay, dialect)

    first = run_relay(args, env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["counts"]["accepted"] == 30 and report["dialect"] == dialect
    assert "[" not in first.stderr  # stderr is a pipe here: no progress bar (see test_cli_messages for a tty)
    assert relay.api_key not in first.stdout + first.stderr

    write_csv(recipients, addresses[30:], start=31)
    second = run_relay([*args, "--max-rows", "5"], env)
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["counts"]["accepted"] == 10 and report["counts"]["already_sent"] == 30
    assert len(report["rows"]) == 5 and report["rows_omitted"] == 35
    assert messages_per_address(relay, dialect, addresses) == {a: 1 for a in addresses}


@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms", "coop", "smsgate"])
def test_killed_campaign_process_rerun_leaves_one_message_each(
    relay: ReferenceRelayProcess, dialect: str, tmp_path: Path
) -> None:
    addresses = numbers(240)
    recipients = tmp_path / "people.csv"
    write_csv(recipients, addresses)
    ledger_path = tmp_path / "ledger.sqlite"
    campaign_id = f"sigkill-{dialect}"
    args = ["campaign", "--template", "Doors open at 9", "--recipients", str(recipients), "--campaign-id",
            campaign_id, "--ledger", str(ledger_path), "--batch-size", "10", "--concurrency", "2",
            "--no-progress"]
    env = relay_env(relay, dialect)
    proc = subprocess.Popen([sys.executable, "-m", "relay_integrations", *args, "--rate-limit", "80"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        recorded = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if ledger_path.exists():
                with CampaignStore.open(ledger_path, read_only=True) as ledger:
                    recorded = ledger.accepted_count(campaign_id)
                if recorded >= 30:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the campaign finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    partial = messages_per_address(relay, dialect, addresses)
    assert 30 <= sum(partial.values()) < 240
    assert max(partial.values()) == 1

    rerun = run_relay(args, env)
    assert rerun.returncode == 0, rerun.stderr
    counts = json.loads(rerun.stdout)["counts"]
    assert counts["accepted"] + counts["already_sent"] == 240 and counts["failed"] == 0
    assert messages_per_address(relay, dialect, addresses) == {a: 1 for a in addresses}


def test_invalid_rows_exit_2_with_every_error_and_nothing_sent(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    addresses = numbers(5)
    recipients = tmp_path / "people.jsonl"
    lines = [{"phone": a, "name": "X"} for a in addresses[:3]] + [{"phone": "12"}, {"name": "no phone"}]
    recipients.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    args = ["campaign", "--template", "Hi {{ name }}", "--recipients", str(recipients), "--campaign-id", "cli-bad",
            "--ledger", str(tmp_path / "l.sqlite"), "--no-progress"]
    env = relay_env(relay, "coop")
    result = run_relay(args, env)
    assert result.returncode == 2
    body = json.loads(result.stdout)
    assert body["error"] == "validation"
    assert {(e["row"], e["field"]) for e in body["errors"]} == {(4, "phone"), (4, "text"), (5, "phone")}
    assert "row 4" in result.stderr
    assert sum(messages_per_address(relay, "coop", addresses).values()) == 0

    dry = run_relay([*args, "--skip-invalid", "--dry-run"], env)
    assert dry.returncode == 1, dry.stderr  # "ok": false (two rows invalid, skipped) is never exit 0
    report = json.loads(dry.stdout)
    assert report["dry_run"] and report["counts"]["would_send"] == 3 and report["counts"]["invalid"] == 2
    assert sum(messages_per_address(relay, "coop", addresses).values()) == 0


def test_send_and_status_commands(relay: ReferenceRelayProcess) -> None:
    (address,) = numbers(1)
    env = relay_env(relay, "phonerelay")
    sent = run_relay(["send", "--to", address, "--text", "one-off", "--idempotency-key", f"k-{address}"], env)
    assert sent.returncode == 0, sent.stderr
    receipt: dict[str, Any] = json.loads(sent.stdout)
    assert receipt["message_id"] and receipt["idempotency_key"] == f"k-{address}"

    again = run_relay(["send", "--to", address, "--text", "one-off", "--idempotency-key", f"k-{address}"], env)
    assert json.loads(again.stdout)["duplicate"] is True

    status = run_relay(["status", receipt["message_id"]], env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["message_id"] == receipt["message_id"]
    assert messages_per_address(relay, "phonerelay", [address]) == {address: 1}

    missing = run_relay(["status", "msg_does_not_exist"], env)
    assert missing.returncode == 3
    assert relay.api_key not in missing.stderr


def test_connection_settings_are_required(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    result = run_relay(["status", "x"], env)
    assert result.returncode == 2
    assert "RELAY_DIALECT" in result.stderr or "RELAY_BASE_URL" in result.stderr
    flags = run_relay(["status", "x", "--dialect", "coop", "--base-url", "http://127.0.0.1:9/coop"], env)
    assert flags.returncode == 2 and "RELAY_API_KEY" in flags.stderr


def test_dry_run_needs_no_relay_and_honours_fields_and_suppression(tmp_path: Path) -> None:
    recipients = tmp_path / "people.csv"
    write_csv(recipients, ["+13125550101", "+13125550102", "+13125550103"])
    suppression = tmp_path / "opt-outs.txt"
    suppression.write_text("# opted out\n+1 312 555 0102\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    result = run_relay(["campaign", "--base-url", "http://127.0.0.1:9/phonerelay", "--dialect", "phonerelay",
                        "--template", "Hi {{ name }}", "--recipients", str(recipients), "--campaign-id", "dry-cli",
                        "--channel", "wa", "--field", "priority={{ 3 }}", "--suppression", str(suppression),
                        "--ledger", str(tmp_path / "l.sqlite"), "--dry-run", "--no-progress"],
                       {**env, "RELAY_API_KEY": "secret-key-value"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"]["would_send"] == 2 and report["counts"]["suppressed"] == 1
    assert report["counts"]["segments"] == 0  # WhatsApp has no SMS segments
    assert "secret-key-value" not in result.stdout + result.stderr
    bad_field = run_relay(["campaign", "--base-url", "http://127.0.0.1:9/x", "--dialect", "coop", "--api-key", "k",
                           "--template", "x", "--recipients", str(recipients), "--campaign-id", "c",
                           "--field", "colour=red", "--dry-run"], env)
    assert bad_field.returncode == 2 and "colour" in bad_field.stderr

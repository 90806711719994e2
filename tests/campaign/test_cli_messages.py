"""The ``relay`` CLI's error messages say what to do next, and its exit codes say whether it worked.

Every case runs the CLI as a subprocess against the reference relay.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from relay_integrations.process import ReferenceRelayProcess, free_port

pytestmark = pytest.mark.e2e

TO = "+14155551000"


def run_relay(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay_integrations", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def env_for(base_url: str, dialect: str, api_key: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    return {**clean, "RELAY_BASE_URL": base_url, "RELAY_DIALECT": dialect, "RELAY_API_KEY": api_key,
            "RELAY_LOGIN": "relay", "RELAY_PHONE_ID": "phone_main", "RELAY_SENDER": "+1987654321"}


def campaign_args(tmp_path: Path, template: str, rows: list[str], *extra: str) -> list[str]:
    recipients = tmp_path / "people.csv"
    recipients.write_text("phone,name\n" + "".join(f"{row}\n" for row in rows))
    return ["campaign", "--template", template, "--recipients", str(recipients), "--campaign-id", "msgs",
            "--ledger", str(tmp_path / "ledger.sqlite"), *extra]


def test_a_wrong_key_points_at_the_key_options(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    env = env_for(relay.url("coop"), "coop", "wrong-key-5d1a")
    for args in (["send", "--to", TO, "--text", "hi"], campaign_args(tmp_path, "Hi {{ name }}", [f"{TO},Ada"])):
        result = run_relay(args, env)
        assert result.returncode == 3, result.stderr
        assert "--api-key" in result.stderr and "$RELAY_API_KEY" in result.stderr, result.stderr
        assert "re-run" not in result.stderr and "wrong-key-5d1a" not in result.stderr


def test_a_refused_connection_names_host_and_port() -> None:
    port = free_port()
    result = run_relay(["send", "--to", TO, "--text", "hi", "--max-retries", "0"],
                       env_for(f"http://127.0.0.1:{port}/coop", "coop", "k"))
    assert result.returncode == 3
    assert f"127.0.0.1:{port}" in result.stderr and "is the relay running?" in result.stderr, result.stderr


def test_a_path_typo_names_the_url(relay: ReferenceRelayProcess) -> None:
    typo = relay.base_url + "/cop"
    result = run_relay(["send", "--to", TO, "--text", "hi"], env_for(typo, "coop", relay.api_key))
    assert result.returncode == 3
    assert typo in result.stderr and "--base-url" in result.stderr, result.stderr


def test_a_template_missing_several_columns_names_them_all_and_the_file_columns(
    relay: ReferenceRelayProcess, tmp_path: Path
) -> None:
    args = campaign_args(tmp_path, "Hi {{ first_name }}, order {{ order_id }}", [f"{TO},Ada"], "--dry-run")
    result = run_relay(args, env_for(relay.url("coop"), "coop", relay.api_key))
    assert result.returncode == 2
    body = json.loads(result.stdout)
    message = body["errors"][0]["message"]
    assert "first_name" in message and "order_id" in message and "phone, name" in message, message


def test_validation_failure_json_is_not_a_dry_run(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    args = campaign_args(tmp_path, "Hi {{ name }}", [f"{TO},Ada", "not-a-number,Bob"])
    result = run_relay(args, env_for(relay.url("coop"), "coop", relay.api_key))
    assert result.returncode == 2
    assert json.loads(result.stdout)["report"]["dry_run"] is False


def test_skip_invalid_with_every_row_invalid_exits_non_zero(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    args = campaign_args(tmp_path, "Hi {{ name }}", ["not-a-number,Bob", "+1555,Short"], "--skip-invalid")
    result = run_relay(args, env_for(relay.url("coop"), "coop", relay.api_key))
    assert result.returncode == 2, result.stdout
    assert "every one of the 2 rows is invalid" in result.stderr
    assert json.loads(result.stdout)["counts"]["invalid"] == 2


def test_a_report_that_is_not_ok_exits_non_zero(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    args = campaign_args(tmp_path, "Hi {{ name }}", [f"{TO},Ada", "not-a-number,Bob"], "--skip-invalid")
    result = run_relay(args, env_for(relay.url("coop"), "coop", relay.api_key))
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["counts"]["accepted"] == 1
    assert result.returncode == 1


def test_progress_bar_only_on_a_terminal_and_ends_with_a_newline(relay: ReferenceRelayProcess, tmp_path: Path) -> None:
    env = env_for(relay.url("coop"), "coop", relay.api_key)
    piped = run_relay(campaign_args(tmp_path, "Hi {{ name }}", [f"{TO},Ada"]), env)
    assert piped.returncode == 0, piped.stderr
    assert "\r" not in piped.stderr and "[" not in piped.stderr, repr(piped.stderr)

    primary, secondary = pty.openpty()
    try:
        args = campaign_args(tmp_path, "Hi {{ name }}", [f"{TO},Ada"])
        args[args.index("--campaign-id") + 1] = "msgs-tty"
        proc = subprocess.run([sys.executable, "-m", "relay_integrations", *args], env=env, stdout=subprocess.PIPE,
                              stderr=secondary, timeout=120, check=False)
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "[" in terminal and "1/1" in terminal, repr(terminal)
    assert terminal.endswith("\n"), repr(terminal)


def test_send_help_describes_every_option_and_serve_help_shows_the_smsgate_login() -> None:
    from relay_integrations.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    send = subparsers.choices["send"]  # type: ignore[attr-defined]
    undocumented = [a.option_strings or a.dest for a in send._actions if not a.help]
    assert not undocumented, undocumented

    env = {**os.environ}
    env.pop("RELAY_LOGIN", None)
    shown = run_relay(["send", "--help"], env).stdout
    assert "Subject, for channels" in shown
    serve = " ".join(run_relay(["serve", "--help"], env).stdout.split())
    assert "--login LOGIN smsgate Basic-auth login" in serve and "default relay" in serve, serve

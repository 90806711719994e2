"""The connection made with ``airflow connections add`` works through the UI's Test button path
(``airflow connections test`` -> RelayHook.test_connection), and a wrong key is reported."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from relay_integrations.process import ReferenceRelayProcess

pytestmark = pytest.mark.e2e

TESTING_ON = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}


def test_test_connection_refuses_a_wrong_key(monkeypatch: pytest.MonkeyPatch, relay: ReferenceRelayProcess) -> None:
    from airflow_provider.hooks.relay import RelayHook

    wrong_key = "wrong-key-3b9f27aa"
    monkeypatch.setenv("AIRFLOW_CONN_RELAY_WRONG", json.dumps({
        "conn_type": "relay", "host": relay.url("smsgate"), "login": relay.login, "password": wrong_key,
        "extra": {"dialect": "smsgate", "max_retries": 0}}))
    ok, message = RelayHook("relay_wrong").test_connection()
    assert not ok
    assert "401" in message and wrong_key not in message


def test_connections_add_then_test_against_a_real_relay(
    airflow_db: Path, airflow_cli: Callable[..., subprocess.CompletedProcess[str]], relay: ReferenceRelayProcess
) -> None:
    added = airflow_cli(
        "connections", "add", "relay_cli_coop",
        "--conn-type", "relay",
        "--conn-host", relay.url("coop"),
        "--conn-password", relay.api_key,
        "--conn-extra", json.dumps({"dialect": "coop", "timeout": 5, "max_retries": 0}),
    )
    assert added.returncode == 0, added.stdout + added.stderr

    tested = airflow_cli("connections", "test", "relay_cli_coop", env=TESTING_ON)
    assert tested.returncode == 0, tested.stdout[-2000:] + tested.stderr[-2000:]
    assert "Connection success!" in tested.stdout
    assert relay.api_key not in tested.stdout + tested.stderr

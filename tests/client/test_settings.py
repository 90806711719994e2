"""The one settings model behind the Airflow connection, the Prefect block and the command line."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from relay_integrations.environment import RelayEnvironment
from relay_integrations.settings import RelaySettings, SettingsError

KEY = "settings-secret-5d1e9a"
GOOD = {"base_url": "http://127.0.0.1:8080/coop", "dialect": "coop", "api_key": KEY}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"dialect": "twilio"}, "dialect", "unknown dialect"),
        ({"dialect": None}, "dialect", "required"),
        ({"api_key": "  "}, "api_key", "required"),
        ({"base_url": "ftp://127.0.0.1/coop"}, "base_url", "http(s)"),
        ({"base_url": f"http://user:{KEY}@127.0.0.1/coop"}, "base_url", "credentials"),
        ({"timeout": "soon"}, "timeout", "number"),
        ({"timeout": 0}, "timeout", "greater than 0"),
        ({"max_retries": -1}, "max_retries", "greater than or equal to 0"),
    ],
)
def test_a_bad_value_names_its_field_and_never_the_key(change: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(SettingsError) as caught:
        RelaySettings.from_values({**GOOD, **change})
    assert caught.value.field == field
    assert words in caught.value.problem
    assert KEY not in str(caught.value)


def test_blank_values_fall_back_to_defaults_and_keys_stay_hidden() -> None:
    settings = RelaySettings.from_values({**GOOD, "timeout": "", "max_retries": None, "sender": "  ",
                                          "webhook_inbox_api_key": "inbox-key-77"})
    assert (settings.timeout, settings.max_retries, settings.sender) == (10.0, 3, None)
    assert isinstance(settings.api_key, SecretStr)
    shown = repr(settings) + str(settings) + str(settings.client_kwargs())
    assert KEY not in shown and "inbox-key-77" not in shown
    with settings.client() as client:
        assert client.dialect.name == "coop"
        assert KEY not in repr(client)


def test_the_command_line_takes_flags_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_BASE_URL", "http://127.0.0.1:9/smsgate")
    monkeypatch.setenv("RELAY_DIALECT", "smsgate")
    monkeypatch.setenv("RELAY_API_KEY", KEY)
    monkeypatch.setenv("RELAY_LOGIN", "env-login")
    values = RelayEnvironment().merged({"base_url": None, "dialect": None, "api_key": None, "login": "flag-login"})
    settings = RelaySettings.from_values(values)
    assert (settings.base_url, settings.dialect, settings.login) == ("http://127.0.0.1:9/smsgate", "smsgate",
                                                                     "flag-login")
    assert settings.api_key.get_secret_value() == KEY

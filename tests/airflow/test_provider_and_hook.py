"""Provider registration, the connection form, and RelayHook reading connections (no relay needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_provider.hooks.relay import RelayConnectionConfigError, RelayHook

API_KEY = "hook-test-key-7d1e0b"


def test_providers_manager_discovers_the_provider_hook_and_form() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    manager = ProvidersManager()
    assert "relay-integrations" in manager.providers
    assert manager.providers["relay-integrations"].version == "0.1.0"

    hook_info = ProvidersManagerTaskRuntime().hooks["relay"]
    assert hook_info is not None
    assert hook_info.hook_class_name == "airflow_provider.hooks.relay.RelayHook"
    assert hook_info.connection_id_attribute_name == "relay_conn_id"

    widgets = manager.connection_form_widgets
    for name in ("dialect", "phone_id", "sender", "timeout", "max_retries", "webhook_inbox_url"):
        assert f"extra__relay__{name}" in widgets, name
    assert widgets["extra__relay__dialect"].field["schema"]["enum"] == ["phonerelay", "relaysms", "coop", "smsgate"]
    behaviour = manager.field_behaviours["relay"]
    assert behaviour["relabeling"]["password"] == "API key"
    assert behaviour["placeholders"]["extra__relay__dialect"] == "smsgate"

    assert "airflow_provider.notifications.relay.RelayNotifier" in manager.notification
    trigger_modules = {t.package_name for t in manager.trigger}
    assert "relay-integrations" in trigger_modules


def _hook_from_env(monkeypatch: pytest.MonkeyPatch, value: str, conn_id: str = "relay_default") -> RelayHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
    return RelayHook(conn_id)


def test_hook_reads_a_uri_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _hook_from_env(
        monkeypatch,
        f"relay://gate-user:{API_KEY}@127.0.0.1:8088/smsgate?dialect=smsgate&timeout=2.5&max_retries=1"
        "&sender=%2B1987654321&webhook_inbox_url=http%3A%2F%2F127.0.0.1%3A8099",
    )
    settings = hook.settings
    assert settings.base_url == "http://127.0.0.1:8088/smsgate"
    assert (settings.dialect, settings.login, settings.api_key) == ("smsgate", "gate-user", API_KEY)
    assert (settings.timeout, settings.max_retries, settings.sender) == (2.5, 1, "+1987654321")
    assert settings.webhook_inbox_url == "http://127.0.0.1:8099"
    assert API_KEY not in repr(settings)
    client = hook.get_client()
    try:
        assert client.base_url.startswith("http://127.0.0.1:8088/smsgate")
        assert client.dialect.name == "smsgate"
        assert API_KEY not in repr(client)
    finally:
        client.close()


def test_hook_reads_a_json_connection_with_a_url_host(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "relay",
        "host": "http://127.0.0.1:8088/phonerelay",
        "password": API_KEY,
        "extra": {"dialect": "phonerelay", "phone_id": "phone_main", "something_else": "ignored"},
    }
    settings = _hook_from_env(monkeypatch, json.dumps(conn)).settings
    assert settings.base_url == "http://127.0.0.1:8088/phonerelay"
    assert (settings.dialect, settings.phone_id, settings.login) == ("phonerelay", "phone_main", None)
    assert (settings.timeout, settings.max_retries) == (10.0, 3)


@pytest.mark.parametrize(
    ("host", "port", "schema", "expected"),
    [
        ("relay.example.com", None, "coop", "https://relay.example.com/coop"),
        ("localhost", 9000, "", "http://localhost:9000"),
        ("https://relay.example.com/relaysms/", 8443, "", "https://relay.example.com:8443/relaysms"),
        ("http://127.0.0.1:5000", None, "coop", "http://127.0.0.1:5000/coop"),
    ],
)
def test_base_url_honours_scheme_port_and_schema(
    monkeypatch: pytest.MonkeyPatch, host: str, port: int | None, schema: str, expected: str
) -> None:
    conn = {"conn_type": "relay", "host": host, "port": port, "schema": schema, "password": API_KEY,
            "extra": {"dialect": "coop"}}
    assert _hook_from_env(monkeypatch, json.dumps(conn)).settings.base_url == expected


@pytest.mark.parametrize(
    ("conn", "field"),
    [
        ({"host": "http://127.0.0.1:1/coop", "password": API_KEY, "extra": {}}, "extra.dialect"),
        ({"host": "http://127.0.0.1:1/coop", "password": API_KEY, "extra": {"dialect": "twilio"}}, "extra.dialect"),
        ({"host": "http://127.0.0.1:1/coop", "extra": {"dialect": "coop"}}, "password"),
        ({"password": API_KEY, "extra": {"dialect": "coop"}}, "host"),
        ({"host": "ftp://127.0.0.1/coop", "password": API_KEY, "extra": {"dialect": "coop"}}, "host"),
        ({"host": "127.0.0.1", "password": API_KEY, "extra": {"dialect": "coop", "timeout": "soon"}}, "extra.timeout"),
        ({"host": "127.0.0.1", "password": API_KEY, "extra": {"dialect": "coop", "max_retries": -1}},
         "extra.max_retries"),
        ({"host": "http://127.0.0.1:8080/coop", "port": 9090, "password": API_KEY, "extra": {"dialect": "coop"}},
         "port"),
    ],
)
def test_bad_connections_name_the_field_and_never_the_key(
    monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any], field: str
) -> None:
    hook = _hook_from_env(monkeypatch, json.dumps({"conn_type": "relay", **conn}))
    with pytest.raises(RelayConnectionConfigError) as caught:
        hook.get_client()
    assert caught.value.field == field
    assert API_KEY not in str(caught.value)


def test_hook_masks_the_api_key_and_the_inbox_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow masks a connection's password and its whole ``extra`` string; a key inside ``extra`` is
    only masked on its own because the hook registers it."""
    from airflow.sdk._shared.secrets_masker import redact

    secret, inbox_secret = "mask-me-0b8f3a9c61", "inbox-mask-me-44e1d07a"
    hook = _hook_from_env(monkeypatch, json.dumps({
        "conn_type": "relay", "host": "127.0.0.1", "password": secret,
        "extra": {"dialect": "coop", "webhook_inbox_url": "http://127.0.0.1:1", "webhook_inbox_api_key": inbox_secret},
    }))
    assert str(redact(f"inbox key {inbox_secret}")) == f"inbox key {inbox_secret}"  # not known before the hook
    settings = hook.settings
    assert (settings.api_key, settings.webhook_inbox_api_key) == (secret, inbox_secret)
    line = f"calling the relay with {secret}, inbox {inbox_secret}"
    assert str(redact(line)) == "calling the relay with ***, inbox ***"


class _RecordingRelay(BaseHTTPRequestHandler):
    """A loopback HTTP server answering like phonerelay and recording every request's headers."""

    seen: list[dict[str, str]] = []

    def _answer(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()} | {":path": self.path})
        body = b'{"success": true, "messages": []}' if "messages" in self.path else b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def recording_relay() -> Iterator[str]:
    _RecordingRelay.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingRelay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_unknown_extras_never_become_headers_and_test_connection_works(
    monkeypatch: pytest.MonkeyPatch, recording_relay: str
) -> None:
    extras = {"dialect": "phonerelay", "X-Injected": "evil-1", "headers": {"X-Other": "evil-2"},
              "Authorization": "Bearer evil-3", "phone_id": "phone_main"}
    hook = _hook_from_env(monkeypatch, json.dumps(
        {"conn_type": "relay", "host": recording_relay + "/phonerelay", "password": API_KEY, "extra": extras}))
    ok, message = hook.test_connection()
    assert ok, message
    assert API_KEY not in message
    assert [r[":path"] for r in _RecordingRelay.seen] == ["/phonerelay/health", "/phonerelay/api/v1/messages?limit=1"]
    for request in _RecordingRelay.seen:
        assert "x-injected" not in request and "x-other" not in request and "headers" not in request
        assert not any("evil" in value for value in request.values())
    assert _RecordingRelay.seen[-1]["authorization"] == f"Bearer {API_KEY}"


def test_test_connection_of_an_unsaved_connection_does_not_name_the_transient_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The UI tests an unsaved form under a random id (``AIRFLOW_CONN_DSAF7Z2H``): the message names the field only."""
    hook = _hook_from_env(monkeypatch, json.dumps({"conn_type": "relay", "host": "http://127.0.0.1:1/coop",
                                                   "password": API_KEY, "extra": {}}), conn_id="DSaF7Z2H")
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith("extra.dialect: required"), message
    assert "DSaF7Z2H" not in message and "connection '" not in message


def test_ui_hook_metadata_declares_every_extra_with_label_description_and_placeholder() -> None:
    """What the 3.3 UI's connection form reads (``GET /ui/connections/hook_meta``).

    The UI renders extras with its flexible form: ``schema.title`` is the label, ``description`` the help
    text; a string field with ``schema.examples`` offers them as a datalist behind the fixed placeholder
    "Start typing to see options" (seen in a browser: the example itself is not shown), number fields
    show their ``value`` (the default) in the add form only. ``ui-field-behaviour`` placeholders reach
    only the standard fields (host, port, login, password). So the description names the example.
    """
    from airflow.api_fastapi.core_api.routes.ui.connections import hook_meta_data

    [relay] = [m for m in hook_meta_data() if m.connection_type == "relay"]
    extras = relay.extra_fields or {}
    assert set(extras) == {"dialect", "phone_id", "sender", "timeout", "max_retries", "webhook_inbox_url",
                           "webhook_inbox_api_key", "ledger_conn_id"}
    for name, param in extras.items():
        schema = param["schema"]
        assert schema.get("title"), name
        assert param.get("description"), name
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if "enum" in schema:
            continue  # a select: the options are the placeholder
        if "string" in kinds and schema.get("format") != "password":
            assert schema.get("examples"), f"{name}: no placeholder would render"
        if "number" in kinds or "integer" in kinds:
            assert param["value"] is not None and schema.get("examples"), name
        if schema.get("examples"):
            assert f"e.g. {schema['examples'][0]}" in param["description"], f"{name}: example not visible"
    assert extras["webhook_inbox_api_key"]["schema"]["format"] == "password"  # rendered masked

    standard = relay.standard_fields
    assert standard is not None
    # The port is shown: the Test button sends the stored port (NULL becomes 0), and a port differing
    # from the stored connection gets 400 "The host or port to test differs from the stored connection".
    assert standard.port is not None and not standard.port.hidden and standard.port.placeholder
    for field in (standard.host, standard.login, standard.password):
        assert field is not None and field.title and field.placeholder


def test_test_connection_reports_an_unreachable_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    from relay_integrations.process import free_port

    hook = _hook_from_env(monkeypatch, json.dumps({
        "conn_type": "relay", "host": f"http://127.0.0.1:{free_port()}/coop", "password": API_KEY,
        "extra": {"dialect": "coop", "max_retries": 0, "timeout": 1}}))
    ok, message = hook.test_connection()
    assert not ok
    assert "relay check failed" in message and API_KEY not in message


@pytest.mark.anyio
async def test_async_client_reads_the_connection_with_async_apis(
    monkeypatch: pytest.MonkeyPatch, recording_relay: str
) -> None:
    hook = _hook_from_env(monkeypatch, json.dumps({
        "conn_type": "relay", "host": recording_relay + "/phonerelay", "password": API_KEY,
        "extra": {"dialect": "phonerelay", "timeout": 3}}))
    client = await hook.aget_async_client()
    async with client:
        answer = await client.health()
    assert answer["ok"] is True
    assert _RecordingRelay.seen[-1]["authorization"] == f"Bearer {API_KEY}"


def test_the_relay_key_is_never_sent_to_the_webhook_receiver(
    monkeypatch: pytest.MonkeyPatch, recording_relay: str
) -> None:
    """A receiver URL without its own key is refused by name; it never gets the relay's key instead."""
    hook = _hook_from_env(monkeypatch, json.dumps({
        "conn_type": "relay", "host": "http://127.0.0.1:1/coop", "password": API_KEY,
        "extra": {"dialect": "coop", "webhook_inbox_url": recording_relay}}))
    with pytest.raises(RelayConnectionConfigError) as caught:
        hook.get_webhook_inbox().query(limit=1)
    assert caught.value.field == "extra.webhook_inbox_api_key"
    assert API_KEY not in str(caught.value)
    assert not any(API_KEY in value for request in _RecordingRelay.seen for value in request.values())

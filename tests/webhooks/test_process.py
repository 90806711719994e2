"""`relay webhooks serve` as a real process: nothing acknowledged is lost when it is killed."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from webhook_payloads import API_KEY, OTHER_SECRET, SECRET, encode, relaysms_status, signed_headers, smsgate_status

from relay_integrations.cli import build_parser
from relay_integrations.models import MessageState
from relay_integrations.process import WebhookReceiverProcess
from relay_integrations.webhooks import WebhookInbox
from relay_integrations.webhooks.cli import parse_secret_args


def test_receiver_restart_between_acknowledgement_and_query(tmp_path: Path) -> None:
    db_path = tmp_path / "webhooks.db"
    proc = WebhookReceiverProcess(db_path=db_path, secrets=[SECRET], api_key=API_KEY,
                                  log_path=tmp_path / "receiver.log")
    proc.start()
    try:
        raw = encode(smsgate_status("sg-crash", "+15550000001", "delivered"))
        response = httpx.post(proc.url("smsgate"), content=raw, headers=signed_headers("smsgate", raw))
        assert response.status_code == 200 and response.json()["stored"] == 1
        proc.kill()  # kill -9 right after the 200: no shutdown, no flush
        proc.start()
        remote = WebhookInbox.remote(proc.base_url, API_KEY)
        [event] = remote.query(message_id="sg-crash")
        assert event.state is MessageState.DELIVERED
        assert WebhookInbox(db_path).message_state("sg-crash") is MessageState.DELIVERED
        # The restarted receiver still de-duplicates against what it stored before the crash.
        again = httpx.post(proc.url("smsgate"), content=raw, headers=signed_headers("smsgate", raw))
        assert again.json()["duplicates"] == 1
    finally:
        proc.stop()
    log = (tmp_path / "receiver.log").read_text()
    assert "stored smsgate webhook event" in log
    assert SECRET not in log and API_KEY not in log


def test_cli_per_dialect_and_env_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Secrets from the environment stay out of the process list.
    monkeypatch.setenv("RELAY_WEBHOOK_SECRETS", OTHER_SECRET)
    proc = WebhookReceiverProcess(db_path=tmp_path / "w.db", secrets=[f"relaysms={SECRET}"], api_key=API_KEY)
    with proc:
        raw = encode(relaysms_status("rs-cli"))
        # relaysms=SECRET is used as given; the master secret from the environment gives a derived one.
        for secret, verbatim, expected in ((SECRET, True, 200), (OTHER_SECRET, False, 200),
                                           (OTHER_SECRET, True, 401), ("whsec_dW5rbm93bi1rZXk=", True, 401)):
            headers = signed_headers("relaysms", raw, secret, verbatim=verbatim)
            assert httpx.post(proc.url("relaysms"), content=raw, headers=headers).status_code == expected
        # The relaysms-only secret does not open the other dialects.
        raw = encode(smsgate_status("sg-cli", "+15550000001"))
        headers = signed_headers("smsgate", raw, SECRET, verbatim=True)
        assert httpx.post(proc.url("smsgate"), content=raw, headers=headers).status_code == 401


def test_parse_secret_args_keeps_base64_padding() -> None:
    assert parse_secret_args(["abc==", "coop=s1", "smsgate=whsec_eA==", "nodialect=x"]) == {
        "*": ["abc==", "nodialect=x"],
        "coop": ["s1"],
        "smsgate": ["whsec_eA=="],
    }


def test_serve_arguments() -> None:
    args = build_parser().parse_args(["webhooks", "serve", "--secret", "a", "--secret", "b", "--api-key", "k"])
    assert (args.host, args.port, args.db, args.secret, args.api_key) == ("127.0.0.1", 5111, "./webhooks.db",
                                                                          ["a", "b"], "k")
    assert callable(args.func)


def test_access_log_shows_no_query_string_and_no_secret_url_token(tmp_path: Path) -> None:
    # An inbox key passed as a query parameter used to be printed by uvicorn's access log.
    from relay_integrations.signing import derive_relaysms_url_token

    log_path = tmp_path / "receiver.log"
    leaked_key = "inbox-key-in-the-query-5f2a"
    with WebhookReceiverProcess(db_path=tmp_path / "w.db", secrets=[SECRET], api_key=API_KEY,
                                log_path=log_path, extra_args=["--log-level", "info"]) as proc:
        answer = httpx.get(f"{proc.base_url}/events", params={"api_key": leaked_key, "message_id": "m"},
                           headers={"Authorization": f"Bearer {API_KEY}"})
        assert answer.status_code == 400  # unknown parameter, and still not logged
        assert httpx.get(f"{proc.base_url}/events", params={"message_id": leaked_key},
                         headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
        token = derive_relaysms_url_token(SECRET)
        raw = encode(relaysms_status("rs-log"))
        assert httpx.post(f"{proc.base_url}/webhooks/relaysms/{token}", content=raw).status_code == 200
        assert httpx.post(f"{proc.base_url}/webhooks/relaysms/wrong-{token}", content=raw).status_code == 404
    log = log_path.read_text()
    assert '"GET /events?… HTTP/1.1" 400' in log and '"POST /webhooks/relaysms/*** HTTP/1.1" 200' in log
    assert leaked_key not in log and token not in log and "api_key=" not in log
    assert SECRET not in log and API_KEY not in log


def test_relay_log_shows_no_query_string(tmp_path: Path) -> None:
    from relay_integrations.process import ReferenceRelayProcess

    log_path = tmp_path / "relay.log"
    leaked_key = "relay-key-in-the-query-8c1d"
    with ReferenceRelayProcess(db_path=tmp_path / "r.db", log_path=log_path,
                               extra_args=["--log-level", "debug"]) as relay:
        httpx.get(f"{relay.base_url}/relaysms/api/v1/messages", params={"api_key": leaked_key})
        httpx.get(f"{relay.base_url}/health", params={"token": leaked_key})
    assert leaked_key not in log_path.read_text()


def test_secrets_command_prints_what_a_real_relay_needs(capsys: pytest.CaptureFixture[str]) -> None:
    from relay_integrations.signing import derive_dialect_secret, derive_relaysms_url_token

    args = build_parser().parse_args(["webhooks", "secrets", "--webhook-secret", SECRET])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for dialect in ("smsgate", "coop", "phonerelay", "relaysms"):
        assert derive_dialect_secret(SECRET, dialect) in out
    assert f"/webhooks/relaysms/{derive_relaysms_url_token(SECRET)}" in out
    assert SECRET not in out.replace(derive_dialect_secret(SECRET, "relaysms"), "")


def test_delivery_offering_an_h2c_upgrade_is_stored(tmp_path: Path) -> None:
    """A sender that offers HTTP/2 the way Java's HttpClient and ``curl --http2`` do gets its delivery
    read and stored: uvicorn's httptools parser dropped such a body (``relay_integrations._uvicorn``),
    and the receiver then refused the delivery as unsigned."""
    log_path = tmp_path / "receiver.log"
    with WebhookReceiverProcess(db_path=tmp_path / "w.db", secrets=[SECRET], api_key=API_KEY,
                                log_path=log_path) as proc:
        raw = encode(smsgate_status("sg-h2c", "+15550000001", "delivered"))
        headers = {**signed_headers("smsgate", raw), "Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
                   "HTTP2-Settings": "AAEAAEAAAAIAAAAAAAQAAP__", "Content-Type": "application/json",
                   "Content-Length": str(len(raw)), "Host": f"127.0.0.1:{proc.port}"}
        path = httpx.URL(proc.url("smsgate")).raw_path.decode()
        request = f"POST {path} HTTP/1.1\r\n".encode() + b"".join(
            f"{name}: {value}\r\n".encode() for name, value in headers.items()) + b"\r\n" + raw
        with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
            sock.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        [event] = WebhookInbox.remote(proc.base_url, API_KEY).query(message_id="sg-h2c")
        assert event.state is MessageState.DELIVERED
    assert "stored smsgate webhook event" in log_path.read_text()

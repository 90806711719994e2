"""Fixtures for the Prefect tests: one Prefect test server for the session, relay credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.testing.utilities import prefect_test_harness
from prefect_processes import PrefectServer
from relay_prefect_helpers import API_KEY, INBOX_API_KEY, WEBHOOK_SECRET, WebhookSetup, credentials_for

from prefect_blocks import RelayCredentials
from relay_integrations.process import ReferenceRelayProcess, WebhookReceiverProcess


@pytest.fixture(scope="session", autouse=True)
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect server and database for every test here (its start costs seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        # Campaign ledgers go to a scratch directory, not the user's cache.
        patch.setenv("RELAY_CAMPAIGN_LEDGER_DIR", str(tmp_path_factory.mktemp("ledgers")))
        # Only loopback is ever a target: no telemetry from the temporary Prefect server.
        patch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture(scope="session")
def real_prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real ``prefect server start`` process (SQLite, private PREFECT_HOME, free loopback port) with
    our blocks registered, shared by the tests that run Prefect as users do; every process started
    through it (served flows, workers) is stopped with it."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect-home"),
                           extra_env={"RELAY_CAMPAIGN_LEDGER_DIR": str(tmp_path_factory.mktemp("served-ledgers"))})
    try:
        server.start()
        registered = server.cli("block", "register", "-m", "prefect_blocks")
        assert registered.returncode == 0, registered.stdout + registered.stderr
        yield server
    finally:
        server.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def phonerelay_credentials(relay: ReferenceRelayProcess) -> RelayCredentials:
    return credentials_for(relay, "phonerelay")


@pytest.fixture(scope="session")
def webhook_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookSetup]:
    """A private relay posting smsgate webhooks (received, delivered, failed) to a real receiver process."""
    tmp = tmp_path_factory.mktemp("webhooks")
    inbox_path = tmp / "inbox.db"
    with ReferenceRelayProcess(db_path=tmp / "relay.db", api_key=API_KEY, webhook_secret=WEBHOOK_SECRET,
                               delivery_latency=0.05, log_path=tmp / "relay.log") as relay, \
            WebhookReceiverProcess(db_path=inbox_path, secrets=[WEBHOOK_SECRET], api_key=INBOX_API_KEY,
                                   log_path=tmp / "receiver.log") as receiver:
        with credentials_for(relay, "smsgate").get_client() as client:  # type: ignore[arg-type]
            for event in ("sms:received", "sms:delivered", "sms:failed"):
                client.register_webhook(receiver.url("smsgate"), event)
        yield WebhookSetup(relay, receiver, inbox_path)  # type: ignore[arg-type]

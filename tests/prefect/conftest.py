"""Fixtures for the Prefect tests: one Prefect test server for the session, relay credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.testing.utilities import prefect_test_harness
from relay_prefect_helpers import credentials_for

from prefect_blocks import RelayCredentials
from relay_integrations.process import ReferenceRelayProcess


@pytest.fixture(scope="session", autouse=True)
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect server and database for every test here (its start costs seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        # Campaign ledgers go to a scratch directory, not the user's cache.
        patch.setenv("RELAY_CAMPAIGN_LEDGER_DIR", str(tmp_path_factory.mktemp("ledgers")))
        with prefect_test_harness(server_startup_timeout=120):
            yield


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def phonerelay_credentials(relay: ReferenceRelayProcess) -> RelayCredentials:
    return credentials_for(relay, "phonerelay")

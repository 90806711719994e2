"""Fixtures shared by every test: a real reference relay process on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from relay_integrations.process import ReferenceRelayProcess

API_KEY = "test-key-4f9c2a"
WEBHOOK_SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXdlYmhvb2tz"

# No Hypothesis deadline anywhere: the suite runs on busy 2-core machines, and how fast an example
# runs is not what any property test checks (a 612 ms example once failed `make test`).
settings.register_profile("relay", deadline=None)
settings.load_profile("relay")


@pytest.fixture(scope="session", autouse=True)
def private_suppression_list(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every campaign and send of the suite (and the processes it starts) reads one private suppression
    list, never the user's own in ~/.cache."""
    path = tmp_path_factory.mktemp("suppression") / "suppressions.sqlite"
    patch = pytest.MonkeyPatch()
    patch.setenv("RELAY_SUPPRESSION_STORE", str(path))
    yield path
    patch.undo()


@pytest.fixture(scope="session")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRelayProcess]:
    """One reference relay process for the session (fast delivery, no injected failures).

    Tests that change its configuration or kill it start their own with ``start_relay``.
    """
    tmp = tmp_path_factory.mktemp("relay")
    with ReferenceRelayProcess(
        db_path=tmp / "relay.db",
        api_key=API_KEY,
        delivery_latency=0.1,
        webhook_secret=WEBHOOK_SECRET,
        log_path=tmp / "relay.log",
    ) as proc:
        yield proc


@pytest.fixture
def start_relay(tmp_path: Path) -> Iterator[object]:
    """Factory: ``start_relay(**kwargs)`` starts a private relay process, stopped after the test."""
    started: list[ReferenceRelayProcess] = []

    def _start(**kwargs: object) -> ReferenceRelayProcess:
        kwargs.setdefault("db_path", tmp_path / f"relay{len(started)}.db")
        kwargs.setdefault("api_key", API_KEY)
        kwargs.setdefault("log_path", tmp_path / f"relay{len(started)}.log")
        proc = ReferenceRelayProcess(**kwargs)  # type: ignore[arg-type]
        started.append(proc)
        proc.start()
        return proc

    yield _start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[object]:
    """A private PostgreSQL cluster on loopback for the session; fails (never skips) without PostgreSQL."""
    from postgres_cluster import PostgresCluster, PostgresUnavailable

    try:
        cluster = PostgresCluster().init()
        cluster.start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc))
    yield cluster
    cluster.destroy()


@pytest.fixture
def postgres_url(postgres_cluster: object) -> str:
    """A fresh, empty database in the session's cluster, as a SQLAlchemy URL ``postgresql://...``."""
    return postgres_cluster.create_database()  # type: ignore[attr-defined]

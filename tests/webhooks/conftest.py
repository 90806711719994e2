"""Fixtures for the webhook receiver tests: a receiver app served by uvicorn on a loopback socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from webhook_payloads import API_KEY, SECRET, ServedReceiver, serve_app

from relay_integrations.webhooks.receiver import create_receiver_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def start_receiver(tmp_path: Path) -> Iterator[Callable[..., ServedReceiver]]:
    """Factory: ``start_receiver(secrets=..., **create_receiver_app kwargs)`` -> a served receiver."""
    started: list[ServedReceiver] = []

    def _start(**kwargs: object) -> ServedReceiver:
        db_path = tmp_path / f"webhooks{len(started)}.db"
        kwargs.setdefault("secrets", [SECRET])
        kwargs.setdefault("api_key", API_KEY)
        app = create_receiver_app(db_path, **kwargs)  # type: ignore[arg-type]
        served = serve_app(app, db_path=db_path)
        started.append(served)
        return served

    yield _start
    for served in started:
        served.stop()


@pytest.fixture(scope="module")
def shared_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedReceiver]:
    """One receiver for a whole module (default configuration); tests use unique ids and count deltas."""
    db_path = tmp_path_factory.mktemp("shared") / "webhooks.db"
    served = serve_app(create_receiver_app(db_path, [SECRET], API_KEY), db_path=db_path)
    yield served
    served.stop()


@pytest.fixture
def receiver(start_receiver: Callable[..., ServedReceiver]) -> ServedReceiver:
    """A receiver accepting :data:`SECRET` for every dialect, served on loopback."""
    return start_receiver()

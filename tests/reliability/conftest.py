"""Reliability tests: faults between client and relay, kill -9 of either side, fuzzing the relay's API.

Each test starts its own reference relay (``start_relay`` from tests/conftest.py) so that what the
relay stored can be counted exactly.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

"""Airflow test set-up: a private AIRFLOW_HOME and SQLite metadata DB, configured before Airflow is imported.

Airflow reads its configuration when ``airflow`` is first imported, so the environment is set at the
top of this module (pytest imports it before any test module below this directory).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).parent / "dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="relay-airflow-home-"))
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME.resolve()}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER.resolve()),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
)
os.environ.pop("AIRFLOW_CONN_RELAY_DEFAULT", None)

if "airflow" in sys.modules:  # pragma: no cover - a guard, not a branch tests take
    raise RuntimeError("airflow was imported before tests/airflow/conftest.py could configure it")


AirflowCli = Callable[..., "subprocess.CompletedProcess[str]"]


def _airflow_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` CLI of this interpreter's environment in a subprocess."""
    command = [sys.executable, "-m", "airflow", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})}, check=False
    )


@pytest.fixture(scope="session")
def airflow_cli() -> AirflowCli:
    """``airflow_cli("connections", "list", env={...})`` runs the CLI against the test AIRFLOW_HOME."""
    return _airflow_cli


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The metadata DB, migrated once per session (``airflow db migrate``)."""
    result = _airflow_cli("db", "migrate")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return AIRFLOW_HOME / "airflow.db"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

"""A real ``prefect server start`` process (and other Prefect CLI processes) for the tests that
prove the integration outside ``prefect_test_harness``: loopback, a free port, a private
PREFECT_HOME with SQLite, every child in its own process group so teardown stops all of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from relay_integrations.process import free_port

T = TypeVar("T")

# Start-up of a Prefect server (migrations, services) takes seconds, more on a busy 2-core machine.
SERVER_STARTUP_TIMEOUT = 240.0


def wait_for(condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def stop_process_group(proc: subprocess.Popen[Any], grace: float = 15.0) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after ``grace`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # The group may outlive its leader (a worker's flow-run children): kill whatever remains.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(timeout=grace)


class PrefectServer:
    """``prefect server start`` on a free loopback port with a private home and SQLite database.

    :param home: the PREFECT_HOME (database, logs); created if missing.
    """

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = home / "server.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._children: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a Prefect process talking to this server (keeps PYTHONPATH)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update({
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "COLUMNS": "250",
            **self.extra_env,
            **extra,
        })
        return env

    def start(self) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True,
        )
        wait_for(self._healthy, SERVER_STARTUP_TIMEOUT,
                 f"Prefect server health at {self.api_url} (log {self.log_path})", interval=0.5)
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def cli(self, *args: str, cwd: Path | None = None, timeout: float = 180.0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``prefect <args>`` against this server and return what it printed (never raises on exit status)."""
        return subprocess.run([sys.executable, "-m", "prefect", *args], cwd=cwd, env=self.env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout, start_new_session=True)

    def spawn(self, args: Sequence[str], log_path: Path, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running child (``python <args>``) in its own process group; stopped with the server."""
        log = open(log_path, "ab")
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=self.env(**(env or {})), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self._children.append((proc, log))
        return proc

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.api_url}{path}", timeout=30.0, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def stop_child(self, proc: subprocess.Popen[bytes]) -> None:
        for child, log in list(self._children):
            if child is proc:
                stop_process_group(child)
                log.close()
                self._children.remove((child, log))

    def stop(self) -> None:
        for child, log in self._children:
            stop_process_group(child)
            log.close()
        self._children.clear()
        if self.proc is not None:
            stop_process_group(self.proc, grace=20.0)
        if self._log:
            self._log.close()
            self._log = None

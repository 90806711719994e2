"""Start and stop the reference relay and the webhook receiver as real processes.

Used by the test suite, ``make demo`` and ``bench/``; users can do the same in their own tests::

    with ReferenceRelayProcess(db_path="relay.db") as relay:
        client = RelayClient(base_url=relay.url("smsgate"), dialect="smsgate", api_key=relay.api_key)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11 on


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``port`` now (a port in TIME_WAIT counts as free, as for uvicorn)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


class ServiceProcess:
    """A ``python -m relay_integrations ...`` child process on loopback, ready once its health URL answers."""

    def __init__(
        self,
        args: list[str],
        *,
        port: int,
        host: str = "127.0.0.1",
        health_path: str = "/health",
        log_path: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.args = args
        self.host = host
        self.port = port
        self.health_path = health_path
        self.log_path = Path(log_path) if log_path else None
        self.env = env
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        cmd = [sys.executable, "-m", "relay_integrations", *self.args]
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path:
            self._log = open(self.log_path, "ab")
            out = self._log
        env = {**os.environ, **(self.env or {})}
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = self.base_url + self.health_path
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{' '.join(self.args[:2])} exited with {self.proc.returncode} at start-up"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            try:
                if httpx.get(url, timeout=1.0).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{url} did not answer within {self.startup_timeout}s")

    def kill(self) -> None:
        """``kill -9``: no chance to flush or clean up, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log:
            self._log.close()
            self._log = None

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ReferenceRelayProcess(ServiceProcess):
    """``relay serve`` on a free loopback port (or the one given)."""

    def __init__(
        self,
        *,
        db_path: str | os.PathLike[str] = ":memory:",
        api_key: str = "dev-key",
        login: str = "relay",
        port: int | None = None,
        delivery_latency: float = 0.2,
        failure_rate: float = 0.0,
        webhook_secret: str | None = None,
        extra_args: list[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        sim: bool = True,
    ) -> None:
        """:param sim: serve the ``/_sim/*`` test hooks (False: ``--no-sim``)."""
        self.api_key = api_key
        self.login = login
        self.webhook_secret = webhook_secret
        port = port or free_port()
        args = [
            "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db_path),
            "--api-key", api_key, "--login", login,
            "--delivery-latency", str(delivery_latency), "--failure-rate", str(failure_rate),
        ]
        if webhook_secret:
            args += ["--webhook-secret", webhook_secret]
        if not sim:
            args.append("--no-sim")
        super().__init__(args + list(extra_args or []), port=port, log_path=log_path)

    def url(self, dialect: str) -> str:
        """The base URL a client of ``dialect`` uses (the doc's host part)."""
        return f"{self.base_url}/{dialect}"


class WebhookReceiverProcess(ServiceProcess):
    """``relay webhooks serve`` on a free loopback port (or the one given)."""

    def __init__(
        self,
        *,
        db_path: str | os.PathLike[str],
        secrets: list[str],
        api_key: str = "dev-key",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """:param db_path: an SQLite file, or a store URL such as ``postgresql://...``.
        :param env: variables added to the process's environment (``RELAY_*`` for ``--opt-outs``)."""
        self.api_key = api_key
        self.secrets = secrets
        port = port or free_port()
        args = ["webhooks", "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db_path),
                "--api-key", api_key]
        for s in secrets:
            args += ["--webhook-secret", s]
        super().__init__(args + list(extra_args or []), port=port, log_path=log_path, env=env)

    def url(self, dialect: str) -> str:
        """Where ``dialect``'s relay should post its webhooks."""
        return f"{self.base_url}/webhooks/{dialect}"

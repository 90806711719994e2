"""A private PostgreSQL cluster on loopback for tests and benchmarks.

Debian's ``postgresql`` package puts ``initdb`` and ``pg_ctl`` under ``/usr/lib/postgresql/<v>/bin``.
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user and
lives in a directory of its own under the system temp dir (pytest's temp dirs are 0700 root).
Without the binaries this raises: CI installs the package, and a test that needs PostgreSQL must
fail loudly rather than skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

SUPERUSER = "relaytest"


class PostgresUnavailable(RuntimeError):
    pass


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "PostgreSQL binaries not found: install Debian's postgresql package (apt-get install postgresql); "
        ".ci/run does this on a new machine"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """``initdb`` + ``pg_ctl start`` on 127.0.0.1 with trust auth; ``stop()``/``start()`` for outage tests."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.as_root = os.geteuid() == 0
        self.dir = Path(tempfile.mkdtemp(prefix="relay-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.host = "127.0.0.1"
        if self.as_root:
            os.chmod(self.dir, 0o755)
            shutil.chown(self.dir, user="postgres", group="postgres")

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
        return proc

    def init(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", log, "-w", "-t", "120", "start")
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL (``postgresql://`` means psycopg 3 to us)."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._run("createdb", "-h", self.host, "-p", str(self.port), "-U", SUPERUSER, name)
        return self.url(name)

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

"""The README's webhook-inbox steps, run as written (only the ports and the working directory change):
the shell block starts the receiver and the reference relay and injects a reply, the Python block
waits for it in the inbox."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from relay_integrations.process import free_port

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- readme-webhook-inbox:"


def _snippet_blocks(marker: str) -> tuple[str, str]:
    """The first shell and the first Python block after ``marker`` in the README."""
    text = README.read_text(encoding="utf-8")
    after = text[text.index(marker):]
    bash, python = re.findall(r"```(?:bash|python)\n(.*?)```", after, flags=re.S)[:2]
    return bash, python


def _run_example(tmp_path: Path, bash: str, python: str, **env: str) -> str:
    """Run a README example as written: its shell block in the background (it starts the servers),
    then its Python block; only the ports (5110 the relay, 5111 the receiver) change. The Python
    block's output."""
    relay_port, receiver_port = free_port(), free_port()
    bash = bash.replace("5110", str(relay_port)).replace("5111", str(receiver_port))
    python = python.replace("5110", str(relay_port)).replace("5111", str(receiver_port))
    bin_dir = str(Path(sys.executable).parent)  # where `relay` is installed
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **env}
    log = (tmp_path / "snippet.log").open("wb")
    shell = subprocess.Popen(["bash", "-e", "-c", bash], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        assert shell.wait(timeout=120) == 0, (tmp_path / "snippet.log").read_text()
        result = subprocess.run([sys.executable, "-c", python], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr + (tmp_path / "snippet.log").read_text()
        return result.stdout
    finally:
        try:
            os.killpg(shell.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        log.close()


def test_readme_webhook_inbox_steps_work_as_written(tmp_path: Path) -> None:
    bash, python = _snippet_blocks(MARKER)
    assert "_sim/inbound" in bash and "dev-key" in bash and "--webhook-url" in bash
    stdout = _run_example(tmp_path, bash, python)
    assert "YES, see you" in stdout and "+14155551000" in stdout, stdout


RESPECT_MARKER = "<!-- readme-respect:"


def test_readme_opt_out_and_quiet_hours_example_works_as_written(tmp_path: Path) -> None:
    bash, python = _snippet_blocks(RESPECT_MARKER)
    assert "--opt-outs" in bash and "send_window" in python
    stdout = _run_example(tmp_path, bash, python, RELAY_SUPPRESSION_STORE=str(tmp_path / "suppressions.sqlite"))
    lines = stdout.splitlines()
    assert lines[0].startswith("+14155551000 suppressed opted out by replying 'STOP' at "), stdout
    for line in lines[1:3]:  # sent now, or deferred until its window opens
        assert line.split()[1] in ("accepted", "deferred"), stdout
    assert lines[3].startswith("run again at "), stdout

"""The SQLite ledger of accepted messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay_integrations.campaign.ledger import LEDGER_DIR_ENV, Ledger, LedgerEntry, default_ledger_path


def test_record_and_look_up(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.sqlite"
    with Ledger(path) as ledger:
        assert ledger.get("k1") is None
        ledger.record([LedgerEntry("k1", "c", "+1", message_id="m1", row=1),
                       LedgerEntry("k2", "c", "+2", batch_id="b", row=2)])
        entry = ledger.get("k1")
        assert entry is not None and entry.message_id == "m1" and entry.accepted_at
        assert ledger.count("c") == 2 and ledger.count("other") == 0
    with Ledger(path, read_only=True) as reopened:
        second = reopened.get("k2")
        assert second is not None and second.batch_id == "b"
        with pytest.raises(RuntimeError, match="read-only"):
            reopened.record([LedgerEntry("k3", "c", "+3")])


def test_read_only_ledger_that_does_not_exist_is_empty_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none.sqlite"
    with Ledger(path, read_only=True) as ledger:
        assert ledger.get("k") is None
        assert ledger.count() == 0
    assert not path.exists()


def test_committed_entries_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    code = (
        "import os, signal\n"
        "from relay_integrations.campaign.ledger import Ledger, LedgerEntry\n"
        f"ledger = Ledger({str(path)!r})\n"
        "for i in range(50):\n"
        "    ledger.record([LedgerEntry(f'k{i}', 'c', '+1', message_id=f'm{i}')])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    with Ledger(path) as ledger:
        assert ledger.count("c") == 50


def test_default_path_is_per_campaign_and_filesystem_safe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(LEDGER_DIR_ENV, str(tmp_path))
    a = default_ledger_path("spring sale / 2026")
    b = default_ledger_path("spring sale - 2026")
    assert a.parent == tmp_path and b.parent == tmp_path
    assert a != b
    assert "/" not in a.name and " " not in a.name
    monkeypatch.delenv(LEDGER_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_ledger_path("x").parent == tmp_path / "cache" / "relay-integrations" / "campaigns"

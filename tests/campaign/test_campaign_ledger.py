"""The SQLite ledger of accepted messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay_integrations.campaign.campaign_store import CampaignStore, RelayIdentity
from relay_integrations.campaign.ledger import LEDGER_DIR_ENV, default_ledger_path

RELAY = RelayIdentity("relaysms", "http://127.0.0.1:1/relaysms", "key:0123")


def test_read_only_ledger_that_does_not_exist_is_empty_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nothing.sqlite"
    with CampaignStore.open(path, read_only=True) as ledger:
        assert ledger.lookup(RELAY, "c", ["k"]) == {}
        assert ledger.count(RELAY, "c") == 0
    assert not path.exists()


def test_committed_entries_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    code = (
        "import os, signal\n"
        "from relay_integrations.campaign.campaign_store import Accepted, CampaignStore, RelayIdentity\n"
        f"ledger = CampaignStore.open({str(path)!r})\n"
        f"relay = RelayIdentity(*{(RELAY.dialect, RELAY.base_url, RELAY.account)!r})\n"
        "for i in range(50):\n"
        "    ledger.claim(relay, 'c', [(f'k{i}', '+1', i)])\n"
        "    ledger.mark_sending(relay, 'c', [f'k{i}'])\n"
        "    ledger.record_accepted(relay, 'c', [Accepted(f'k{i}', message_id=f'm{i}')])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    with CampaignStore.open(path) as ledger:
        assert ledger.count(RELAY, "c") == 50


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

"""The sync client is generated from the async one; the checked-in copy must be what the script writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sync_client_is_generated_from_the_async_one() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_sync.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"run `make unasync`:\n{result.stdout}{result.stderr}"

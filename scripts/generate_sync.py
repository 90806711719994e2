"""Write the sync relay client from the async one (httpcore's approach, with python-trio's unasync).

    python scripts/generate_sync.py            # rewrite relay_integrations/_sync/ from relay_integrations/_async/
    python scripts/generate_sync.py --check    # exit 1 when the checked-in sync files differ (CI, tests)

Besides ``async``/``await`` and the standard dunder and typing names, the names below are renamed;
relay_integrations/_primitives.py defines both forms of each.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "relay_integrations"
HEADER = "# Generated from relay_integrations/_async/{name} by scripts/generate_sync.py: do not edit.\n"
REPLACEMENTS = {
    "AsyncRelayClient": "RelayClient",
    "AsyncClient": "Client",
    "CookielessAsyncClient": "CookielessClient",
    "AsyncBaseTransport": "BaseTransport",
    "aclose": "close",
    "async_sleep": "sleep",
    "AsyncSleep": "Sleep",
    "AsyncLock": "Lock",
    "default_async_transport": "default_transport",
}


def generated() -> dict[str, str]:
    """File name -> the sync source unasync writes for each file in relay_integrations/_async/."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "_async"
        shutil.copytree(PACKAGE / "_async", source)
        files = sorted(str(p) for p in source.glob("*.py"))
        unasync.unasync_files(files, [unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)])
        return {Path(f).name: HEADER.format(name=Path(f).name) + (Path(tmp) / "_sync" / Path(f).name).read_text()
                for f in files}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    target = PACKAGE / "_sync"
    stale = False
    for name, text in generated().items():
        path = target / name
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        if args.check:
            stale = True
            sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                       str(path), f"{path} (generated)"))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("relay_integrations/_sync is out of date: run `make unasync` (python scripts/generate_sync.py)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

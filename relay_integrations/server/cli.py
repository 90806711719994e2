"""Sub-commands of ``relay`` for this component (filled in by the component)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add this component's sub-commands to ``relay``."""
    del subparsers


def _unused(args: argparse.Namespace) -> int:
    return 0

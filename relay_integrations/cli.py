"""The ``relay`` command line. Each component registers its own sub-commands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from relay_integrations import _startup


def build_parser() -> argparse.ArgumentParser:
    from relay_integrations.campaign import cli as campaign_cli
    from relay_integrations.server import cli as server_cli
    from relay_integrations.webhooks import cli as webhooks_cli

    parser = argparse.ArgumentParser(
        prog="relay", description="Send and track messages through message relays."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    server_cli.register(sub)
    webhooks_cli.register(sub)
    campaign_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command in this process; its exit status."""
    with _startup.long_lived_imports():
        parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def run() -> None:
    """The ``relay`` executable (and ``python -m relay_integrations``): one command, then exit."""
    _startup.command_process()
    code = main()
    _startup.before_exit()
    raise SystemExit(code)

"""``relay webhooks serve``: run the webhook receiver with uvicorn."""

from __future__ import annotations

import argparse
import os
from typing import Any

from relay_integrations.dialects import DIALECT_NAMES

SECRETS_ENV = "RELAY_WEBHOOK_SECRETS"
API_KEY_ENV = "RELAY_WEBHOOKS_API_KEY"


def register(subparsers: Any) -> None:
    """Add ``relay webhooks serve`` to ``relay``."""
    webhooks = subparsers.add_parser("webhooks", help="Receive relay webhooks and query them.")
    sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    serve = sub.add_parser(
        "serve",
        help="Run the webhook receiver.",
        description="Verify, de-duplicate and store relay webhooks at POST /webhooks/<dialect>; "
        "query them at GET /events with the API key as Bearer token.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
    serve.add_argument("--port", type=int, default=5111, help="Port (default 5111).")
    serve.add_argument("--db", default="./webhooks.db", help="SQLite event store (default ./webhooks.db).")
    serve.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="[DIALECT=]SECRET",
        help="Webhook secret; repeat for rotation. DIALECT=SECRET limits it to one dialect "
        f"({', '.join(DIALECT_NAMES)}). Also read from ${SECRETS_ENV} (whitespace-separated), "
        "which keeps secrets out of the process list.",
    )
    serve.add_argument("--api-key", default=None, help=f"Bearer key for GET /events (or ${API_KEY_ENV}).")
    serve.add_argument("--max-body-bytes", type=int, default=None, help="Larger deliveries get 413 (default 1 MiB).")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=_serve)


def parse_secret_args(values: list[str]) -> dict[str, list[str]]:
    """``["s1", "smsgate=s2"]`` -> ``{"*": ["s1"], "smsgate": ["s2"]}``.

    A prefix counts as a dialect only if it names one, so base64 secrets ending in ``=`` stay whole.
    """
    result: dict[str, list[str]] = {}
    for value in values:
        prefix, sep, rest = value.partition("=")
        if sep and prefix in DIALECT_NAMES and rest:
            result.setdefault(prefix, []).append(rest)
        else:
            result.setdefault("*", []).append(value)
    return result


def _serve(args: argparse.Namespace) -> int:
    import logging

    from relay_integrations._uvicorn import run as run_uvicorn
    from relay_integrations.webhooks.receiver import DEFAULT_MAX_BODY_BYTES, create_receiver_app

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret_values = list(args.secret) + os.environ.get(SECRETS_ENV, "").split()
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    try:
        app = create_receiver_app(
            args.db,
            parse_secret_args(secret_values),
            api_key,
            max_body_bytes=args.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        )
    except ValueError as exc:
        print(f"relay webhooks serve: {exc}")
        return 2
    run_uvicorn(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0

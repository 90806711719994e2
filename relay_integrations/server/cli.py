"""``relay serve``: run the reference relay. Every option also has a ``RELAY_*`` environment default."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from relay_integrations.server.config import (
    DEFAULT_API_KEY,
    DEFAULT_LOGIN,
    DEFAULT_NUMBERS,
    DEFAULT_PORT,
    DIALECTS,
    env_default,
)


def _webhook_url(value: str) -> tuple[str, str]:
    dialect, sep, url = value.partition("=")
    if not sep or dialect not in DIALECTS or not url:
        raise argparse.ArgumentTypeError(f"expected DIALECT=URL with DIALECT one of {', '.join(DIALECTS)}")
    return dialect, url


def register(subparsers: Any) -> None:
    """Add ``relay serve`` to ``relay``."""
    p = subparsers.add_parser(
        "serve", help="run the reference relay (all four relay APIs, simulated delivery)",
        description="Run the reference relay. Defaults come from RELAY_* environment variables.",
    )
    p.add_argument("--host", default=env_default("HOST", "127.0.0.1"), help="bind address [RELAY_HOST]")
    p.add_argument("--port", type=int, default=int(env_default("PORT", str(DEFAULT_PORT)) or DEFAULT_PORT),
                   help="port [RELAY_PORT, 5110]")
    p.add_argument("--db", default=env_default("DB", "./relay.db"),
                   help="SQLite database file, or :memory: [RELAY_DB, ./relay.db]")
    p.add_argument("--api-key", default=env_default("API_KEY"), help="API key for every dialect [RELAY_API_KEY]")
    p.add_argument("--login", default=env_default("LOGIN", DEFAULT_LOGIN),
                   help="smsgate Basic-auth login (its password is the API key) [RELAY_LOGIN, default %(default)s]")
    p.add_argument("--dialect", choices=DIALECTS, default=env_default("DIALECT"),
                   help="also serve this dialect at the root [RELAY_DIALECT]")
    p.add_argument("--delivery-latency", type=float, default=float(env_default("DELIVERY_LATENCY", "1.0") or 1.0),
                   help="seconds from acceptance to delivery [RELAY_DELIVERY_LATENCY, 1.0]")
    p.add_argument("--failure-rate", type=float, default=float(env_default("FAILURE_RATE", "0") or 0),
                   help="fraction of messages that fail, by seeded hash of the id [RELAY_FAILURE_RATE, 0]")
    p.add_argument("--webhook-secret", action="append", default=[], metavar="[DIALECT=]SECRET",
                   help="webhook secret: SECRET alone is a master secret, each dialect signing with its own "
                        "secret derived from it (see `relay webhooks secrets`); DIALECT=SECRET sets one dialect's "
                        "(relaysms: whsec_<base64>; relaysms goes out unsigned without one). Repeatable "
                        "[RELAY_WEBHOOK_SECRET, whitespace separated]")
    p.add_argument("--numbers", nargs="+", default=(env_default("NUMBERS") or ",".join(DEFAULT_NUMBERS)).split(","),
                   help="relaysms numbers the account owns [RELAY_NUMBERS, comma separated; +1987654321]")
    p.add_argument("--webhook-url", action="append", type=_webhook_url, default=[], metavar="DIALECT=URL",
                   help="send every webhook of DIALECT to URL (repeatable)")
    p.add_argument("--synchronous", choices=("normal", "full"), default=env_default("SYNCHRONOUS", "normal"),
                   help="SQLite synchronous mode; normal survives kill -9, full also an OS crash [RELAY_SYNCHRONOUS]")
    p.add_argument("--balance", type=float, default=float(env_default("BALANCE", "1000") or 1000),
                   help="relaysms starting balance in USD [RELAY_BALANCE, 1000]")
    p.add_argument("--webhook-retry-base", type=float, default=float(env_default("WEBHOOK_RETRY_BASE", "0.5") or 0.5),
                   help="first webhook retry delay in seconds; doubles per attempt, with jitter [0.5]")
    p.add_argument("--webhook-max-attempts", type=int, default=int(env_default("WEBHOOK_MAX_ATTEMPTS", "12") or 12),
                   help="attempts before a webhook delivery is marked dead [12]")
    p.add_argument("--seed", default=env_default("SEED", "relay-sim"), help="seed of the failure-rate draw")
    p.add_argument("--allow-external-webhooks", action="store_true",
                   help="also post webhooks to non-loopback hosts (off: recorded as skipped)")
    p.add_argument("--no-sim", dest="sim", action="store_false",
                   help="turn the /_sim/* test hooks off (they answer 404)")
    p.add_argument("--log-level", default=env_default("LOG_LEVEL", "warning"),
                   choices=("critical", "error", "warning", "info", "debug"), help="uvicorn log level")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sqlite3

    from relay_integrations._uvicorn import run as run_uvicorn
    from relay_integrations.server.app import create_app
    from relay_integrations.server.config import ServerConfig
    from relay_integrations.signing import parse_secret_values

    secret_args = parse_secret_values(args.webhook_secret or (env_default("WEBHOOK_SECRET") or "").split(), DIALECTS)
    masters = secret_args.pop("*", [])
    if len(masters) > 1 or any(len(v) > 1 for v in secret_args.values()):
        print("relay serve: give at most one master secret and one secret per dialect", file=sys.stderr)
        return 2
    api_key = args.api_key
    if not api_key:
        api_key = DEFAULT_API_KEY
        print(f"relay serve: no --api-key or RELAY_API_KEY given; using the development key {DEFAULT_API_KEY!r}",
              file=sys.stderr)
    try:
        config = ServerConfig(
            db_path=args.db, api_key=api_key, login=args.login, delivery_latency=args.delivery_latency,
            failure_rate=args.failure_rate, webhook_secret=masters[0] if masters else None,
            webhook_secrets={d: v[0] for d, v in secret_args.items()},
            numbers=[n for n in args.numbers if n], dialect=args.dialect, webhook_urls=dict(args.webhook_url),
            synchronous=args.synchronous.upper(), balance=args.balance,
            allow_external_webhooks=args.allow_external_webhooks, webhook_retry_base=args.webhook_retry_base,
            webhook_max_attempts=args.webhook_max_attempts, seed=args.seed, sim=args.sim,
        )
    except ValueError as exc:
        print(f"relay serve: {exc}", file=sys.stderr)
        return 2
    try:
        app = create_app(config=config)
    except sqlite3.Error as exc:
        print(f"relay serve: cannot open the database {args.db!r}: {exc}", file=sys.stderr)
        return 2
    base = f"http://{args.host}:{args.port}"
    print(f"reference relay on {base}  (database: {args.db})", flush=True)
    for name in DIALECTS:
        print(f"  {name:<11} {base}/{name}", flush=True)
    if args.dialect:
        print(f"  {args.dialect} is also served at {base}/", flush=True)
    if not masters and not secret_args:
        print("  webhooks go out unsigned: no --webhook-secret given", flush=True)
    if not config.sim:
        print("  /_sim test hooks are off (--no-sim)", flush=True)
    print(f"  docs        {base}/docs", flush=True)
    run_uvicorn(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0

"""``relay webhooks serve``: run the webhook receiver with uvicorn; ``relay webhooks secrets``: print
the per-dialect secrets derived from a master secret, to configure a real relay."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from relay_integrations.dialects import DIALECT_NAMES
from relay_integrations.signing import parse_secret_values

SECRETS_ENV = "RELAY_WEBHOOK_SECRETS"
API_KEY_ENV = "RELAY_WEBHOOKS_API_KEY"
RELAYSMS_TOKEN_ENV = "RELAY_WEBHOOKS_RELAYSMS_TOKEN"
DB_ENV = "RELAY_WEBHOOKS_DB"


def register(subparsers: Any) -> None:
    """Add ``relay webhooks serve`` and ``relay webhooks secrets`` to ``relay``."""
    webhooks = subparsers.add_parser("webhooks", help="Receive relay webhooks and query them.")
    sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    serve = sub.add_parser(
        "serve",
        help="Run the webhook receiver.",
        description="Verify, de-duplicate and store relay webhooks at POST /webhooks/<dialect> (relaysms also "
        "unsigned at its secret URL /webhooks/relaysms/<token>); query them at GET /events with the API key "
        "as Bearer token.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="Interface to listen on (default 127.0.0.1).")
    serve.add_argument("--port", type=int, default=5111, help="Port (default 5111).")
    serve.add_argument(
        "--db",
        default=os.environ.get(DB_ENV, "./webhooks.db"),
        help="Event store: an SQLite file (default ./webhooks.db) or a URL such as "
        "postgresql://user:password@host:5432/db, which several receivers behind one URL may share "
        f"(or ${DB_ENV}, which keeps the password out of the process list).",
    )
    serve.add_argument(
        "--webhook-secret",
        "--secret",
        dest="secret",
        action="append",
        default=[],
        metavar="[DIALECT=]SECRET",
        help="Webhook secret; repeat for rotation. SECRET alone is a master secret: each dialect's own secret "
        "is derived from it (print them with `relay webhooks secrets`). DIALECT=SECRET gives one dialect "
        f"({', '.join(DIALECT_NAMES)}) its secret verbatim (relaysms: whsec_<base64>). Also read from "
        f"${SECRETS_ENV} (whitespace-separated), which keeps secrets out of the process list.",
    )
    serve.add_argument(
        "--relaysms-token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="Token of the relaysms secret URL /webhooks/relaysms/TOKEN (or $" + RELAYSMS_TOKEN_ENV + "); "
        "one is also derived from each master secret.",
    )
    serve.add_argument("--api-key", default=None, help=f"Bearer key for GET /events (or ${API_KEY_ENV}).")
    serve.add_argument("--max-body-bytes", type=int, default=None, help="Larger deliveries get 413 (default 1 MiB).")
    opt = serve.add_argument_group(
        "opt-outs",
        "Record inbound STOP/UNSUBSCRIBE/... replies (and START/UNSTOP) in the relay account's suppression list, "
        "which campaigns and single sends honour. The account is the relay's: $RELAY_BASE_URL, $RELAY_DIALECT, "
        "$RELAY_API_KEY (and $RELAY_LOGIN, $RELAY_SENDER, $RELAY_PHONE_ID), as for `relay campaign`.")
    opt.add_argument("--opt-outs", action="store_true", help="Record opt-outs from replies.")
    opt.add_argument("--suppression-store", metavar="PATH_OR_URL", default=None,
                     help="Where the suppression list is: an SQLite file or a database URL (default "
                          "$RELAY_SUPPRESSION_STORE, else the user cache's suppressions.sqlite).")
    opt.add_argument("--opt-out-reply", metavar="TEXT", default=None,
                     help="Answer each new opt-out once with this text, e.g. 'You are unsubscribed. Reply START "
                          "to resubscribe.'")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=_serve)

    secrets = sub.add_parser(
        "secrets",
        help="Print each dialect's secret derived from a master secret.",
        description="Print the secret each dialect uses when the relay and the receiver are given one master "
        "secret, and the relaysms secret URL path, so that a real relay can be configured with them. The "
        f"master secret comes from --webhook-secret or ${SECRETS_ENV}.",
    )
    secrets.add_argument("--webhook-secret", "--secret", dest="secret", default=None, metavar="SECRET",
                         help="The master secret.")
    secrets.set_defaults(func=_secrets)


def parse_secret_args(values: list[str]) -> dict[str, list[str]]:
    """``["s1", "smsgate=s2"]`` -> ``{"*": ["s1"], "smsgate": ["s2"]}``.

    A prefix counts as a dialect only if it names one, so base64 secrets ending in ``=`` stay whole.
    """
    return parse_secret_values(values, DIALECT_NAMES)


def _secrets(args: argparse.Namespace) -> int:
    from relay_integrations.signing import derive_dialect_secret, derive_relaysms_url_token

    from_env = os.environ.get(SECRETS_ENV, "").split()
    master = args.secret or (from_env[0] if from_env else None)
    if not master:
        print(f"relay webhooks secrets: give --webhook-secret or set ${SECRETS_ENV}", file=sys.stderr)
        return 2
    for name in DIALECT_NAMES:
        print(f"{name:<11} {derive_dialect_secret(master, name)}")
    print(f"relaysms URL /webhooks/relaysms/{derive_relaysms_url_token(master)}")
    return 0


def _opt_outs(args: argparse.Namespace) -> Any:
    """The opt-out recorder for the relay account named by the ``RELAY_*`` variables."""
    from relay_integrations.campaign.campaign_store import RelayIdentity
    from relay_integrations.campaign.suppression import SuppressionList
    from relay_integrations.environment import RelayEnvironment
    from relay_integrations.settings import RelaySettings, SettingsError
    from relay_integrations.webhooks.opt_outs import OptOutRecorder

    try:
        settings = RelaySettings.from_values(RelayEnvironment().merged({}))
    except SettingsError as exc:
        variable = "RELAY_" + exc.field.upper()
        raise ValueError(f"--opt-outs needs the relay account: ${variable}: {exc.problem}") from None
    with settings.client() as client:  # the identity campaigns see: the client's base URL and account
        relay = RelayIdentity.from_client(client)
    suppressions = SuppressionList.open(args.suppression_store, relay)
    return OptOutRecorder(suppressions, confirmation=args.opt_out_reply,
                          client_factory=settings.async_client if args.opt_out_reply else None)


def _serve(args: argparse.Namespace) -> int:
    import logging

    from relay_integrations._uvicorn import run as run_uvicorn
    from relay_integrations.campaign.campaign_store import CampaignStoreError
    from relay_integrations.webhooks.receiver import DEFAULT_MAX_BODY_BYTES, create_receiver_app
    from relay_integrations.webhooks.store import StoreError

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret_values = list(args.secret) + os.environ.get(SECRETS_ENV, "").split()
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    tokens = list(args.relaysms_token) + os.environ.get(RELAYSMS_TOKEN_ENV, "").split()
    try:
        opt_outs = _opt_outs(args) if args.opt_outs or args.opt_out_reply else None
        app = create_receiver_app(
            args.db,
            parse_secret_args(secret_values),
            api_key,
            max_body_bytes=args.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
            relaysms_tokens=tokens,
            opt_outs=opt_outs,
        )
    except (ValueError, StoreError, CampaignStoreError) as exc:
        print(f"relay webhooks serve: {exc}", file=sys.stderr)
        return 2
    run_uvicorn(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0

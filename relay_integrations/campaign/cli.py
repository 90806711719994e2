"""``relay campaign``, ``relay send``, ``relay status`` and ``relay suppression``: the campaign and
client from a shell.

Connection options fall back to ``RELAY_BASE_URL``, ``RELAY_DIALECT``, ``RELAY_API_KEY``
(and ``RELAY_LOGIN``, ``RELAY_SENDER``, ``RELAY_PHONE_ID``); prefer the environment for the API
key, which keeps it out of the process list. Results are JSON on stdout; the campaign's progress
bar goes to stderr.

Exit codes: 0 done (the report's ``"ok": true``), 1 some messages failed or invalid rows were
skipped (``"ok": false``), 2 bad input (validation errors, usage, every row invalid), 3 the relay
refused or could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from relay_integrations._startup import long_lived_imports
from relay_integrations.dialects import DIALECT_NAMES

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_RELAY = 0, 1, 2, 3

_ENV = {
    "base_url": "RELAY_BASE_URL",
    "dialect": "RELAY_DIALECT",
    "api_key": "RELAY_API_KEY",
    "login": "RELAY_LOGIN",
    "sender": "RELAY_SENDER",
    "phone_id": "RELAY_PHONE_ID",
}


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--base-url", help=f"The relay's base URL (or ${_ENV['base_url']}).")
    group.add_argument("--dialect", choices=DIALECT_NAMES, help=f"The relay's API (or ${_ENV['dialect']}).")
    group.add_argument("--api-key", help=f"API key / password (or ${_ENV['api_key']}, preferred).")
    group.add_argument("--login", help=f"smsgate login (or ${_ENV['login']}).")
    group.add_argument("--sender", help=f"Default sender number, relaysms 'from' (or ${_ENV['sender']}).")
    group.add_argument("--phone-id", help=f"Default phonerelay phone_id (or ${_ENV['phone_id']}).")
    group.add_argument("--timeout", type=float, default=10.0, help="Read timeout in seconds (default 10).")
    group.add_argument("--max-retries", type=int, default=3, help="Retries on transient errors (default 3).")


def _opt_out_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("opt-outs")
    group.add_argument("--no-opt-outs", action="store_true",
                       help="Send to addresses on the relay account's suppression list too (by default they are "
                            "skipped and reported 'suppressed').")
    group.add_argument("--suppression-store", metavar="PATH_OR_URL",
                       help="Where that list is: an SQLite file or a database URL (default $RELAY_SUPPRESSION_STORE, "
                            "else a PostgreSQL --ledger, else the user cache's suppressions.sqlite).")


def _auto_or_number(minimum: int) -> Callable[[str], int | str]:
    """An argparse type: ``auto``, or a whole number of at least ``minimum``."""

    def parse(value: str) -> int | str:
        if value == "auto":
            return value
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if number < minimum:
            raise argparse.ArgumentTypeError(f"'auto' or a whole number >= {minimum}, not {value!r}")
        return number

    return parse


def register(subparsers: Any) -> None:
    """Add ``relay campaign``, ``relay send`` and ``relay status`` to ``relay``."""
    campaign = subparsers.add_parser(
        "campaign",
        help="Send one template to many recipients, validated first, never twice.",
        description="Render TEMPLATE for every recipient, validate every row before the first send, "
        "send through the relay's best path, and print the report as JSON. A re-run with the same "
        "--campaign-id and ledger sends only what was not accepted before.",
    )
    _connection_options(campaign)
    campaign.add_argument("--template", required=True, metavar="TEXT_OR_FILE",
                          help="Jinja2 template text, or the path of a file holding it.")
    campaign.add_argument("--recipients", required=True, metavar="FILE", help="A .csv (with header) or .jsonl file.")
    campaign.add_argument("--campaign-id", required=True, help="Names the campaign; part of every idempotency key.")
    campaign.add_argument("--channel", default="sms", help="Message channel (default sms).")
    campaign.add_argument("--address-field", default="phone", help="Recipient field with the address (default phone).")
    campaign.add_argument("--field", action="append", default=[], metavar="NAME=TEMPLATE",
                          help="Another message field (subject, title, priority...); repeatable.")
    campaign.add_argument("--default-region", help="Country code for numbers without + (e.g. US).")
    campaign.add_argument("--number-check", choices=["possible", "valid"], default="possible")
    campaign.add_argument("--no-dedupe", action="store_true", help="Send to repeated addresses again.")
    campaign.add_argument("--suppression", metavar="FILE", help="Addresses not to message, one per line.")
    campaign.add_argument("--dry-run", action="store_true", help="Validate and report; send nothing.")
    campaign.add_argument("--skip-invalid", action="store_true", help="Send the good rows when some are bad.")
    campaign.add_argument(
        "--concurrency", type=_auto_or_number(1), default="auto",
        help="Requests in flight: 'auto' (default) adapts to the relay's latency and 429/503 answers, up to 64; "
             "a number fixes it.",
    )
    campaign.add_argument(
        "--validation-workers", type=_auto_or_number(0), default="auto",
        help="Processes that check rows besides this one: 'auto' (default) forks one or two on Linux with "
             "two cores or more once the list passes 2,000 rows; 0 checks every row in this process.",
    )
    campaign.add_argument("--rate-limit", type=float, help="At most this many messages per second.")
    campaign.add_argument("--batch-size", type=int, help="At most this many messages per request.")
    campaign.add_argument("--ledger", metavar="PATH_OR_URL",
                          help="The campaign store: an SQLite file, or a database URL such as "
                               "postgresql://user:pass@host:5432/db shared by every worker that may run or "
                               "retry the campaign (default: an SQLite file per campaign in the user cache). "
                               "Also $RELAY_CAMPAIGN_LEDGER.")
    campaign.add_argument("--lease-seconds", type=float, default=None,
                          help="How long a run's claim on its rows holds without renewal (default 30, or "
                               "$RELAY_CAMPAIGN_LEASE_SECONDS).")
    _opt_out_options(campaign)
    timing = campaign.add_argument_group("when to send")
    timing.add_argument("--send-window", metavar="HH:MM-HH:MM",
                        help="Quiet hours: send only between these local times of each recipient, e.g. 08:00-21:00. "
                             "Rows outside it are 'deferred'; the report's next_run_at says when to run again.")
    timing.add_argument("--timezone-field", default="timezone",
                        help="Row field with the recipient's IANA time zone (default timezone); without it a "
                             "number's zones come from the number.")
    timing.add_argument("--default-timezone", default="UTC", help="Zone of recipients with none known (default UTC).")
    timing.add_argument("--send-at", metavar="ISO_TIME",
                        help="Send no earlier than this (e.g. 2026-12-24T09:00:00+01:00); a row's send_at field "
                             "overrides it. smsgate holds the messages itself (scheduleAt); other relays' rows are "
                             "deferred.")
    campaign.add_argument("--max-rows", type=int, default=None,
                          help="Print at most this many report rows (problems first).")
    campaign.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")
    campaign.set_defaults(func=_campaign)

    send = subparsers.add_parser("send", help="Send one message and print the receipt as JSON.")
    _connection_options(send)
    send.add_argument("--to", required=True, action="append", help="Recipient; repeat for smsgate multi-recipient.")
    send.add_argument("--text", required=True, help="Message text.")
    send.add_argument("--channel", default="sms",
                      help="Message channel: sms, or what the dialect offers (wa, tg, email...) (default sms).")
    send.add_argument("--subject", help="Subject, for channels that have one (email).")
    send.add_argument("--title", help="Title, for channels that have one (push notifications).")
    send.add_argument("--idempotency-key", help="Reuse to make a retried send safe (where the relay supports it).")
    _opt_out_options(send)
    send.set_defaults(func=_send)

    suppression = subparsers.add_parser(
        "suppression", help="List and change the relay account's suppression list (opt-outs).",
        description="The addresses campaigns and single sends to this relay account skip: opt-outs from replies "
        "(recorded by `relay webhooks serve --opt-outs`) and entries added by hand. Results are JSON.")
    actions = suppression.add_subparsers(dest="suppression_command", required=True)
    listing = actions.add_parser("list", help="Print every entry: address, source, since, reason.")
    add = actions.add_parser("add", help="Suppress addresses by hand (a START reply never lifts these).")
    add.add_argument("addresses", nargs="+", metavar="ADDRESS")
    add.add_argument("--note", help="Why (kept with the entry).")
    remove = actions.add_parser("remove", help="Lift the entries of addresses (by hand or from replies).")
    remove.add_argument("addresses", nargs="+", metavar="ADDRESS")
    replies = actions.add_parser(
        "import-replies", help="Record the STOP/START replies already stored in a webhook inbox.",
        description="For replies a receiver stored without --opt-outs: reads the inbox's inbound events of the "
        "relay's dialect and records them, in order; safe to repeat.")
    replies.add_argument("--inbox", required=True, metavar="PATH_OR_URL",
                         help="The receiver's event store (SQLite file or database URL) or its URL.")
    replies.add_argument("--inbox-api-key",
                         help="The receiver's API key, for a receiver URL (or $RELAY_WEBHOOKS_API_KEY).")
    for sub in (listing, add, remove, replies):
        _connection_options(sub)
        sub.add_argument("--suppression-store", metavar="PATH_OR_URL",
                         help="Where the list is: an SQLite file or a database URL (default $RELAY_SUPPRESSION_STORE, "
                              "else the user cache's suppressions.sqlite).")
        sub.add_argument("--default-region", help="Country code for numbers without + (e.g. US).")
    suppression.set_defaults(func=_suppression)

    status = subparsers.add_parser("status", help="Print a message's status as JSON.")
    _connection_options(status)
    status.add_argument("message_id", metavar="MESSAGE_ID",
                        help="The id the relay gave the message (the receipt's id).")
    status.set_defaults(func=_status)


# --- helpers ------------------------------------------------------------------------------
class _UsageError(Exception):
    pass


def _setting(args: argparse.Namespace, name: str) -> str | None:
    """A connection flag, or its ``RELAY_*`` variable (for messages; the client validates them)."""
    from pydantic import SecretStr

    from relay_integrations.environment import RelayEnvironment

    value = RelayEnvironment().merged({name: getattr(args, name, None)}).get(name)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return None if value is None else str(value)


def _client(args: argparse.Namespace) -> Any:
    """The relay client from the connection flags, each falling back to its ``RELAY_*`` variable;
    validated by the settings model the Airflow connection and the Prefect block use too."""
    from relay_integrations.environment import RelayEnvironment
    from relay_integrations.settings import RelaySettings, SettingsError

    flags = {name: getattr(args, name, None) for name in _ENV}
    values = RelayEnvironment().merged(flags)
    values.update(timeout=args.timeout, max_retries=args.max_retries)
    try:
        return RelaySettings.from_values(values).client()
    except SettingsError as exc:
        flag = "--" + exc.field.replace("_", "-")
        where = f"{flag} (or ${_ENV[exc.field]})" if exc.field in _ENV else flag
        raise _UsageError(f"{where}: {exc.problem}") from None


def _print_json(value: Any, out: IO[str] | None = None) -> None:
    stream = out or sys.stdout
    stream.write(json.dumps(value, indent=2, default=str, ensure_ascii=False) + "\n")
    stream.flush()


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"relay: {message}\n")
    return code


def _relay_failure(exc: Exception, args: argparse.Namespace, *, after: str = "") -> int:
    """The relay refused or could not be reached: say what went wrong and what to do next."""
    from urllib.parse import urlsplit

    from relay_integrations.errors import RelayAuthError, RelayConnectionError, RelayNotFoundError, RelayTimeoutError

    base_url = _setting(args, "base_url") or ""
    if isinstance(exc, RelayAuthError):
        hint = f"the relay refused the API key: check --api-key or ${_ENV['api_key']}"
        if (_setting(args, "dialect") or "") == "smsgate":
            hint += f" (and --login or ${_ENV['login']})"
        message = f"{exc}; {hint}"
    elif isinstance(exc, RelayConnectionError) and not isinstance(exc, RelayTimeoutError):
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        message = (f"cannot connect to {parts.hostname}:{port} ({base_url}): is the relay running? "
                   f"Check --base-url or ${_ENV['base_url']} ({exc})")
    elif isinstance(exc, RelayNotFoundError):
        message = (f"{exc}: nothing at {base_url}; check --base-url or ${_ENV['base_url']} "
                   "(it ends with the dialect's path, e.g. http://127.0.0.1:5110/coop)")
    else:
        message = str(exc)
    return _fail(message + after, EXIT_RELAY)


class ProgressBar:
    """A one-line progress bar on a stream (stderr), redrawn at most ten times a second."""

    def __init__(self, stream: IO[str], width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, progress: Any) -> None:
        now = time.monotonic()
        final = progress.phase == "done"
        if not final and now - self._last < 0.1:
            return
        self._last = now
        if progress.phase == "validating":
            line = f"validating: {progress.processed} rows read, {progress.invalid} invalid"
        else:
            fraction = progress.fraction if progress.fraction is not None else 1.0
            filled = round(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            line = (f"[{bar}] {progress.processed}/{progress.total} sent: accepted {progress.accepted}"
                    f" already {progress.already_sent} failed {progress.failed}")
        self.stream.write("\r" + line.ljust(79))
        self._drawn = True
        if final:
            self.close()
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _parse_fields(values: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for value in values:
        name, sep, template = value.partition("=")
        if not sep or not name:
            raise _UsageError(f"--field expects NAME=TEMPLATE, got {value!r}")
        fields[name.strip()] = template
    return fields


def _read_suppression(path: str | None) -> list[str]:
    if not path:
        return []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


# --- commands -----------------------------------------------------------------------------
def _campaign(args: argparse.Namespace) -> int:
    with long_lived_imports():
        import relay_integrations.client  # noqa: F401  (_client needs it: imported here, it is frozen too)
        from relay_integrations.campaign import Campaign, CampaignValidationError
        from relay_integrations.campaign.campaign_store import CampaignStoreError
        from relay_integrations.errors import RelayAuthError, RelayError

    try:
        template: str | Path = Path(args.template) if os.path.isfile(args.template) else args.template
        # The bar redraws one line with \r: only for a person watching a terminal, never into a log file.
        bar = None if args.no_progress or not sys.stderr.isatty() else ProgressBar(sys.stderr)
        campaign = Campaign(
            template, args.recipients, campaign_id=args.campaign_id, address_field=args.address_field,
            channel=args.channel, fields=_parse_fields(args.field), default_region=args.default_region,
            number_check=args.number_check, skip_invalid=args.skip_invalid, dedupe=not args.no_dedupe,
            suppression=_read_suppression(args.suppression),
            ledger=args.ledger or os.environ.get("RELAY_CAMPAIGN_LEDGER") or None,
            lease_seconds=args.lease_seconds, concurrency=args.concurrency, rate_limit=args.rate_limit, progress=bar,
            validation_workers=args.validation_workers,
            batch_size=args.batch_size, honour_opt_outs=not args.no_opt_outs,
            suppression_store=args.suppression_store or None, send_window=args.send_window or None,
            timezone_field=args.timezone_field, default_timezone=args.default_timezone, send_at=args.send_at or None,
        )
        client = _client(args)
    except (_UsageError, ValueError, FileNotFoundError) as exc:
        return _fail(str(exc), EXIT_INVALID)
    try:
        with client:
            try:
                report = campaign.send(client, dry_run=args.dry_run)
            finally:
                if bar:
                    bar.close()
    except CampaignValidationError as exc:
        body: dict[str, Any] = {"error": "validation", "message": str(exc), "errors": exc.errors,
                                "error_count": exc.error_count}
        if exc.report is not None:
            body["report"] = exc.report.to_dict(args.max_rows)
            body["report"]["dry_run"] = bool(args.dry_run)  # nothing was sent because validation failed
        _print_json(body)
        return _fail(str(exc), EXIT_INVALID)
    except RelayAuthError as exc:
        return _relay_failure(exc, args)
    except RelayError as exc:
        return _relay_failure(exc, args, after=" (messages accepted so far are in the ledger: a re-run with the "
                              "same --campaign-id sends only the rest)")
    except CampaignStoreError as exc:
        return _fail(f"{exc} (messages accepted so far are recorded; a re-run with the same --campaign-id "
                     "sends only the rest)", EXIT_RELAY)
    _print_json(report.to_dict(args.max_rows))
    counts = report.counts
    if counts.get("suppressed"):
        sys.stderr.write(f"relay: {counts['suppressed']} recipient(s) suppressed (opted out or listed); not sent\n")
    if report.next_run_at:
        sys.stderr.write(f"relay: {counts['deferred']} row(s) deferred (send window or send_at); run again at "
                         f"{report.next_run_at} with the same --campaign-id to send them\n")
    if counts["total"] and counts["invalid"] == counts["total"]:
        return _fail(f"every one of the {counts['total']} rows is invalid; nothing was sent (see \"rows\")",
                     EXIT_INVALID)
    # "ok": false (messages failed, or invalid rows were skipped) is never exit 0: scripts check the code.
    return EXIT_OK if report.ok else EXIT_FAILED


def _send(args: argparse.Namespace) -> int:
    from relay_integrations.errors import RelayError
    from relay_integrations.models import OutboundMessage

    try:
        client = _client(args)
        message = OutboundMessage(
            to=args.to[0] if len(args.to) == 1 else args.to, text=args.text, channel=args.channel,
            subject=args.subject, title=args.title, idempotency_key=args.idempotency_key,
        )
    except (_UsageError, ValueError) as exc:
        return _fail(str(exc), EXIT_INVALID)
    from relay_integrations.campaign.campaign_store import CampaignStoreError
    from relay_integrations.campaign.single import SuppressedSend, honour_opt_outs

    try:
        with client:
            if not args.no_opt_outs:
                outcome = honour_opt_outs(client, message, suppression_store=args.suppression_store or None,
                                          warn=lambda text: sys.stderr.write(f"relay: {text}\n"))
                if isinstance(outcome, SuppressedSend):
                    _print_json(outcome.model_dump(mode="json"))
                    return EXIT_OK
                message = outcome
            receipt = client.send(message)
    except RelayError as exc:
        return _relay_failure(exc, args)
    except CampaignStoreError as exc:
        return _fail(f"{exc} (nothing was sent: the suppression list could not be read)", EXIT_RELAY)
    _print_json(receipt.model_dump(mode="json"))
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from relay_integrations.errors import RelayError

    try:
        client = _client(args)
    except (_UsageError, ValueError) as exc:
        return _fail(str(exc), EXIT_INVALID)
    try:
        with client:
            report = client.get_status(args.message_id)
    except RelayError as exc:
        return _relay_failure(exc, args)
    _print_json(report.model_dump(mode="json"))
    return EXIT_OK


def _suppression(args: argparse.Namespace) -> int:
    from relay_integrations.campaign.campaign_store import CampaignStoreError, RelayIdentity
    from relay_integrations.campaign.suppression import SuppressionList
    from relay_integrations.errors import RelayError

    try:
        with _client(args) as client:  # names the account; no request is made
            relay = RelayIdentity.from_client(client)
    except (_UsageError, ValueError) as exc:
        return _fail(str(exc), EXIT_INVALID)
    command = args.suppression_command
    try:
        with SuppressionList.open(args.suppression_store or None, relay, read_only=command == "list",
                                  default_region=args.default_region) as listed:
            if command == "list":
                entries = [e.as_dict() for e in listed.entries()]
                _print_json({"relay": {"dialect": relay.dialect, "base_url": relay.base_url},
                             "store": listed.store.url_for_display, "count": len(entries), "entries": entries})
            elif command == "add":
                added = listed.add(args.addresses, note=args.note)
                _print_json({"added": added, "already_listed": len(args.addresses) - added})
            elif command == "remove":
                lifted = listed.remove(args.addresses)
                _print_json({"removed": lifted, "not_listed": len(args.addresses) - lifted})
            else:
                _print_json(_import_replies(args, listed))
    except _UsageError as exc:
        return _fail(str(exc), EXIT_INVALID)
    except CampaignStoreError as exc:
        return _fail(str(exc), EXIT_RELAY)
    except RelayError as exc:
        return _relay_failure(exc, args)
    return EXIT_OK


def _import_replies(args: argparse.Namespace, listed: Any) -> dict[str, int]:
    """Apply an inbox's inbound events of the relay's dialect to the list, oldest first, a page at a time."""
    from relay_integrations.webhooks import WebhookInbox

    api_key = args.inbox_api_key or os.environ.get("RELAY_WEBHOOKS_API_KEY")
    if args.inbox.startswith(("http://", "https://")) and not api_key:
        raise _UsageError("--inbox-api-key (or $RELAY_WEBHOOKS_API_KEY): required for a receiver URL")
    inbox = WebhookInbox.at(args.inbox, api_key)
    read = opted_out = opted_in = 0
    after = 0
    with inbox:
        while True:
            page = inbox.query({"dialect": listed.relay.dialect, "kind": "inbound", "after": after, "limit": 1000})
            if not page:
                break
            read += len(page)
            for change in listed.apply_replies(page):
                if change.changed:
                    opted_out += change.suppressed
                    opted_in += not change.suppressed
            after = max(e.cursor or 0 for e in page)
    return {"inbound_read": read, "opted_out": opted_out, "opted_in": opted_in}

"""Helpers the dialect modules share: tolerant field parsing, error building, state tables.

Private to :mod:`relay_integrations.dialects`; nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from relay_integrations.errors import (
    RelayError,
    RelayRateLimitError,
    RelayUnavailableError,
    RelayValidationError,
    error_for_status,
)
from relay_integrations.models import MessageState

_DATETIME = TypeAdapter(datetime)
# fullmatch only: with re.match, "$" also matches before a final newline, so "+12025550100\n" would pass.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


_SEPARATORS = str.maketrans("", "", " -.()")
# One regex search instead of a per-character loop: this runs for every message of every batch.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


def is_e164(value: str) -> bool:
    """``+`` and 7 to 15 digits, nothing before or after (no whitespace, no final newline)."""
    return E164.fullmatch(value) is not None


def address_problem(value: str) -> str | None:
    """Why a recipient address would be refused, or None.

    No address may carry surrounding whitespace or control characters (a CSV's trailing newline,
    for one). Addresses that look like phone numbers (start with ``+``) must be E.164 once the
    separators people write (spaces, dashes, dots, parentheses) are taken out; relays that
    normalise numbers accept ``+1 202-555-0100``.
    """
    if value != value.strip() or _CONTROL_CHARACTER.search(value):
        return f"{value!r} has surrounding whitespace or control characters"
    if value.startswith("+") and not is_e164(value.translate(_SEPARATORS)):
        return f"{value!r} is not an E.164 phone number (+ and 7 to 15 digits)"
    return None


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value looked up case-insensitively (plain dicts are not case-insensitive)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


def parse_datetime(value: Any) -> datetime | None:
    """A datetime from an ISO string or unix seconds/milliseconds; ``None`` when absent or unreadable.

    Relays disagree on formats (``...Z``, ``+00:00``, epoch ms), and a timestamp we cannot read must
    not make a whole status answer unreadable, so this never raises.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        # Epoch milliseconds are larger than any plausible epoch-seconds value.
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        return _DATETIME.validate_python(value)
    except ValidationError:
        return None


def as_int(value: Any) -> int | None:
    """An int from an int or a numeric string (relaysms sends ``"segments": "1"``); else ``None``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def as_dict(body: Any) -> dict[str, Any]:
    """``body`` if it is a JSON object, else an empty dict (for ``raw`` fields)."""
    return dict(body) if isinstance(body, Mapping) else {}


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), or ``None``."""
    value = header(headers, "Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def extract_error(body: Any) -> tuple[str | None, str | None, str | None]:
    """``(code, message, field)`` from the usual error shapes, read defensively.

    Handles ``{"error": {"code", "message", "field"}}``, ``{"error": "text"}``,
    ``{"message": "text", "code": ...}``, FastAPI's ``{"detail": "text" | [{"loc", "msg"}]}``
    and a plain text body.
    """
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        text = body.strip()
        return None, (text[:500] or None), None
    if not isinstance(body, Mapping):
        return None, None, None
    code: Any = body.get("code")
    message: Any = body.get("message")
    field: Any = body.get("field")
    error = body.get("error")
    if isinstance(error, Mapping):
        code = error.get("code", code)
        message = error.get("message", message)
        field = error.get("field") or error.get("param") or field
        details = error.get("details")
        if not field and isinstance(details, Mapping):
            field = details.get("field")
    elif isinstance(error, str):
        if message is None:
            message = error
        elif code is None:
            code = error
    detail = body.get("detail")
    if message is None and isinstance(detail, str):
        message = detail
    elif message is None and isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, Mapping):
            message = first.get("msg")
            loc = first.get("loc")
            if not field and isinstance(loc, (list, tuple)) and loc:
                field = ".".join(str(p) for p in loc if p != "body") or None
    if message is None and isinstance(body.get("last_error"), str):
        message = body["last_error"]
    return (
        str(code) if code not in (None, "") else None,
        str(message) if message not in (None, "") else None,
        str(field) if field not in (None, "") else None,
    )


def build_error(
    dialect: str,
    status_code: int,
    body: Any,
    headers: Mapping[str, str] | None,
    *,
    code: str | None = None,
    message: str | None = None,
    field: str | None = None,
) -> RelayError:
    """The :mod:`relay_integrations.errors` exception for one error answer.

    The class follows the HTTP status; ``Retry-After`` is kept for 429/5xx-unavailable answers and
    ``field`` for validation errors. The body is kept on the exception (``.body``) but never
    formatted into its text.
    """
    cls = error_for_status(status_code)
    text = message or f"{dialect} answered HTTP {status_code}"
    kwargs: dict[str, Any] = {
        "status_code": status_code,
        "code": code,
        "dialect": dialect,
        "body": body,
    }
    if issubclass(cls, (RelayRateLimitError, RelayUnavailableError)):
        return cls(text, retry_after=retry_after_seconds(headers), **kwargs)
    if issubclass(cls, RelayValidationError):
        return cls(text, field=field, **kwargs)
    return cls(text, **kwargs)


def lookup_state(dialect: str, table: Mapping[str, MessageState], raw: str) -> MessageState:
    """The canonical state for ``raw`` in ``table`` (keys lower-case); ``ValueError`` naming it if unknown.

    Guessing a state for a name we do not know would make a failed message look queued forever,
    so unknown names are an error, not a default.
    """
    if not isinstance(raw, str):
        raise ValueError(f"{dialect}: state must be a string, got {raw!r}")
    try:
        return table[raw.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(table))
        raise ValueError(f"{dialect}: unknown message state {raw!r} (known: {known})") from None


def lookup_state_or_none(table: Mapping[str, MessageState], raw: Any) -> MessageState | None:
    """Like :func:`lookup_state` but ``None`` for a missing or unknown name.

    For list rows and webhook bodies: one row in a state we do not model (an inbound message's
    ``received``) must not make the whole page or delivery unreadable; its raw name is kept.
    """
    if not isinstance(raw, str):
        return None
    return table.get(raw.strip().lower())


def stable_event_id(dialect: str, *parts: Any) -> str:
    """A deterministic event id for webhook bodies that carry none: the same delivery, retried,
    gets the same id, so the inbox can de-duplicate it."""
    material = "\x1f".join([dialect, *("" if p is None else str(p) for p in parts)])
    return f"{dialect}-{hashlib.sha256(material.encode('utf-8')).hexdigest()[:32]}"


def drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without the keys whose value is ``None``."""
    return {k: v for k, v in data.items() if v is not None}


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text for a datetime (``Z`` for UTC), ``None`` for ``None``."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

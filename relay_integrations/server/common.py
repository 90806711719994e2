"""Small helpers every part of the reference relay shares: ids, clocks, address forms, segments, API errors."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BeforeValidator

# --- errors ---------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answer. The app renders it in the error shape of the dialect that raised it.

    :param status: HTTP status code.
    :param message: human text; names the offending field and never contains a credential.
    :param field: the request field at fault, if any (``messages[3].to`` for batch rows).
    :param code: the dialect's error code; derived from ``status`` when not given.
    """

    def __init__(self, status: int, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code


# Bounds on paging numbers, so a huge value is a 400 rather than an SQLite integer overflow.
MAX_PAGE = 1_000_000
MAX_OFFSET = 1_000_000_000


def invalid(field: str, message: str) -> ApiError:
    """A 400 about one field; the message starts with the field name."""
    return ApiError(400, f"{field}: {message}", field=field)


# --- clocks and ids -------------------------------------------------------------------------------


def now() -> float:
    return time.time()


def iso_z(ts: float | None) -> str | None:
    """``2026-01-27T07:00:00Z`` (relaysms, coop)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms_z(ts: float | None) -> str | None:
    """``2026-05-17T09:32:11.421Z`` (smsgate)."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_offset(ts: float | None) -> str | None:
    """``2026-02-17T19:40:00+00:00`` (phonerelay)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).replace(microsecond=0).isoformat()


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


def hour_of(ts: float) -> int:
    return datetime.fromtimestamp(ts, timezone.utc).hour


def new_id(prefix: str = "") -> str:
    """``prefix`` + 32 hex digits, or a canonical UUID4 string when there is no prefix."""
    raw = os.urandom(16)
    if prefix:
        return prefix + raw.hex()
    h = raw.hex()
    # Set the version (4) and variant (10xx) bits by hand: uuid.uuid4() costs several times more.
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_UUID_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # variant bits 10xx


def new_message_ids(count: int, prefix: str = "") -> list[str]:
    """``count`` message ids that sort by creation time: UUIDv7s (RFC 9562), or ``prefix`` + 32
    hex digits (48-bit Unix milliseconds, then 80 random bits).

    Why not random: the unique index on message ids then grows at its right edge instead of
    touching a random page per row, which makes batch inserts markedly cheaper. The 74 to 80
    random bits keep ids unguessable and unique. One ``os.urandom`` call for the whole batch:
    a system call per id cost more than the rest of a batch row's checks.
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    rand = os.urandom(10 * count).hex()
    offsets = range(0, 20 * count, 20)
    if prefix:
        head = prefix + stamp
        return [head + rand[i:i + 20] for i in offsets]
    head = f"{stamp[:8]}-{stamp[8:]}-7"
    variant = _UUID_VARIANT
    return [f"{head}{rand[i:i + 3]}-{variant[rand[i + 3]]}{rand[i + 4:i + 7]}-{rand[i + 7:i + 19]}" for i in offsets]


def new_message_id(prefix: str = "") -> str:
    """One id as :func:`new_message_ids` makes them."""
    return new_message_ids(1, prefix)[0]


def seeded_fraction(seed: str, message_id: str) -> float:
    """A stable number in [0, 1) for a message id: the failure-rate draw is reproducible."""
    digest = hashlib.sha256(f"{seed}:{message_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# --- address forms --------------------------------------------------------------------------------
# Forms only, on purpose: the docs' own examples (+1234567890, +15551234567) are not real numbers.

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
USERNAME = re.compile(r"^@[A-Za-z0-9_]{3,64}$")
CHAT_ID = re.compile(r"^-?[0-9]{1,20}$")
GROUP_GUID = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?:iMessage|SMS|any);[-+];[^\s]+|chat[0-9A-Za-z]{4,})$"
)
# Explicit control/space ranges, not \s: Python's \s is wider than JSON Schema's (ECMA), and the
# OpenAPI document states this same pattern (see .openapi).
URL = re.compile(r"^https?://[^\x00-\x20\x7f/]+(?:/[^\x00-\x20\x7f]*)?$")


def is_e164(value: str) -> bool:
    # fullmatch: with match, "$" also matches before a final newline ("+12025550100\n").
    return bool(E164.fullmatch(value))


def is_email(value: str) -> bool:
    return bool(EMAIL.fullmatch(value))


def require_e164(field: str, value: str) -> str:
    if not is_e164(value):
        raise invalid(field, f"{value!r} is not an E.164 phone number (+ and 7 to 15 digits)")
    return value


def require_url(field: str, value: str | None) -> str | None:
    if value is not None and not URL.fullmatch(value):
        raise invalid(field, "must be an http(s) URL")
    return value


def fails_by_number(address: str | None) -> bool:
    """Recipients whose number ends in 0000 always fail in the simulation."""
    return bool(address) and str(address).endswith("0000")


# --- SMS segments ---------------------------------------------------------------------------------

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


_GSM_ALL = frozenset(_GSM_BASIC | _GSM_EXTENDED)


def sms_segments(text: str) -> int:
    """Parts an SMS of ``text`` takes: GSM-7 160/153 (extension chars count 2), else UCS-2 70/67."""
    if _GSM_ALL.issuperset(text):
        if len(text) <= 80:  # even all extension characters (2 units each) fit in one part
            return 1
        units = len(text) + sum(text.count(c) for c in _GSM_EXTENDED if c in text)
        return 1 if units <= 160 else -(-units // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer: 5 and 5.0, never true/false or "5" (pydantic's lax int takes those)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a whole number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
"""A body field holding a JSON integer, validated as the OpenAPI document states it."""


def _date_time_string(value: Any) -> Any:
    """A date-time must come as an RFC 3339 string; pydantic's lax datetime also takes bare numbers."""
    if not isinstance(value, (str, datetime)):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


DateTimeString = Annotated[datetime, BeforeValidator(_date_time_string)]


def require_finite_json(field: str, value: Any) -> Any:
    """Refuse NaN/Infinity (Python's JSON parser accepts them, JSON does not), so they are never echoed back."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        raise invalid(field, "numbers must be finite (no NaN or Infinity)") from None
    return value


def parse_json_strict(text: str) -> Any:
    """json.loads that rejects NaN and Infinity."""
    def _reject(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=_reject)

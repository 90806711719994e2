"""Recipient addresses: E.164 phone numbers (via ``phonenumbers``), emails and messenger handles.

The channel decides what an address must look like. Phone numbers come back in E.164 form, so
``+1 (202) 555-0100`` and ``+12025550100`` are the same recipient for de-duplication.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber
from phonenumbers.phonenumberutil import (
    ValidationResult,
    _extract_country_code,
    _maybe_strip_national_prefix_carrier_code,
    _set_italian_leading_zeros_for_phone_number,
    _test_number_length,
    region_code_for_country_code,
)

NumberCheck = Literal["possible", "valid"]

PHONE_CHANNELS = frozenset({"sms", "mms", "wa", "whatsapp", "rcs", "voice"})
EMAIL_CHANNELS = frozenset({"email"})
TELEGRAM_CHANNELS = frozenset({"tg", "telegram"})
TELEGRAM_BOT_CHANNELS = frozenset({"tg_bot"})
PHONE_OR_EMAIL_CHANNELS = frozenset({"imessage"})

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_TG_USERNAME = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,31}$")
_TG_CHAT_ID = re.compile(r"^-?\d{1,20}$")
# "+" and ASCII digits only, no leading zero: the shape of E.164 that _parse_plus_digits handles.
_PLUS_DIGITS = re.compile(r"\+[1-9][0-9]{2,19}")
_TOO_SHORT_FOR_PREFIX_STRIP = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                               ValidationResult.INVALID_LENGTH)
_POSSIBLE = (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY)
# Distinct numbers whose outcome is remembered (duplicates, suppression lists); bounded memory.
_PHONE_CACHE_SIZE = 4096


class AddressError(ValueError):
    """An address that cannot be used on the campaign's channel; the text says why."""


def _national_plus_digits(text: str) -> tuple[int, str, PhoneMetadata] | None:
    """What ``phonenumbers.parse(text)`` finds in ``+`` and ASCII digits, or None to use ``parse``.

    ``(country code, national significant number, the country's metadata)``: the same steps
    ``parse`` takes on that input (country code, national prefix, lengths), through phonenumbers'
    own helpers, without its scan of free-form text. Every input it is not sure about (unknown
    country code, odd lengths) goes back to ``parse``; tests/campaign/test_campaign_addresses.py
    checks both agree.
    """
    country_code, national = _extract_country_code(text[1:])
    if country_code == 0:
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, region_code_for_country_code(country_code)
    )
    if metadata is None:
        return None
    _, stripped, _ = _maybe_strip_national_prefix_carrier_code(national, metadata)
    if _test_number_length(stripped, metadata) not in _TOO_SHORT_FOR_PREFIX_STRIP:
        national = stripped
    if not 2 <= len(national) <= 17:
        return None
    return country_code, national, metadata


def _parse_plus_digits(text: str) -> PhoneNumber | None:
    """``phonenumbers.parse(text)`` for text that is ``+`` and ASCII digits, or None to use ``parse``."""
    found = _national_plus_digits(text)
    if found is None:
        return None
    country_code, national, _ = found
    number = PhoneNumber(country_code=country_code)
    _set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    return number


@lru_cache(maxsize=_PHONE_CACHE_SIZE)
def _check_phone(text: str, region: str | None, number_check: NumberCheck) -> tuple[str | None, str | None]:
    """``(E.164, None)`` or ``(None, reason)`` for stripped ``text``; ``reason`` names it by ``{raw}``."""
    if number_check == "possible" and _PLUS_DIGITS.fullmatch(text):
        found = _national_plus_digits(text)
        if found is not None:
            # is_possible_number and format_number(E164) on the number parse would build, without
            # building it: its national significant number (leading zeros included) is ``national``
            # itself, and "possible" is a length test against the country's metadata.
            country_code, national, metadata = found
            if _test_number_length(national, metadata) in _POSSIBLE:
                return f"+{country_code}{national}", None
            return None, "{raw} is not a possible phone number"
    number = _parse_plus_digits(text) if _PLUS_DIGITS.fullmatch(text) else None
    if number is None:
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException as exc:
            if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
                hint = "" if region else " (write it as +<country code>... or set default_region)"
                return None, f"{{raw}} has no valid country code{hint}"
            return None, "{raw} is not a phone number"
    if number_check == "valid":
        ok = phonenumbers.is_valid_number(number)
    else:
        ok = phonenumbers.is_possible_number(number)
    if not ok:
        return None, f"{{raw}} is not a {number_check} phone number"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def normalize_phone(raw: str, *, default_region: str | None = None, number_check: NumberCheck = "possible") -> str:
    """``raw`` as an E.164 number.

    :param default_region: ISO country code (``"US"``, ``"DE"``) for numbers written without ``+``.
    :param number_check: ``"possible"`` checks the length for the country; ``"valid"`` also checks
        that the number is in an allocated range (stricter, rejects made-up test numbers).
    :raises AddressError: when it is not a phone number or fails the check.
    """
    text = raw.strip()
    if not text:
        raise AddressError("empty phone number")
    e164, reason = _check_phone(text, default_region.upper() if default_region else None, number_check)
    if e164 is None:
        assert reason is not None
        raise AddressError(reason.replace("{raw}", repr(raw), 1))
    return e164


def normalize_email(raw: str) -> str:
    text = raw.strip()
    if not _EMAIL.match(text):
        raise AddressError(f"{raw!r} is not an email address")
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalize_address(
    raw: object,
    channel: str,
    *,
    default_region: str | None = None,
    number_check: NumberCheck = "possible",
) -> str:
    """The canonical form of ``raw`` for ``channel``.

    sms/wa/... need a phone number; email an email address; tg an ``@username`` or a phone number;
    tg_bot a numeric chat id or ``@channel``; imessage a phone number or an Apple ID email.
    Other channels take any non-empty text.

    :raises AddressError: with the reason when ``raw`` does not fit.
    """
    if raw is None:
        raise AddressError("missing address")
    text = str(raw).strip()
    if not text:
        raise AddressError("empty address")
    if channel in PHONE_CHANNELS:
        return normalize_phone(text, default_region=default_region, number_check=number_check)
    if channel in EMAIL_CHANNELS:
        return normalize_email(text)
    if channel in PHONE_OR_EMAIL_CHANNELS:
        if "@" in text:
            return normalize_email(text)
        return normalize_phone(text, default_region=default_region, number_check=number_check)
    if channel in TELEGRAM_CHANNELS:
        if text.startswith("@"):
            if not _TG_USERNAME.match(text):
                raise AddressError(f"{raw!r} is not a Telegram @username")
            return text
        return normalize_phone(text, default_region=default_region, number_check=number_check)
    if channel in TELEGRAM_BOT_CHANNELS:
        if _TG_CHAT_ID.match(text) or _TG_USERNAME.match(text):
            return text
        raise AddressError(f"{raw!r} is not a Telegram chat id or @channel")
    return text


def normalize_suppressed(raw: str, channel: str, *, default_region: str | None = None) -> str:
    """A suppression-list entry in the same form as recipient addresses, so both compare equal.

    Entries that do not parse are kept as written (stripped, lower-cased for emails) rather than
    dropped: a suppression list must never be silently ignored.
    """
    try:
        return normalize_address(raw, channel, default_region=default_region, number_check="possible")
    except AddressError:
        text = str(raw).strip()
        return text.lower() if "@" in text and not text.startswith("@") else text

"""Address checks: E.164 via phonenumbers ("possible" vs "valid", default region), emails, handles."""

from __future__ import annotations

import pytest

from relay_integrations.campaign.addresses import (
    AddressError,
    normalize_address,
    normalize_phone,
    normalize_suppressed,
)


def test_e164_numbers_are_normalised() -> None:
    assert normalize_phone("+1 (202) 555-0100") == "+12025550100"
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"


def test_national_numbers_need_a_default_region() -> None:
    with pytest.raises(AddressError, match="default_region"):
        normalize_phone("202 555 0100")
    assert normalize_phone("202 555 0100", default_region="US") == "+12025550100"
    assert normalize_phone("030 123456", default_region="de") == "+4930123456"


def test_possible_is_the_default_and_valid_is_stricter() -> None:
    # +1 555 555 5555 has a possible length but is not an allocated range.
    assert normalize_phone("+15555555555") == "+15555555555"
    with pytest.raises(AddressError, match="valid phone number"):
        normalize_phone("+15555555555", number_check="valid")
    assert normalize_phone("+12025550100", number_check="valid") == "+12025550100"


@pytest.mark.parametrize("raw", ["+1 202", "hello", "+999 12345678", "", "   "])
def test_impossible_numbers_are_refused(raw: str) -> None:
    with pytest.raises(AddressError):
        normalize_phone(raw)


def test_channel_decides_the_address_kind() -> None:
    assert normalize_address("Me@Example.COM", "email") == "Me@example.com"
    with pytest.raises(AddressError, match="email"):
        normalize_address("not-an-email", "email")
    assert normalize_address("@some_user", "tg") == "@some_user"
    assert normalize_address("+12025550100", "tg") == "+12025550100"
    with pytest.raises(AddressError, match="Telegram"):
        normalize_address("@ab", "tg")
    assert normalize_address("-100123", "tg_bot") == "-100123"
    assert normalize_address("a@icloud.com", "imessage") == "a@icloud.com"
    assert normalize_address("+12025550100", "imessage") == "+12025550100"
    assert normalize_address("+1 202 555 0100", "wa") == "+12025550100"
    with pytest.raises(AddressError, match="missing"):
        normalize_address(None, "sms")


def test_suppression_entries_are_normalised_like_recipients() -> None:
    assert normalize_suppressed("+1 202-555-0100", "sms") == "+12025550100"
    assert normalize_suppressed("2025550100", "sms", default_region="US") == "+12025550100"
    # An entry that does not parse is kept, never dropped.
    assert normalize_suppressed("garbage", "sms") == "garbage"


# --- the E.164 fast path must decide exactly as phonenumbers.parse does ------------------------
import phonenumbers  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from relay_integrations.campaign.addresses import (  # noqa: E402
    NumberCheck,
    _check_phone,
    _parse_plus_digits,
)

_COUNTRY_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_REGIONS = [None, "US", "DE", "IT", "GB", "RU", "BR", "CI", "XX"]


def _reference_normalize(raw: str, default_region: str | None, number_check: NumberCheck) -> str:
    """normalize_phone as it was before the fast path and the cache (the slow path)."""
    text = raw.strip()
    if not text:
        raise AddressError("empty phone number")
    try:
        number = phonenumbers.parse(text, default_region.upper() if default_region else None)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            hint = "" if default_region else " (write it as +<country code>... or set default_region)"
            raise AddressError(f"{raw!r} has no valid country code{hint}") from None
        raise AddressError(f"{raw!r} is not a phone number") from None
    ok = phonenumbers.is_valid_number(number) if number_check == "valid" else phonenumbers.is_possible_number(number)
    if not ok:
        raise AddressError(f"{raw!r} is not a {number_check} phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _outcome(fast: bool, raw: str, region: str | None, check: NumberCheck) -> tuple[str, str]:
    try:
        if fast:
            return "ok", normalize_phone(raw, default_region=region, number_check=check)
        return "ok", _reference_normalize(raw, region, check)
    except AddressError as exc:
        return "error", str(exc)


@st.composite
def _plus_numbers(draw: st.DrawFn) -> str:
    """"+" and digits: real country codes, national prefixes, leading zeros, odd lengths."""
    kind = draw(st.sampled_from(["random", "cc", "example", "example-prefixed"]))
    if kind == "random":
        return draw(st.from_regex(r"\+[0-9]{0,21}", fullmatch=True))
    cc = draw(st.sampled_from(_COUNTRY_CODES))
    if kind == "cc":
        return f"+{cc}" + draw(st.text("0123456789", min_size=0, max_size=18))
    region = draw(st.sampled_from(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]))
    example = phonenumbers.example_number(region) if region != "001" else None
    national = str(example.national_number) if example is not None else "12345678"
    if example is not None and example.italian_leading_zero:
        national = "0" * (example.number_of_leading_zeros or 1) + national
    if kind == "example-prefixed":
        national = draw(st.text("0123456789", min_size=1, max_size=3)) + national
    cut = draw(st.integers(min_value=-3, max_value=2))
    national = national[:cut] if cut < 0 else national + "7" * cut
    return f"+{cc}{national}"


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plus_numbers(), st.sampled_from(_REGIONS))
def test_plus_digits_fast_parse_equals_phonenumbers_parse(text: str, region: str | None) -> None:
    try:
        expected: phonenumbers.PhoneNumber | None = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        expected = None
    if len(text) < 4 or text[1] == "0":  # outside the fast path's regex; normalize_phone never calls it
        return
    fast = _parse_plus_digits(text)
    if fast is not None:
        assert fast == expected
    # None means "ask phonenumbers.parse", which is always right.


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(_plus_numbers(), st.text("+0123456789 -()", max_size=20), st.text(max_size=12)),
    st.sampled_from([None, "US", "de", "IT", "GB", "RU"]),
    st.sampled_from(["possible", "valid"]),
)
def test_normalize_phone_decides_as_the_slow_path(raw: str, region: str | None, check: NumberCheck) -> None:
    """Same accepted numbers, same E.164 text, same error messages, with the fast path and cache."""
    assert _outcome(True, raw, region, check) == _outcome(False, raw, region, check)


def test_the_fast_path_takes_plain_e164_numbers() -> None:
    assert _parse_plus_digits("+14152000001") == phonenumbers.parse("+14152000001")
    assert _parse_plus_digits("+390612345678") == phonenumbers.parse("+390612345678")  # Italian leading zero
    assert _parse_plus_digits("+999123") is None  # unknown country code: phonenumbers.parse reports it


def test_phone_cache_is_bounded() -> None:
    assert _check_phone.cache_info().maxsize is not None

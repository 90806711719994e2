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

"""The address check every dialect runs on each recipient before a request is built."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_integrations.dialects import get_dialect
from relay_integrations.dialects._common import address_problem
from relay_integrations.errors import RelayValidationError
from relay_integrations.models import OutboundMessage


def refused_by_definition(value: str) -> bool:
    """The rule as written in the docstring, character by character."""
    controls = any(ord(c) < 32 or ord(c) == 127 for c in value)
    if value != value.strip() or controls:
        return True
    digits = "".join(c for c in value if c not in " -.()")
    return value.startswith("+") and not (
        digits[1:].isascii() and digits[1:].isdigit() and 7 <= len(digits) - 1 <= 15 and digits[1] != "0")


@pytest.mark.parametrize("address", ["+12025550100\n", " +12025550100", "+1202555\x000100", "+12025550100\x7f",
                                     "user@\texample.com", "+1 202", "+0123456789"])
def test_refused_addresses_name_the_problem(address: str) -> None:
    problem = address_problem(address)
    assert problem is not None and repr(address) in problem


@pytest.mark.parametrize("address", ["+12025550100", "+1 202-555-0100", "+1 (202) 555.0100", "user@example.com",
                                     "@channel_name", "+447700900123"])
def test_accepted_addresses(address: str) -> None:
    assert address_problem(address) is None


@settings(deadline=None, max_examples=500)
@given(st.text(alphabet=st.sampled_from("+0123456789 -.()@ab\t\n\r\x00\x1f\x7f\x80é"), max_size=20))
def test_matches_the_rule_for_any_text(address: str) -> None:
    assert (address_problem(address) is not None) == refused_by_definition(address)


@pytest.mark.parametrize("dialect", ["phonerelay", "relaysms", "coop", "smsgate"])
def test_every_dialect_refuses_a_control_character_in_a_batch_or_single_send(dialect: str) -> None:
    message = OutboundMessage(to="+1202555\x010100", text="hi", sender="+12025550199", phone_id="p1")
    with pytest.raises(RelayValidationError) as info:
        get_dialect(dialect).build_send(message)
    assert "control characters" in str(info.value)

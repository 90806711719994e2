"""The suite never depends on machine speed: Hypothesis runs without a per-example deadline."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st


def test_active_profile_has_no_deadline() -> None:
    assert settings().deadline is None


@given(st.text())
def test_given_without_settings_inherits_no_deadline(text: str) -> None:
    assert settings().deadline is None

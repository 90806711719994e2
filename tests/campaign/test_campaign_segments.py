"""SMS segment counting: GSM-7 160/153, extension characters, UCS-2 70/67, surrogate pairs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_integrations.campaign.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentCount,
    _pack,
    _unit_widths,
    count_segments,
    split_segments,
)


@pytest.mark.parametrize(
    ("length", "segments"),
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm7_single_and_multipart_sizes(length: int, segments: int) -> None:
    result = count_segments("a" * length)
    assert result.encoding == "GSM-7"
    assert result.units == length
    assert result.segments == segments


def test_empty_text_is_zero_segments() -> None:
    assert count_segments("").segments == 0
    assert split_segments("") == []


@pytest.mark.parametrize("char", sorted(GSM7_EXTENSION))
def test_extension_characters_count_two(char: str) -> None:
    result = count_segments(char * 80)
    assert result.encoding == "GSM-7"
    assert result.units == 160
    assert result.segments == 1
    assert count_segments(char * 81).segments == 2


def test_escape_is_never_split_across_parts() -> None:
    # 152 plain septets then a 2-septet euro sign: it cannot take the 153rd slot, so it opens part 2.
    text = "a" * 152 + "€" + "b" * 10
    parts = split_segments(text)
    assert parts[0] == "a" * 152
    assert parts[1].startswith("€")
    assert "".join(parts) == text
    assert count_segments(text).segments == 2


def test_escape_that_fits_exactly_stays_in_the_part() -> None:
    text = "a" * 151 + "€" + "b" * 10
    parts = split_segments(text)
    assert parts[0] == "a" * 151 + "€"


def test_one_non_gsm_character_makes_the_whole_text_ucs2() -> None:
    text = "a" * 100 + "ł"
    result = count_segments(text)
    assert result.encoding == "UCS-2"
    assert result.units == 101
    assert result.segments == 2


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_single_and_multipart_sizes(length: int, segments: int) -> None:
    result = count_segments("ж" * length)
    assert result.encoding == "UCS-2"
    assert result.segments == segments


def test_surrogate_pairs_count_two_units_and_are_never_split() -> None:
    emoji = "\U0001f600"
    assert count_segments(emoji * 35).units == 70
    assert count_segments(emoji * 35).segments == 1
    text = "ж" * 66 + emoji + "ж" * 10  # 66 units, then a pair that would straddle units 67/68
    parts = split_segments(text)
    assert parts[0] == "ж" * 66
    assert parts[1].startswith(emoji)
    assert len(parts) == 2


def test_gsm_basic_characters_such_as_accents_stay_gsm7() -> None:
    assert count_segments("Café à Genève: ü, Ñ, ß @ £5").encoding == "GSM-7"


gsm_alphabet = st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION))
any_text = st.text(alphabet=st.one_of(gsm_alphabet, st.characters(codec="utf-8")), max_size=600)


@given(any_text)
def test_parts_rejoin_and_respect_the_limits(text: str) -> None:
    parts = split_segments(text)
    assert "".join(parts) == text
    assert len(parts) == count_segments(text).segments
    if len(parts) > 1:
        encoding = count_segments(text).encoding
        limit = 153 if encoding == "GSM-7" else 67
        for part in parts:
            if encoding == "GSM-7":
                width = sum(2 if c in GSM7_EXTENSION else 1 for c in part)
            else:
                width = sum(2 if ord(c) > 0xFFFF else 1 for c in part)
            assert width <= limit


def _count_by_packing(text: str) -> SegmentCount:
    """The general rule, character by character (no fast paths)."""
    encoding, widths = _unit_widths(text)
    single, part = (160, 153) if encoding == "GSM-7" else (70, 67)
    return SegmentCount(encoding, sum(widths), len(_pack(widths, single, part)))


@settings(max_examples=2000, deadline=None)
@given(st.one_of(
    st.text(st.characters(max_codepoint=0x7F), max_size=200),
    st.text(st.sampled_from([*sorted(GSM7_BASIC | GSM7_EXTENSION), "`", "\x7f", "\t", "é", "😀"]), max_size=200),
    st.text(max_size=200),
))
def test_fast_paths_count_as_the_general_rule(text: str) -> None:
    assert count_segments(text) == _count_by_packing(text)

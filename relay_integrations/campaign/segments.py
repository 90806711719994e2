"""SMS segment counting: how many billable parts a text becomes on the wire.

GSM-7 texts take 160 septets in one part, 153 per part once split (the user data header eats
the rest). The extension characters ``^{}\\[~]|€`` and form feed take two septets (escape + char)
and are never split across parts. Any character outside GSM-7 makes the whole text UCS-2:
70 UTF-16 code units in one part, 67 per part, and a surrogate pair is never split.
Parts are packed greedily.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

# Any ASCII character outside the GSM-7 basic set (extension characters, backtick, controls).
_ASCII_NOT_GSM7_BASIC = re.compile(
    "[^" + "".join(re.escape(c) for c in sorted(GSM7_BASIC) if c.isascii()) + "]"
)

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True)
class SegmentCount:
    """The encoding a text needs, its length in that encoding's units, and the number of parts.

    :param units: septets for GSM-7, UTF-16 code units for UCS-2.
    """

    encoding: Encoding
    units: int
    segments: int


def _unit_widths(text: str) -> tuple[Encoding, list[int]]:
    if set(text) <= GSM7_ALL:
        return "GSM-7", [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    # A Python str holds code points; astral ones are a surrogate pair (two units) in UTF-16.
    return "UCS-2", [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(widths: list[int], single: int, part: int) -> list[int]:
    """Greedy packing of characters (with their widths) into parts; returns each part's end index."""
    if sum(widths) <= single:
        return [len(widths)] if widths else []
    ends: list[int] = []
    used = 0
    for i, width in enumerate(widths):
        if used + width > part:  # the character (escape pair or surrogate pair) moves whole to the next part
            ends.append(i)
            used = 0
        used += width
    ends.append(len(widths))
    return ends


def count_segments(text: str) -> SegmentCount:
    """How ``text`` goes over SMS: encoding, units, parts. An empty text is zero parts."""
    # Fastest path, the usual message: plain ASCII in the GSM-7 basic set is one septet a character.
    if len(text) <= GSM7_SINGLE and text.isascii() and not _ASCII_NOT_GSM7_BASIC.search(text):
        return SegmentCount("GSM-7", len(text), 1 if text else 0)
    # Fast path for the common single-part message: count units without per-character lists.
    chars = set(text)
    if chars <= GSM7_ALL:
        units = len(text) + sum(text.count(c) for c in chars & GSM7_EXTENSION)
        if units <= GSM7_SINGLE:
            return SegmentCount("GSM-7", units, 1 if text else 0)
    else:
        units = len(text) + sum(text.count(c) for c in chars if ord(c) > 0xFFFF)
        if units <= UCS2_SINGLE:
            return SegmentCount("UCS-2", units, 1)
    encoding, widths = _unit_widths(text)
    single, part = (GSM7_SINGLE, GSM7_PART) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    return SegmentCount(encoding=encoding, units=sum(widths), segments=len(_pack(widths, single, part)))


def split_segments(text: str) -> list[str]:
    """The parts ``text`` is cut into (for previews and tests); joining them gives ``text`` back."""
    encoding, widths = _unit_widths(text)
    single, part = (GSM7_SINGLE, GSM7_PART) if encoding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    parts: list[str] = []
    start = 0
    for end in _pack(widths, single, part):
        parts.append(text[start:end])
        start = end
    return parts

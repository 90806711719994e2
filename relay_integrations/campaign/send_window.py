"""Quiet hours: when a recipient may be messaged, in the recipient's own time zone.

A :class:`SendWindow` is a daily span of local time (``08:00`` to ``21:00``: the US TCPA hours;
a start after the end spans midnight). A recipient's zones come from the row (a ``timezone``
field), else from the number (phonenumbers' time zone data), else the campaign's default zone. A
number whose country or area spans several zones gets the narrowest common window: a moment is
allowed only when it is inside the window in every one of them.

Everything here is pure: the caller passes "now", so a campaign can be judged at any moment (tests
use a controlled clock; DST is zoneinfo's).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
# How far ahead to look for an allowed moment: a week covers any pair of daily windows.
_HORIZON_DAYS = 8


class SendWindowError(ValueError):
    """A send window or a time zone that cannot be used; ``field`` names what was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.problem = message


def _clock(field: str, value: object) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    match = _CLOCK.match(str(value).strip())
    if not match:
        raise SendWindowError(field, f"{value!r} is not a time of day as HH:MM (24-hour)")
    return time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class SendWindow:
    """A daily span of local time, ``start`` included, ``end`` excluded."""

    start: time
    end: time

    @classmethod
    def parse(cls, value: SendWindow | Sequence[str | time] | str, field: str = "send_window") -> SendWindow:
        """``("08:00", "21:00")``, ``"08:00-21:00"`` or a SendWindow."""
        if isinstance(value, SendWindow):
            return value
        parts: Sequence[str | time]
        if isinstance(value, str):
            parts = [p for p in re.split(r"\s*[-,]\s*|\s+to\s+", value.strip()) if p]
        else:
            parts = list(value)
        if len(parts) != 2:
            raise SendWindowError(field, f"expected (start, end) such as ('08:00', '21:00'), got {value!r}")
        start, end = _clock(field, parts[0]), _clock(field, parts[1])
        if start == end:
            raise SendWindowError(field, f"start and end are both {start:%H:%M}; the window would be empty")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # spans midnight

    def allows(self, moment: datetime, zones: Sequence[ZoneInfo]) -> bool:
        """Whether ``moment`` is inside the window in every one of ``zones``."""
        return all(self.contains(moment.astimezone(zone).time()) for zone in zones)

    def _opens(self, zone: ZoneInfo, day: date) -> datetime:
        """The first moment of ``day`` whose local time is at least ``start``."""
        opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(timezone.utc)
        if opens.astimezone(zone).time() != self.start:
            # ``start`` falls in a DST gap (02:30 on a spring-forward night): the clock skips it, so
            # the window opens when the clock jumps; step back to that moment, a minute at a time.
            step = timedelta(minutes=1)
            while (opens - step).astimezone(zone).time() > self.start:
                opens -= step
        return opens

    def earliest(self, now: datetime, zones: Sequence[ZoneInfo]) -> datetime | None:
        """The first moment at or after ``now`` inside the window in every zone (``now`` itself when
        it is); None when the zones share no moment of the window within a week."""
        now = now.astimezone(timezone.utc)
        if self.allows(now, zones):
            return now
        candidates: set[datetime] = set()
        for zone in zones:
            today = now.astimezone(zone).date()
            for offset in range(-1, _HORIZON_DAYS):
                opens = self._opens(zone, today + timedelta(days=offset))
                if opens > now:
                    candidates.add(opens)
        for moment in sorted(candidates):
            if self.allows(moment, zones):
                return moment
        return None


@lru_cache(maxsize=512)
def zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA zone called ``name`` (``America/New_York``); :class:`SendWindowError` names ``field``."""
    text = str(name).strip()
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise SendWindowError(field, f"{name!r} is not an IANA time zone name such as 'America/New_York'") from None


def zones_for_number(e164: str) -> tuple[str, ...]:
    """The time zones phonenumbers' data gives an E.164 number's longest known prefix (area code,
    else country); empty when none are known.

    The prefix alone decides, as for any geographic number: a number phonenumbers would call
    invalid (``+1 212 555 ...``, accepted with ``number_check="possible"``) still has its area's
    zone. Looking the prefix up directly is also about fifty times cheaper than parsing the
    number again for each row.
    """
    from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

    digits = e164[1:] if e164.startswith("+") else ""
    if not digits.isdigit():
        return ()
    for length in range(min(TIMEZONE_LONGEST_PREFIX, len(digits)), 0, -1):
        names = TIMEZONE_DATA.get(digits[:length])
        if names is not None:
            return tuple(n for n in names if n and n != "Etc/Unknown")
    return ()


def parse_moment(value: datetime | str, default_zone: ZoneInfo, field: str = "send_at") -> datetime:
    """A moment from a datetime or ISO 8601 text (``2026-12-24T09:00:00+01:00``); one without an
    offset is read in ``default_zone``. Returned in UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise SendWindowError(field, f"{value!r} is not an ISO 8601 date and time such as "
                                         "'2026-12-24T09:00:00+01:00'") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_zone)
    return moment.astimezone(timezone.utc)


def iso(moment: datetime) -> str:
    """UTC, to the second (rounded up, so the moment is never early): ``2026-12-24T08:00:00+00:00``."""
    moment = moment.astimezone(timezone.utc)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.isoformat()

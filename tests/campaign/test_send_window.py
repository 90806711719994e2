"""Quiet hours as pure time arithmetic: windows, zones from numbers, the narrowest common window, DST."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_integrations.campaign.send_window import (
    SendWindow,
    SendWindowError,
    iso,
    parse_moment,
    zone,
    zones_for_number,
)

UTC = timezone.utc
TCPA = SendWindow.parse(("08:00", "21:00"))
NEW_YORK = zone("America/New_York")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.mark.parametrize(("value", "expected"), [
    (("08:00", "21:00"), "08:00-21:00"),
    ("8:00-21:30", "08:00-21:30"),
    ("22:00 to 06:00", "22:00-06:00"),
    ([time(9), time(17)], "09:00-17:00"),
])
def test_windows_parse_from_pairs_and_text(value: object, expected: str) -> None:
    assert str(SendWindow.parse(value)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [("8am", "9pm"), ("08:00",), "25:00-26:00", ("09:00", "09:00"), "noon"])
def test_bad_windows_name_the_field(value: object) -> None:
    with pytest.raises(SendWindowError) as caught:
        SendWindow.parse(value)  # type: ignore[arg-type]
    assert caught.value.field == "send_window"
    assert str(caught.value).startswith("send_window: ")


def test_unknown_zone_names_the_field() -> None:
    with pytest.raises(SendWindowError, match=r"^tz: 'Mars/Olympus' is not an IANA time zone"):
        zone("Mars/Olympus", "tz")


def test_zones_come_from_the_number() -> None:
    assert zones_for_number("+12125551234") == ("America/New_York",)
    assert zones_for_number("+13105551234") == ("America/Los_Angeles",)
    assert "Europe/London" in zones_for_number("+447911123456")
    assert len(zones_for_number("+18005551234")) > 5  # toll-free: anywhere in the NANP
    assert zones_for_number("not a number") == ()


def test_a_window_that_spans_midnight() -> None:
    night = SendWindow.parse("22:00-06:00")
    assert night.contains(time(23, 30)) and night.contains(time(5, 59)) and not night.contains(time(6, 0))
    assert night.earliest(at("2026-06-01T12:00:00+00:00"), [zone("UTC")]) == at("2026-06-01T22:00:00+00:00")


@pytest.mark.parametrize(("now", "expected"), [
    # Inside the window: now itself.
    ("2026-12-04T15:00:00+00:00", "2026-12-04T15:00:00+00:00"),
    # 07:30 EST the day before the spring-forward: 08:00 EST is 13:00 UTC.
    ("2026-03-07T12:30:00+00:00", "2026-03-07T13:00:00+00:00"),
    # 07:30 EDT on the spring-forward day (clocks jumped at 07:00 UTC): 08:00 EDT is 12:00 UTC.
    ("2026-03-08T11:30:00+00:00", "2026-03-08T12:00:00+00:00"),
    # 02:30 UTC on that day is 21:30 EST the evening before: next opening is 08:00 EDT.
    ("2026-03-08T02:30:00+00:00", "2026-03-08T12:00:00+00:00"),
    # The fall-back day: 07:30 EST, the window opens at 08:00 EST = 13:00 UTC.
    ("2026-11-01T12:30:00+00:00", "2026-11-01T13:00:00+00:00"),
    # 20:59 EDT the day before the fall-back is inside; 21:00 is not.
    ("2026-11-01T00:59:00+00:00", "2026-11-01T00:59:00+00:00"),
    ("2026-11-01T01:00:00+00:00", "2026-11-01T13:00:00+00:00"),
])
def test_new_york_across_dst(now: str, expected: str) -> None:
    assert TCPA.earliest(at(now), [NEW_YORK]) == at(expected)


def test_a_window_that_opens_inside_the_dst_gap_opens_when_the_clock_jumps() -> None:
    # 02:30 does not exist in New York on 2026-03-08: the clock goes from 01:59:59 EST to 03:00 EDT.
    gap = SendWindow.parse("02:30-03:30")
    assert gap.earliest(at("2026-03-08T06:00:00+00:00"), [NEW_YORK]) == at("2026-03-08T07:00:00+00:00")


def test_several_zones_get_the_narrowest_common_window() -> None:
    # New York 08:00-21:00 is 13:00-02:00 UTC, Los Angeles 16:00-05:00 UTC in December: both from 16:00.
    both = [NEW_YORK, zone("America/Los_Angeles")]
    assert TCPA.earliest(at("2026-12-04T14:00:00+00:00"), both) == at("2026-12-04T16:00:00+00:00")
    assert TCPA.earliest(at("2026-12-05T01:59:00+00:00"), both) == at("2026-12-05T01:59:00+00:00")
    assert TCPA.earliest(at("2026-12-05T02:00:00+00:00"), both) == at("2026-12-05T16:00:00+00:00")


def test_zones_that_share_no_moment_give_none() -> None:
    short = SendWindow.parse("09:00-10:00")
    assert short.earliest(at("2026-12-04T00:00:00+00:00"), [zone("Asia/Tokyo"), NEW_YORK]) is None


ZONES = ["America/New_York", "America/Los_Angeles", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe",
         "Pacific/Chatham", "America/St_Johns", "UTC"]


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 1439), length=st.integers(30, 1380),
    moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    names=st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True),
)
def test_earliest_is_allowed_and_nothing_before_it_is(start: int, length: int, moment: datetime,
                                                      names: list[str]) -> None:
    end = (start + length) % 1440
    window = SendWindow(time(start // 60, start % 60), time(end // 60, end % 60))
    zones = [zone(n) for n in names]
    found = window.earliest(moment, zones)
    if found is None:  # then no minute of the next week is allowed in every zone
        assert not any(window.allows(moment + timedelta(minutes=m), zones) for m in range(0, 7 * 1440, 15))
        return
    assert found >= moment and window.allows(found, zones)
    step = moment
    while step < found - timedelta(minutes=1):
        assert not window.allows(step, zones), (step, found)
        step += timedelta(minutes=1)


def test_moments_without_an_offset_are_read_in_the_default_zone() -> None:
    assert parse_moment("2026-12-24T09:00", NEW_YORK) == at("2026-12-24T14:00:00+00:00")
    assert parse_moment("2026-12-24T09:00:00Z", NEW_YORK) == at("2026-12-24T09:00:00+00:00")
    with pytest.raises(SendWindowError, match=r"^send_at: 'tomorrow' is not an ISO 8601"):
        parse_moment("tomorrow", NEW_YORK)
    assert iso(at("2026-12-24T09:00:00.2+00:00")) == "2026-12-24T09:00:01+00:00"  # never early


def test_a_row_whose_zones_share_no_moment_is_invalid_and_names_the_field() -> None:
    from relay_integrations.campaign import Campaign

    rows = [{"phone": "+18005550123"}, {"phone": "+18005550124", "tz": "America/Chicago"}]
    campaign = Campaign("Hi", rows, campaign_id="no-common-moment", send_window=("09:00", "10:00"),
                        timezone_field="tz", skip_invalid=True, clock=lambda: at("2026-12-04T15:30:00+00:00"))
    report = campaign.send(None, dry_run=True)
    assert [r["state"] for r in report.rows] == ["invalid", "would_send"]  # 09:30 in Chicago
    assert report.errors[0]["row"] == 1 and report.errors[0]["field"] == "tz"
    assert "no moment is inside the send window 09:00-10:00" in report.errors[0]["message"]


def test_schedule_at_in_fields_points_to_send_at() -> None:
    from relay_integrations.campaign import Campaign

    with pytest.raises(ValueError, match=r"fields\['schedule_at'\]: use send_at"):
        Campaign("Hi", [], campaign_id="x", fields={"schedule_at": "2026-12-24T09:00:00Z"})
    with pytest.raises(SendWindowError, match=r"^default_timezone: "):
        Campaign("Hi", [], campaign_id="x", default_timezone="Moon/Base")

"""Calendar windows: half-open, contiguous, keyed by start, aligned in the job's time zone.

Every case of the table is named after the rule it pins. Instants are written as ISO 8601 with the
local UTC offset, so a DST case shows on which side of the change each boundary lies.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollup.core.durations import NS_PER_SECOND, parse_duration
from rollup.core.windows import Window, WindowGrid, format_instant, to_ns

S = NS_PER_SECOND
H = 3600  # seconds


def ns(iso: str) -> int:
    return to_ns(dt.datetime.fromisoformat(iso))


class Case(NamedTuple):
    rule: str
    every: str
    zone: str
    offset: str
    start: str  # range asked for, [start, end)
    end: str
    expected: list[tuple[str, int]]  # (window start, length in seconds), oldest first


CASES = [
    Case("utc_days_are_24h", "1d", "UTC", "0s", "2027-01-04T00:00+00:00", "2027-01-06T00:00+00:00",
         [("2027-01-04T00:00+00:00", 24 * H), ("2027-01-05T00:00+00:00", 24 * H)]),
    Case("zurich_spring_forward_day_is_23h", "1d", "Europe/Zurich", "0s",
         "2027-03-27T12:00+01:00", "2027-03-29T12:00+02:00",
         [("2027-03-27T00:00+01:00", 24 * H), ("2027-03-28T00:00+01:00", 23 * H),
          ("2027-03-29T00:00+02:00", 24 * H)]),
    Case("zurich_fall_back_day_is_25h", "1d", "Europe/Zurich", "0s",
         "2027-10-31T12:00+01:00", "2027-10-31T13:00+01:00", [("2027-10-31T00:00+02:00", 25 * H)]),
    Case("new_york_spring_forward_day_is_23h", "1d", "America/New_York", "0s",
         "2027-03-14T12:00-04:00", "2027-03-14T13:00-04:00", [("2027-03-14T00:00-05:00", 23 * H)]),
    Case("new_york_fall_back_day_is_25h", "1d", "America/New_York", "0s",
         "2027-11-07T12:00-05:00", "2027-11-07T13:00-05:00", [("2027-11-07T00:00-04:00", 25 * H)]),
    Case("zurich_3h_across_spring_forward_is_2h", "3h", "Europe/Zurich", "0s",
         "2027-03-28T00:00+01:00", "2027-03-28T06:00+02:00",
         [("2027-03-28T00:00+01:00", 2 * H), ("2027-03-28T03:00+02:00", 3 * H)]),
    Case("zurich_3h_across_fall_back_is_4h", "3h", "Europe/Zurich", "0s",
         "2027-10-31T00:00+02:00", "2027-10-31T06:00+01:00",
         [("2027-10-31T00:00+02:00", 4 * H), ("2027-10-31T03:00+01:00", 3 * H)]),
    Case("new_york_3h_across_spring_forward_is_2h", "3h", "America/New_York", "0s",
         "2027-03-14T00:00-05:00", "2027-03-14T06:00-04:00",
         [("2027-03-14T00:00-05:00", 2 * H), ("2027-03-14T03:00-04:00", 3 * H)]),
    Case("new_york_3h_across_fall_back_is_4h", "3h", "America/New_York", "0s",
         "2027-11-07T00:00-04:00", "2027-11-07T06:00-05:00",
         [("2027-11-07T00:00-04:00", 4 * H), ("2027-11-07T03:00-05:00", 3 * H)]),
    Case("zurich_1h_skipped_hour_has_no_window", "1h", "Europe/Zurich", "0s",
         "2027-03-28T01:00+01:00", "2027-03-28T05:00+02:00",
         [("2027-03-28T01:00+01:00", H), ("2027-03-28T03:00+02:00", H), ("2027-03-28T04:00+02:00", H)]),
    Case("zurich_1h_repeated_hour_gets_its_own_window", "1h", "Europe/Zurich", "0s",
         "2027-10-31T01:00+02:00", "2027-10-31T04:00+01:00",
         [("2027-10-31T01:00+02:00", H), ("2027-10-31T02:00+02:00", H), ("2027-10-31T02:00+01:00", H),
          ("2027-10-31T03:00+01:00", H)]),
    Case("new_york_1h_skipped_hour_has_no_window", "1h", "America/New_York", "0s",
         "2027-03-14T01:00-05:00", "2027-03-14T04:00-04:00",
         [("2027-03-14T01:00-05:00", H), ("2027-03-14T03:00-04:00", H)]),
    Case("new_york_1h_repeated_hour_gets_its_own_window", "1h", "America/New_York", "0s",
         "2027-11-07T01:00-04:00", "2027-11-07T02:00-05:00",
         [("2027-11-07T01:00-04:00", H), ("2027-11-07T01:00-05:00", H)]),
    Case("day_offset_6h_starts_at_0600_and_earlier_instants_belong_to_the_day_before", "1d", "UTC", "6h",
         "2027-01-04T05:00+00:00", "2027-01-05T06:00+00:00",
         [("2027-01-03T06:00+00:00", 24 * H), ("2027-01-04T06:00+00:00", 24 * H)]),
    Case("day_offset_6h_across_spring_forward_is_23h", "1d", "Europe/Zurich", "6h",
         "2027-03-27T12:00+01:00", "2027-03-27T13:00+01:00", [("2027-03-27T06:00+01:00", 23 * H)]),
    Case("3h_offset_1h_starts_at_01_04_07", "3h", "UTC", "1h",
         "2027-01-04T00:00+00:00", "2027-01-04T04:00+00:00",
         [("2027-01-03T22:00+00:00", 3 * H), ("2027-01-04T01:00+00:00", 3 * H)]),
    Case("3h_offset_1h_local_in_zurich", "3h", "Europe/Zurich", "1h",
         "2027-01-04T01:00+01:00", "2027-01-04T04:00+01:00", [("2027-01-04T01:00+01:00", 3 * H)]),
    Case("week_starts_monday", "1w", "UTC", "0s", "2027-01-06T12:00+00:00", "2027-01-06T12:00:01+00:00",
         [("2027-01-04T00:00+00:00", 168 * H)]),
    Case("7d_is_an_iso_week", "7d", "UTC", "0s", "2027-01-10T23:59+00:00", "2027-01-11T00:00+00:00",
         [("2027-01-04T00:00+00:00", 168 * H)]),
    Case("14d_counts_weeks_from_a_monday", "14d", "UTC", "0s",
         "2027-01-04T00:00+00:00", "2027-01-04T00:00:01+00:00", [("2027-01-04T00:00+00:00", 336 * H)]),
    Case("week_in_zurich_across_spring_forward_is_167h", "1w", "Europe/Zurich", "0s",
         "2027-03-24T12:00+01:00", "2027-03-24T13:00+01:00", [("2027-03-22T00:00+01:00", 167 * H)]),
    Case("month_february_2027_has_28_days", "1mo", "UTC", "0s",
         "2027-02-10T00:00+00:00", "2027-02-10T00:00:01+00:00", [("2027-02-01T00:00+00:00", 28 * 24 * H)]),
    Case("leap_month_february_2028_has_29_days", "1mo", "UTC", "0s",
         "2028-02-10T00:00+00:00", "2028-03-10T00:00+00:00",
         [("2028-02-01T00:00+00:00", 29 * 24 * H), ("2028-03-01T00:00+00:00", 31 * 24 * H)]),
    Case("month_in_zurich_with_spring_forward_is_743h", "1mo", "Europe/Zurich", "0s",
         "2027-03-15T00:00+01:00", "2027-03-15T00:00:01+01:00", [("2027-03-01T00:00+01:00", 743 * H)]),
    Case("3mo_are_calendar_quarters", "3mo", "UTC", "0s",
         "2027-05-15T00:00+00:00", "2027-07-01T00:00:01+00:00",
         [("2027-04-01T00:00+00:00", 91 * 24 * H), ("2027-07-01T00:00+00:00", 92 * 24 * H)]),
    Case("leap_day_is_a_1d_window", "1d", "UTC", "0s", "2028-02-28T12:00+00:00", "2028-03-01T12:00+00:00",
         [("2028-02-28T00:00+00:00", 24 * H), ("2028-02-29T00:00+00:00", 24 * H),
          ("2028-03-01T00:00+00:00", 24 * H)]),
    Case("windows_of_five_seconds", "5s", "UTC", "0s",
         "2027-01-04T10:00:03+00:00", "2027-01-04T10:00:12+00:00",
         [("2027-01-04T10:00:00+00:00", 5), ("2027-01-04T10:00:05+00:00", 5),
          ("2027-01-04T10:00:10+00:00", 5)]),
    Case("five_second_windows_stay_5s_across_spring_forward", "5s", "Europe/Zurich", "0s",
         "2027-03-28T01:59:55+01:00", "2027-03-28T03:00:05+02:00",
         [("2027-03-28T01:59:55+01:00", 5), ("2027-03-28T03:00:00+02:00", 5)]),
    Case("7m_does_not_divide_a_day_and_is_aligned_to_the_epoch_whatever_the_zone",
         "7m", "Europe/Zurich", "0s",
         "2027-01-04T00:00+00:00", "2027-01-04T00:07+00:00",
         [("2027-01-03T23:54+00:00", 420), ("2027-01-04T00:01+00:00", 420)]),
    Case("7m_offset_3m_shifts_the_epoch_grid", "7m", "UTC", "3m",
         "2027-01-04T00:00+00:00", "2027-01-04T00:00:01+00:00", [("2027-01-03T23:57+00:00", 420)]),
    Case("5h_is_fixed_length_from_the_epoch", "5h", "America/New_York", "0s",
         "2027-01-04T00:00+00:00", "2027-01-04T00:00:01+00:00", [("2027-01-03T21:00+00:00", 5 * H)]),
    # America/Santiago jumps from 00:00 to 01:00 (local midnight does not exist) and falls back from
    # 24:00 to 23:00; America/Havana jumps 00:00 -> 01:00 and falls back 01:00 -> 00:00 (midnight twice).
    Case("santiago_nonexistent_midnight_day_starts_at_0100_and_is_23h", "1d", "America/Santiago", "0s",
         "2027-09-04T12:00-04:00", "2027-09-05T12:00-03:00",
         [("2027-09-04T00:00-04:00", 24 * H), ("2027-09-05T01:00-03:00", 23 * H)]),
    Case("santiago_1h_has_no_window_at_nonexistent_midnight", "1h", "America/Santiago", "0s",
         "2027-09-04T23:00-04:00", "2027-09-05T02:00-03:00",
         [("2027-09-04T23:00-04:00", H), ("2027-09-05T01:00-03:00", H)]),
    Case("santiago_3h_nonexistent_midnight_moves_forward_like_the_day", "3h", "America/Santiago", "0s",
         "2027-09-04T21:00-04:00", "2027-09-05T06:00-03:00",
         [("2027-09-04T21:00-04:00", 3 * H), ("2027-09-05T01:00-03:00", 2 * H),
          ("2027-09-05T03:00-03:00", 3 * H)]),
    Case("santiago_fall_back_at_midnight_day_is_25h", "1d", "America/Santiago", "0s",
         "2027-04-03T12:00-03:00", "2027-04-03T13:00-03:00", [("2027-04-03T00:00-03:00", 25 * H)]),
    Case("santiago_1h_repeated_2300_gets_its_own_window", "1h", "America/Santiago", "0s",
         "2027-04-03T23:00-03:00", "2027-04-04T01:00-04:00",
         [("2027-04-03T23:00-03:00", H), ("2027-04-03T23:00-04:00", H), ("2027-04-04T00:00-04:00", H)]),
    Case("havana_nonexistent_midnight_day_starts_at_0100", "1d", "America/Havana", "0s",
         "2027-03-14T12:00-04:00", "2027-03-14T13:00-04:00", [("2027-03-14T01:00-04:00", 23 * H)]),
    Case("havana_3h_nonexistent_midnight_moves_forward_like_the_day", "3h", "America/Havana", "0s",
         "2027-03-13T21:00-05:00", "2027-03-14T03:00-04:00",
         [("2027-03-13T21:00-05:00", 3 * H), ("2027-03-14T01:00-04:00", 2 * H)]),
    Case("havana_repeated_midnight_day_starts_at_the_first_and_is_25h", "1d", "America/Havana", "0s",
         "2027-11-07T12:00-05:00", "2027-11-07T13:00-05:00", [("2027-11-07T00:00-04:00", 25 * H)]),
    Case("havana_1h_repeated_midnight_gets_its_own_window", "1h", "America/Havana", "0s",
         "2027-11-07T00:00-04:00", "2027-11-07T02:00-05:00",
         [("2027-11-07T00:00-04:00", H), ("2027-11-07T00:00-05:00", H), ("2027-11-07T01:00-05:00", H)]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_windows_table(case: Case) -> None:
    grid = WindowGrid(case.every, case.zone, case.offset)
    got = grid.windows(ns(case.start), ns(case.end))
    expected = [Window(ns(start), ns(start) + length * S) for start, length in case.expected]
    assert [str(w) for w in got] == [str(w) for w in expected]
    assert got == expected


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_window_at_is_start_keyed_and_half_open(case: Case) -> None:
    grid = WindowGrid(case.every, case.zone, case.offset)
    for start, length in case.expected:
        window = Window(ns(start), ns(start) + length * S)
        assert grid.window_at(window.start) == window
        assert grid.window_at(window.end - 1) == window
        assert grid.window_at(window.end).start == window.end
        assert grid.window_at(window.start - 1).end == window.start


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_boundaries_bracket_the_range(case: Case) -> None:
    grid = WindowGrid(case.every, case.zone, case.offset)
    start, end = ns(case.start), ns(case.end)
    bounds = grid.boundaries(start, end)
    assert bounds.dtype == np.int64
    assert bounds[0] <= start < bounds[1]
    assert bounds[-2] < end <= bounds[-1]
    assert np.all(np.diff(bounds) > 0)


def test_sub_day_windows_nest_in_days_across_a_nonexistent_midnight() -> None:
    """A 3h grid and a 1d grid in the same zone agree on where each day starts."""
    zone = "America/Santiago"
    days = WindowGrid("1d", zone)
    hours = WindowGrid("3h", zone)
    start, end = ns("2027-09-03T00:00-04:00"), ns("2027-09-07T00:00-03:00")
    day_starts = set(days.boundaries(start, end).tolist())
    assert day_starts <= set(hours.boundaries(start, end).tolist())


def test_boundaries_of_an_empty_range_give_the_window_of_its_start() -> None:
    grid = WindowGrid("1h")
    t = ns("2027-01-04T10:30+00:00")
    assert grid.boundaries(t, t).tolist() == [ns("2027-01-04T10:00+00:00"), ns("2027-01-04T11:00+00:00")]


def test_range_ending_on_a_boundary_does_not_include_the_next_window() -> None:
    grid = WindowGrid("1d", "Europe/Zurich")
    windows = grid.windows(ns("2027-03-28T00:00+01:00"), ns("2027-03-29T00:00+02:00"))
    assert len(windows) == 1


def test_windows_are_ordered_and_keyed_by_start() -> None:
    a, b = Window(0, 10), Window(10, 20)
    assert sorted([b, a]) == [a, b]
    assert str(Window(0, 1500)) == "[1970-01-01T00:00:00+00:00, 1970-01-01T00:00:00.000001+00:00)"
    assert str(Window(0, 3600 * S)) == "[1970-01-01T00:00:00+00:00, 1970-01-01T01:00:00+00:00)"


def test_grid_accepts_a_parsed_duration() -> None:
    assert WindowGrid(parse_duration("1h")).windows(0, 1) == [Window(0, 3600 * S)]


def test_nominal_length_counts_a_month_as_31_days() -> None:
    assert WindowGrid("3mo").nominal_ns() == 93 * 86400 * S
    assert WindowGrid("90m").nominal_ns() == 5400 * S


INVALID = [
    # (rule, every, zone, offset, words of the message)
    ("unknown_zone", "1d", "Mars/Olympus_Mons", "0s", "unknown time zone 'Mars/Olympus_Mons'"),
    ("zone_path_traversal", "1d", "../etc/passwd", "0s", "unknown time zone"),
    ("zero_window", "0s", "UTC", "0s", "window '0s': a window must be longer than zero"),
    ("bare_zero_window", "0", "UTC", "0s", "a window must be longer than zero"),
    ("zero_months_window", "0mo", "UTC", "0s", "a window must be longer than zero"),
    ("offset_equal_to_window", "3h", "UTC", "3h", "offset '3h': .* shorter than the window \\(3h\\)"),
    ("offset_longer_than_window", "7m", "UTC", "10m", "offset '10m': .* shorter than the window \\(7m\\)"),
    ("offset_of_a_whole_day_on_days", "1d", "UTC", "1d", "offset '1d': .* shorter than a day"),
    ("offset_of_a_day_on_weeks", "1w", "UTC", "24h", "offset '24h': .* shorter than a day"),
    ("offset_of_a_day_on_months", "1mo", "UTC", "1d", "offset '1d': .* shorter than a day"),
    ("calendar_offset", "1mo", "UTC", "1mo", "offset '1mo': an offset must have a fixed length"),
    ("unparsable_window", "3x", "UTC", "0s", "invalid duration '3x'"),
    ("unparsable_offset", "1d", "UTC", "six hours", "invalid duration 'six hours'"),
]


@pytest.mark.parametrize(("every", "zone", "offset", "message"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])  # fmt: skip
def test_invalid_grid_raises_value_error_naming_the_problem(
    every: str, zone: str, offset: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        WindowGrid(every, zone, offset)


def test_to_ns_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        to_ns(dt.datetime(2027, 1, 1))


def test_to_ns_is_exact_to_the_microsecond() -> None:
    moment = dt.datetime(2027, 1, 4, 0, 0, 0, 123456, tzinfo=dt.UTC)
    assert to_ns(moment) == 1_799_020_800 * S + 123_456_000


def test_format_instant_shows_seconds_or_a_fraction_and_the_zone_offset() -> None:
    from zoneinfo import ZoneInfo

    t = ns("2027-03-28T03:00+02:00")
    assert format_instant(t) == "2027-03-28T01:00:00+00:00"
    assert format_instant(t, ZoneInfo("Europe/Zurich")) == "2027-03-28T03:00:00+02:00"
    assert format_instant(t + 1_500_000) == "2027-03-28T01:00:00.001500+00:00"


# -- properties ---------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Zurich", "America/New_York", "America/Santiago", "America/Havana",
         "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham", "Pacific/Apia"]  # fmt: skip
GRIDS = [("30s", "0s"), ("5s", "2s"), ("1m", "0s"), ("7m", "3m"), ("15m", "5m"), ("1h", "0s"),
         ("1h", "30m"), ("2h", "0s"), ("3h", "1h"), ("5h", "0s"), ("90m", "0s"), ("12h", "0s"),
         ("1d", "0s"), ("1d", "6h"), ("2d", "0s"), ("1w", "0s"), ("14d", "0s"), ("1mo", "0s"),
         ("3mo", "0s"), ("1mo", "6h")]  # fmt: skip
# 1990 .. 2045: past transitions from the tz database and future ones from its POSIX rules.
INSTANTS = st.integers(min_value=631_152_000 * S, max_value=2_366_841_600 * S)


@settings(max_examples=150, deadline=None)
@given(zone=st.sampled_from(ZONES), grid=st.sampled_from(GRIDS), instant=INSTANTS)
def test_property_window_at_contains_the_instant(zone: str, grid: tuple[str, str], instant: int) -> None:
    g = WindowGrid(grid[0], zone, grid[1])
    window = g.window_at(instant)
    assert window.start <= instant < window.end
    assert g.window_at(window.start) == window
    assert g.window_at(window.end - 1) == window


@settings(max_examples=100, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    grid=st.sampled_from(GRIDS),
    instant=INSTANTS,
    span=st.floats(min_value=0.0, max_value=4.0),
)
def test_property_windows_are_contiguous_and_cover_the_range(
    zone: str, grid: tuple[str, str], instant: int, span: float
) -> None:
    g = WindowGrid(grid[0], zone, grid[1])
    end = instant + max(1, int(span * g.nominal_ns()))
    windows = g.windows(instant, end)
    assert windows[0].start <= instant
    assert windows[-1].end >= end
    assert all(w.start < w.end for w in windows)
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    # Only windows overlapping [instant, end): no spare window on either side.
    assert windows[0].end > instant
    assert windows[-1].start < end
    # Every window found is the one window_at returns for its start.
    for w in (windows[0], windows[-1]):
        assert g.window_at(w.start) == w


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    every=st.sampled_from(["10s", "15m", "1h", "2h", "3h", "12h"]),
    instant=INSTANTS,
)
def test_property_sub_day_grids_nest_in_the_day_grid(zone: str, every: str, instant: int) -> None:
    """Every start of a local day is also a boundary of any grid that divides a day."""
    day = WindowGrid("1d", zone).window_at(instant)
    sub = WindowGrid(every, zone)
    assert sub.window_at(day.start).start == day.start
    assert sub.window_at(day.end).start == day.end


# -- days with a UTC offset change ------------------------------------------------------------


def _shown_boundaries(zone: str, day: dt.date, every: str, offset: str) -> set[int]:
    """The definition, one wall time at a time: every instant whose local time on ``day`` is
    ``00:00 + offset + k × every``; a nonexistent local midnight moves forward to the first instant."""
    tz = ZoneInfo(zone)
    midnight = dt.datetime(day.year, day.month, day.day)
    size, shift = parse_duration(every).nanos // 1000, parse_duration(offset).nanos // 1000
    found: set[int] = set()
    for k in range(86_400_000_000 // size):
        wall = midnight + dt.timedelta(microseconds=shift + k * size)
        shows = False
        for fold in (0, 1):
            instant = wall.replace(tzinfo=tz, fold=fold)
            if instant.astimezone(dt.UTC).astimezone(tz).replace(tzinfo=None) == wall:
                found.add(to_ns(instant))
                shows = True
        if shift + k * size == 0 and not shows:
            found.add(to_ns(wall.replace(tzinfo=tz)))
    return found


def _offset_change_days(zone: str, first: int, last: int) -> list[dt.date]:
    tz = ZoneInfo(zone)
    days = []
    day = dt.date(first, 1, 1)
    while day.year <= last:
        start = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
        after = start + dt.timedelta(days=1)
        if start.utcoffset() != after.utcoffset():
            days.append(day)
        day += dt.timedelta(days=1)
    return days


@pytest.mark.parametrize("zone", ZONES[1:])
@pytest.mark.parametrize(("every", "offset"), [("10m", "0s"), ("15m", "5m"), ("1h", "30m"), ("3h", "1h")])
def test_boundaries_on_offset_change_days_are_the_instants_showing_a_boundary_wall_time(
    zone: str, every: str, offset: str
) -> None:
    """Every day on which the zone changes its UTC offset (DST, or a change of standard time; Apia
    skipped 2011-12-30 altogether) between 1995 and 2040: the boundaries the grid gives for that
    day are exactly those of the definition, computed wall time by wall time."""
    grid = WindowGrid(every, zone, offset)
    days = _offset_change_days(zone, 1995, 2040)
    assert days or zone == "Asia/Kolkata"
    tz = ZoneInfo(zone)
    for day in days:
        expected = _shown_boundaries(zone, day, every, offset)
        low = to_ns(dt.datetime(day.year, day.month, day.day, tzinfo=tz) - dt.timedelta(hours=3))
        high = to_ns(dt.datetime(day.year, day.month, day.day, tzinfo=tz) + dt.timedelta(hours=27))
        bounds = [int(b) for b in grid.boundaries(low, high)]
        # A nonexistent midnight moves forward, perhaps into the next day (Apia, 2011-12-30).
        found = {b for b in bounds if _local_date(b, tz) == day or b in expected}
        assert found == expected, f"{zone} {day}"


def _local_date(instant: int, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(instant // S, dt.UTC).astimezone(tz).date()

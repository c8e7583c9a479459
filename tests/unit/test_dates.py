"""The days the tests that write windows take from the clock (tests/dates.py): always in the past
by as much as asked, and of the kind asked for, on any date."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests import dates

ZURICH = ZoneInfo("Europe/Zurich")


def on(moment: str) -> time_machine.travel:
    return time_machine.travel(dt.datetime.fromisoformat(moment), tick=False)


def test_a_monday_is_the_latest_one_at_least_so_many_days_ago() -> None:
    with on("2026-12-02T05:55:00+00:00"):  # a Wednesday
        assert dates.monday(0) == dt.date(2026, 11, 30)
        assert dates.monday(2) == dt.date(2026, 11, 30)
        assert dates.monday(3) == dt.date(2026, 11, 23)
        assert dates.monday(7) == dt.date(2026, 11, 23)
    with on("2026-11-30T00:00:00+00:00"):  # a Monday, at its first instant
        assert dates.monday(0) == dt.date(2026, 11, 30)
        assert dates.monday(1) == dt.date(2026, 11, 23)


def test_today_is_the_date_in_the_zone_asked_for() -> None:
    with on("2026-11-29T23:30:00+00:00"):  # Sunday in UTC, already Monday in Zurich
        assert dates.today() == dt.date(2026, 11, 29)
        assert dates.today(ZURICH) == dt.date(2026, 11, 30)
        assert dates.monday(0, ZURICH) == dt.date(2026, 11, 30)
        assert dates.monday(0) == dt.date(2026, 11, 23)


def test_a_monday_whose_days_include_a_clock_change_or_a_months_end_is_passed_over() -> None:
    with on("2027-04-02T12:00:00+00:00"):  # clocks went forward on Sunday 28 March 2027
        assert dates.monday(5, ZURICH, days=7) == dt.date(2027, 3, 15)
        assert dates.monday(5, dt.UTC, days=7) == dt.date(2027, 3, 22)
    with on("2026-12-02T05:55:00+00:00"):
        assert dates.monday(0, days=2) == dt.date(2026, 11, 30)
        assert dates.monday(0, days=2, one_month=True) == dt.date(2026, 11, 23)


def test_a_month_start_follows_a_24_hour_last_day_of_the_month() -> None:
    with on("2026-12-02T05:55:00+00:00"):
        assert dates.month_start(1) == dt.date(2026, 12, 1)
        assert dates.month_start(2, ZURICH) == dt.date(2026, 11, 1)
    with on("2027-11-05T12:00:00+00:00"):  # 31 October 2027 lasts 25 hours in Zurich
        assert dates.month_start(1, ZURICH) == dt.date(2027, 10, 1)
        assert dates.month_start(1) == dt.date(2027, 11, 1)


def test_the_spring_forward_day_lasts_23_hours_and_is_in_the_past() -> None:
    with on("2026-12-02T05:55:00+00:00"):
        assert dates.spring_forward(1, ZURICH) == dt.date(2026, 3, 29)
    with on("2026-03-29T12:00:00+00:00"):
        assert dates.spring_forward(0, ZURICH) == dt.date(2026, 3, 29)
        assert dates.spring_forward(1, ZURICH) == dt.date(2025, 3, 30)
    assert dates.length(dt.date(2026, 3, 29), ZURICH) == 23 * 3600
    assert dates.length(dt.date(2026, 10, 25), ZURICH) == 25 * 3600
    with pytest.raises(LookupError, match="no 23-hour day"):
        dates.spring_forward(0, dt.UTC)


def test_instants_are_written_as_the_cli_takes_them_and_as_rollup_writes_them() -> None:
    start = dates.seconds(dt.date(2026, 11, 1), ZURICH)
    assert start == int(dt.datetime(2026, 10, 31, 23, tzinfo=dt.UTC).timestamp())
    assert dates.utc_minute(start + 20 * 60) == "2026-10-31T23:20Z"
    assert dates.local_stamp(start, ZURICH) == "2026-11-01T00:00:00+01:00"
    assert dates.local_stamp(dates.seconds(dt.date(2026, 11, 2))) == "2026-11-02T00:00:00+00:00"


def test_a_month_with_a_clock_change_is_over_and_has_a_day_of_23_or_25_hours() -> None:
    with on("2026-12-02T05:55:00+00:00"):
        assert dates.month_with_clock_change(1, ZURICH) == dt.date(2026, 10, 1)
        assert dates.month_with_clock_change(40, ZURICH) == dt.date(2026, 3, 1)
    with on("2026-10-31T12:00:00+00:00"):  # October 2026 is not over yet
        assert dates.month_with_clock_change(0, ZURICH) == dt.date(2026, 3, 1)
    assert dates.next_month(dt.date(2026, 12, 1)) == dt.date(2027, 1, 1)
    assert dates.next_month(dt.date(2027, 2, 1)) == dt.date(2027, 3, 1)

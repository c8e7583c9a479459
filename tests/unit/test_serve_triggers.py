"""When rollup serve fires a job's pass: as each window closes (end + delay) on the job's own
calendar, and at least every sweep."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from rollup.core.durations import parse_fixed_duration
from rollup.core.windows import WindowGrid
from rollup.service.triggers import WindowCloseTrigger, pass_trigger

ZURICH = ZoneInfo("Europe/Zurich")
UTC = dt.UTC


def fire_times(trigger: object, now: dt.datetime, count: int) -> list[dt.datetime]:
    """The first ``count`` fire times from ``now``, as APScheduler asks for them."""
    times = [trigger.get_next_fire_time(None, now)]  # type: ignore[attr-defined]
    while len(times) < count:
        times.append(trigger.get_next_fire_time(times[-1], times[-1]))  # type: ignore[attr-defined]
    return times


def closing(every: str, delay: str, timezone: str = "UTC") -> WindowCloseTrigger:
    return WindowCloseTrigger(WindowGrid(every, timezone), parse_fixed_duration(delay))


def test_two_second_windows_fire_every_two_seconds_one_delay_after_each_end() -> None:
    now = dt.datetime(2026, 11, 2, 10, 0, 0, 500_000, tzinfo=UTC)
    assert fire_times(closing("2s", "1s"), now, 4) == [
        dt.datetime(2026, 11, 2, 10, 0, s, tzinfo=UTC) for s in (1, 3, 5, 7)
    ]


def test_the_first_fire_time_may_be_now_and_each_next_one_is_strictly_later() -> None:
    trigger = closing("2s", "1s")
    at_close = dt.datetime(2026, 11, 2, 10, 0, 1, tzinfo=UTC)
    assert trigger.get_next_fire_time(None, at_close) == at_close
    assert trigger.get_next_fire_time(at_close, at_close) == at_close + dt.timedelta(seconds=2)


def test_a_daily_job_fires_after_local_midnight_and_dst_days_are_23_and_25_hours_apart() -> None:
    trigger = closing("1d", "15m", "Europe/Zurich")
    spring = fire_times(trigger, dt.datetime(2026, 3, 27, 12, tzinfo=ZURICH), 3)
    assert [t.astimezone(ZURICH).isoformat() for t in spring] == [
        "2026-03-28T00:15:00+01:00",
        "2026-03-29T00:15:00+01:00",
        "2026-03-30T00:15:00+02:00",
    ]
    assert spring[2] - spring[1] == dt.timedelta(hours=23)
    autumn = fire_times(trigger, dt.datetime(2026, 10, 24, 12, tzinfo=ZURICH), 2)
    assert [t.astimezone(ZURICH).isoformat() for t in autumn] == [
        "2026-10-25T00:15:00+02:00",
        "2026-10-26T00:15:00+01:00",
    ]
    assert autumn[1] - autumn[0] == dt.timedelta(hours=25)


def test_three_hour_windows_follow_the_local_clock_through_the_skipped_hour() -> None:
    trigger = closing("3h", "0s", "Europe/Zurich")
    times = fire_times(trigger, dt.datetime(2026, 3, 28, 23, 30, tzinfo=ZURICH), 3)
    assert [t.astimezone(ZURICH).isoformat() for t in times] == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-29T03:00:00+02:00",  # 01:00 to 03:00 local lasted only 2 hours
        "2026-03-29T06:00:00+02:00",
    ]


def test_monthly_windows_fire_on_the_first_of_each_month() -> None:
    times = fire_times(closing("1mo", "1h"), dt.datetime(2026, 1, 15, tzinfo=UTC), 3)
    assert times == [dt.datetime(2026, m, 1, 1, tzinfo=UTC) for m in (2, 3, 4)]


@pytest.mark.parametrize(
    ("every", "sweep", "expected"),
    [
        (
            "1d",
            60.0,
            [dt.datetime(2026, 11, 2, 0, 16, tzinfo=UTC), dt.datetime(2026, 11, 2, 0, 17, tzinfo=UTC)],
        ),
        (
            "2s",
            60.0,
            [dt.datetime(2026, 11, 2, 0, 15, 2, tzinfo=UTC), dt.datetime(2026, 11, 2, 0, 15, 4, tzinfo=UTC)],
        ),
    ],
    ids=["sweep-between-daily-closes", "closes-more-often-than-the-sweep"],
)
def test_a_pass_fires_at_each_close_and_at_most_a_sweep_after_the_previous_pass(
    every: str, sweep: float, expected: list[dt.datetime]
) -> None:
    trigger = pass_trigger(WindowGrid(every, "UTC"), 0, sweep)
    previous = dt.datetime(2026, 11, 2, 0, 15, tzinfo=UTC)
    first = trigger.get_next_fire_time(previous, previous)
    assert [first, trigger.get_next_fire_time(first, first)] == expected

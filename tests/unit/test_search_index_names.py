"""Index names with a date suffix in the job's time zone; the template's pattern and priority."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from rollup.core.windows import to_ns
from rollup.errors import ConfigError
from rollup.sinks.search.index_names import IndexNames, check_pattern

ZURICH = ZoneInfo("Europe/Zurich")


def at(*args: int, zone: dt.tzinfo = ZURICH) -> int:
    return to_ns(dt.datetime(*args, tzinfo=zone))  # type: ignore[misc]


def names(
    pattern: str = "rollup-{job}-{yyyy.MM}", job: str = "bw", timezone: str = "Europe/Zurich"
) -> IndexNames:
    return IndexNames.of(pattern, job, "bw_daily", timezone)


def test_a_local_day_starting_before_midnight_utc_is_in_its_local_month() -> None:
    """2026-11-01 00:00 in Zurich is 2026-10-31T23:00Z: the November index all the same."""
    start = at(2026, 11, 1)
    assert start == at(2026, 10, 31, 23, zone=dt.UTC)
    assert names().name(start) == "rollup-bw-2026.11"
    assert names().name(at(2026, 10, 31)) == "rollup-bw-2026.10"


def test_a_utc_job_uses_utc_dates() -> None:
    assert names(timezone="UTC").name(at(2026, 10, 31, 23, zone=dt.UTC)) == "rollup-bw-2026.10"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("rollup-{job}-{yyyy.MM}", "rollup-bw-2026.03"),
        ("rollup-{job}-{yyyy.MM.dd}", "rollup-bw-2026.03.29"),
        ("rollup-{job}-{yyyy}", "rollup-bw-2026"),
        ("rollup-{job}-{yyyy-MM-dd}", "rollup-bw-2026-03-29"),
        ("rollup-{job}-{yyyyMMdd}", "rollup-bw-20260329"),
        ("metrics-{measurement}-{yyyy_MM}", "metrics-bw_daily-2026_03"),
        ("{yyyy}.{MM}-{job}", "2026.03-bw"),
        ("rollups", "rollups"),
    ],
)
def test_placeholders(pattern: str, expected: str) -> None:
    assert names(pattern).name(at(2026, 3, 29, 1)) == expected


def test_job_names_are_lowercased() -> None:
    assert names(job="Interface.Daily").name(at(2026, 3, 1)) == "rollup-interface.daily-2026.03"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("rollup-{jobs}-{yyyy.MM}", "unknown placeholder {jobs}"),
        ("rollup-{job}-{YYYY.MM}", "unknown placeholder {YYYY.MM}"),
        ("rollup-{job}-{yyyy.MM", "unbalanced brace"),
        ("Rollup-{job}", "capital letters"),
        ("rollup {job}", "contains ' '"),
        ("rollup-*-{job}", "contains '*'"),
        ("_rollup-{job}", "cannot be empty or start with"),
        ("{job}" + "x" * 300, "at most 255 bytes"),
    ],
)
def test_invalid_patterns_are_refused_with_the_reason(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        check_pattern(pattern)


def test_a_measurement_that_makes_no_valid_index_name_is_a_config_error_naming_the_job() -> None:
    with pytest.raises(
        ConfigError, match=r"job bw: index pattern 'r-\{measurement\}' gives no valid index name: .*'#'"
    ):
        IndexNames.of("r-{measurement}", "bw", "if#stats", "UTC")


def test_template_pattern_name_and_priority() -> None:
    daily = names("rollup-{job}-{yyyy.MM}", job="interface-daily")
    plain = names("rollup-{job}-{yyyy.MM}", job="interface")
    assert daily.wildcard == "rollup-interface-daily-*"
    assert plain.wildcard == "rollup-interface-*"
    assert daily.template_name == "rollup-interface-daily-yyyy.mm"
    # Both patterns match rollup-interface-daily-2026.11: the more specific template must win.
    assert daily.priority > plain.priority
    assert names("{yyyy}.{MM}-{job}").wildcard == "*.*-bw"

"""Jobs that read jobs, checked against each other when loaded (rollup.jobs.ladder): windows that
nest, coarser groups, what a merge needs, the sink read, cycles — every refusal names both jobs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from rollup.core.windows import WindowGrid
from rollup.errors import ConfigError
from rollup.jobs.ladder import Ladder, resolve, window_problem
from rollup.jobs.loader import load_job
from rollup.jobs.spec import JobSpec
from rollup.sinks.elasticsearch import ElasticsearchSinkProfile
from rollup.sinks.influxdb import InfluxSinkProfile

ZURICH = "Europe/Zurich"


@pytest.mark.parametrize(
    ("up", "down"),
    [
        (("3h", ZURICH), ("1d", ZURICH)),
        (("1h", ZURICH), ("3h", ZURICH)),
        (("1d", ZURICH), ("1w", ZURICH)),
        (("1d", ZURICH), ("1mo", ZURICH)),
        (("1mo", ZURICH), ("3mo", ZURICH)),
        (("1mo", ZURICH), ("12mo", ZURICH)),
        (("1w", "UTC"), ("2w", "UTC")),
        (("1d", "UTC", "6h"), ("1mo", "UTC", "6h")),
        (("3h", ZURICH), ("1d", ZURICH, "6h")),  # 06:00 always exists in Zurich
        (("1h", ZURICH), ("1d", ZURICH, "2h")),  # 02:00 skipped in spring: the day starts at 03:00, an hour
        (("5m", "UTC"), ("1h", "UTC")),
        (("7m", "UTC"), ("21m", "UTC")),
        (("1d", ZURICH), ("1d", ZURICH)),  # the same windows: groups may still merge
        (("2d", "UTC"), ("4w", "UTC")),  # 2-day windows from 1970-01-01 meet Mondays from 1970-01-05
    ],
)
def test_windows_that_are_unions_of_whole_upstream_windows_are_accepted(
    up: tuple[str, ...], down: tuple[str, ...]
) -> None:
    assert window_problem(WindowGrid(*down), WindowGrid(*up)) is None


@pytest.mark.parametrize(
    ("up", "down", "reason"),
    [
        (("1d", "UTC"), ("1d", ZURICH), "time zone Europe/Zurich is not that of the job it reads (UTC)"),
        (("1w", ZURICH), ("1mo", ZURICH), "not unions of whole windows"),
        (("1d", ZURICH), ("1d", ZURICH, "6h"), "1d + offset 6h"),
        (("3h", ZURICH), ("1h", ZURICH), "not unions"),
        (("3h", ZURICH, "1h"), ("1d", ZURICH), "not unions"),
        (("2d", "UTC"), ("1w", "UTC"), "not unions"),  # weeks have 7 days
        (("5h", "UTC"), ("1d", "UTC"), "not unions"),
        (("3h", ZURICH, "2h"), ("1d", ZURICH, "2h"), "not unions"),  # the spring day starts at 03:00
        (("1d", ZURICH), ("3mo", ZURICH, "1h"), "not unions"),
    ],
)
def test_windows_that_are_not_unions_of_whole_upstream_windows_are_refused(
    up: tuple[str, ...], down: tuple[str, ...], reason: str
) -> None:
    problem = window_problem(WindowGrid(*down), WindowGrid(*up))
    assert problem is not None
    assert reason in problem


# -- whole jobs ----------------------------------------------------------------------------------------

SINKS: dict[str, BaseModel] = {
    "longterm": InfluxSinkProfile(type="influxdb", url="http://127.0.0.1:8086", database="rollups"),
    "search": ElasticsearchSinkProfile(type="elasticsearch", url="http://127.0.0.1:9200"),
}

DAILY: dict[str, Any] = {
    "name": "daily",
    "group_by": ["host", "if"],
    "source": {"profile": "buffer", "database": "telegraf", "measurement": "interface"},
    "window": {"every": "1d", "timezone": ZURICH},
    "fields": {
        "octets": {"as": "in", "scale": 8, "aggregates": ["mean", "count", "max", "increase", "last", "p95"]},
        "temp": {"kind": "gauge", "aggregates": ["mean", "count", "stddev"]},
    },
    "output": {"measurement": "daily", "sinks": ["search", "longterm"]},
}
MONTHLY: dict[str, Any] = {
    "name": "monthly",
    "group_by": ["host", "if"],
    "source": {"job": "daily"},
    "window": {"every": "1mo", "timezone": ZURICH},
    "fields": {"in": {"aggregates": ["mean", "max", "rate", "last"]}, "temp": {"aggregates": ["stddev"]}},
    "output": {"measurement": "monthly", "sinks": ["longterm"]},
}


def job(base: dict[str, Any], **changes: Any) -> JobSpec:
    data = copy.deepcopy(base)
    for key, value in changes.items():
        target = data
        *path, last = key.split("__")
        for part in path:
            target = target.setdefault(part, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return JobSpec(**data)


def ladder(*jobs: JobSpec, unusable: dict[str, str] | None = None) -> Ladder:
    return resolve(list(jobs), SINKS, unusable or {})


def problem(*jobs: JobSpec) -> str:
    found = ladder(*jobs).problems
    assert list(found) == [jobs[-1].name], found
    return found[jobs[-1].name]


def test_a_monthly_job_reads_the_daily_jobs_influxdb_sink_with_its_kinds_and_units() -> None:
    daily = job(DAILY, fields__octets__aggregates=["mean", "count", "max", "increase", "last"])
    found = ladder(daily, job(MONTHLY, fields__temp=None))
    (upstream,) = found.upstreams.values()
    assert (upstream.job.name, upstream.sink, upstream.database, upstream.measurement) == (
        "daily", "longterm", "rollups", "daily",
    )  # fmt: skip
    (rule,) = upstream.merge.rollup.fields
    assert (rule.name, rule.kind, rule.unit_seconds, rule.aggregates) == (
        "in",
        "counter",
        1.0,
        ("mean", "max", "rate", "last"),
    )
    assert upstream.merge.merged_groups is False
    assert found.downstream_of("daily") == ["monthly"]


def test_a_rate_needs_the_increase_and_the_message_says_where_to_add_it() -> None:
    daily = job(DAILY, fields__octets__aggregates=["mean", "max", "last"])
    message = problem(daily, job(MONTHLY, fields__temp=None))
    assert message.startswith("job monthly reads job daily: fields.in: job daily must also write")
    assert "'count', 'increase'" in message
    assert "[fields.octets]" in message
    assert "in_mean from in_mean and in_count" in message
    assert "in_rate from in_increase" in message
    assert "rollup backfill daily --force" in message


def test_stddev_needs_count_mean_and_stddev_of_each_day() -> None:
    daily = job(DAILY, fields__temp__aggregates=["mean", "stddev"])
    message = problem(daily, job(MONTHLY, fields__in__aggregates=["max"]))
    assert "fields.temp: job daily must also write 'count'" in message


def test_merging_interfaces_into_devices_needs_the_time_of_last() -> None:
    per_device = job(MONTHLY, name="monthly", group_by=["host"], fields__temp=None)
    message = problem(job(DAILY), per_device)
    assert "'last_time'" in message
    daily = job(DAILY, fields__octets__aggregates=["mean", "count", "max", "increase", "last", "last_time"])
    found = ladder(daily, per_device)
    assert found.upstreams["monthly"].merge.merged_groups is True


def test_groups_can_only_become_coarser() -> None:
    message = problem(job(DAILY), job(MONTHLY, group_by=["host", "ifAlias"]))
    assert message == (
        "job monthly reads job daily: group_by: 'ifAlias' is not a group_by tag of job daily "
        "(host, if): groups can only be merged into coarser ones"
    )


def test_a_where_on_a_tag_the_rows_do_not_carry_is_refused() -> None:
    message = problem(job(DAILY), job(MONTHLY, source__where={"vlan": "7"}))
    assert "source.where: 'vlan' is not a group_by tag of job daily" in message


def test_percentiles_are_refused_when_the_job_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "monthly.toml"
    path.write_text(
        '[source]\njob = "daily"\n[window]\nevery = "1mo"\n'
        '[fields.in]\naggregates = ["p95"]\n[output]\nmeasurement = "m"\nsinks = ["longterm"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_job(path)
    assert str(caught.value) == (
        f"{path}: fields.in.aggregates: p95 cannot be merged: the percentiles of parts (days, "
        "interfaces) do not determine the percentile of the whole. Compute it from the raw data "
        "instead, in a job whose source buffer keeps a whole window (e.g. a monthly p95 needs a "
        "31-day buffer)"
    )


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("fields.in", "scale", 8), ("fields.in", "kind", "gauge"), ("window", "lookback", "1h")],
)
def test_derivative_settings_are_refused_in_a_job_reading_a_job(
    tmp_path: Path, section: str, key: str, value: Any
) -> None:
    path = tmp_path / "monthly.toml"
    extra = f"{key} = {value!r}".replace("'", '"')
    window = f'every = "1mo"\n{extra if section == "window" else ""}'
    field = f'aggregates = ["max"]\n{extra if section == "fields.in" else ""}'
    path.write_text(
        f'[source]\njob = "daily"\n[window]\n{window}\n[fields.in]\n{field}\n'
        '[output]\nmeasurement = "m"\nsinks = ["longterm"]\n'
    )
    with pytest.raises(ConfigError, match=rf"{section}\.{key}: a job that reads another job"):
        load_job(path)


def test_an_unknown_key_in_a_job_source_is_named_without_internal_tags(tmp_path: Path) -> None:
    path = tmp_path / "monthly.toml"
    path.write_text(
        '[source]\njob = "daily"\nmeasurement = "x"\n[window]\nevery = "1mo"\n'
        '[fields.in]\naggregates = ["max"]\n[output]\nmeasurement = "m"\nsinks = ["longterm"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_job(path)
    assert str(caught.value).startswith(f"{path}: source.measurement: unknown key 'measurement' here")


def test_a_field_the_upstream_does_not_write_is_named_with_what_it_writes() -> None:
    message = problem(job(DAILY), job(MONTHLY, fields={"octets": {"aggregates": ["max"]}}))
    assert message == (
        "job monthly reads job daily: fields.octets: job daily writes no field 'octets' "
        "(it writes in, temp: the names after 'as')"
    )


def test_a_rate_of_a_gauge_is_refused() -> None:
    message = problem(job(DAILY), job(MONTHLY, fields={"temp": {"aggregates": ["rate"]}}))
    assert "fields.temp.aggregates: aggregate 'rate' needs a counter" in message


def test_the_sink_read_must_be_an_influxdb_sink_of_the_upstream() -> None:
    assert "does not write to sink 'other' (it writes to search, longterm)" in problem(
        job(DAILY), job(MONTHLY, source__sink="other")
    )
    assert (
        "sink 'search' is of type elasticsearch: a job's output is read back from InfluxDB only"
        in problem(job(DAILY), job(MONTHLY, source__sink="search"))
    )
    assert "writes to no InfluxDB sink (search)" in problem(
        job(DAILY, output__sinks=["search"]), job(MONTHLY)
    )


def test_windows_that_do_not_nest_are_refused_naming_both_jobs() -> None:
    message = problem(job(DAILY), job(MONTHLY, window__every="3h"))
    assert message.startswith(
        "job monthly reads job daily: window: its windows (3h) are not unions of whole windows"
    )


def test_cycles_are_refused_for_every_job_in_them() -> None:
    a = job(MONTHLY, name="a", source__job="b", window__every="1d")
    b = job(MONTHLY, name="b", source__job="a", window__every="1d")
    assert ladder(a, b).problems == {
        "a": "job a is part of a cycle of jobs reading jobs: a → b → a",
        "b": "job b is part of a cycle of jobs reading jobs: a → b → a",
    }
    itself = ladder(job(MONTHLY, name="self", source__job="self", window__every="1d")).problems
    assert itself == {"self": "job self is part of a cycle of jobs reading jobs: self → self"}


def test_a_job_reading_a_missing_or_broken_job_says_which() -> None:
    assert problem(job(MONTHLY)) == "job monthly reads job daily, which does not exist (jobs: none)"
    found = ladder(job(MONTHLY), unusable={"daily": "its file jobs/daily.toml does not load"}).problems
    assert found == {
        "monthly": "job monthly reads job daily, which cannot run: its file jobs/daily.toml does not load"
    }


def test_a_ladder_of_three_takes_kinds_from_the_bottom_and_a_broken_rung_stops_the_ones_above() -> None:
    three_hours = job(
        DAILY, name="three", window__every="3h", fields__octets__aggregates=["mean", "count", "max"]
    )
    daily = job(
        MONTHLY,
        name="daily-from-3h",
        window__every="1d",
        source__job="three",
        fields={"in": {"aggregates": ["mean", "count", "max"]}},
    )
    monthly = job(MONTHLY, name="top", source__job="daily-from-3h", fields={"in": {"aggregates": ["mean"]}})
    found = ladder(three_hours, daily, monthly)
    assert found.problems == {}
    (rule,) = found.upstreams["top"].merge.rollup.fields
    assert rule.kind == "counter"
    broken = job(
        MONTHLY,
        name="daily-from-3h",
        window__every="5h",
        source__job="three",
        fields={"in": {"aggregates": ["max"]}},
    )
    found = ladder(three_hours, broken, monthly)
    assert set(found.problems) == {"daily-from-3h", "top"}
    assert found.problems["top"].startswith(
        "job top reads job daily-from-3h, which cannot run: job daily-from-3h reads job three: window:"
    )

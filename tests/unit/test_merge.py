"""Exact merges (rollup.core.merge): a coarse rollup made of a fine rollup's rows equals the same
rollup computed from the raw data in one job, for every aggregate and coverage field."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollup.core.batch import Batch, FieldColumn, series_key
from rollup.core.merge import (
    Merge,
    MergeSpec,
    MissingPartError,
    NotMergeableError,
    upstream_aggregates,
)
from rollup.core.pipeline import OutputRow, WindowResult
from rollup.core.spec import FieldRule, RollupSpec
from rollup.core.windows import Window

from .builders import HOUR, MIN, T0, Row, make_batch, run

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COUNTER_AGGREGATES = ("mean", "rate", "increase", "min", "max", "sum", "count", "last", "last_time", "stddev")
GAUGE_AGGREGATES = ("mean", "min", "max", "sum", "count", "last", "last_time", "stddev")
REL = 1e-12


def windows(size: int, count: int, first: int = T0) -> list[Window]:
    return [Window(first + i * size, first + (i + 1) * size) for i in range(count)]


def fields(
    aggregates: dict[str, Sequence[str]], *, unit: float = 1.0, on_decrease: str = "auto"
) -> tuple[FieldRule, ...]:
    return (
        FieldRule("v", "v", "counter", tuple(aggregates["v"]), on_decrease, unit_seconds=unit, scale=8.0),  # type: ignore[arg-type]
        FieldRule("g", "g", "gauge", tuple(aggregates["g"])),
    )


def upstream_needs(wanted: dict[str, Sequence[str]], merged_groups: bool) -> dict[str, list[str]]:
    """The aggregates a fine job must write for the coarse job's ``wanted`` ones."""
    return {
        name: list(
            dict.fromkeys(a for w in aggs for a in upstream_aggregates(w, merged_groups=merged_groups))
        )
        for name, aggs in wanted.items()
    }


def as_parts(results: Sequence[WindowResult], chunk: int) -> Iterator[Batch]:
    """A fine rollup's rows as InfluxDB returns them: series by series (tags), each in time
    order, stamped at their window start, integers as integers, cut into batches of ``chunk``."""
    rows: list[OutputRow] = [row for result in results for row in result.rows]
    rows.sort(key=lambda row: (series_key(row.tags), row.window.start))
    for low in range(0, len(rows), chunk):
        part = rows[low : low + chunk]
        keys: list[Any] = []
        lengths: list[int] = []
        for row in part:
            key = series_key(row.tags)
            if keys and keys[-1] == key:
                lengths[-1] += 1
            else:
                keys.append(key)
                lengths.append(1)
        names = sorted({name for row in part for name in row.values})
        columns = {}
        for name in names:
            raw = [row.values.get(name) for row in part]
            integer = all(isinstance(v, int) for v in raw if v is not None)
            values = np.array([0 if v is None else v for v in raw], dtype=np.int64 if integer else np.float64)
            columns[name] = FieldColumn(values, valid=np.array([v is not None for v in raw]))
        times = np.array([row.window.start for row in part], dtype=np.int64)
        yield Batch(keys, np.array(lengths, dtype=np.int64), times, columns)


def merged(spec: MergeSpec, coarse: Sequence[Window], batches: Iterator[Batch]) -> list[WindowResult]:
    merge = Merge(spec, coarse)
    for batch in batches:
        merge.feed(batch)
    return merge.finish()


def by_key(results: Sequence[WindowResult]) -> dict[tuple[int, tuple[tuple[str, str], ...]], dict[str, Any]]:
    return {
        (row.window.start, tuple(sorted(row.tags.items()))): row.values
        for result in results
        for row in result.rows
    }


def assert_same(ladder: Sequence[WindowResult], raw: Sequence[WindowResult]) -> None:
    """Same rows, same fields; integers equal, floats within REL of each other."""
    ours, theirs = by_key(ladder), by_key(raw)
    assert ours.keys() == theirs.keys()
    for key, expected in theirs.items():
        got = ours[key]
        assert got.keys() == expected.keys(), key
        for name, value in expected.items():
            if isinstance(value, int):
                assert got[name] == value, (key, name)
                assert isinstance(got[name], int), (key, name)
            else:
                assert math.isclose(got[name], value, rel_tol=REL, abs_tol=1e-300), (
                    key,
                    name,
                    got[name],
                    value,
                )


# -- random raw data: polls with resets, wraps, gaps, bad values ---------------------------------------


@st.composite
def raw_rows(draw: st.DrawFn, hours: int) -> list[Row]:
    """Series of interfaces (host, if) in time order from 20 minutes before T0 to ``hours``
    after it: counter ``v`` (resets, 32-bit wraps, poll gaps, values that are not numbers) and a
    positive gauge ``g`` at every point (so every fine window with a point has a row). Hypothesis
    draws the shape and a seed; the points come from the seed (thousands of draws would be slow)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    interfaces = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    odd = draw(st.sampled_from([0.0, 0.02, 0.1]))  # how often something happens to a counter
    rows: list[Row] = []
    for h, count in enumerate(interfaces):
        for interface in range(count):
            tags = {"host": f"h{h}", "if": str(interface)}
            t = -1200 + rng.randrange(300)
            v = rng.randrange(2**32)
            while t < hours * 3600 + 60:
                point: dict[str, Any] = {"g": rng.uniform(5.0, 80.0)}
                event = rng.random()
                if event < odd:
                    v = rng.randrange(1000)  # a reset
                elif event < 2 * odd:
                    v = (v + rng.randrange(2**20, 2**31)) % 2**32  # often a wrap
                else:
                    v = (v + rng.randrange(2**24)) % 2**32
                point["v"] = "n/a" if rng.random() < odd else v
                rows.append((tags, t, point))
                t += rng.choice([55, 60, 60, 60, 65, 290]) if rng.random() >= odd else 700  # 700 s: a gap
    return rows


def check_ladder(
    rows: list[Row], *, fine: int, coarse: int, hours: int, group_by: tuple[str, ...] | None, chunk: int
) -> None:
    wanted = {"v": COUNTER_AGGREGATES, "g": GAUGE_AGGREGATES}
    merged_groups = group_by is not None
    needs = upstream_needs(wanted, merged_groups)
    max_gap = 600 * 10**9
    fine_spec = RollupSpec(fields({"v": needs["v"], "g": needs["g"]}, unit=60.0), None, max_gap)
    raw_spec = RollupSpec(fields(wanted, unit=60.0), group_by, max_gap)
    fine_windows = windows(fine, hours * HOUR // fine)
    coarse_windows = windows(coarse, hours * HOUR // coarse)
    batch = make_batch(rows)
    upstream = run(fine_spec, fine_windows, [batch])
    from_raw = run(raw_spec, coarse_windows, [batch])
    merge_spec = MergeSpec(RollupSpec(fields(wanted, unit=60.0), group_by), merged_groups)
    assert_same(merged(merge_spec, coarse_windows, as_parts(upstream, chunk)), from_raw)


@SETTINGS
@given(raw_rows(hours=3), st.integers(1, 40))
def test_hours_merged_from_20_minute_windows_equal_hours_from_raw(rows: list[Row], chunk: int) -> None:
    check_ladder(rows, fine=20 * MIN, coarse=HOUR, hours=3, group_by=None, chunk=chunk)


@SETTINGS
@given(raw_rows(hours=3), st.integers(1, 40))
def test_devices_merged_from_interfaces_equal_devices_from_raw(rows: list[Row], chunk: int) -> None:
    """Groups merge too (per interface → per host): last needs each part's last_time."""
    check_ladder(rows, fine=20 * MIN, coarse=3 * HOUR, hours=3, group_by=("host",), chunk=chunk)


@SETTINGS
@given(raw_rows(hours=2))
def test_one_group_of_everything_merged_from_interfaces_equals_it_from_raw(rows: list[Row]) -> None:
    check_ladder(rows, fine=HOUR, coarse=2 * HOUR, hours=2, group_by=(), chunk=7)


# -- the rules one by one ------------------------------------------------------------------------------


def parts_batch(parts: Sequence[tuple[dict[str, str], int, dict[str, Any]]]) -> Batch:
    """A batch of upstream rows (tags, seconds after T0 of their window start, values)."""
    return make_batch([(tags, start, values) for tags, start, values in parts], dtypes=None)


def merge_one(
    aggregates: Sequence[str], parts: Sequence[tuple[dict[str, str], int, dict[str, Any]]], **kw: Any
) -> dict[str, Any]:
    spec = MergeSpec(
        RollupSpec((FieldRule("g", "g", "gauge", tuple(aggregates)),), kw.get("group_by")),
        kw.get("merged", False),
    )
    merge = Merge(spec, [Window(T0, T0 + 4 * HOUR)])
    merge.feed(parts_batch(parts))
    (result,) = merge.finish()
    (row,) = result.rows
    return row.values


def test_stddev_is_pooled_exactly_from_count_mean_and_stddev_of_each_part() -> None:
    values = [[10.0, 12.0, 17.0], [11.0], [30.0, 31.0], [9.5, 9.5, 9.5, 9.5]]
    parts = []
    for hour, part in enumerate(values):
        row: dict[str, Any] = {
            "g_samples": len(part),
            "g_invalid": 0,
            "g_count": len(part),
            "g_mean": statistics.fmean(part),
        }
        if len(part) > 1:
            row["g_stddev"] = statistics.stdev(part)
        parts.append(({"host": "a"}, hour * 3600, row))
    got = merge_one(["stddev", "mean", "count"], parts)
    everything = [v for part in values for v in part]
    assert got["g_stddev"] == pytest.approx(statistics.stdev(everything), rel=1e-14)
    assert got["g_mean"] == pytest.approx(statistics.fmean(everything), rel=1e-15)
    assert got["g_count"] == 10


def test_stddev_of_one_value_in_all_is_absent() -> None:
    got = merge_one(
        ["stddev"], [({"host": "a"}, 0, {"g_samples": 1, "g_invalid": 0, "g_count": 1, "g_mean": 3.0})]
    )
    assert "g_stddev" not in got
    assert got["g_samples"] == 1


def test_last_of_merged_groups_is_the_newest_value_and_the_greatest_at_a_tie() -> None:
    second = 10**9
    parts = [
        (
            {"host": "a", "if": "1"},
            0,
            {"g_samples": 2, "g_invalid": 0, "g_last": 5.0, "g_last_time": T0 + 3000 * second},
        ),
        (
            {"host": "a", "if": "2"},
            0,
            {"g_samples": 2, "g_invalid": 0, "g_last": 1.0, "g_last_time": T0 + 3500 * second},
        ),
        (
            {"host": "a", "if": "3"},
            0,
            {"g_samples": 2, "g_invalid": 0, "g_last": 2.0, "g_last_time": T0 + 3500 * second},
        ),
    ]
    got = merge_one(["last", "last_time"], parts, group_by=("host",), merged=True)
    assert got["g_last"] == 2.0
    assert got["g_last_time"] == T0 + 3500 * second


def test_last_of_the_same_groups_is_the_last_of_the_newest_window() -> None:
    parts = [
        ({"host": "a"}, 0, {"g_samples": 1, "g_invalid": 0, "g_last": 9.0}),
        ({"host": "a"}, 7200, {"g_samples": 1, "g_invalid": 0, "g_last": 4.0}),
        ({"host": "a"}, 3600, {"g_samples": 1, "g_invalid": 0, "g_last": 7.0}),
    ]
    assert merge_one(["last"], parts)["g_last"] == 4.0


def test_coverage_is_summed_also_for_parts_without_a_value() -> None:
    parts = [
        ({"host": "a"}, 0, {"g_samples": 3, "g_invalid": 2, "g_count": 3, "g_max": 4.0}),
        ({"host": "a"}, 3600, {"g_samples": 0, "g_invalid": 5}),
    ]
    got = merge_one(["max", "count"], parts)
    assert (got["g_samples"], got["g_invalid"], got["g_count"], got["g_max"]) == (3, 7, 3, 4.0)


def test_a_part_with_a_mean_but_no_count_is_refused_naming_both_fields() -> None:
    parts = [({"host": "a"}, 0, {"g_samples": 3, "g_invalid": 0, "g_mean": 4.0})]
    with pytest.raises(MissingPartError) as caught:
        merge_one(["mean"], parts)
    assert (caught.value.column, caught.value.beside) == ("g_count", "g_mean")
    assert caught.value.tags == {"host": "a"}
    assert caught.value.time == T0


def test_a_part_of_two_values_without_stddev_is_refused() -> None:
    parts = [({"host": "a"}, 0, {"g_samples": 2, "g_invalid": 0, "g_count": 2, "g_mean": 4.0})]
    with pytest.raises(MissingPartError, match="g_stddev"):
        merge_one(["stddev"], parts)


def test_percentiles_are_refused_with_what_to_do_instead() -> None:
    with pytest.raises(NotMergeableError, match=r"p95 cannot be merged.*from the raw data.*31-day buffer"):
        upstream_aggregates("p95", merged_groups=False)


def test_what_each_aggregate_needs_from_the_parts() -> None:
    assert upstream_aggregates("mean", merged_groups=False) == ("mean", "count")
    assert upstream_aggregates("rate", merged_groups=False) == ("increase",)
    assert upstream_aggregates("stddev", merged_groups=True) == ("stddev", "mean", "count")
    assert upstream_aggregates("last", merged_groups=False) == ("last",)
    assert upstream_aggregates("last", merged_groups=True) == ("last", "last_time")


def test_the_columns_read_are_coverage_and_what_the_aggregates_need() -> None:
    spec = MergeSpec(RollupSpec(fields({"v": ["rate", "max"], "g": ["mean"]})))
    assert spec.columns() == (
        "v_samples", "v_invalid", "v_seconds", "v_resets", "v_gaps", "v_increase", "v_max",
        "g_samples", "g_invalid", "g_mean", "g_count",
    )  # fmt: skip


def test_parts_give_the_same_bits_however_they_are_cut_into_batches() -> None:
    rng = random.Random(7)
    rows: list[Row] = []
    for interface in "123":
        v = 0
        for minute in range(-10, 240):
            v += rng.randrange(10**6)
            rows.append(
                (
                    {"host": "a", "if": interface},
                    minute * 60 + rng.randrange(5),
                    {"v": v, "g": rng.uniform(1, 9)},
                )
            )
    wanted = {"v": COUNTER_AGGREGATES, "g": GAUGE_AGGREGATES}
    needs = upstream_needs(wanted, True)
    upstream = run(RollupSpec(fields(needs)), windows(20 * MIN, 12), [make_batch(rows)])
    spec = MergeSpec(RollupSpec(fields(wanted), ("host",)), merged_groups=True)
    results = [
        by_key(merged(spec, windows(4 * HOUR, 1), as_parts(upstream, chunk))) for chunk in (1, 5, 36, 1000)
    ]
    assert all(r == results[0] for r in results[1:])


def test_rows_outside_the_windows_are_ignored_and_points_count_the_parts_read() -> None:
    parts = [
        ({"host": "a"}, -3600, {"g_samples": 1, "g_invalid": 0, "g_max": 99.0}),
        ({"host": "a"}, 0, {"g_samples": 1, "g_invalid": 0, "g_max": 1.0}),
        ({"host": "a"}, 3600, {"g_samples": 1, "g_invalid": 0, "g_max": 2.0}),
    ]
    spec = MergeSpec(RollupSpec((FieldRule("g", "g", "gauge", ("max",)),)))
    merge = Merge(spec, [Window(T0, T0 + 2 * HOUR)])
    merge.feed(parts_batch(parts))
    (result,) = merge.finish()
    assert result.points == 2
    assert result.rows[0].values["g_max"] == 2.0


def test_last_at_a_tie_is_the_greatest_value_also_when_the_parts_come_in_separate_batches() -> None:
    second = 10**9
    spec = MergeSpec(RollupSpec((FieldRule("g", "g", "gauge", ("last",)),), ("host",)), merged_groups=True)
    merge = Merge(spec, [Window(T0, T0 + HOUR)])
    for interface, value in (("1", 3.0), ("2", 8.0), ("3", 5.0)):
        last = {"g_samples": 1, "g_invalid": 0, "g_last": value, "g_last_time": T0 + 60 * second}
        merge.feed(parts_batch([({"host": "a", "if": interface}, 0, last)]))
    (result,) = merge.finish()
    assert result.rows[0].values["g_last"] == 8.0

"""Properties of the rollup checked against plain-Python references on random data.

Inputs look like what InfluxDB returns: series one after the other, each in time order (with
duplicate timestamps now and then), some points before the first window (lookback) and after the
last, some values that are not numbers or missing. Three one-hour windows from T0.

Counters of every kind: small, near 2^63 (crossing into uint64), negative (some crossing zero),
floats, and series whose values switch between integers and floats; the same data fed in any way a
source may feed it (cut anywhere, series in any order, read by concurrent queries) gives the same
bits.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollup.core.batch import Batch, FieldColumn
from rollup.core.pipeline import WindowResult
from rollup.core.spec import FieldRule, RollupSpec

from .builders import Row, at, hours, make_batch, run

WINDOWS = hours(0, 3)
WINDOW_STARTS = [w.start for w in WINDOWS]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TAGS = [{"host": h, "if": i} for h in ("a", "b", "c") for i in ("1", "2")] + [{"host": "a"}]
NOT_A_NUMBER = ["n/a", True, float("nan"), float("inf")]


COUNTERS = {
    # kind: the range of a series' first value
    "small": (0, 2**30),
    "large": (2**63 - 2**20, 2**63 - 2**20 + 2**30),  # crosses 2^63: int64, then uint64
    "negative": (-(2**62) - 2**30, -(2**62)),  # float64 cannot tell its steps apart
    "around_zero": (-(2**26), 0),  # negative, then crossing zero
    "float": (0, 2**30),
    "switching": (2**60, 2**60 + 2**30),  # integers and floats in turn: the field changes type
}


@st.composite
def series_rows(
    draw: st.DrawFn, tags: dict[str, str], kind: str, with_gauge: bool, clean: bool = False
) -> list[Row]:
    """One series in time order: counter ``v`` of ``kind`` (and gauge ``g``), with resets,
    duplicates, bad values (``clean``: no duplicate, bad or missing value, and a gauge value at
    every point)."""
    count = draw(st.integers(min_value=0, max_value=12))
    t = draw(st.integers(min_value=-1800, max_value=3 * 3600))
    low, high = COUNTERS[kind]
    v = draw(st.integers(min_value=low, max_value=high))
    rows: list[Row] = []
    for _ in range(count):
        fields: dict[str, Any] = {}
        step = draw(st.sampled_from(["value"] * 6 + ["reset"] + ([] if clean else ["bad", "missing"])))
        if step == "reset":
            v = draw(st.integers(min_value=0, max_value=1000))
        elif step == "value":
            v += draw(st.integers(min_value=0, max_value=2**24))
        if step == "bad":
            fields["v"] = draw(st.sampled_from(NOT_A_NUMBER))
        elif step != "missing":
            as_float = kind == "float" or (kind == "switching" and draw(st.booleans()))
            fields["v"] = v + 0.25 if as_float else v
        if with_gauge and (clean or draw(st.booleans())):
            fields["g"] = draw(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
        rows.append((tags, t, fields))
        t += draw(st.sampled_from([1, 30, 60, 61, 150, 600, 1300] + ([] if clean else [0])))
    return rows


@st.composite
def inputs(
    draw: st.DrawFn,
    large: bool | None = None,
    with_gauge: bool = True,
    clean: bool = False,
    kinds: tuple[str, ...] = (),
) -> list[Row]:
    """Series one after the other; their counters are small or large (``large``, None: either,
    the same for all) or, with ``kinds``, each of any of those kinds."""
    chosen = draw(st.lists(st.sampled_from(range(len(TAGS))), min_size=1, max_size=5, unique=True))
    big = draw(st.booleans()) if large is None else large
    rows: list[Row] = []
    for index in chosen:
        kind = draw(st.sampled_from(kinds)) if kinds else ("large" if big else "small")
        rows += draw(series_rows(TAGS[index], kind, with_gauge, clean))
    return rows


@st.composite
def splits(draw: st.DrawFn, rows: list[Row]) -> list[list[Row]]:
    """The rows cut into batches: anywhere, inside series, possibly one row per batch."""
    if len(rows) < 2:
        return [rows]
    if draw(st.booleans()):
        return [[row] for row in rows]
    cuts = sorted(draw(st.sets(st.integers(min_value=1, max_value=len(rows) - 1), max_size=len(rows))))
    bounds = [0, *cuts, len(rows)]
    return [rows[a:b] for a, b in itertools.pairwise(bounds)]


def table(results: Sequence[WindowResult]) -> list[tuple[int, tuple[tuple[str, str], ...], dict[str, float]]]:
    return [(i, tuple(row.tags.items()), row.values) for i, r in enumerate(results) for row in r.rows]


def bits(results: Sequence[WindowResult]) -> list[tuple[int, tuple[tuple[str, str], ...], dict[str, object]]]:
    """The rows with every float as its exact bits (``-0.0`` and ``0.0`` differ)."""
    return [
        (i, tags, {name: v.hex() if isinstance(v, float) else v for name, v in values.items()})
        for i, tags, values in table(results)
    ]


COUNTER_AGGREGATES = (
    "mean",
    "rate",
    "increase",
    "min",
    "max",
    "sum",
    "count",
    "last",
    "p50",
    "p95",
    "stddev",
)
GAUGE_AGGREGATES = ("mean", "min", "max", "sum", "count", "last", "p50", "stddev")


@st.composite
def specs(draw: st.DrawFn) -> RollupSpec:
    counter = FieldRule(
        "v",
        "v",
        aggregates=COUNTER_AGGREGATES,
        on_decrease=draw(st.sampled_from(["drop", "reset", "wrap32", "wrap64", "auto"])),
        max_rate=draw(st.sampled_from([None, 1e3, 1e7])),
        scale=draw(st.sampled_from([1.0, 8.0])),
    )
    gauge = FieldRule("g", "g", kind="gauge", aggregates=GAUGE_AGGREGATES)
    return RollupSpec(
        (counter, gauge),
        group_by=draw(st.sampled_from([None, ("host",), (), ("if", "host")])),
        max_gap_ns=draw(st.sampled_from([None, 700 * 10**9])),
        stamp=draw(st.sampled_from(["start", "end"])),
    )


@st.composite
def feeds(draw: st.DrawFn, rows: list[Row]) -> list[Batch]:
    """The rows as a source may hand them over: the series in any order, read by one to three
    concurrent queries (streams), each cut into batches anywhere, their batches interleaved."""
    by_series: dict[tuple[tuple[str, str], ...], list[Row]] = defaultdict(list)
    for row in rows:
        by_series[tuple(sorted(row[0].items()))].append(row)
    keys = draw(st.permutations(list(by_series)))
    count = draw(st.integers(min_value=1, max_value=3))
    stream_of = {key: draw(st.integers(min_value=0, max_value=count - 1)) for key in keys}
    queues = []
    for stream in range(count):
        stream_rows = [row for key in keys if stream_of[key] == stream for row in by_series[key]]
        if stream_rows:
            queues.append([(stream, part) for part in draw(splits(stream_rows))])
    batches = []
    while queues:
        queue = queues[draw(st.integers(min_value=0, max_value=len(queues) - 1))]
        stream, part = queue.pop(0)
        batches.append(make_batch(part, stream=stream))
        queues = [q for q in queues if q]
    return batches


def check_feed_invariance(data: st.DataObject, rows: list[Row], spec: RollupSpec) -> None:
    whole = bits(run(spec, WINDOWS, [make_batch(rows)]))
    fed = bits(run(spec, WINDOWS, data.draw(feeds(rows))))
    assert fed == whole


@SETTINGS
@given(data=st.data(), rows=inputs(kinds=tuple(COUNTERS)), spec=specs())
def test_property_any_cut_series_order_and_concurrency_gives_the_same_bits(
    data: st.DataObject, rows: list[Row], spec: RollupSpec
) -> None:
    check_feed_invariance(data, rows, spec)


@pytest.mark.slow
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), rows=inputs(kinds=tuple(COUNTERS)), spec=specs())
def test_property_any_cut_series_order_and_concurrency_gives_the_same_bits_long(
    data: st.DataObject, rows: list[Row], spec: RollupSpec
) -> None:
    check_feed_invariance(data, rows, spec)


def unmasked(batch: Batch) -> Batch:
    """The batch as a source sends it when every value is a number: no validity masks."""
    fields = {
        name: FieldColumn(column.values, kinds=column.kinds)
        if (column.valid is None or column.valid.all())
        and (column.invalid is None or not column.invalid.any())
        else column
        for name, column in batch.fields.items()
    }
    return Batch(batch.keys, batch.run_lengths, batch.time, fields)


@SETTINGS
@given(data=st.data(), rows=inputs(clean=True, kinds=tuple(COUNTERS)), spec=specs())
def test_property_batches_without_masks_give_the_result_of_masked_ones(
    data: st.DataObject, rows: list[Row], spec: RollupSpec
) -> None:
    """A batch with masks takes the general path (filtering rows field by field); the same rows
    without masks take the direct one: both must agree, however the rows are cut into batches."""
    parts = data.draw(splits(rows))
    masked = bits(run(spec, WINDOWS, [make_batch(part) for part in parts]))
    direct = bits(run(spec, WINDOWS, [unmasked(make_batch(part)) for part in parts]))
    assert direct == masked


# -- plain-Python references --------------------------------------------------------------------


def samples_by_series(rows: Sequence[Row]) -> dict[tuple[tuple[str, str], ...], list[tuple[int, int]]]:
    """Each series' valid counter samples in time order, the last value of a duplicate timestamp winning."""
    by_series: dict[tuple[tuple[str, str], ...], dict[int, int]] = defaultdict(dict)
    for tags, t, fields in rows:
        value = fields.get("v")
        if isinstance(value, int) and not isinstance(value, bool):
            by_series[tuple(sorted(tags.items()))][at(t)] = value
    return {key: sorted(points.items()) for key, points in by_series.items()}


def window_of(t: int) -> int | None:
    for index, window in enumerate(WINDOWS):
        if window.start <= t < window.end:
            return index
    return None


def reference_intervals(rows: Sequence[Row]) -> list[tuple[tuple[tuple[str, str], ...], int, int, int]]:
    """(series, window index, dv, dt in ns) of every interval whose t1 is in a window; dv may be < 0."""
    out = []
    for key, points in samples_by_series(rows).items():
        for (t0, v0), (t1, v1) in itertools.pairwise(points):
            index = window_of(t1)
            if index is not None:
                out.append((key, index, v1 - v0, t1 - t0))
    return out


def host_of(key: tuple[tuple[str, str], ...]) -> str:
    return dict(key)["host"]


@SETTINGS
@given(rows=inputs(large=False, with_gauge=False))
def test_property_increase_under_reset_is_positive_steps_plus_post_reset_values(rows: list[Row]) -> None:
    spec = RollupSpec(
        (FieldRule("v", "v", aggregates=("increase",), on_decrease="reset"),), group_by=("host",)
    )
    expected: dict[tuple[int, str], int] = defaultdict(int)
    for key, points in samples_by_series(rows).items():
        for (_, v0), (t1, v1) in itertools.pairwise(points):
            index = window_of(t1)
            if index is not None:
                expected[index, host_of(key)] += v1 - v0 if v1 >= v0 else v1
    got = {
        (i, dict(tags)["host"]): values["v_increase"]
        for i, tags, values in table(run(spec, WINDOWS, [make_batch(rows)]))
    }
    assert got == {k: float(v) for k, v in expected.items()}


@SETTINGS
@given(rows=inputs(large=False, with_gauge=False))
def test_property_mean_under_drop_is_the_mean_of_non_negative_rates(rows: list[Row]) -> None:
    spec = RollupSpec(
        (FieldRule("v", "v", aggregates=("mean", "count"), on_decrease="drop"),), group_by=("host",)
    )
    rates: dict[tuple[int, str], list[float]] = defaultdict(list)
    for key, index, dv, dt in reference_intervals(rows):
        if dv >= 0:
            rates[index, host_of(key)].append(dv / (dt / 1e9))
    results = table(run(spec, WINDOWS, [make_batch(rows)]))
    got = {(i, dict(tags)["host"]): (values["v_mean"], values["v_count"]) for i, tags, values in results}
    assert got.keys() == rates.keys()
    for slot, values in rates.items():
        mean, count = got[slot]
        assert count == len(values)
        assert math.isclose(mean, sum(values) / len(values), rel_tol=1e-12)


@SETTINGS
@given(rows=inputs(), on_decrease=st.sampled_from(["drop", "reset", "wrap64"]))
def test_property_group_count_and_sum_equal_the_sum_over_its_series(
    rows: list[Row], on_decrease: Any
) -> None:
    """Aggregated per host, count/sum/increase are the sums of the per-series values.

    Coverage is not compared: a group row also covers the samples of member series that alone
    would have written no row (e.g. a single sample without prev).
    """
    rules = (
        FieldRule("v", "v", aggregates=("count", "sum", "increase"), on_decrease=on_decrease),
        FieldRule("g", "g", kind="gauge", aggregates=("count", "sum")),
    )
    per_series = table(run(RollupSpec(rules), WINDOWS, [make_batch(rows)]))
    per_host = table(run(RollupSpec(rules, group_by=("host",)), WINDOWS, [make_batch(rows)]))
    summed: dict[tuple[int, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for i, tags, values in per_series:
        for name, value in values.items():
            summed[i, dict(tags)["host"]][name] += value
    assert {(i, dict(tags)["host"]) for i, tags, _ in per_host} == set(summed)
    for i, tags, values in per_host:
        expected = summed[i, dict(tags)["host"]]
        assert values.get("v_count", 0) == expected.get("v_count", 0)
        assert values.get("g_count", 0) == expected.get("g_count", 0)
        for name in ("v_sum", "v_increase", "g_sum"):
            assert math.isclose(values.get(name, 0.0), expected.get(name, 0.0), rel_tol=1e-9, abs_tol=1e-6), (
                name
            )
        for name in ("v_samples", "v_invalid", "v_resets", "v_gaps", "g_samples", "g_invalid"):
            assert values[name] >= expected.get(name, 0), name

"""The streaming rollup, one test (or table case) per rule of the semantics.

Unless a test says otherwise: one series ``host=a``, one counter field ``v``, one-hour windows
starting at T0 (2027-01-04T00:00Z); times are seconds after T0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollup.core.batch import Batch, FieldColumn, series_key
from rollup.core.pipeline import Rollup
from rollup.core.spec import FieldRule, OnDecrease, RollupSpec, output_schema
from rollup.core.windows import Window

from .builders import (
    HOUR,
    T0,
    Row,
    S,
    at,
    counter,
    flatten,
    gauge,
    hours,
    make_batch,
    only_row,
    rollup_rows,
    run,
)

A = {"host": "a"}


def series(values: Sequence[tuple[float, Any]], tags: dict[str, str] = A, name: str = "v") -> list[Row]:
    """Rows of one series from (seconds, value) pairs, all carrying field ``name``."""
    return [(tags, t, {name: v}) for t, v in values]


def row_values(results: Any) -> dict[str, float]:
    return only_row(results)


# -- stamping, windows, lookback ----------------------------------------------------------------


def test_rate_is_stamped_at_t1_and_belongs_to_the_window_containing_t1() -> None:
    results = rollup_rows(
        counter(aggregates=("mean", "count")), hours(0, 2), series([(3000, 0), (3600, 1200)])
    )
    assert results[0].rows == []  # t0 = 3000 is in window 0, but the interval belongs to t1's window
    [(index, tags, values)] = flatten(results)
    assert (index, tags) == (1, A)
    assert values["v_mean"] == 2.0
    assert values["v_count"] == 1
    assert values["v_seconds"] == 600.0


def test_first_interval_of_a_window_uses_the_lookback_prev() -> None:
    rollup = Rollup(counter(aggregates=("mean", "count")), hours(1))
    rollup.feed(make_batch(series([(3300, 100), (3900, 700)])))  # 3300 is before the window
    [result] = rollup.finish()
    [row] = result.rows
    assert row.values["v_mean"] == 1.0
    assert row.values["v_count"] == 1
    assert row.values["v_seconds"] == 600.0  # the whole interval, including its part before start
    assert row.values["v_samples"] == 1  # the lookback sample only gives prev
    assert result.points == 1
    assert rollup.lookback_points == 1


def test_without_lookback_the_first_sample_of_a_window_gives_no_rate() -> None:
    values = row_values(
        rollup_rows(counter(aggregates=("count",)), hours(1), series([(3900, 700), (4500, 1300)]))
    )
    assert values["v_count"] == 1


def test_a_single_sample_without_prev_writes_no_row() -> None:
    [result] = rollup_rows(counter(), hours(0), series([(600, 5)]))
    assert result.rows == []
    assert result.points == 1


def test_an_interval_stamped_in_the_lookback_is_not_counted() -> None:
    """A decrease between two lookback samples is neither an interval nor a reset of the window."""
    rows = series([(3000, 100), (3300, 50), (3900, 650)])
    values = row_values(
        rollup_rows(counter(aggregates=("count", "increase"), on_decrease="reset"), hours(1), rows)
    )
    assert values["v_count"] == 1
    assert values["v_increase"] == 600.0
    assert values["v_resets"] == 0


def test_samples_after_the_last_window_are_not_counted() -> None:
    rows = series([(0, 0), (60, 60), (3600, 3660), (3700, 4000)])
    [result] = rollup_rows(counter(aggregates=("count",)), hours(0), rows)
    [row] = result.rows
    assert row.values["v_count"] == 1
    assert row.values["v_samples"] == 2
    assert result.points == 2


def test_empty_windows_give_no_rows_but_a_result() -> None:
    results = rollup_rows(counter(), hours(0, 3), series([(3700, 0), (3800, 100)]))
    assert [len(r.rows) for r in results] == [0, 1, 0]
    assert [r.points for r in results] == [0, 2, 0]
    assert [r.window for r in results] == hours(0, 3)


def test_multiple_windows_in_one_rollup_carry_prev_from_window_to_window() -> None:
    rows = series([(3000, 0), (3600, 600), (4200, 1800), (7800, 5400)])
    results = rollup_rows(counter(aggregates=("mean", "count")), hours(0, 3), rows)
    got = {
        index: (values["v_mean"], values["v_count"], values["v_seconds"])
        for index, _, values in flatten(results)
    }
    assert got == {1: (1.5, 2, 1200.0), 2: (1.0, 1, 3600.0)}


@pytest.mark.parametrize(("stamp", "expected"), [("start", T0 + HOUR), ("end", T0 + 2 * HOUR)])
def test_row_is_stamped_at_window_start_or_end(stamp: str, expected: int) -> None:
    [_, result] = rollup_rows(counter(stamp=stamp), hours(0, 2), series([(3700, 0), (3800, 100)]))
    [row] = result.rows
    assert row.time == expected
    assert row.window == hours(1)[0]


# -- duplicates, order, late samples ------------------------------------------------------------


class DuplicateCase(NamedTuple):
    rule: str
    rows: list[tuple[float, Any]]
    rates: list[float]
    samples: int
    invalid: int


MISSING_FIELD = "<missing>"
DUPLICATES = [
    DuplicateCase("no_duplicate_reference", [(0, 0), (60, 120), (120, 300)], [2.0, 3.0], 3, 0),
    DuplicateCase("duplicate_in_the_middle_keeps_the_last", [(0, 0), (60, 60), (60, 120), (120, 300)],
                  [2.0, 3.0], 3, 0),
    DuplicateCase("duplicate_at_the_end_of_the_batch_keeps_the_last", [(0, 0), (60, 60), (60, 120)],
                  [2.0], 2, 0),
    DuplicateCase("triple_at_the_end_of_the_batch_keeps_the_last", [(0, 0), (60, 60), (60, 90), (60, 120)],
                  [2.0], 2, 0),
    DuplicateCase("duplicate_separated_by_an_invalid_value", [(0, 0), (60, 60), (60, "n/a"), (60, 120),
                  (120, 300)], [2.0, 3.0], 3, 1),
    DuplicateCase("duplicate_separated_by_a_point_without_the_field", [(0, 0), (60, 60), (60, MISSING_FIELD),
                  (60, 120), (120, 300)], [2.0, 3.0], 3, 0),
    DuplicateCase("later_invalid_duplicate_keeps_the_valid_value", [(0, 0), (60, 120), (60, "n/a"),
                  (120, 300)], [2.0, 3.0], 3, 1),
    DuplicateCase("out_of_order_rows_are_sorted", [(120, 300), (0, 0), (60, 120)], [2.0, 3.0], 3, 0),
    DuplicateCase("out_of_order_with_duplicates_keeps_the_last_in_input_order",
                  [(60, 60), (120, 300), (0, 0), (60, 120)], [2.0, 3.0], 3, 0),
]  # fmt: skip


def duplicate_rows(case: DuplicateCase) -> list[Row]:
    return [(A, t, {} if v == MISSING_FIELD else {"v": v}) for t, v in case.rows]


def rate_summary(results: Any) -> tuple[float, float, int, int, int]:
    values = row_values(results)
    return values["v_min"], values["v_max"], values["v_count"], values["v_samples"], values["v_invalid"]


def expected_summary(case: DuplicateCase) -> tuple[float, float, int, int, int]:
    return min(case.rates), max(case.rates), len(case.rates), case.samples, case.invalid


DUP_SPEC = counter(aggregates=("min", "max", "count"))


@pytest.mark.parametrize("case", DUPLICATES, ids=[c.rule for c in DUPLICATES])
def test_duplicates_and_order_in_one_batch(case: DuplicateCase) -> None:
    results = rollup_rows(DUP_SPEC, hours(0), duplicate_rows(case))
    assert rate_summary(results) == expected_summary(case)


IN_ORDER = [c for c in DUPLICATES if not c.rule.startswith("out_of_order")]


@pytest.mark.parametrize("case", IN_ORDER, ids=[c.rule for c in IN_ORDER])
@pytest.mark.parametrize("split", ["one_row_batches", "split_after_first_duplicate"])
def test_duplicates_across_batch_boundaries_behave_as_one_batch(case: DuplicateCase, split: str) -> None:
    rows = duplicate_rows(case)
    if split == "one_row_batches":
        parts = [[row] for row in rows]
    else:
        cut = next((i + 1 for i in range(len(rows) - 1) if rows[i][1] == rows[i + 1][1]), 1)
        parts = [rows[:cut], rows[cut:]]
    results = run(DUP_SPEC, hours(0), [make_batch(part, {"v": np.float64}) for part in parts])
    assert rate_summary(results) == expected_summary(case)


def test_sample_older_than_prev_in_a_later_batch_is_skipped_and_counted_invalid() -> None:
    first = make_batch(series([(0, 0), (60, 120), (120, 300)]))
    late = make_batch(series([(30, 50), (180, 360)]))
    values = row_values(run(DUP_SPEC, hours(0), [first, late]))
    assert (values["v_min"], values["v_max"], values["v_count"]) == (1.0, 3.0, 3)
    assert values["v_samples"] == 4
    assert values["v_invalid"] == 1


def test_sample_at_an_already_used_time_in_a_later_batch_is_skipped_and_counted_invalid() -> None:
    first = make_batch(series([(0, 0), (60, 120), (120, 300)]))
    again = make_batch(series([(60, 999), (180, 360)]))
    values = row_values(run(DUP_SPEC, hours(0), [first, again]))
    assert (values["v_min"], values["v_max"], values["v_count"]) == (1.0, 3.0, 3)
    assert values["v_invalid"] == 1


def test_gauge_sample_older_than_the_last_one_in_a_later_batch_is_skipped_and_counted_invalid() -> None:
    """Same rule as counters: a sample cannot be counted twice by arriving again in another batch."""
    first = make_batch(series([(0, 10.0), (60, 20.0), (90, 25.0)], name="g"))
    late = make_batch(series([(30, 99.0), (120, 30.0)], name="g"))
    values = row_values(run(gauge(aggregates=("sum", "count")), hours(0), [first, late]))
    assert (values["g_sum"], values["g_count"], values["g_invalid"]) == (85.0, 4, 1)


def test_series_reappearing_after_another_one_still_continues_across_batches() -> None:
    """Series ids follow first appearance; the series a batch ends with is the one that continues."""
    b = {"host": "b"}
    # host=a is seen first (lower id) but it is host=a, not host=b, that this batch ends with.
    first = make_batch(series([(0, 0), (60, 60)]) + series([(0, 0), (60, 60)], b) + series([(120, 60)]))
    second = make_batch(series([(120, 180), (180, 240)]))  # host=a goes on: duplicate at 120, last wins
    results = run(counter(aggregates=("max", "count"), group_by=("host",)), hours(0), [first, second])
    got = {
        tags["host"]: (values["v_max"], values["v_count"], values["v_invalid"])
        for _, tags, values in flatten(results)
    }
    assert got == {"a": (2.0, 3, 0), "b": (1.0, 1, 0)}


# -- gaps and on_decrease -----------------------------------------------------------------------


def test_interval_longer_than_max_gap_is_dropped_and_counted_as_a_gap() -> None:
    spec = counter(aggregates=("mean", "count", "increase"), max_gap_ns=120 * S)
    rows = series([(0, 0), (120, 120), (361, 361), (421, 541)])
    values = row_values(rollup_rows(spec, hours(0), rows))
    assert values["v_count"] == 2  # 0 -> 120 (exactly max_gap) and 361 -> 421; 120 -> 361 dropped
    assert values["v_mean"] == 2.0  # rates 1 and 3
    assert values["v_increase"] == 300.0
    assert values["v_seconds"] == 180.0
    assert values["v_gaps"] == 1
    assert values["v_samples"] == 4


class PipelineDecrease(NamedTuple):
    rule: str
    on_decrease: OnDecrease
    max_rate: float | None
    increase: float
    seconds: float
    count: int


# values 100, 160, 40, 100 at 0, 60, 120, 180 s: one decrease of 120 between 60 and 120 s.
PIPELINE_DECREASES = [
    PipelineDecrease("drop_loses_the_interval", "drop", None, 120.0, 120.0, 2),
    PipelineDecrease("reset_counts_v1", "reset", None, 160.0, 180.0, 3),
    PipelineDecrease("wrap32_adds_2_pow_32", "wrap32", None, float(2**32), 180.0, 3),
    PipelineDecrease("wrap64_adds_2_pow_64", "wrap64", None, float(2**64), 180.0, 3),
    PipelineDecrease("auto_without_max_rate_wraps_a_32_bit_prev", "auto", None, float(2**32), 180.0, 3),
    PipelineDecrease("auto_implausible_wrap_is_a_reset", "auto", 10.0, 160.0, 180.0, 3),
    PipelineDecrease("auto_plausible_wrap_is_a_wrap", "auto", 1e9, float(2**32), 180.0, 3),
]


@pytest.mark.parametrize("case", PIPELINE_DECREASES, ids=[c.rule for c in PIPELINE_DECREASES])
@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.float64])
def test_on_decrease_in_the_pipeline(case: PipelineDecrease, dtype: Any) -> None:
    spec = counter(
        aggregates=("increase", "rate", "count"), on_decrease=case.on_decrease, max_rate=case.max_rate
    )
    rows = series([(0, 100), (60, 160), (120, 40), (180, 100)])
    values = row_values(rollup_rows(spec, hours(0), rows, {"v": dtype}))
    assert values["v_increase"] == case.increase
    assert values["v_seconds"] == case.seconds
    assert values["v_rate"] == case.increase / case.seconds
    assert values["v_count"] == case.count
    assert values["v_resets"] == 1


@pytest.mark.parametrize("mode", ["drop", "reset", "wrap32", "wrap64", "auto"])
def test_resets_are_counted_in_every_mode(mode: OnDecrease) -> None:
    rows = series([(0, 100), (60, 50), (120, 70), (180, 10), (240, 20)])
    values = row_values(rollup_rows(counter(on_decrease=mode), hours(0), rows))
    assert values["v_resets"] == 2


def test_resets_and_gaps_are_counted_in_the_window_of_t1() -> None:
    spec = counter(aggregates=("count",), on_decrease="drop", max_gap_ns=600 * S)
    rows = series([(3000, 100), (3700, 50), (3800, 60)])  # the decreasing gap interval ends at 3700
    results = rollup_rows(spec, hours(0, 2), rows)
    [(index, _, values)] = flatten(results)
    assert index == 1
    assert (values["v_resets"], values["v_gaps"], values["v_count"]) == (1, 1, 1)


# -- exact integers -----------------------------------------------------------------------------


class ExactCase(NamedTuple):
    rule: str
    on_decrease: OnDecrease
    values: list[int]
    increase: float


EXACT = [
    ExactCase("wrap64_near_2_pow_64", "wrap64", [2**64 - 10, 5], 15.0),
    ExactCase("increase_above_2_pow_63", "drop", [2**63 + 1, 2**63 + 3], 2.0),
    ExactCase("increase_near_2_pow_64", "drop", [2**64 - 3, 2**64 - 1], 2.0),
    ExactCase("int64_just_below_2_pow_63", "drop", [2**63 - 3, 2**63 - 1], 2.0),
]


@pytest.mark.parametrize("case", EXACT, ids=[c.rule for c in EXACT])
@pytest.mark.parametrize("batches", ["one_batch", "one_row_batches"])
def test_integer_counters_stay_exact(case: ExactCase, batches: str) -> None:
    spec = counter(aggregates=("increase", "mean"), on_decrease=case.on_decrease)
    rows = series([(0, case.values[0]), (10, case.values[1])])
    parts = [rows] if batches == "one_batch" else [[row] for row in rows]
    values = row_values(run(spec, hours(0), [make_batch(part) for part in parts]))
    assert values["v_increase"] == case.increase
    assert values["v_mean"] == case.increase / 10


def test_integer_counter_crossing_2_pow_63_between_int64_and_uint64_batches_stays_exact() -> None:
    """A source gives int64 until a value needs uint64; the dtype change must not round the step."""
    spec = counter(aggregates=("increase",))
    first = make_batch(series([(0, 2**63 - 7)]), {"v": np.int64})
    second = make_batch(series([(10, 2**63 + 3)]), {"v": np.uint64})
    assert row_values(run(spec, hours(0), [first, second]))["v_increase"] == 10.0


def test_a_batch_of_placeholders_only_does_not_round_integer_counters() -> None:
    """A chunk whose values are all unusable may come as float64; the held integers must stay exact."""
    spec = counter(aggregates=("increase",))
    base = 2**63 - 2**20
    first = make_batch(series([(0, base), (1, base + 1)]), {"v": np.int64})
    placeholders = make_batch(series([(1, "n/a")]), {"v": np.float64})
    values = row_values(run(spec, hours(0), [first, placeholders]))
    assert (values["v_increase"], values["v_invalid"]) == (1.0, 1)


def test_negative_integer_counter_is_subtracted_exactly() -> None:
    """Through float64 both values would be -2^62 and the step 0."""
    rows = series([(0, -(2**62) - 1), (10, -(2**62) + 2)])
    values = row_values(rollup_rows(counter(aggregates=("increase",)), hours(0), rows))
    assert values["v_increase"] == 3.0


def test_mixed_int64_uint64_and_float_counters_in_one_batch_are_each_exact() -> None:
    """Issue 11: a negative counter in the batch must not round a counter near 2^63, nor a counter
    beyond 2^64 - 2^63 or a float one the others, however the rows are batched."""
    b0, c0 = 2**63 - 1 - 14_400_000, -10_000_000
    rows = (
        series([(60 * i, b0 + 60_000 * i) for i in range(60)], {"host": "b"})
        + series([(60 * i, c0 + 1_000 * i) for i in range(60)], {"host": "c"})
        + series([(60 * i, 2.0**60 + 4096.0 * i) for i in range(60)], {"host": "f"})
        + series([(60 * i, 2**64 - 10 - 60 * (59 - i)) for i in range(60)], {"host": "u"})
    )
    spec = counter(aggregates=("mean", "increase"))
    results = []
    for parts in ([rows], [rows[i : i + 7] for i in range(0, len(rows), 7)]):
        batches = [make_batch(part) for part in parts]
        results.append({tags["host"]: values for _, tags, values in flatten(run(spec, hours(0), batches))})
    one_batch, small_batches = results
    assert one_batch == small_batches
    exact = {host: (values["v_mean"], values["v_increase"]) for host, values in one_batch.items()}
    assert exact["b"] == (1000.0, 3_540_000.0)
    assert exact["c"][1] == 59_000.0
    assert exact["f"] == (4096 / 60, 4096.0 * 59)
    assert exact["u"] == (1.0, 3540.0)


def test_a_counter_whose_field_changes_type_between_batches_is_exact() -> None:
    """InfluxDB types a field per shard: a series may come as integers, then floats, then integers."""
    batches = [
        make_batch(series([(0, 2**62 + 1), (10, 2**62 + 61)])),
        make_batch(series([(20, float(2**62 + 4096))])),  # 4035 more than the exact prev
        make_batch(series([(30, 2**62 + 4097)])),
    ]
    values = row_values(run(counter(aggregates=("max", "increase"), on_decrease="reset"), hours(0), batches))
    assert values["v_max"] == 403.5  # increases add up to last - first whatever the steps: the rates tell
    assert values["v_increase"] == 60 + 4035 + 1


# -- unit, scale, aggregates --------------------------------------------------------------------


def test_unit_and_scale() -> None:
    spec = counter(aggregates=("mean", "rate", "increase"), unit_seconds=60.0, scale=8.0)
    values = row_values(rollup_rows(spec, hours(0), series([(0, 0), (120, 600)])))
    assert values["v_mean"] == 600 / 120 * 60 * 8
    assert values["v_rate"] == 600 / 120 * 60 * 8
    assert values["v_increase"] == 600 * 8
    assert values["v_seconds"] == 120.0


ALL = ("mean", "rate", "increase", "min", "max", "sum", "count", "last",
       "p20", "p40", "p50", "p60", "p80", "p95", "p99", "p100", "stddev")  # fmt: skip


def test_every_counter_aggregate_on_a_hand_computed_example() -> None:
    # dt 60, 60, 120, 60, 60 s; dv 60, 120, 240, 600, 60 -> rates 1, 2, 2, 10, 1 (sorted 1 1 2 2 10)
    rows = series([(0, 0), (60, 60), (120, 180), (240, 420), (300, 1020), (360, 1080)])
    values = row_values(rollup_rows(counter(aggregates=ALL), hours(0), rows))
    stddev = values.pop("v_stddev")
    assert stddev == pytest.approx(math.sqrt(58.8 / 4), rel=1e-12)
    assert values == {
        "v_mean": 3.2,
        "v_rate": 3.0,  # 1080 / 360
        "v_increase": 1080.0,
        "v_min": 1.0,
        "v_max": 10.0,
        "v_sum": 16.0,
        "v_count": 5,
        "v_last": 1.0,  # the rate stamped latest, not the largest
        "v_p20": 1.0,  # nearest rank: ceil(0.2 * 5) = 1st
        "v_p40": 1.0,  # 2nd
        "v_p50": 2.0,  # ceil(2.5) = 3rd
        "v_p60": 2.0,  # 3rd
        "v_p80": 2.0,  # 4th
        "v_p95": 10.0,
        "v_p99": 10.0,
        "v_p100": 10.0,
        "v_samples": 6,
        "v_invalid": 0,
        "v_seconds": 360.0,
        "v_resets": 0,
        "v_gaps": 0,
    }


def test_every_gauge_aggregate_on_raw_values_times_scale() -> None:
    aggregates = tuple(a for a in ALL if a not in ("rate", "increase"))
    rows = series([(0, 3), (60, 1), (120, 4), (180, 1), (240, 5)], name="g")
    values = row_values(rollup_rows(gauge(aggregates=aggregates, scale=2.0), hours(0), rows))
    stddev = values.pop("g_stddev")
    assert stddev == pytest.approx(math.sqrt(51.2 / 4), rel=1e-12)
    assert values == {
        "g_mean": 5.6,
        "g_min": 2.0,
        "g_max": 10.0,
        "g_sum": 28.0,
        "g_count": 5,
        "g_last": 10.0,
        "g_p20": 2.0,
        "g_p40": 2.0,
        "g_p50": 6.0,
        "g_p60": 6.0,
        "g_p80": 8.0,
        "g_p95": 10.0,
        "g_p99": 10.0,
        "g_p100": 10.0,
        "g_samples": 5,
        "g_invalid": 0,
    }


def test_percentile_rank_is_not_thrown_off_by_float_rounding() -> None:
    """p95 of 1..20 is the 19th value (0.95 × 20 = 19 exactly), p90 of 1..10 the 9th."""
    rows = series([(i * 10, float(i)) for i in range(1, 21)], name="g")
    values = row_values(rollup_rows(gauge(aggregates=("p95", "p90", "p5")), hours(0), rows))
    assert (values["g_p95"], values["g_p90"], values["g_p5"]) == (19.0, 18.0, 1.0)
    rows = series([(i * 10, float(i)) for i in range(1, 11)], name="g")
    values = row_values(rollup_rows(gauge(aggregates=("p90", "p99.9")), hours(0), rows))
    assert (values["g_p90"], values["g_p99_9"]) == (9.0, 10.0)


def test_gauge_takes_every_sample_including_the_first_and_ignores_the_lookback() -> None:
    rows = series([(3000, 100.0), (3700, 1.0)], name="g")
    [result] = rollup_rows(gauge(aggregates=("mean", "count")), hours(1), rows)
    [row] = result.rows
    assert row.values == {"g_mean": 1.0, "g_count": 1, "g_samples": 1, "g_invalid": 0}


def test_gauge_duplicates_keep_the_last_value() -> None:
    rows = series([(0, 1.0), (60, 2.0), (60, 3.0)], name="g")
    values = row_values(rollup_rows(gauge(aggregates=("sum", "count")), hours(0), rows))
    assert (values["g_sum"], values["g_count"], values["g_samples"]) == (4.0, 2, 2)


def test_stddev_needs_at_least_two_values() -> None:
    values = row_values(
        rollup_rows(counter(aggregates=("mean", "stddev")), hours(0), series([(0, 0), (60, 60)]))
    )
    assert values["v_mean"] == 1.0
    assert "v_stddev" not in values


def test_stddev_stays_accurate_for_a_large_mean_across_batches() -> None:
    base = 1e9
    readings = [base + d for d in (1.0, 2.0, 3.0, 4.0)]
    rows = series([(i * 10, v) for i, v in enumerate(readings)], name="g")
    values = row_values(run(gauge(aggregates=("stddev",)), hours(0), [make_batch([row]) for row in rows]))
    assert values["g_stddev"] == pytest.approx(math.sqrt(5 / 3), rel=1e-9)


def test_last_is_the_value_with_the_greatest_timestamp_across_series_and_batches() -> None:
    spec = gauge(aggregates=("last",), group_by=())
    first = make_batch(series([(0, 1.0), (300, 7.0)], A, "g"))
    second = make_batch(series([(100, 2.0), (200, 3.0)], {"host": "b"}, "g"))
    assert row_values(run(spec, hours(0), [first, second]))["g_last"] == 7.0


def test_last_time_is_the_time_of_last_in_nanoseconds_as_an_integer() -> None:
    spec = counter(aggregates=("last", "last_time"), group_by=())
    rows = series([(0, 100), (60, 700), (90, 1000)], A) + series([(30, 5), (80, 50)], {"host": "b"})
    values = row_values(run(spec, hours(0), [make_batch(rows)]))
    assert values["v_last"] == 10.0  # (1000 - 700) / 30 s, stamped at 90 s
    assert values["v_last_time"] == at(90)
    assert isinstance(values["v_last_time"], int)


@pytest.mark.parametrize("order", ["a_first", "b_first"])
def test_last_at_an_instant_several_series_share_is_the_greatest_of_their_values(order: str) -> None:
    spec = gauge(aggregates=("last",), group_by=())
    a = series([(0, 1.0), (300, 4.0)], A, "g")
    b = series([(100, 9.0), (300, 5.0)], {"host": "b"}, "g")
    c = series([(300, -2.0)], {"host": "c"}, "g")
    parts = [a, b, c] if order == "a_first" else [c, b, a]
    assert row_values(run(spec, hours(0), [make_batch(p) for p in parts]))["g_last"] == 5.0


@settings(max_examples=150, deadline=None)
@given(
    offset=st.sampled_from([0.0, 1e3, 1e6, 1e9, 1e12, -1e15]),
    spread=st.sampled_from([1e-3, 1.0, 1e3]),
    noise=st.lists(st.floats(min_value=-1.0, max_value=1.0), min_size=2, max_size=30),
    size=st.integers(min_value=1, max_value=7),
)
def test_property_stddev_is_the_exact_one_to_12_digits_whatever_the_mean(
    offset: float, spread: float, noise: list[float], size: int
) -> None:
    """Two series of one group, fed in batches of ``size`` rows: the sample standard deviation of
    all their values against exact fractions, for means up to 10^15 times the spread."""
    readings = [offset + spread * x for x in noise]
    rows = sorted(
        (({"host": "a", "if": str(i % 2)}, float(i // 2 * 10), {"g": v}) for i, v in enumerate(readings)),
        key=lambda row: row[0]["if"],
    )
    spec = gauge(aggregates=("stddev",), group_by=("host",))
    values = row_values(
        run(spec, hours(0), [make_batch(rows[i : i + size]) for i in range(0, len(rows), size)])
    )
    mean = sum(Fraction(v) for v in readings) / len(readings)
    exact = math.sqrt(float(sum((Fraction(v) - mean) ** 2 for v in readings) / (len(readings) - 1)))
    assert values["g_stddev"] == pytest.approx(exact, rel=1e-12, abs=1e-300)


def test_stddev_stays_accurate_for_a_huge_mean_and_a_tiny_spread() -> None:
    """Raw sums of squares would lose every digit here (1e15² needs 100 bits)."""
    readings = [1e15 + d for d in (0.125, 0.25, 0.5, 0.875, 0.25, 0.375)]
    rows = series([(i * 10, v) for i, v in enumerate(readings)], name="g")
    mean = sum(Fraction(v) for v in readings) / len(readings)
    exact = math.sqrt(float(sum((Fraction(v) - mean) ** 2 for v in readings) / (len(readings) - 1)))
    for parts in ([rows], [[row] for row in rows]):
        values = row_values(run(gauge(aggregates=("stddev",)), hours(0), [make_batch(p) for p in parts]))
        assert values["g_stddev"] == pytest.approx(exact, rel=1e-12)


def test_window_whose_only_interval_was_dropped_writes_no_row() -> None:
    spec = counter(aggregates=("rate", "increase", "count"))
    [result] = rollup_rows(spec, hours(0), series([(0, 10), (60, 5)]))
    assert result.rows == []


# -- several fields, groups ---------------------------------------------------------------------


def test_several_fields_of_different_kinds_in_one_job() -> None:
    spec = RollupSpec(
        (
            FieldRule("in", "bits_in", aggregates=("mean", "rate"), scale=8.0),
            FieldRule("err", "errors", aggregates=("increase",), on_decrease="reset"),
            FieldRule("temp", "temp", kind="gauge", aggregates=("max", "mean")),
        )
    )
    rows: list[Row] = [
        (A, 0, {"in": 0, "err": 5, "temp": 40.0}),
        (A, 60, {"in": 600, "err": 7, "temp": 42.0}),
        (A, 120, {"in": 1800, "err": 1, "temp": 41.0}),
    ]
    values = row_values(rollup_rows(spec, hours(0), rows))
    assert values == {
        "bits_in_mean": 120.0,  # rates 80 and 160 bits/s
        "bits_in_rate": 120.0,
        "bits_in_samples": 3,
        "bits_in_invalid": 0,
        "bits_in_seconds": 120.0,
        "bits_in_resets": 0,
        "bits_in_gaps": 0,
        "errors_increase": 3.0,  # 2 then a reset to 1
        "errors_samples": 3,
        "errors_invalid": 0,
        "errors_seconds": 120.0,
        "errors_resets": 1,
        "errors_gaps": 0,
        "temp_max": 42.0,
        "temp_mean": 41.0,
        "temp_samples": 3,
        "temp_invalid": 0,
    }


def test_fields_without_a_value_omit_their_aggregates_but_keep_coverage() -> None:
    spec = RollupSpec((FieldRule("a", "a"), FieldRule("b", "b", aggregates=("max",))))
    rows: list[Row] = [(A, 0, {"a": 0, "b": 10}), (A, 60, {"a": 60, "b": "broken"})]
    values = row_values(rollup_rows(spec, hours(0), rows))
    assert values == {
        "a_mean": 1.0,
        "a_samples": 2,
        "a_invalid": 0,
        "a_seconds": 60.0,
        "a_resets": 0,
        "a_gaps": 0,
        "b_samples": 1,
        "b_invalid": 1,
        "b_seconds": 0.0,
        "b_resets": 0,
        "b_gaps": 0,
    }


def ifrows(host: str, port: str, start: float, step: float) -> list[Row]:
    return series(
        [(0, start), (60, start + 60 * step), (120, start + 180 * step)], {"host": host, "if": port}
    )


def test_group_by_a_subset_aggregates_several_series() -> None:
    rows = ifrows("b", "1", 0, 1.0) + ifrows("a", "1", 0, 1.0) + ifrows("a", "2", 1000, 2.0)
    spec = counter(aggregates=("mean", "count", "sum", "increase", "rate"), group_by=("host",))
    results = rollup_rows(spec, hours(0), rows)
    got = [(tags, values) for _, tags, values in flatten(results)]
    assert [tags for tags, _ in got] == [{"host": "a"}, {"host": "b"}]
    a = got[0][1]
    # host=a: if=1 rates 1, 2; if=2 rates 2, 4
    assert (a["v_count"], a["v_sum"], a["v_mean"]) == (4, 9.0, 2.25)
    assert (a["v_increase"], a["v_seconds"], a["v_rate"]) == (540.0, 240.0, 2.25)
    assert (a["v_samples"], a["v_resets"]) == (6, 0)
    b = got[1][1]
    assert (b["v_count"], b["v_sum"], b["v_mean"]) == (2, 3.0, 1.5)


def test_group_by_none_gives_one_group_per_series_with_all_its_tags_ordered_by_tags() -> None:
    rows = ifrows("b", "1", 0, 1.0) + ifrows("a", "2", 0, 1.0) + ifrows("a", "1", 0, 1.0)
    results = rollup_rows(counter(), hours(0), rows)
    assert [tags for _, tags, _ in flatten(results)] == [
        {"host": "a", "if": "1"},
        {"host": "a", "if": "2"},
        {"host": "b", "if": "1"},
    ]


def test_empty_group_by_puts_every_series_in_one_untagged_group() -> None:
    rows = ifrows("b", "1", 0, 1.0) + ifrows("a", "2", 0, 1.0)
    [(_, tags, values)] = flatten(rollup_rows(counter(aggregates=("count",), group_by=()), hours(0), rows))
    assert tags == {}
    assert values["v_count"] == 4


def test_group_tags_with_empty_or_absent_values_are_omitted() -> None:
    rows = (
        series([(0, 0), (60, 60)], {"host": "a", "if": "1", "role": ""})
        + series([(0, 0), (60, 120)], {"host": "a", "if": "2"})
        + series([(0, 0), (60, 180)], {"host": "a", "if": "3", "role": "core"})
    )
    results = rollup_rows(counter(aggregates=("count", "sum"), group_by=("host", "role")), hours(0), rows)
    got = [(tags, values["v_count"], values["v_sum"]) for _, tags, values in flatten(results)]
    assert got == [({"host": "a"}, 2, 3.0), ({"host": "a", "role": "core"}, 1, 3.0)]


def test_series_key_leaves_out_empty_tag_values_and_sorts() -> None:
    assert series_key({"z": "1", "a": "", "b": "2"}) == (("b", "2"), ("z", "1"))


def test_distinct_series_never_share_a_group_even_if_tags_contain_separators() -> None:
    rows = series([(0, 0), (60, 60)], {"a": "b=c"}) + series([(0, 0), (60, 120)], {"a=b": "c"})
    results = rollup_rows(counter(aggregates=("mean",)), hours(0), rows)
    got = sorted((tuple(tags.items()), values["v_mean"]) for _, tags, values in flatten(results))
    assert got == [((("a", "b=c"),), 1.0), ((("a=b", "c"),), 2.0)]


# -- coverage and schema ------------------------------------------------------------------------


def test_coverage_fields_and_their_types() -> None:
    spec = counter(aggregates=("mean", "count"), on_decrease="reset", max_gap_ns=300 * S)
    rows = series([(0, 0), (60, 60), (120, "x"), (180, 30), (900, 100), (960, 160)])
    values = row_values(rollup_rows(spec, hours(0), rows))
    assert values == {
        "v_mean": 0.75,  # rates 60/60, the reset 30/120, 60/60
        "v_count": 3,
        "v_samples": 5,
        "v_invalid": 1,
        "v_seconds": 240.0,  # 60 + 120 + 60; the 720 s gap is not covered
        "v_resets": 1,
        "v_gaps": 1,
    }
    schema = output_schema(spec)
    assert set(values) == set(schema)
    for name, kind in schema.items():
        assert isinstance(values[name], int if kind == "long" else float), name


def test_output_schema_names_every_field_and_its_type() -> None:
    spec = RollupSpec(
        (
            FieldRule("in", "bits", aggregates=("mean", "count", "p95")),
            FieldRule("t", "temp", kind="gauge", aggregates=("last",)),
        )
    )
    assert output_schema(spec) == {
        "bits_mean": "double",
        "bits_count": "long",
        "bits_p95": "double",
        "bits_samples": "long",
        "bits_invalid": "long",
        "bits_seconds": "double",
        "bits_resets": "long",
        "bits_gaps": "long",
        "temp_last": "double",
        "temp_samples": "long",
        "temp_invalid": "long",
    }


# -- invalid values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), float("-inf"), "12 kB", True],
    ids=["nan", "inf", "minus_inf", "string", "boolean"],
)
def test_non_numbers_are_skipped_counted_invalid_and_never_prev(bad: Any) -> None:
    rows = series([(0, 0.0), (60, bad), (120, 120.0)])
    values = row_values(rollup_rows(counter(aggregates=("mean", "count")), hours(0), rows, {"v": np.float64}))
    assert (values["v_mean"], values["v_count"]) == (1.0, 1)  # 0 -> 120 over 120 s
    assert (values["v_samples"], values["v_invalid"]) == (2, 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "n/a"], ids=["nan", "inf", "string"])
def test_gauge_non_numbers_are_skipped_and_counted_invalid(bad: Any) -> None:
    rows = series([(0, 1.0), (60, bad), (120, 3.0)], name="g")
    values = row_values(rollup_rows(gauge(aggregates=("mean",)), hours(0), rows, {"g": np.float64}))
    assert values == {"g_mean": 2.0, "g_samples": 2, "g_invalid": 1}


def test_invalid_rows_in_the_lookback_are_not_counted() -> None:
    rows = series([(3000, "x"), (3100, 0.0), (3700, 600.0)])
    values = row_values(rollup_rows(counter(), hours(1), rows, {"v": np.float64}))
    assert (values["v_invalid"], values["v_samples"], values["v_mean"]) == (0, 1, 1.0)


def test_a_row_flagged_invalid_is_never_used_as_a_value() -> None:
    """``valid`` may be left out (all valid); a row flagged ``invalid`` is still not a number."""
    key = series_key(A)
    column = FieldColumn(np.array([0.0, 0.0, 120.0]), invalid=np.array([False, True, False]))
    batch = Batch([key], np.array([3]), np.array([at(0), at(60), at(120)]), {"v": column})
    values = row_values(run(counter(aggregates=("mean", "count")), hours(0), [batch]))
    assert (values["v_mean"], values["v_count"], values["v_samples"], values["v_invalid"]) == (1.0, 1, 2, 1)


def test_points_count_every_source_row_of_the_window() -> None:
    rows: list[Row] = [(A, 0, {"v": 0}), (A, 60, {"v": "x"}), (A, 120, {}), (A, 180, {"v": 180})]
    [result] = rollup_rows(counter(), hours(0), rows)
    assert result.points == 4


# -- Kapacitor parity ---------------------------------------------------------------------------


def test_kapacitor_parity_window_by_window_without_lookback() -> None:
    """`|derivative().nonNegative() |mean()` per window: each window run alone, no lookback rows."""
    spec = counter(aggregates=("mean",), on_decrease="drop", stamp="end")
    data: list[Row] = [
        (A, 0, {"v": 0}),  # window 0: the first point gives no rate
        (A, 600, {"v": 600}),  # rate 1
        (A, 1200, {}),  # lacks the field: skipped, not prev
        (A, 1800, {"v": 2400}),  # rate 1800 / 1200 = 1.5
        (A, 3600, {"v": 5000}),  # window 1: first point, no rate
        (A, 4200, {"v": 100}),  # decrease: dropped, but becomes prev
        (A, 4800, {"v": 700}),  # rate 1
        (A, 7200, {"v": 800}),  # window 2: a single point writes nothing
    ]
    written = []
    for window in hours(0, 3):
        inside = [row for row in data if window.start <= at(row[1]) < window.end]
        [result] = rollup_rows(spec, [window], inside)
        written += [(row.time, row.values["v_mean"], row.values["v_resets"]) for row in result.rows]
    assert written == [(T0 + HOUR, 1.25, 0), (T0 + 2 * HOUR, 1.0, 1)]


# -- construction -------------------------------------------------------------------------------


def test_rollup_needs_windows() -> None:
    with pytest.raises(ValueError, match="at least one window"):
        Rollup(counter(), [])


def test_rollup_windows_must_be_contiguous() -> None:
    with pytest.raises(ValueError, match="contiguous"):
        Rollup(counter(), [hours(0)[0], hours(2)[0]])


def test_rollup_with_no_batches_gives_empty_results() -> None:
    results = Rollup(counter(), hours(0, 2)).finish()
    assert [(r.window, r.rows, r.points) for r in results] == [(w, [], 0) for w in hours(0, 2)]


def test_empty_batches_are_harmless() -> None:
    empty = Batch([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), {})
    rows = series([(0, 0), (60, 60)])
    results = run(counter(), hours(0), [empty, make_batch(rows[:1]), empty, make_batch(rows[1:]), empty])
    assert row_values(results)["v_mean"] == 1.0


def test_a_batch_without_the_field_counts_nothing_for_it() -> None:
    other = make_batch([(A, 0, {"w": 1.0}), (A, 60, {"w": 2.0})])
    [result] = run(counter(), hours(0), [other])
    assert result.rows == []
    assert result.points == 2


INVALID_SPECS = [
    ("no_aggregate", lambda: FieldRule("v", "v", aggregates=()), "at least one aggregate"),
    ("unknown_aggregate", lambda: FieldRule("v", "v", aggregates=("median",)), "unknown aggregate 'median'"),
    ("zero_percentile", lambda: FieldRule("v", "v", aggregates=("p0",)), "invalid percentile 'p0'"),
    ("percentile_above_100", lambda: FieldRule("v", "v", aggregates=("p101",)), "unknown aggregate 'p101'"),
    ("rate_of_a_gauge", lambda: FieldRule("v", "v", kind="gauge", aggregates=("rate",)), "needs a counter"),
    ("increase_of_a_gauge", lambda: FieldRule("v", "v", kind="gauge", aggregates=("increase",)),
     "needs a counter"),
    ("zero_unit", lambda: FieldRule("v", "v", unit_seconds=0), "unit must be longer than zero"),
    ("no_field", lambda: RollupSpec(()), "at least one field"),
    ("duplicate_output", lambda: RollupSpec((FieldRule("a", "x"), FieldRule("b", "x"))), "unique"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("build", "message"), [c[1:] for c in INVALID_SPECS], ids=[c[0] for c in INVALID_SPECS]
)
def test_invalid_spec_raises_value_error_naming_the_problem(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_batch_rejects_inconsistent_shapes() -> None:
    key = series_key(A)
    with pytest.raises(ValueError, match="one run length per series key"):
        Batch([key], np.array([1, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="add up to 2 rows but the batch has 3 times"):
        Batch([key], np.array([2]), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="field 'v' has 1 values for 2 rows"):
        Batch([key], np.array([2]), np.array([0, 1]), {"v": FieldColumn(np.array([1.0]))})
    with pytest.raises(TypeError, match="must be int64, uint64 or float64"):
        FieldColumn(np.array(["a"]))


def test_windows_of_a_rollup_may_be_calendar_windows_of_any_length() -> None:
    windows = [Window(T0, T0 + 23 * HOUR), Window(T0 + 23 * HOUR, T0 + 48 * HOUR)]
    rows = series([(0, 0), (82740, 82740), (82860, 82980)])
    results = rollup_rows(counter(aggregates=("mean",)), windows, rows)
    assert [(i, v["v_mean"]) for i, _, v in flatten(results)] == [(0, 1.0), (1, 2.0)]


def test_fractional_percentile_output_name_has_no_dot() -> None:
    """A dot would be read as nesting by Elasticsearch and clash with `p99`."""
    rows = series([(i * 10, float(i)) for i in range(1, 11)], name="g")
    values = row_values(rollup_rows(gauge(aggregates=("p99", "p99.9")), hours(0), rows))
    assert {"g_p99", "g_p99_9"} <= set(values)
    assert not any("." in name for name in values)


# -- input far apart in time -----------------------------------------------------------------------


def test_runs_spread_over_centuries_land_in_the_same_windows_as_alone() -> None:
    """Rows of a batch are placed in windows by one search over all runs when their time span allows
    it, else run by run: both give the same result."""
    far_past = -T0 // S  # 1970-01-01
    far_future = 60 * 365 * 86400  # 117 years after the first row: alone one search, together not
    a = series([(far_past, 0), (60, 6000), (120, 12000), (far_future, 13000)])
    b = series([(far_past, 5), (60, 65), (3700, 3665)], tags={"host": "b"})
    spec = counter(aggregates=("mean", "count"))
    together = flatten(run(spec, hours(0, 2), [make_batch(a + b)]))
    alone = flatten(run(spec, hours(0, 2), [make_batch(a), make_batch(b)]))
    assert together == alone
    assert [(i, tags["host"], values["v_count"]) for i, tags, values in together] == [
        (0, "a", 2),
        (0, "b", 1),
        (1, "b", 1),
    ]

"""The per-series derivative: on_decrease rules, exact integer counters, unit/scale, gaps, prev state."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollup.core import numbers
from rollup.core.derivative import Intervals, PrevState, derive
from rollup.core.spec import FieldRule, OnDecrease

from .builders import S

TWO_32 = 2**32
TWO_63 = 2**63
TWO_64 = 2**64


def derive_series(
    rule: FieldRule,
    times_s: list[float],
    values: list[Any],
    dtype: Any,
    prev: PrevState | None = None,
    max_gap_s: float | None = None,
    series: list[int] | None = None,
) -> Intervals:
    """Derive one batch of samples (series 0 unless ``series`` is given)."""
    state = prev if prev is not None else PrevState()
    ids = np.asarray(series if series is not None else [0] * len(values), dtype=np.int64)
    state.grow(int(ids.max()) + 1 if len(ids) else 1)
    return derive(
        rule,
        ids,
        np.asarray([round(t * S) for t in times_s], dtype=np.int64),
        np.asarray(values, dtype=dtype),
        state,
        None if max_gap_s is None else round(max_gap_s * S),
    )


def dvs(intervals: Intervals, scale: float = 1.0) -> list[float | None]:
    """Σdv of each interval (None where the interval is dropped)."""
    return [
        float(inc) / scale if kept else None
        for inc, kept in zip(intervals.increase.tolist(), intervals.kept.tolist(), strict=True)
    ]


class DecreaseCase(NamedTuple):
    rule: str
    on_decrease: OnDecrease
    max_rate: float | None
    dtype: Any
    times: list[float]
    values: list[Any]
    expected_dv: list[float | None]


DECREASES = [
    DecreaseCase("drop_drops_the_interval_and_v1_becomes_prev", "drop", None, np.float64,
                 [0, 60, 120], [100.0, 50.0, 80.0], [None, 30.0]),
    DecreaseCase("drop_with_integers", "drop", None, np.uint64, [0, 60, 120], [100, 50, 80], [None, 30.0]),
    DecreaseCase("reset_takes_v1_as_the_increase", "reset", None, np.float64,
                 [0, 60, 120], [100.0, 50.0, 80.0], [50.0, 30.0]),
    DecreaseCase("reset_with_integers", "reset", None, np.int64, [0, 60], [100, 50], [50.0]),
    DecreaseCase("wrap32_adds_2_pow_32", "wrap32", None, np.uint64, [0, 60], [TWO_32 - 10, 5], [15.0]),
    DecreaseCase("wrap32_with_float_values", "wrap32", None, np.float64,
                 [0, 60], [float(TWO_32 - 10), 5.0], [15.0]),
    DecreaseCase("wrap32_prev_not_fitting_32_bits_is_a_reset", "wrap32", None, np.uint64,
                 [0, 60], [TWO_32 + 100, 5], [5.0]),
    DecreaseCase("wrap32_float_prev_not_fitting_32_bits_is_a_reset", "wrap32", None, np.float64,
                 [0, 60], [float(TWO_32 + 100), 5.0], [5.0]),
    DecreaseCase("wrap64_is_exact_near_2_pow_64", "wrap64", None, np.uint64,
                 [0, 60], [TWO_64 - 10, 5], [15.0]),
    DecreaseCase("wrap64_small_prev_gives_a_huge_increase", "wrap64", None, np.uint64,
                 [0, 60], [100, 50], [float(TWO_64 - 50)]),
    DecreaseCase("auto_32bit_prev_wraps_without_max_rate", "auto", None, np.uint64,
                 [0, 60], [TWO_32 - 10, 5], [15.0]),
    DecreaseCase("auto_64bit_prev_resets_without_max_rate", "auto", None, np.uint64,
                 [0, 60], [TWO_64 - 10, 5], [5.0]),
    DecreaseCase("auto_float_64bit_prev_resets_without_max_rate", "auto", None, np.float64,
                 [0, 60], [float(2**40), 5.0], [5.0]),
    DecreaseCase("auto_32bit_wrap_within_max_rate_wraps", "auto", 10.0, np.uint64,
                 [0, 10], [TWO_32 - 10, 5], [15.0]),
    DecreaseCase("auto_32bit_wrap_above_max_rate_resets", "auto", 100.0, np.uint64,
                 [0, 10], [TWO_32 - 10, 1000], [1000.0]),
    DecreaseCase("auto_32bit_wrap_exactly_at_max_rate_wraps", "auto", 1.5, np.uint64,
                 [0, 10], [TWO_32 - 10, 5], [15.0]),
    DecreaseCase("auto_64bit_wrap_within_max_rate_wraps", "auto", 100.0, np.uint64,
                 [0, 10], [TWO_64 - 100, 50], [150.0]),
    DecreaseCase("auto_64bit_wrap_above_max_rate_resets", "auto", 100.0, np.uint64,
                 [0, 10], [2**40, 5], [5.0]),
    DecreaseCase("auto_float_32bit_wrap_within_max_rate_wraps", "auto", 10.0, np.float64,
                 [0, 10], [float(TWO_32 - 10), 5.0], [15.0]),
    DecreaseCase("auto_float_32bit_wrap_above_max_rate_resets", "auto", 1.0, np.float64,
                 [0, 10], [float(TWO_32 - 10), 5.0], [5.0]),
]  # fmt: skip


@pytest.mark.parametrize("case", DECREASES, ids=[c.rule for c in DECREASES])
def test_on_decrease(case: DecreaseCase) -> None:
    rule = FieldRule("v", "v", on_decrease=case.on_decrease, max_rate=case.max_rate)
    intervals = derive_series(rule, case.times, case.values, case.dtype)
    assert dvs(intervals) == case.expected_dv
    # The first interval decreased in every case; a later one (if any) did not.
    assert intervals.decreased.tolist() == [True] + [False] * (len(case.expected_dv) - 1)


@pytest.mark.parametrize("mode", ["drop", "reset", "wrap32", "wrap64", "auto"])
@pytest.mark.parametrize("dtype", [np.uint64, np.float64])
def test_every_decrease_is_flagged_whatever_the_rule(mode: OnDecrease, dtype: Any) -> None:
    rule = FieldRule("v", "v", on_decrease=mode)
    intervals = derive_series(rule, [0, 60, 120, 180], [10, 5, 7, 1], dtype)
    assert intervals.decreased.tolist() == [True, False, True]


def test_auto_max_rate_is_compared_with_the_scaled_rate() -> None:
    """max_rate is in output units: the wrapped rate after unit and scale."""
    values = [TWO_32 - 10, 5]  # wrapped dv = 15 in 1 s -> 15/s -> 120 with scale 8
    below = FieldRule("v", "v", on_decrease="auto", max_rate=100.0, scale=8.0)
    above = FieldRule("v", "v", on_decrease="auto", max_rate=200.0, scale=8.0)
    assert dvs(derive_series(below, [0, 1], values, np.uint64), scale=8.0) == [5.0]
    assert dvs(derive_series(above, [0, 1], values, np.uint64), scale=8.0) == [15.0]


EXACT = [
    # (rule, values, expected dv): all of these would be wrong through float64
    ("just_above_2_pow_63", [TWO_63 + 1, TWO_63 + 3], 2.0),
    ("just_below_2_pow_64", [TWO_64 - 3, TWO_64 - 1], 2.0),
    ("across_2_pow_63", [TWO_63 - 7, TWO_63 + 3], 10.0),
    ("one_step_near_2_pow_53", [2**53 + 1, 2**53 + 2], 1.0),
]


@pytest.mark.parametrize(("values", "expected"), [c[1:] for c in EXACT], ids=[c[0] for c in EXACT])
def test_integer_counters_are_subtracted_exactly(values: list[int], expected: float) -> None:
    rule = FieldRule("v", "v", on_decrease="drop")
    intervals = derive_series(rule, [0, 1], values, np.uint64)
    assert dvs(intervals) == [expected]
    assert intervals.rate.tolist() == [expected]


def test_negative_integer_counters_are_subtracted_exactly() -> None:
    rule = FieldRule("v", "v", on_decrease="drop")
    base = -(2**62)  # float64 would round -2^62 - 1 to -2^62 and give a step of 2
    intervals = derive_series(rule, [0, 2, 4, 6], [base - 1, base + 2, base - 5, -1], np.int64)
    assert dvs(intervals) == [3.0, None, float(-1 - (base - 5))]
    assert intervals.rate.tolist()[0] == 1.5


def test_rate_is_dv_over_dt_times_unit_times_scale_and_increase_is_dv_times_scale() -> None:
    rule = FieldRule("v", "v", unit_seconds=60.0, scale=8.0)
    intervals = derive_series(rule, [0, 120], [1000, 1600], np.uint64)
    assert intervals.rate.tolist() == [600 / 120 * 60 * 8]
    assert intervals.increase.tolist() == [600 * 8]
    assert intervals.seconds.tolist() == [120.0]


def test_rate_is_stamped_at_t1() -> None:
    rule = FieldRule("v", "v")
    intervals = derive_series(rule, [0, 60, 90], [0.0, 60.0, 120.0], np.float64)
    assert intervals.time.tolist() == [60 * S, 90 * S]
    assert intervals.rate.tolist() == [1.0, 2.0]


def test_interval_longer_than_max_gap_is_dropped_and_flagged() -> None:
    rule = FieldRule("v", "v")
    intervals = derive_series(rule, [0, 120, 361], [0.0, 120.0, 361.0], np.float64, max_gap_s=120)
    assert intervals.gap.tolist() == [False, True]  # exactly max_gap is still an interval
    assert intervals.kept.tolist() == [True, False]


def test_a_gap_with_a_decrease_is_both_a_gap_and_a_decrease() -> None:
    rule = FieldRule("v", "v", on_decrease="reset")
    intervals = derive_series(rule, [0, 600], [100.0, 5.0], np.float64, max_gap_s=60)
    assert intervals.gap.tolist() == [True]
    assert intervals.decreased.tolist() == [True]
    assert intervals.kept.tolist() == [False]


def test_prev_carries_over_to_the_next_batch() -> None:
    rule = FieldRule("v", "v")
    prev = PrevState()
    first = derive_series(rule, [0, 60], [0, 60], np.uint64, prev=prev)
    second = derive_series(rule, [120], [180], np.uint64, prev=prev)
    assert first.rate.tolist() == [1.0]
    assert second.rate.tolist() == [2.0]
    assert second.seconds.tolist() == [60.0]


def test_first_sample_without_prev_gives_no_interval() -> None:
    intervals = derive_series(FieldRule("v", "v"), [0], [5], np.uint64)
    assert len(intervals.time) == 0


def test_series_do_not_mix() -> None:
    rule = FieldRule("v", "v")
    intervals = derive_series(rule, [0, 60, 0, 60], [0, 60, 1000, 1120], np.uint64, series=[0, 0, 1, 1])
    assert intervals.series.tolist() == [0, 1]
    assert intervals.rate.tolist() == [1.0, 2.0]


def test_float_prev_followed_by_integer_batch() -> None:
    rule = FieldRule("v", "v")
    prev = PrevState()
    derive_series(rule, [0], [100.0], np.float64, prev=prev)
    intervals = derive_series(rule, [10, 20], [150, 170], np.uint64, prev=prev)
    assert dvs(intervals) == [50.0, 20.0]


def test_float_prev_followed_by_integer_decrease_uses_the_rule() -> None:
    rule = FieldRule("v", "v", on_decrease="wrap32")
    prev = PrevState()
    derive_series(rule, [0], [float(TWO_32 - 10)], np.float64, prev=prev)
    intervals = derive_series(rule, [10], [5], np.uint64, prev=prev)
    assert dvs(intervals) == [15.0]
    assert intervals.decreased.tolist() == [True]


def test_integer_prev_followed_by_float_batch() -> None:
    rule = FieldRule("v", "v")
    prev = PrevState()
    derive_series(rule, [0], [2**40], np.uint64, prev=prev)
    intervals = derive_series(rule, [10], [float(2**40 + 4096)], np.float64, prev=prev)
    assert dvs(intervals) == [4096.0]


def test_dropped_interval_rate_is_not_a_number() -> None:
    intervals = derive_series(FieldRule("v", "v"), [0, 1], [5.0, 1.0], np.float64)
    assert math.isnan(intervals.rate[0])


# -- exact values of every kind -------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(min_value=-1e30, max_value=1e30, allow_nan=False),
)
RULES = st.builds(
    lambda mode, max_rate: FieldRule("v", "v", on_decrease=mode, max_rate=max_rate),
    st.sampled_from(["drop", "reset", "wrap32", "wrap64", "auto"]),
    st.sampled_from([None, 1e3, 1e12, 1e20]),
)


def exact_dv(rule: FieldRule, v0: int | float, v1: int | float, dt_s: float) -> tuple[float | None, bool]:
    """The reference: dv from the exact values, rounded once (None where dropped), and whether it
    is a decrease."""
    a, b = Fraction(v0), Fraction(v1)
    if b >= a:
        return float(b - a), False
    fits32 = 0 <= a < TWO_32
    wrapped = float(b + (TWO_32 if fits32 else TWO_64) - a)
    if rule.on_decrease == "drop":
        return None, True
    if rule.on_decrease == "reset":
        return float(b), True
    if rule.on_decrease == "wrap64":
        return float(b + TWO_64 - a), True
    if rule.on_decrease == "wrap32":
        return (wrapped if fits32 else float(b)), True
    plausible = fits32 if rule.max_rate is None else wrapped / dt_s * rule.unit_seconds <= rule.max_rate
    return (wrapped if plausible else float(b)), True


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(NUMBERS, min_size=2, max_size=12),
    rule=RULES,
    data=st.data(),
)
def test_property_dv_is_the_exact_difference_rounded_once_whatever_the_kinds_and_batches(
    values: list[int | float], rule: FieldRule, data: st.DataObject
) -> None:
    """Integers anywhere in -2^63 … 2^64 - 1 and floats, mixed in one series: cut into batches
    anywhere, each batch in one dtype when one holds it exactly or as a mixed column, every dv is
    the exact one rounded once, as a plain-Python reference computes it."""
    cuts = sorted(data.draw(st.sets(st.integers(min_value=1, max_value=len(values) - 1))))
    prev = PrevState()
    prev.grow(1)
    got_dv: list[float | None] = []
    got_down: list[bool] = []
    for low, high in itertools.pairwise([0, *cuts, len(values)]):
        column, kinds = numbers.from_python(values[low:high])
        if data.draw(st.booleans()):
            column, kinds = numbers.to_mixed(column, kinds)
        intervals = derive(
            rule,
            np.zeros(high - low, dtype=np.int64),
            np.asarray([t * 7 * S for t in range(low, high)], dtype=np.int64),
            column,
            prev,
            None,
            kinds,
        )
        got_dv += dvs(intervals)
        got_down += intervals.decreased.tolist()
    expected = [exact_dv(rule, a, b, 7.0) for a, b in itertools.pairwise(values)]
    assert got_dv == [dv for dv, _ in expected]
    assert got_down == [down for _, down in expected]


def test_a_negative_counter_one_near_2_pow_63_and_a_float_in_one_batch_are_each_exact() -> None:
    """No one dtype holds the batch: a mixed column, each series exact."""
    rule = FieldRule("v", "v", on_decrease="drop")
    column, kinds = numbers.from_python([-(2**62) - 1, -(2**62) + 2, 2**63 + 1, 2**63 + 3, 0.5, 2.25])
    assert kinds is not None
    prev = PrevState()
    prev.grow(3)
    series = np.asarray([0, 0, 1, 1, 2, 2], dtype=np.int64)
    times = np.asarray([0, S, 0, S, 0, S], dtype=np.int64)
    intervals = derive(rule, series, times, column, prev, None, kinds)
    assert dvs(intervals) == [3.0, 2.0, 1.75]


def test_a_series_whose_field_changes_type_between_batches_is_exact() -> None:
    """int64, then a float, then uint64: each step from the exact values (through float64, the
    integers near 2^62 would be 1024 apart)."""
    rule = FieldRule("v", "v", on_decrease="drop")
    prev = PrevState()
    first = derive_series(rule, [0, 1], [2**62 + 1, 2**62 + 61], np.int64, prev=prev)
    second = derive_series(rule, [2], [float(2**62 + 4096)], np.float64, prev=prev)
    third = derive_series(rule, [3], [2**64 - 1], np.uint64, prev=prev)
    assert dvs(first) + dvs(second) + dvs(third) == [60.0, 4035.0, float(2**64 - 1 - 2**62 - 4096)]

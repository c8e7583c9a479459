"""Exact percentiles with bounded memory (rollup/core/percentiles.py) against a plain-Python reference
of the nearest-rank rule: the smallest value with at least p % of the values at or below it."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollup.core.percentiles import KeptValues, select

PERCENTILES = (5.0, 50.0, 90.0, 95.0, 99.9, 100.0)


def nearest_rank(values: list[float], p: float) -> float:
    """The smallest value with at least p % of ``values`` at or below it, found by counting."""
    for candidate in sorted(values):
        if sum(v <= candidate for v in values) * 100 >= p * len(values) - 1e-7:
            return candidate
    raise AssertionError("unreachable: the largest value has every value at or below it")


def reference_table(kept: dict[int, list[float]], size: int) -> np.ndarray:
    out = np.full((len(PERCENTILES), size), np.nan)
    for slot, values in kept.items():
        for i, p in enumerate(PERCENTILES):
            out[i, slot] = nearest_rank(values, p)
    return out


def test_nearest_rank_reference_agrees_with_the_rule_on_exact_products() -> None:
    """p95 of 1..20 is the 19th value, p90 of 1..10 the 9th (no float rounding past an exact rank)."""
    assert nearest_rank([float(v) for v in range(1, 21)], 95.0) == 19.0
    assert nearest_rank([float(v) for v in range(10, 0, -1)], 90.0) == 9.0
    assert nearest_rank([3.0], 5.0) == 3.0


@pytest.mark.parametrize("size", [1, 2, 3, 7, 31, 32, 33, 64, 500])
def test_select_gives_the_nearest_rank_of_every_slot_whatever_its_size(size: int) -> None:
    rng = np.random.default_rng(size)
    counts = np.array([size, 1, size, 2, size + 1], dtype=np.int64)
    values = np.concatenate(
        [rng.integers(-3, 4, size=int(c)).astype(float) if i % 2 else rng.normal(size=int(c)) for i, c in
         enumerate(counts)]
    )  # fmt: skip
    got = select(values, counts, PERCENTILES)
    starts = np.cumsum(counts) - counts
    for slot, (start, count) in enumerate(zip(starts.tolist(), counts.tolist(), strict=True)):
        mine = values[start : start + count].tolist()
        assert got[:, slot].tolist() == [nearest_rank(mine, p) for p in PERCENTILES]


def test_select_keeps_infinite_values_and_ties() -> None:
    values = np.array([np.inf, 1.0, 1.0, -np.inf, 1.0, np.inf])
    got = select(values, np.array([6]), (1.0, 50.0, 67.0, 100.0))
    assert got[:, 0].tolist() == [-np.inf, 1.0, np.inf, np.inf]


# A sequence of operations on a store: ("add", slots, counts, values) or ("finish", slots).
Operation = tuple[str, list[int], list[int], list[float]]


@st.composite
def operations(draw: st.DrawFn) -> tuple[int, list[Operation]]:
    size = draw(st.integers(min_value=1, max_value=40))
    finished: set[int] = set()
    ops: list[Operation] = []
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        open_slots = [s for s in range(size) if s not in finished]
        if not open_slots:
            break
        slots = sorted(draw(st.sets(st.sampled_from(open_slots), min_size=1, max_size=6)))
        counts = [draw(st.integers(min_value=0, max_value=draw(st.sampled_from([3, 40, 90])))) for _ in slots]
        value = st.floats(-1e3, 1e3, allow_nan=False) | st.integers(-3, 3).map(float)
        ops.append(("add", slots, counts, draw(st.lists(value, min_size=sum(counts), max_size=sum(counts)))))
        if draw(st.booleans()):
            done = sorted(draw(st.sets(st.sampled_from(open_slots), max_size=len(open_slots))))
            finished |= set(done)
            ops.append(("finish", done, [], []))
    return size, ops


def play(size: int, ops: list[Operation], budget: int) -> tuple[np.ndarray, KeptValues]:
    kept = KeptValues(PERCENTILES, budget)
    for kind, slots, counts, values in ops:
        if kind == "add":
            kept.add(np.array(slots, dtype=np.int64), np.array(counts, dtype=np.int64), np.array(values))
        else:
            kept.finish(np.array(slots, dtype=np.int64))
    return kept.table(size).copy(), kept


def expected(size: int, ops: list[Operation]) -> np.ndarray:
    kept: dict[int, list[float]] = defaultdict(list)
    for kind, slots, counts, values in ops:
        if kind == "add":
            position = 0
            for slot, count in zip(slots, counts, strict=True):
                kept[slot] += values[position : position + count]
                position += count
    return reference_table({s: v for s, v in kept.items() if v}, size)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=operations(), budget=st.sampled_from([1, 200, 2_000, 10**9]))
def test_property_kept_values_give_nearest_ranks_whenever_slots_finish_and_whatever_the_budget(
    case: tuple[int, list[Operation]], budget: int
) -> None:
    size, ops = case
    table, _ = play(size, ops, budget)
    np.testing.assert_array_equal(table, expected(size, ops))


def test_spilling_to_a_file_gives_the_numbers_of_keeping_everything_in_memory() -> None:
    rng = np.random.default_rng(7)
    ops: list[Operation] = []
    for batch in range(60):
        slots = sorted(rng.choice(500, size=40, replace=False).tolist())
        counts = rng.integers(0, 200, size=40).tolist()
        ops.append(("add", slots, counts, rng.normal(100.0, 30.0, size=sum(counts)).round(1).tolist()))
        if batch % 10 == 9:
            ops.append(("finish", list(range(batch * 8, batch * 8 + 8)), [], []))
    in_memory, roomy = play(500, ops, budget=10**9)
    spilled, tight = play(500, ops, budget=64 * 1024)
    assert roomy.spilled == 0
    assert tight.spilled > 8 * sum(len(v) for _, _, _, v in ops) // 2  # most values went to the file
    assert tight.peak_memory <= 64 * 1024 + 40 * 200 * 8 + 40 * 24  # the budget, plus one batch
    np.testing.assert_array_equal(spilled, in_memory)
    assert not math.isnan(float(np.nanmax(spilled)))


def test_memory_is_freed_when_slots_finish() -> None:
    kept = KeptValues((95.0,), budget=10**9)
    for group in range(100):
        kept.add(np.array([group]), np.array([1000]), np.arange(1000.0))
        kept.finish(np.array([group]))
    assert kept.peak_memory <= 1000 * 8 + 24  # never more than one slot's values at once
    assert kept.table(100)[0].tolist() == [949.0] * 100

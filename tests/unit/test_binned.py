"""Binned sums: the same bits whatever the order and grouping of the terms, and close to exact."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rollup.core.binned import BinnedSums

SLOTS = 3
TERMS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=SLOTS - 1),
        st.one_of(
            st.floats(min_value=-1e300, max_value=1e300, allow_nan=False),
            st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False),
            st.sampled_from([0.0, -0.0, 1.0, 2.0**-1074, 1e16, -1e16]),
        ),
    ),
    max_size=40,
)


def add_in_parts(terms: list[tuple[int, float]], cuts: list[int]) -> np.ndarray:
    """Add ``terms`` in consecutive parts; each part sorted by slot as the callers do."""
    sums = BinnedSums()
    sums.grow(SLOTS)
    bounds = [0, *cuts, len(terms)]
    for low, high in itertools.pairwise(bounds):
        part = sorted(terms[low:high], key=lambda term: term[0])
        if not part:
            continue
        slots = np.asarray([slot for slot, _ in part])
        values = np.asarray([value for _, value in part])
        starts = np.flatnonzero(np.concatenate([[True], slots[1:] != slots[:-1]]))
        sums.add(slots[starts], starts, values, None)
    return sums.values(np.arange(SLOTS))


@settings(max_examples=300, deadline=None)
@given(terms=TERMS, data=st.data())
def test_property_the_order_and_grouping_of_terms_never_changes_a_bit(
    terms: list[tuple[int, float]], data: st.DataObject
) -> None:
    reordered = data.draw(st.permutations(terms))
    cuts = sorted(data.draw(st.sets(st.integers(min_value=0, max_value=len(terms)))))
    assert add_in_parts(reordered, cuts).tobytes() == add_in_parts(terms, []).tobytes()


@settings(max_examples=300, deadline=None)
@given(terms=TERMS)
def test_property_a_sum_is_within_2_pow_minus_59_of_its_largest_term_per_term_of_exact(
    terms: list[tuple[int, float]],
) -> None:
    got = add_in_parts(terms, [])
    for slot in range(SLOTS):
        mine = [value for s, value in terms if s == slot]
        exact = sum((Fraction(value) for value in mine), Fraction(0))
        largest = max((abs(value) for value in mine), default=0.0)
        bound = Fraction(largest) * len(mine) * Fraction(1, 2**59) + Fraction(abs(float(exact))) * Fraction(
            1, 2**52
        )
        if math.isinf(got[slot]):
            assert abs(exact) > Fraction(2**1023)
        else:
            assert abs(Fraction(got[slot]) - exact) <= bound


def test_terms_of_the_same_magnitude_add_exactly() -> None:
    sums = BinnedSums()
    sums.grow(1)
    values = np.asarray([0.1] * 10)
    sums.add(np.asarray([0]), np.asarray([0]), values, None)
    assert sums.values(np.asarray([0]))[0] == float(sum(Fraction(0.1) for _ in range(10)))


def test_non_finite_terms_give_inf_or_nan_whatever_their_order() -> None:
    for order in ([1.0, np.inf, 2.0], [np.inf, 1.0, 2.0]):
        sums = BinnedSums()
        sums.grow(2)
        sums.add(np.asarray([0]), np.asarray([0]), np.asarray(order), None)
        sums.add(np.asarray([1]), np.asarray([0]), np.asarray([np.inf, -np.inf]), None)
        result = sums.values(np.asarray([0, 1]))
        assert result[0] == np.inf
        assert math.isnan(result[1])


def test_a_larger_term_coming_later_drops_the_same_low_bits_as_coming_first() -> None:
    """2^-52 is far below 2^-60 of 2^80: dropped, whether 2^80 comes before or after it."""
    small, large = 2.0**20 + 2.0**-52, 2.0**80
    first = add_in_parts([(0, small), (0, large)], [1])
    second = add_in_parts([(0, large), (0, small)], [1])
    assert first.tobytes() == second.tobytes()
    assert first[0] == large + 2.0**20


def test_a_sum_of_zeros_only_is_a_positive_zero_and_tiny_terms_are_kept() -> None:
    """The top bin of a sum that had only zeros is none, so a later tiny term sets it."""
    result = add_in_parts([(0, -0.0), (0, 0.0), (1, 0.0), (1, 2.0**-1070)], [1, 3])
    assert result.tobytes() == np.asarray([0.0, 2.0**-1070, 0.0]).tobytes()

"""Sample values kept exactly as they arrived: integers from -2^63 to 2^64 - 1, and floats.

A field column normally has the one numpy dtype that holds all its values exactly: ``int64``,
``uint64`` (integers from 2^63 on) or ``float64``. A batch may hold values that no single dtype
keeps exact (a negative integer and one from 2^63 on, or an integer beyond 2^53 and a fraction);
its column is then *mixed*: ``values`` holds each row's 64 bits (``uint64``) and ``kinds`` says per
row how to read them, as :data:`INT` (int64), :data:`UINT` (uint64) or :data:`FLOAT` (float64).

A value is the number it stands for, whatever the storage: 5 as int64, as uint64 and as the float
5.0 are the same number, and the core computes with exact values (see :mod:`rollup.core.derivative`).
So which dtype a batch happens to use never changes a result, and a mixed column is used only where
no dtype is exact, never as a fallback for a whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

INT, UINT, FLOAT = 0, 1, 2
"""Kinds of a row of a mixed column: how its 64 bits read."""

KIND_OF = {np.dtype(np.int64): INT, np.dtype(np.uint64): UINT, np.dtype(np.float64): FLOAT}
TWO_53 = 2**53
_TOP_BIT = np.uint64(2**63)
_MASK_64 = 2**64 - 1


def check(values: np.ndarray, kinds: np.ndarray | None) -> None:
    """Raise TypeError unless ``values`` (and ``kinds``) are a column this module reads."""
    if kinds is None:
        if values.dtype not in KIND_OF:
            raise TypeError(f"field values must be int64, uint64 or float64, got dtype {values.dtype}")
        return
    if values.dtype != np.uint64 or kinds.dtype != np.uint8 or kinds.shape != values.shape:
        raise TypeError("a mixed field column needs uint64 values and one uint8 kind per value")


def bits(values: np.ndarray) -> np.ndarray:
    """The 64 bits of each value of a one-dtype column (or of a mixed column's values), as uint64."""
    return values if values.dtype == np.uint64 else values.view(np.uint64)


def kinds_of(values: np.ndarray, kinds: np.ndarray | None) -> np.ndarray:
    """The kind of every row."""
    if kinds is not None:
        return kinds
    return np.full(len(values), KIND_OF[values.dtype], dtype=np.uint8)


def as_float(values: np.ndarray, kinds: np.ndarray | None) -> np.ndarray:
    """Each value as the nearest float64."""
    if kinds is None:
        return values.astype(np.float64, copy=False)
    out = values.view(np.float64).copy()
    signed = kinds == INT
    out[signed] = values[signed].view(np.int64).astype(np.float64)
    unsigned = kinds == UINT
    out[unsigned] = values[unsigned].astype(np.float64)
    return out


def non_finite(values: np.ndarray, kinds: np.ndarray | None) -> np.ndarray | None:
    """Bool per row: a float that is NaN or infinite; None if no row can be one."""
    if kinds is None:
        return ~np.isfinite(values) if values.dtype.kind == "f" else None
    bad: np.ndarray = (kinds == FLOAT) & ~np.isfinite(values.view(np.float64))
    return bad


def negative(values: np.ndarray, kinds: np.ndarray | None) -> np.ndarray:
    """Bool per row: an integer below zero (a float never counts: callers test kinds first)."""
    if kinds is None:
        if values.dtype == np.int64:
            below: np.ndarray = values < 0
            return below
        return np.zeros(len(values), dtype=bool)
    below_zero: np.ndarray = (kinds == INT) & (values >= _TOP_BIT)
    return below_zero


def exactly_float(values: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Bool per row of a mixed column: exactly a float64 (a float, or an integer within ±2^53)."""
    signed = values.view(np.int64)
    small = np.where(kinds == UINT, values <= np.uint64(TWO_53), (signed >= -TWO_53) & (signed <= TWO_53))
    fits: np.ndarray = (kinds == FLOAT) | small
    return fits


def python_values(values: np.ndarray, kinds: np.ndarray | None) -> list[int | float]:
    """The values as Python ints and floats (exact), for the rare computations numpy cannot do exactly."""
    if kinds is None:
        return values.tolist()  # type: ignore[no-any-return]
    out: list[int | float] = []
    floats = values.view(np.float64).tolist()
    for raw, as_float_, kind in zip(values.tolist(), floats, kinds.tolist(), strict=True):
        if kind == FLOAT:
            out.append(as_float_)
        elif kind == INT and raw >= 2**63:
            out.append(raw - 2**64)
        else:
            out.append(raw)
    return out


def simplest(values: np.ndarray, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A mixed column in one dtype when one holds every value exactly, else as it is."""
    floats = kinds == FLOAT
    if floats.all():
        return values.view(np.float64), None
    signed = kinds == INT
    below_zero = signed & (values >= _TOP_BIT)
    above_int64 = ~signed & ~floats & (values >= _TOP_BIT)
    if not floats.any():
        if not above_int64.any():
            return values.view(np.int64), None
        if not below_zero.any():
            return values, None
        return values, kinds
    integers = ~floats
    as_int = values[integers]
    fits = np.where(below_zero[integers], as_int >= np.uint64(2**64 - TWO_53), as_int <= np.uint64(TWO_53))
    if fits.all():  # every integer is exactly a float64
        return as_float(values, kinds), None
    return values, kinds


def to_mixed(values: np.ndarray, kinds: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    return bits(values), kinds_of(values, kinds)


def concat(
    first: tuple[np.ndarray, np.ndarray | None], second: tuple[np.ndarray, np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Two columns as one, each value kept exact."""
    (a, ka), (b, kb) = first, second
    if ka is None and kb is None and a.dtype == b.dtype:
        return np.concatenate([a, b]), None
    (a_bits, a_kinds), (b_bits, b_kinds) = to_mixed(a, ka), to_mixed(b, kb)
    return simplest(np.concatenate([a_bits, b_bits]), np.concatenate([a_kinds, b_kinds]))


def from_python(numbers: Sequence[int | float]) -> tuple[np.ndarray, np.ndarray | None]:
    """Python ints and floats (not bools) as an exact column; an integer outside -2^63 … 2^64 - 1
    (which InfluxDB cannot store) becomes the nearest float."""
    out = np.empty(len(numbers), dtype=np.uint64)
    kinds = np.empty(len(numbers), dtype=np.uint8)
    for i, number in enumerate(numbers):
        if type(number) is int and -(2**63) <= number <= _MASK_64:
            out[i] = number & _MASK_64
            kinds[i] = INT if number < 2**63 else UINT
        else:
            out[i] = np.float64(number).view(np.uint64)
            kinds[i] = FLOAT
    return simplest(out, kinds)

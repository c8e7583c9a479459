"""Small builders for core tests: rows written as plain Python, turned into batches and results."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rollup.core import numbers
from rollup.core.batch import Batch, FieldColumn, SeriesKey, series_key
from rollup.core.durations import NS_PER_SECOND
from rollup.core.pipeline import Rollup, WindowResult
from rollup.core.spec import FieldRule, RollupSpec
from rollup.core.windows import Window

S = NS_PER_SECOND
MIN = 60 * S
HOUR = 3600 * S
T0 = 1_799_020_800 * S  # 2027-01-04T00:00:00Z, a Monday
MISSING = object()
"""A point that does not carry the field at all."""

Row = tuple[Mapping[str, str], float, Mapping[str, Any]]
"""(tags, seconds after T0, {field: value}); a field left out of the dict is missing from the point."""


def at(seconds: float) -> int:
    return T0 + round(seconds * S)


def hours(first: int, count: int = 1) -> list[Window]:
    """``count`` contiguous one-hour windows, the first starting ``first`` hours after T0."""
    return [Window(T0 + (first + i) * HOUR, T0 + (first + i + 1) * HOUR) for i in range(count)]


def make_batch(rows: Sequence[Row], dtypes: Mapping[str, Any] | None = None, stream: int = 0) -> Batch:
    """A batch from rows in the order given; consecutive rows of one series form a run.

    Numbers are valid values, strings and booleans are invalid (not a number), a field absent from
    a row's dict is missing. A field's numbers are kept exact, as a source does: int64, uint64
    (from 2^63), float64, or a mixed column when no one dtype will do, unless ``dtypes`` says
    otherwise. ``stream``: the concurrent query the batch comes from.
    """
    keys: list[SeriesKey] = []
    lengths: list[int] = []
    for tags, _, _ in rows:
        key = series_key(dict(tags))
        if keys and keys[-1] == key:
            lengths[-1] += 1
        else:
            keys.append(key)
            lengths.append(1)
    names = sorted({name for _, _, fields in rows for name in fields})
    columns: dict[str, FieldColumn] = {}
    for name in names:
        raw = [fields.get(name, MISSING) for _, _, fields in rows]
        valid = np.array([isinstance(v, int | float) and not isinstance(v, bool) for v in raw], dtype=bool)
        invalid = np.array([isinstance(v, str | bool) for v in raw], dtype=bool)
        filled = [v if ok else 0 for v, ok in zip(raw, valid, strict=True)]
        dtype = (dtypes or {}).get(name)
        if dtype is not None:
            columns[name] = FieldColumn(np.array(filled, dtype=dtype), valid=valid, invalid=invalid)
            continue
        if any(isinstance(v, float) for v in filled):  # placeholders follow the numbers' kind
            filled = [float(v) if not ok else v for v, ok in zip(filled, valid, strict=True)]
        values, kinds = numbers.from_python(filled)
        columns[name] = FieldColumn(values, valid=valid, invalid=invalid, kinds=kinds)
    times = np.array([at(t) for _, t, _ in rows], dtype=np.int64)
    return Batch(keys, np.array(lengths, dtype=np.int64), times, columns, stream)


def run(spec: RollupSpec, windows: Sequence[Window], batches: Iterable[Batch]) -> list[WindowResult]:
    rollup = Rollup(spec, windows)
    for batch in batches:
        rollup.feed(batch)
    return rollup.finish()


def rollup_rows(
    spec: RollupSpec, windows: Sequence[Window], rows: Sequence[Row], dtypes: Mapping[str, Any] | None = None
) -> list[WindowResult]:
    """Run ``rows`` as a single batch."""
    return run(spec, windows, [make_batch(rows, dtypes)])


def counter(name: str = "v", **kwargs: Any) -> RollupSpec:
    """A spec with one counter field ``name`` whose output is also ``name``; spec options pass through."""
    spec_keys = {"group_by", "max_gap_ns", "stamp"}
    rule = FieldRule(name, name, **{k: v for k, v in kwargs.items() if k not in spec_keys})
    return RollupSpec((rule,), **{k: v for k, v in kwargs.items() if k in spec_keys})


def gauge(name: str = "g", **kwargs: Any) -> RollupSpec:
    return counter(name, kind="gauge", **kwargs)


def flatten(results: Sequence[WindowResult]) -> list[tuple[int, dict[str, str], dict[str, float]]]:
    """(window index, tags, values) of every row, in output order."""
    return [(i, row.tags, row.values) for i, result in enumerate(results) for row in result.rows]


def only_row(results: Sequence[WindowResult]) -> dict[str, float]:
    rows = flatten(results)
    assert len(rows) == 1, f"expected exactly one output row, got {rows}"
    return rows[0][2]


def close(a: Mapping[str, float], b: Mapping[str, float], rel: float = 1e-9) -> bool:
    """Same keys; integers equal, floats equal up to rounding."""
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, int) and isinstance(y, int):
            if x != y:
                return False
        elif not math.isclose(x, y, rel_tol=rel, abs_tol=1e-12):
            return False
    return True

"""Per-series non-negative derivative, vectorized over a batch, with state carried between batches.

For consecutive samples ``(t0, v0)``, ``(t1, v1)`` of one series: ``dv = v1 - v0``, ``dt = t1 - t0``,
``rate = dv / dt × unit × scale``, stamped at ``t1``.

``dv`` is computed from the exact values and rounded to float64 once, whatever their types: an
integer counter (int64, or uint64 up to 2^64 - 1) is subtracted exactly, a float is the binary64
number it is, and a value keeps its exactness whatever else its batch holds (a negative counter next
to one near 2^63, a series whose field changes type). Two int64 or two uint64 values are subtracted
modulo 2^64, the sign of ``dv`` coming from their comparison; pairs numpy cannot do exactly (an
integer beyond 2^53 against a fraction, a step of 2^64 or more) are computed with Python's exact
integers and fractions. So the same two samples always give the same bits, in whichever batch they
meet.

When ``dv < 0`` the field's ``on_decrease`` rule decides:

* ``drop``: no interval (Kapacitor ``nonNegative()``, InfluxQL ``non_negative_derivative``);
* ``reset``: the counter restarted from 0, ``dv = v1`` (Prometheus ``increase``);
* ``wrap32`` / ``wrap64``: ``dv = v1 + 2^N - v0`` (SNMP Counter32 / Counter64); a ``wrap32`` counter
  whose previous value is not in [0, 2^32) cannot have wrapped and is taken as reset;
* ``auto``: N = 32 when ``0 ≤ v0 < 2^32``, else 64; the wrap is taken when ``max_rate`` is set and
  the wrapped rate does not exceed it, or, without ``max_rate``, for N = 32 only (a 64-bit counter
  does not wrap in practice); otherwise reset.

Every decrease is counted as a reset, whatever the rule. An interval longer than ``max_gap`` is
dropped and counted as a gap. Whatever happens to the interval, ``v1`` becomes the next ``prev``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from rollup.core import numbers
from rollup.core.durations import NS_PER_SECOND
from rollup.core.numbers import FLOAT, KIND_OF
from rollup.core.spec import FieldRule

TWO_32 = 2**32
TWO_64 = 2**64
_TWO_32 = np.uint64(TWO_32)


@dataclass(slots=True)
class Intervals:
    """The intervals of one batch for one field, one entry per sample that had a ``prev``."""

    series: np.ndarray  # int64 series ids
    time: np.ndarray  # int64 t1 (where the rate is stamped)
    rate: np.ndarray  # float64, scaled
    increase: np.ndarray  # float64 dv × scale
    seconds: np.ndarray  # float64 dt
    kept: np.ndarray  # bool: the interval counts (not dropped, not a gap)
    decreased: np.ndarray  # bool: v1 < v0
    gap: np.ndarray  # bool: dt > max_gap


@dataclass(slots=True)
class RowIntervals:
    """The intervals of one batch for one field, aligned with its rows: row i ends an interval when
    the sample has a ``prev``. Exceptions are listed by row position (they are rare), so a caller
    can tell in O(1) whether every row is a plain kept interval.

    Rows listed in ``missing`` hold meaningless numbers in ``rate``, ``dv`` and ``seconds`` (and 0
    in ``nanoseconds``).
    """

    rate: np.ndarray  # float64, dv / dt × unit × scale (NaN where dropped)
    dv: np.ndarray  # float64, unscaled (NaN where dropped)
    seconds: np.ndarray  # float64 dt
    nanoseconds: np.ndarray  # int64 dt, exact
    missing: np.ndarray  # positions of samples without a prev: no interval
    decreased: np.ndarray  # positions of intervals with v1 < v0
    dropped: np.ndarray  # positions of intervals whose dv is NaN (a dropped decrease)
    gaps: np.ndarray  # positions of intervals longer than max_gap

    def has(self) -> np.ndarray:
        """Bool per row: the row ends an interval."""
        mask = np.ones(len(self.rate), dtype=bool)
        mask[self.missing] = False
        return mask

    def excluded(self) -> np.ndarray:
        """Positions of rows that end no kept interval (no prev, dropped or a gap), sorted."""
        parts = [p for p in (self.missing, self.dropped, self.gaps) if len(p)]
        if not parts:
            return _NO_POSITIONS
        return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))


_NO_POSITIONS = np.zeros(0, dtype=np.int64)


class PrevState:
    """Each series' last valid sample for one field, exactly: the ``prev`` of its next sample."""

    def __init__(self) -> None:
        self.size = 0
        self._capacity = 0
        self.has = np.zeros(0, dtype=bool)
        self.time = np.zeros(0, dtype=np.int64)
        self.bits = np.zeros(0, dtype=np.uint64)
        self.kind = np.zeros(0, dtype=np.uint8)
        self.kinds_seen: set[int] = set()
        """Every kind a sample ever stored had: one in the usual case, so a check is O(1)."""

    def grow(self, series_count: int) -> None:
        """Room for ``series_count`` series (capacity doubles, so growing series by series is cheap)."""
        if series_count <= self.size:
            return
        if series_count > self._capacity:
            capacity = max(series_count, 2 * self._capacity, 64)
            for name in ("has", "time", "bits", "kind"):
                old = getattr(self, name)
                new = np.zeros(capacity, dtype=old.dtype)
                new[: self.size] = old[: self.size]
                setattr(self, name, new)
            self._capacity = capacity
        self.size = series_count

    def remember(
        self, series: np.ndarray, time: np.ndarray, values: np.ndarray, kinds: np.ndarray | None = None
    ) -> None:
        """Store the last row of every series run in ``series`` (rows grouped by series)."""
        if len(series):
            ends = run_ends(series)
            self.remember_runs(series[ends], ends, time, values, kinds)

    def remember_runs(
        self,
        ids: np.ndarray,
        ends: np.ndarray,
        time: np.ndarray,
        values: np.ndarray,
        kinds: np.ndarray | None = None,
    ) -> None:
        """Store the rows at ``ends`` as the last samples of the series ``ids``."""
        self.has[ids] = True
        self.time[ids] = time[ends]
        self.bits[ids] = numbers.bits(values[ends])
        if kinds is None:
            kind = KIND_OF[values.dtype]
            self.kind[ids] = kind
            self.kinds_seen.add(kind)
        else:
            self.kind[ids] = kinds[ends]
            self.kinds_seen.update(np.unique(kinds[ends]).tolist())


def run_starts(series: np.ndarray) -> np.ndarray:
    """Positions where a run of equal series ids begins."""
    if not len(series):
        return _NO_POSITIONS
    starts = np.flatnonzero(np.diff(series)) + 1
    return np.concatenate([_FIRST, starts]) if len(starts) else _FIRST


def run_ends(series: np.ndarray) -> np.ndarray:
    """Positions where a run of equal series ids ends."""
    if not len(series):
        return _NO_POSITIONS
    return np.append(np.flatnonzero(np.diff(series)), len(series) - 1)


_FIRST = np.zeros(1, dtype=np.int64)


def derive(
    rule: FieldRule,
    series: np.ndarray,
    time: np.ndarray,
    values: np.ndarray,
    prev: PrevState,
    max_gap_ns: int | None,
    kinds: np.ndarray | None = None,
) -> Intervals:
    """Intervals of a batch; rows are valid samples grouped by series, time-ordered, unique times.

    Updates ``prev`` with each series' last sample.
    """
    starts = run_starts(series)
    rows = derive_rows(rule, series[starts], starts, time, values, prev, max_gap_ns, kinds=kinds)
    n = len(series)
    has = rows.has()
    kept = np.ones(n, dtype=bool)
    kept[rows.dropped] = False
    kept[rows.gaps] = False
    decreased = np.zeros(n, dtype=bool)
    decreased[rows.decreased] = True
    gap = np.zeros(n, dtype=bool)
    gap[rows.gaps] = True
    return Intervals(
        series=series[has],
        time=time[has],
        rate=rows.rate[has],
        increase=rows.dv[has] * rule.scale,
        seconds=rows.seconds[has],
        kept=kept[has],
        decreased=decreased[has],
        gap=gap[has],
    )


def derive_rows(
    rule: FieldRule,
    run_ids: np.ndarray,
    starts: np.ndarray,
    time: np.ndarray,
    values: np.ndarray,
    prev: PrevState,
    max_gap_ns: int | None,
    steps: np.ndarray | None = None,
    kinds: np.ndarray | None = None,
) -> RowIntervals:
    """Like :func:`derive`, for rows given as runs (series ``run_ids[i]`` from ``starts[i]`` on), with
    the result aligned to the rows. ``steps`` may give ``np.diff(time)`` if the caller has it;
    ``kinds`` marks a mixed column (see :mod:`rollup.core.numbers`).

    Updates ``prev`` with each series' last sample.
    """
    n = len(time)
    first_has = prev.has[run_ids]
    missing = starts[~first_has]

    dt_ns = np.empty(n, dtype=np.int64)
    if steps is None:
        np.subtract(time[1:], time[:-1], out=dt_ns[1:])
    else:
        dt_ns[1:] = steps
    dt_ns[starts] = time[starts] - prev.time[run_ids]
    dt_ns[missing] = 0
    dt_s = dt_ns.astype(np.float64)
    dt_s /= NS_PER_SECOND
    factor = rule.unit_seconds * rule.scale

    # Each row against the row before it; a run's first row against its series' carried prev.
    kind = KIND_OF[values.dtype] if kinds is None else None
    if kind is not None and prev.kinds_seen <= {kind}:
        start_prev = prev.bits[run_ids].view(values.dtype)  # meaningless where a run has no prev
        dv, down = _uniform_deltas(rule, values, starts, start_prev, missing, dt_s, factor)
    else:
        dv, down = _mixed_deltas(rule, values, kinds, starts, run_ids, first_has, prev, dt_s, factor)
    ends = np.empty(len(starts), dtype=np.int64)
    ends[:-1] = starts[1:] - 1
    if len(ends):
        ends[-1] = n - 1
    prev.remember_runs(run_ids, ends, time, values, kinds)

    decreased = np.flatnonzero(down) if down.any() else _NO_POSITIONS
    dropped = decreased[np.isnan(dv[decreased])] if len(decreased) else _NO_POSITIONS
    gaps = _NO_POSITIONS
    if max_gap_ns is not None:
        long = dt_ns > max_gap_ns
        if long.any():
            gaps = np.flatnonzero(long)
    # Within a run times are unique and increasing, so dt > 0; a sample without prev has a
    # meaningless dt, set to 1 so that no division warns.
    dt_s[missing] = 1.0
    rate = dv / dt_s
    if factor != 1.0:
        rate *= factor
    return RowIntervals(
        rate=rate,
        dv=dv,
        seconds=dt_s,
        nanoseconds=dt_ns,
        missing=missing,
        decreased=decreased,
        dropped=dropped,
        gaps=gaps,
    )


# -- dv of pairs of samples ---------------------------------------------------------------------


def _uniform_deltas(
    rule: FieldRule,
    values: np.ndarray,
    starts: np.ndarray,
    start_prev: np.ndarray,
    missing: np.ndarray,
    dt_s: np.ndarray,
    factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``dv`` and ``v1 < v0`` per row for a column of one dtype whose carried prevs (``start_prev``,
    one per run) have it too: the fast path."""
    n = len(values)
    down = np.empty(n, dtype=bool)
    np.less(values[1:], values[:-1], out=down[1:])
    down[starts] = values[starts] < start_prev
    down[missing] = False
    if values.dtype == np.float64:
        dv = np.empty(n, dtype=np.float64)
        np.subtract(values[1:], values[:-1], out=dv[1:])
        dv[starts] = values[starts] - start_prev
    else:
        # Two int64 or two uint64 values: v1 - v0 is exact modulo 2^64; where v1 >= v0 it is dv.
        delta = np.empty_like(values)
        np.subtract(values[1:], values[:-1], out=delta[1:])
        delta[starts] = values[starts] - start_prev
        dv = delta.view(np.uint64).astype(np.float64)
    if down.any():
        at = np.flatnonzero(down)
        high = values[at]
        low = values[np.maximum(at - 1, 0)]
        run = np.searchsorted(starts, at, side="right") - 1
        first = starts[run] == at
        low[first] = start_prev[run[first]]
        if values.dtype == np.float64:
            dv[at] = _float_decrease(rule, low, high, dt_s[at], factor)
        else:
            dv[at] = _int_decrease(
                rule,
                numbers.bits(low),
                numbers.negative(low, None),
                numbers.bits(high),
                numbers.negative(high, None),
                dt_s[at],
                factor,
            )
    return dv, down


def _mixed_deltas(
    rule: FieldRule,
    values: np.ndarray,
    kinds: np.ndarray | None,
    starts: np.ndarray,
    run_ids: np.ndarray,
    first_has: np.ndarray,
    prev: PrevState,
    dt_s: np.ndarray,
    factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``dv`` and ``v1 < v0`` per row when kinds differ (a mixed column, or prevs of another kind)."""
    n = len(values)
    bits = numbers.bits(values)
    every_kind = numbers.kinds_of(values, kinds)
    dv = np.zeros(n, dtype=np.float64)
    down = np.zeros(n, dtype=bool)
    inner = np.ones(n, dtype=bool)
    inner[starts] = False
    at = np.flatnonzero(inner)
    dv[at], down[at] = pair_deltas(
        rule, bits[at - 1], every_kind[at - 1], bits[at], every_kind[at], dt_s[at], factor
    )
    at, ids = starts[first_has], run_ids[first_has]
    dv[at], down[at] = pair_deltas(
        rule, prev.bits[ids], prev.kind[ids], bits[at], every_kind[at], dt_s[at], factor
    )
    return dv, down


def pair_deltas(
    rule: FieldRule,
    bits0: np.ndarray,
    kinds0: np.ndarray,
    bits1: np.ndarray,
    kinds1: np.ndarray,
    dt_s: np.ndarray,
    factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``dv`` and ``v1 < v0`` of pairs of samples of any kinds (their 64 bits and kinds)."""
    dv = np.empty(len(bits0), dtype=np.float64)
    down = np.zeros(len(bits0), dtype=bool)
    floats = (kinds0 == FLOAT) | (kinds1 == FLOAT)
    at = np.flatnonzero(~floats)
    if len(at):
        b0, k0, b1, k1 = bits0[at], kinds0[at], bits1[at], kinds1[at]
        dv[at], down[at] = _int_pairs(
            rule, b0, numbers.negative(b0, k0), b1, numbers.negative(b1, k1), dt_s[at], factor
        )
    at = np.flatnonzero(floats)
    if len(at):
        v0, v1 = numbers.as_float(bits0[at], kinds0[at]), numbers.as_float(bits1[at], kinds1[at])
        # An integer beyond 2^53 is no float64: such pairs are computed exactly, one by one.
        exact = numbers.exactly_float(bits0[at], kinds0[at]) & numbers.exactly_float(bits1[at], kinds1[at])
        if exact.all():
            dv[at], down[at] = _float_pairs(rule, v0, v1, dt_s[at], factor)
        else:
            fit = at[exact]
            dv[fit], down[fit] = _float_pairs(rule, v0[exact], v1[exact], dt_s[fit], factor)
            odd = at[~exact]
            first = numbers.python_values(bits0[odd], kinds0[odd])
            second = numbers.python_values(bits1[odd], kinds1[odd])
            dv[odd], down[odd] = _exact_pairs(rule, first, second, dt_s[odd], factor)
    return dv, down


def _int_pairs(
    rule: FieldRule,
    bits0: np.ndarray,
    neg0: np.ndarray,
    bits1: np.ndarray,
    neg1: np.ndarray,
    dt_s: np.ndarray,
    factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of integers given as 64 bits and sign: ``v = bits - 2^64 × neg``.

    ``v1 - v0 = m + k × 2^64`` with ``m = bits1 - bits0`` modulo 2^64 and ``k = neg0 - neg1 - borrow``.
    """
    m = bits1 - bits0
    k = neg0.astype(np.int8) - neg1.astype(np.int8) - (bits1 < bits0).astype(np.int8)
    down = k < 0
    dv = m.astype(np.float64)
    wide = np.flatnonzero(k > 0)  # a step of 2^64 or more: from a negative value to one from 2^63 on
    if len(wide):
        first, second = _ints(bits0[wide], neg0[wide]), _ints(bits1[wide], neg1[wide])
        dv[wide] = [float(b - a) for a, b in zip(first, second, strict=True)]
    if down.any():
        at = np.flatnonzero(down)
        dv[at] = _int_decrease(rule, bits0[at], neg0[at], bits1[at], neg1[at], dt_s[at], factor)
    return dv, down


def _ints(bits: np.ndarray, neg: np.ndarray) -> list[int]:
    return [b - TWO_64 if n else b for b, n in zip(bits.tolist(), neg.tolist(), strict=True)]


def _int_decrease(
    rule: FieldRule,
    bits0: np.ndarray,
    neg0: np.ndarray,
    bits1: np.ndarray,
    neg1: np.ndarray,
    dt_s: np.ndarray,
    factor: float,
) -> np.ndarray:
    """``dv`` (NaN where dropped) of integer pairs that all decreased, as in :func:`_int_pairs`."""
    if rule.on_decrease == "drop":
        return np.full(len(bits0), np.nan)
    reset = np.where(neg1, bits1.view(np.int64).astype(np.float64), bits1.astype(np.float64))
    if rule.on_decrease == "reset":
        return reset
    m = bits1 - bits0
    # v1 + 2^64 - v0 = m + (k + 1) × 2^64 with k in {-2, -1}: m, or m - 2^64 = -(bits0 - bits1).
    wrapped64 = m.astype(np.float64)
    twice = ~neg0 & neg1 & (bits1 < bits0)  # k = -2: from 2^63 or more down to a negative value
    if twice.any():
        wrapped64[twice] = -(bits0[twice] - bits1[twice]).astype(np.float64)
    fits32 = ~neg0 & (bits0 < _TWO_32)
    # v1 + 2^32 - v0 is in (-2^63, 2^32) when 0 <= v0 < 2^32: exact in int64.
    wrapped32 = (bits1 + _TWO_32 - bits0).view(np.int64).astype(np.float64)
    return _choose(rule, reset, wrapped32, wrapped64, fits32, dt_s, factor)


def _float_pairs(
    rule: FieldRule, v0: np.ndarray, v1: np.ndarray, dt_s: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of float64 values (an exact difference rounds once: ``v1 - v0`` in float64 is it)."""
    down = v1 < v0
    dv = v1 - v0
    if down.any():
        at = np.flatnonzero(down)
        dv[at] = _float_decrease(rule, v0[at], v1[at], dt_s[at], factor)
    return dv, down


def _float_decrease(
    rule: FieldRule, v0: np.ndarray, v1: np.ndarray, dt_s: np.ndarray, factor: float
) -> np.ndarray:
    """``dv`` (NaN where dropped) of float pairs that all decreased; a wrap is added exactly."""
    if rule.on_decrease == "drop":
        return np.full(len(v0), np.nan)
    if rule.on_decrease == "reset":
        return v1.copy()
    dv, _ = _exact_pairs(rule, v0.tolist(), v1.tolist(), dt_s, factor)
    return dv


def _exact_pairs(
    rule: FieldRule, v0: list[int | float], v1: list[int | float], dt_s: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs computed one by one with exact fractions (rare: wraps of floats, huge integers among
    floats), so that they round exactly as the vectorized paths do."""
    first = [Fraction(v) for v in v0]
    second = [Fraction(v) for v in v1]
    down = np.asarray([b < a for a, b in zip(first, second, strict=True)], dtype=bool)
    dv = np.asarray([float(b - a) for a, b in zip(first, second, strict=True)], dtype=np.float64)
    if down.any() and rule.on_decrease == "drop":
        dv[down] = np.nan
    elif down.any():
        at = np.flatnonzero(down)
        low = [first[i] for i in at.tolist()]
        high = [second[i] for i in at.tolist()]
        reset = np.asarray([float(b) for b in high], dtype=np.float64)
        wrapped32 = np.asarray(
            [float(b + TWO_32 - a) for a, b in zip(low, high, strict=True)], dtype=np.float64
        )
        wrapped64 = np.asarray(
            [float(b + TWO_64 - a) for a, b in zip(low, high, strict=True)], dtype=np.float64
        )
        fits32 = np.asarray([0 <= a < TWO_32 for a in low], dtype=bool)
        dv[at] = _choose(rule, reset, wrapped32, wrapped64, fits32, dt_s[at], factor)
    return dv, down


def _choose(
    rule: FieldRule,
    reset: np.ndarray,
    wrapped32: np.ndarray,
    wrapped64: np.ndarray,
    fits32: np.ndarray,
    dt_s: np.ndarray,
    factor: float,
) -> np.ndarray:
    """``dv`` of decreased intervals under the field's rule, from the exactly rounded candidates
    (``wrapped32`` only matters where the previous value ``fits32``)."""
    mode = rule.on_decrease
    if mode == "drop":
        return np.full(len(reset), np.nan)
    if mode == "reset":
        return reset
    if mode == "wrap64":
        return wrapped64
    if mode == "wrap32":
        return np.where(fits32, wrapped32, reset)
    candidate = np.where(fits32, wrapped32, wrapped64)
    return np.where(_plausible(rule, candidate, fits32, dt_s, factor), candidate, reset)


def _plausible(
    rule: FieldRule, candidate: np.ndarray, fits32: np.ndarray, dt_s: np.ndarray, factor: float
) -> np.ndarray:
    if rule.max_rate is None:
        return fits32
    with np.errstate(divide="ignore", invalid="ignore"):
        plausible: np.ndarray = (candidate / dt_s * factor) <= rule.max_rate
        return plausible

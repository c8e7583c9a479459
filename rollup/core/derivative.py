"""Per-series non-negative derivative, vectorized over a batch, with state carried between batches.

For consecutive samples ``(t0, v0)``, ``(t1, v1)`` of one series: ``dv = v1 - v0``, ``dt = t1 - t0``,
``rate = dv / dt × unit × scale``, stamped at ``t1``. Integer counters are subtracted in ``uint64``
so values up to 2^64 - 1 stay exact; only the difference is turned into a float.

When ``dv < 0`` the field's ``on_decrease`` rule decides:

* ``drop``: no interval (Kapacitor ``nonNegative()``, InfluxQL ``non_negative_derivative``);
* ``reset``: the counter restarted from 0, ``dv = v1`` (Prometheus ``increase``);
* ``wrap32`` / ``wrap64``: ``dv = v1 + 2^N - v0`` (SNMP Counter32 / Counter64); a ``wrap32`` counter
  whose previous value does not fit in 32 bits cannot have wrapped and is taken as reset;
* ``auto``: N = 32 when ``v0 < 2^32``, else 64; the wrap is taken when ``max_rate`` is set and the
  wrapped rate does not exceed it, or, without ``max_rate``, for N = 32 only (a 64-bit counter does
  not wrap in practice); otherwise reset.

Every decrease is counted as a reset, whatever the rule. An interval longer than ``max_gap`` is
dropped and counted as a gap. Whatever happens to the interval, ``v1`` becomes the next ``prev``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rollup.core.durations import NS_PER_SECOND
from rollup.core.spec import FieldRule

TWO_32 = 2**32
TWO_64_FLOAT = float(2**64)


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

    Rows listed in ``missing`` hold meaningless numbers in ``rate``, ``dv`` and ``seconds``.
    """

    rate: np.ndarray  # float64, dv / dt × unit × scale (NaN where dropped)
    dv: np.ndarray  # float64, unscaled (NaN where dropped)
    seconds: np.ndarray  # float64 dt
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
    """Each series' last valid sample for one field: the ``prev`` of its next sample."""

    def __init__(self) -> None:
        self.size = 0
        self._capacity = 0
        self.has = np.zeros(0, dtype=bool)
        self.time = np.zeros(0, dtype=np.int64)
        self.as_float = np.zeros(0, dtype=np.float64)
        self.as_uint = np.zeros(0, dtype=np.uint64)
        self.is_int = np.zeros(0, dtype=bool)

    def grow(self, series_count: int) -> None:
        """Room for ``series_count`` series (capacity doubles, so growing series by series is cheap)."""
        if series_count <= self.size:
            return
        if series_count > self._capacity:
            capacity = max(series_count, 2 * self._capacity, 64)
            for name in ("has", "time", "as_float", "as_uint", "is_int"):
                old = getattr(self, name)
                new = np.zeros(capacity, dtype=old.dtype)
                new[: self.size] = old[: self.size]
                setattr(self, name, new)
            self._capacity = capacity
        self.size = series_count

    def remember(self, series: np.ndarray, time: np.ndarray, values: np.ndarray) -> None:
        """Store the last row of every series run in ``series`` (rows grouped by series)."""
        if len(series):
            ends = run_ends(series)
            self.remember_runs(series[ends], ends, time, values)

    def remember_runs(self, ids: np.ndarray, ends: np.ndarray, time: np.ndarray, values: np.ndarray) -> None:
        """Store the rows at ``ends`` as the last samples of the series ``ids``."""
        self.has[ids] = True
        self.time[ids] = time[ends]
        chosen = values[ends]
        self.as_float[ids] = chosen.astype(np.float64)
        if values.dtype == np.uint64:
            self.as_uint[ids] = chosen
            self.is_int[ids] = True
        else:
            self.is_int[ids] = False


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


def exact_counter_values(values: np.ndarray) -> np.ndarray:
    """Counter values as ``uint64`` when integers allow it exactly, else ``float64``."""
    if values.dtype == np.uint64:
        return values
    if values.dtype.kind == "i":
        if len(values) == 0 or values.min() >= 0:
            return values.view(np.uint64) if values.dtype == np.int64 else values.astype(np.uint64)
        return values.astype(np.float64)
    return values.astype(np.float64, copy=False)


def derive(
    rule: FieldRule,
    series: np.ndarray,
    time: np.ndarray,
    values: np.ndarray,
    prev: PrevState,
    max_gap_ns: int | None,
) -> Intervals:
    """Intervals of a batch; rows are valid samples grouped by series, time-ordered, unique times.

    Updates ``prev`` with each series' last sample.
    """
    starts = run_starts(series)
    rows = derive_rows(rule, series[starts], starts, time, values, prev, max_gap_ns)
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
) -> RowIntervals:
    """Like :func:`derive`, for rows given as runs (series ``run_ids[i]`` from ``starts[i]`` on), with
    the result aligned to the rows. ``steps`` may give ``np.diff(time)`` if the caller has it.

    Updates ``prev`` with each series' last sample.
    """
    n = len(time)
    values = exact_counter_values(values)
    first_has = prev.has[run_ids]
    missing = starts[~first_has]

    dt_ns = np.empty(n, dtype=np.int64)
    if steps is None:
        np.subtract(time[1:], time[:-1], out=dt_ns[1:])
    else:
        dt_ns[1:] = steps
    dt_ns[starts] = time[starts] - prev.time[run_ids]
    # Run starts whose prev is a carried float sample while this batch is exact (the field changed type).
    float_prev = _NO_POSITIONS
    carried_float = np.zeros(0)
    exact = values.dtype == np.uint64
    if exact:
        start_prev = prev.as_uint[run_ids]
        from_float = first_has & ~prev.is_int[run_ids]
        float_prev = starts[from_float]
        carried_float = prev.as_float[run_ids[from_float]]
    else:
        start_prev = prev.as_float[run_ids]
    ends = np.empty(len(starts), dtype=np.int64)
    ends[:-1] = starts[1:] - 1
    if len(ends):
        ends[-1] = n - 1
    prev.remember_runs(run_ids, ends, time, values)

    dt_s = dt_ns.astype(np.float64)
    dt_s /= NS_PER_SECOND
    factor = rule.unit_seconds * rule.scale
    # dv = v1 - v0 with v0 the previous row, or the carried prev at a run start. In uint64 it is
    # exact modulo 2^64 (equal to v1 + 2^64 - v0 on a decrease) before it becomes a float.
    delta = np.empty_like(values)
    np.subtract(values[1:], values[:-1], out=delta[1:])
    delta[starts] = values[starts] - start_prev
    dv = delta.astype(np.float64) if exact else delta
    down = np.empty(n, dtype=bool)
    np.less(values[1:], values[:-1], out=down[1:])
    down[starts] = values[starts] < start_prev
    down[missing] = False
    if len(float_prev):
        # The carried prev is a float: compare and subtract as floats (its row is redone below).
        down[float_prev] = False
    decreased = np.flatnonzero(down) if down.any() else _NO_POSITIONS
    if len(decreased):
        low, high = values[np.maximum(decreased - 1, 0)], values[decreased]
        at = np.minimum(np.searchsorted(starts, decreased), len(starts) - 1)
        first = starts[at] == decreased
        low[first] = start_prev[at[first]]
        if exact:
            dv[decreased] = _uint_decrease(rule, low, high, dt_s[decreased], factor)
        else:
            dv[decreased] = _float_decrease(rule, low, high, dt_s[decreased], factor)
    if len(float_prev):
        v1_float = values[float_prev].astype(np.float64)
        dv_rows, dec_rows = _float_deltas(rule, carried_float, v1_float, dt_s[float_prev], factor)
        dv[float_prev] = dv_rows
        if dec_rows.any():
            decreased = np.union1d(decreased, float_prev[dec_rows])
    dropped = decreased[np.isnan(dv[decreased])] if len(decreased) else _NO_POSITIONS
    gaps = _NO_POSITIONS
    if max_gap_ns is not None:
        long = dt_ns > max_gap_ns
        long[missing] = False
        if long.any():
            gaps = np.flatnonzero(long)
    # Within a run times are unique and increasing, so dt > 0; a sample without prev has a
    # meaningless dt, set to 1 so that no division warns.
    dt_s[missing] = 1.0
    rate = dv / dt_s
    if factor != 1.0:
        rate *= factor
    return RowIntervals(
        rate=rate, dv=dv, seconds=dt_s, missing=missing, decreased=decreased, dropped=dropped, gaps=gaps
    )


def _uint_decrease(
    rule: FieldRule, v0: np.ndarray, v1: np.ndarray, dt_s: np.ndarray, factor: float
) -> np.ndarray:
    """``dv`` as float64 (NaN where dropped) for exact uint64 samples that all decreased."""
    dv, _ = _uint_deltas(rule, v0, v1, dt_s, factor)
    return dv


def _float_decrease(
    rule: FieldRule, v0: np.ndarray, v1: np.ndarray, dt_s: np.ndarray, factor: float
) -> np.ndarray:
    dv, _ = _float_deltas(rule, v0, v1, dt_s, factor)
    return dv


def _uint_deltas(
    rule: FieldRule, v0: np.ndarray, v1: np.ndarray, dt_s: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """``dv`` as float64 (NaN where dropped) from exact uint64 samples, and the decrease mask."""
    decreased = v1 < v0
    modular = (v1 - v0).astype(np.float64)  # exact modulo 2^64; equals v1 + 2^64 - v0 on decrease
    dv = modular.copy()
    if not decreased.any():
        return dv, decreased
    down = np.flatnonzero(decreased)
    low, high = v0[down], v1[down]
    reset = high.astype(np.float64)
    fits32 = low < np.uint64(TWO_32)
    wrapped32 = (high + np.uint64(TWO_32) - low).astype(np.float64)  # exact when fits32
    mode = rule.on_decrease
    if mode == "drop":
        dv[down] = np.nan
    elif mode == "reset":
        dv[down] = reset
    elif mode == "wrap64":
        dv[down] = modular[down]
    elif mode == "wrap32":
        dv[down] = np.where(fits32, wrapped32, reset)
    else:
        candidate = np.where(fits32, wrapped32, modular[down])
        dv[down] = np.where(_plausible(rule, candidate, fits32, dt_s[down], factor), candidate, reset)
    return dv, decreased


def _float_deltas(
    rule: FieldRule, v0: np.ndarray, v1: np.ndarray, dt_s: np.ndarray, factor: float
) -> tuple[np.ndarray, np.ndarray]:
    decreased = v1 < v0
    dv = v1 - v0
    if not decreased.any():
        return dv, decreased
    down = np.flatnonzero(decreased)
    low, high = v0[down], v1[down]
    fits32 = (low < TWO_32) & (low >= 0)
    wrapped32 = high + TWO_32 - low
    wrapped64 = high + TWO_64_FLOAT - low
    mode = rule.on_decrease
    if mode == "drop":
        dv[down] = np.nan
    elif mode == "reset":
        dv[down] = high
    elif mode == "wrap64":
        dv[down] = wrapped64
    elif mode == "wrap32":
        dv[down] = np.where(fits32, wrapped32, high)
    else:
        candidate = np.where(fits32, wrapped32, wrapped64)
        dv[down] = np.where(_plausible(rule, candidate, fits32, dt_s[down], factor), candidate, high)
    return dv, decreased


def _plausible(
    rule: FieldRule, candidate: np.ndarray, fits32: np.ndarray, dt_s: np.ndarray, factor: float
) -> np.ndarray:
    if rule.max_rate is None:
        return fits32
    with np.errstate(divide="ignore", invalid="ignore"):
        plausible: np.ndarray = (candidate / dt_s * factor) <= rule.max_rate
        return plausible

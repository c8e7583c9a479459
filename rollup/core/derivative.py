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


class PrevState:
    """Each series' last valid sample for one field: the ``prev`` of its next sample."""

    def __init__(self) -> None:
        self.has = np.zeros(0, dtype=bool)
        self.time = np.zeros(0, dtype=np.int64)
        self.as_float = np.zeros(0, dtype=np.float64)
        self.as_uint = np.zeros(0, dtype=np.uint64)
        self.is_int = np.zeros(0, dtype=bool)

    def grow(self, series_count: int) -> None:
        extra = series_count - len(self.has)
        if extra <= 0:
            return
        self.has = np.concatenate([self.has, np.zeros(extra, dtype=bool)])
        self.time = np.concatenate([self.time, np.zeros(extra, dtype=np.int64)])
        self.as_float = np.concatenate([self.as_float, np.zeros(extra, dtype=np.float64)])
        self.as_uint = np.concatenate([self.as_uint, np.zeros(extra, dtype=np.uint64)])
        self.is_int = np.concatenate([self.is_int, np.zeros(extra, dtype=bool)])

    def remember(self, series: np.ndarray, time: np.ndarray, values: np.ndarray) -> None:
        """Store the last row of every series run in ``series`` (rows grouped by series)."""
        if not len(series):
            return
        last = np.ones(len(series), dtype=bool)
        last[:-1] = series[1:] != series[:-1]
        ids = series[last]
        self.has[ids] = True
        self.time[ids] = time[last]
        chosen = values[last]
        self.as_float[ids] = chosen.astype(np.float64)
        if values.dtype == np.uint64:
            self.as_uint[ids] = chosen
            self.is_int[ids] = True
        else:
            self.is_int[ids] = False


def exact_counter_values(values: np.ndarray) -> np.ndarray:
    """Counter values as ``uint64`` when integers allow it exactly, else ``float64``."""
    if values.dtype == np.uint64:
        return values
    if values.dtype.kind == "i":
        if len(values) == 0 or values.min() >= 0:
            return values.astype(np.uint64)
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
    values = exact_counter_values(values)
    first = np.ones(len(series), dtype=bool)
    first[1:] = series[1:] != series[:-1]
    first_ids = series[first]
    has_prev = np.ones(len(series), dtype=bool)
    has_prev[first] = prev.has[first_ids]

    t0 = np.empty_like(time)
    t0[1:] = time[:-1]
    t0[first] = prev.time[first_ids]
    v0 = np.empty_like(values)
    v0[1:] = values[:-1]
    # Rows whose prev is a carried float sample while this batch is exact (the field changed type).
    float_prev = np.zeros(len(series), dtype=bool)
    if values.dtype == np.uint64:
        v0[first] = prev.as_uint[first_ids]
        float_prev[first] = ~prev.is_int[first_ids]
    else:
        v0[first] = prev.as_float[first_ids]
    carried_float = prev.as_float[series[float_prev]]
    prev.remember(series, time, values)

    sel = has_prev
    t1 = time[sel]
    dt_s = (t1 - t0[sel]).astype(np.float64) / NS_PER_SECOND
    factor = rule.unit_seconds * rule.scale
    if values.dtype == np.uint64:
        dv, decreased = _uint_deltas(rule, v0[sel], values[sel], dt_s, factor)
        if float_prev.any():
            rows = np.flatnonzero(float_prev)
            v1_float = values[rows].astype(np.float64)
            dt_rows = (time[rows] - t0[rows]).astype(np.float64) / NS_PER_SECOND
            dv_rows, dec_rows = _float_deltas(rule, carried_float, v1_float, dt_rows, factor)
            positions = np.cumsum(sel) - 1  # index of each selected row within the intervals
            keep = sel[rows]
            dv[positions[rows[keep]]] = dv_rows[keep]
            decreased[positions[rows[keep]]] = dec_rows[keep]
    else:
        dv, decreased = _float_deltas(rule, v0[sel], values[sel], dt_s, factor)

    kept = ~np.isnan(dv)
    gap = np.zeros(len(t1), dtype=bool)
    if max_gap_ns is not None:
        gap = (t1 - t0[sel]) > max_gap_ns
        kept &= ~gap
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = dv / dt_s * factor
    return Intervals(
        series=series[sel],
        time=t1,
        rate=rate,
        increase=dv * rule.scale,
        seconds=dt_s,
        kept=kept,
        decreased=decreased,
        gap=gap,
    )


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

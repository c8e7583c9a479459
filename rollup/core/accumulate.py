"""Per-(group, window) accumulators for one field, merged batch by batch.

A *slot* is ``group × windows + window``. Each batch is reduced per slot (sorted segments and
``reduceat``) and merged into arrays that grow with the number of groups, never with the number of
points. The one exception is ``pNN``: an exact percentile needs every value of its slot, so a field
that asks for one keeps its values (8 bytes each) until the window is finished.

Spread uses Chan's pairwise update so ``stddev`` (sample, n - 1, as InfluxQL's ``STDDEV``) stays
accurate for rates with a large mean. Percentiles are nearest rank: the smallest value with at
least p % of the values at or below it (the 95th-percentile billing rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rollup.core.spec import FieldRule, output_field, percentile_of

_FLOAT_STATS = ("total", "mean", "m2", "vmin", "vmax", "last_v", "increase", "seconds")
_INT_STATS = ("n", "last_t", "samples", "invalid", "resets", "gaps")


@dataclass(slots=True)
class Segments:
    """Rows sorted by slot, cut into one segment per slot."""

    order: np.ndarray | None
    slots: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    def take(self, values: np.ndarray) -> np.ndarray:
        return values if self.order is None else values[self.order]


def segment(slots: np.ndarray) -> Segments:
    order = None
    if len(slots) > 1 and np.any(slots[1:] < slots[:-1]):
        order = np.argsort(slots, kind="stable")
        slots = slots[order]
    if not len(slots):
        empty = np.zeros(0, dtype=np.int64)
        return Segments(order, empty, empty, empty)
    change = np.flatnonzero(slots[1:] != slots[:-1]) + 1
    starts = np.concatenate([[0], change]).astype(np.int64)
    counts = np.diff(np.concatenate([starts, [len(slots)]]))
    return Segments(order, slots[starts], starts, counts)


class FieldAccumulator:
    """Running statistics for one field over all slots of a run."""

    def __init__(self, rule: FieldRule):
        self.rule = rule
        wanted = set(rule.aggregates)
        self.want_minmax = bool(wanted & {"min", "max"})
        self.want_last = "last" in wanted
        self.want_spread = "stddev" in wanted
        self.percentiles = [(name, percentile_of(name) or 0.0) for name in rule.percentiles]
        self._kept_values: list[tuple[np.ndarray, np.ndarray]] = []
        self.size = 0
        for name in _FLOAT_STATS:
            setattr(self, name, np.zeros(0, dtype=np.float64))
        for name in _INT_STATS:
            setattr(self, name, np.zeros(0, dtype=np.int64))

    # Attribute annotations for type checkers (created dynamically above).
    total: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    last_v: np.ndarray
    increase: np.ndarray
    seconds: np.ndarray
    n: np.ndarray
    last_t: np.ndarray
    samples: np.ndarray
    invalid: np.ndarray
    resets: np.ndarray
    gaps: np.ndarray

    def grow(self, size: int) -> None:
        extra = size - self.size
        if extra <= 0:
            return
        for name in _FLOAT_STATS:
            fill = {"vmin": np.inf, "vmax": -np.inf}.get(name, 0.0)
            setattr(self, name, np.concatenate([getattr(self, name), np.full(extra, fill)]))
        for name in _INT_STATS:
            fill = np.iinfo(np.int64).min if name == "last_t" else 0
            setattr(
                self,
                name,
                np.concatenate([getattr(self, name), np.full(extra, fill, dtype=np.int64)]),
            )
        self.size = size

    # -- merging a batch ----------------------------------------------------------------------

    def add_counts(self, slots: np.ndarray, target: np.ndarray) -> None:
        """Add one to ``target`` for each entry of ``slots`` (samples, invalid, resets, gaps)."""
        if len(slots):
            target += np.bincount(slots, minlength=self.size)[: self.size]

    def add_values(
        self,
        slots: np.ndarray,
        values: np.ndarray,
        times: np.ndarray,
        increase: np.ndarray | None = None,
        seconds: np.ndarray | None = None,
    ) -> None:
        """Merge values (rates or gauge readings) stamped at ``times`` into their slots."""
        if not len(slots):
            return
        seg = segment(slots)
        x = seg.take(values)
        ids, starts, counts = seg.slots, seg.starts, seg.counts
        sums = np.add.reduceat(x, starts)
        if self.want_spread:
            batch_mean = sums / counts
            deviation = x - np.repeat(batch_mean, counts)
            batch_m2 = np.add.reduceat(deviation * deviation, starts)
            n_a = self.n[ids].astype(np.float64)
            n_b = counts.astype(np.float64)
            total_n = n_a + n_b
            delta = batch_mean - self.mean[ids]
            self.mean[ids] += delta * n_b / total_n
            self.m2[ids] += batch_m2 + delta * delta * n_a * n_b / total_n
        self.total[ids] += sums
        self.n[ids] += counts
        if self.want_minmax:
            self.vmin[ids] = np.minimum(self.vmin[ids], np.minimum.reduceat(x, starts))
            self.vmax[ids] = np.maximum(self.vmax[ids], np.maximum.reduceat(x, starts))
        if self.want_last:
            t = seg.take(times)
            newest = np.maximum.reduceat(t, starts)
            rows = np.arange(len(t))
            at_newest = np.where(t == np.repeat(newest, counts), rows, -1)
            pick = np.maximum.reduceat(at_newest, starts)
            newer = newest >= self.last_t[ids]
            self.last_t[ids[newer]] = newest[newer]
            self.last_v[ids[newer]] = x[pick[newer]]
        if increase is not None and seconds is not None:
            self.increase[ids] += np.add.reduceat(seg.take(increase), starts)
            self.seconds[ids] += np.add.reduceat(seg.take(seconds), starts)
        if self.percentiles:
            self._kept_values.append((seg.slots.repeat(counts), x.copy()))

    # -- results ------------------------------------------------------------------------------

    def percentile_table(self) -> dict[str, np.ndarray]:
        """Nearest-rank percentiles per slot (NaN where a slot has no value)."""
        out = {name: np.full(self.size, np.nan) for name, _ in self.percentiles}
        if not self._kept_values:
            return out
        slots = np.concatenate([s for s, _ in self._kept_values])
        values = np.concatenate([v for _, v in self._kept_values])
        order = np.lexsort((values, slots))
        slots, values = slots[order], values[order]
        seg = segment(slots)
        for name, p in self.percentiles:
            rank = np.maximum(np.ceil(seg.counts * (p / 100.0) - 1e-9).astype(np.int64), 1)
            out[name][seg.slots] = values[seg.starts + rank - 1]
        return out

    def aggregate(self, slot: int, percentiles: dict[str, np.ndarray]) -> dict[str, float]:
        """The requested aggregates of one slot that has at least one value."""
        rule = self.rule
        n = int(self.n[slot])
        result: dict[str, float] = {}
        for name in rule.aggregates:
            value: float | None
            if name == "mean":
                value = self.total[slot] / n
            elif name == "sum":
                value = self.total[slot]
            elif name == "count":
                value = n
            elif name == "min":
                value = self.vmin[slot]
            elif name == "max":
                value = self.vmax[slot]
            elif name == "last":
                value = self.last_v[slot]
            elif name == "stddev":
                value = math.sqrt(self.m2[slot] / (n - 1)) if n > 1 else None
            elif name == "increase":
                value = self.increase[slot]
            elif name == "rate":
                seconds = self.seconds[slot]
                value = self.increase[slot] / seconds * rule.unit_seconds if seconds > 0 else None
            else:
                value = percentiles[name][slot]
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                result[output_field(rule.output, name)] = int(value) if name == "count" else float(value)
        return result

    def coverage(self, slot: int) -> dict[str, float]:
        prefix = self.rule.output
        out: dict[str, float] = {
            f"{prefix}_samples": int(self.samples[slot]),
            f"{prefix}_invalid": int(self.invalid[slot]),
        }
        if self.rule.kind == "counter":
            out[f"{prefix}_seconds"] = float(self.seconds[slot])
            out[f"{prefix}_resets"] = int(self.resets[slot])
            out[f"{prefix}_gaps"] = int(self.gaps[slot])
        return out

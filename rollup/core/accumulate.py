"""Per-(group, window) accumulators for one field, merged batch by batch.

A *slot* is ``group × windows + window``. Each batch is reduced per slot (sorted segments and
``reduceat``) and merged into arrays that grow with the number of groups, never with the number of
points. The one exception is ``pNN``: an exact percentile needs every value of its slot, so a field
that asks for one keeps its values until the slot is finished (:mod:`rollup.core.percentiles`).

Spread uses Chan's pairwise update so ``stddev`` (sample, n - 1, as InfluxQL's ``STDDEV``) stays
accurate for rates with a large mean. Percentiles are nearest rank: the smallest value with at
least p % of the values at or below it (the 95th-percentile billing rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rollup.core.percentiles import KeptValues
from rollup.core.spec import DEFAULT_VALUES_MEMORY, FieldRule, output_field, percentile_of

_FLOAT_STATS = ("total", "mean", "m2", "vmin", "vmax", "last_v", "increase", "seconds")
_INT_STATS = ("n", "last_t", "samples", "invalid", "resets", "gaps")
_FILL = {"vmin": np.inf, "vmax": -np.inf, "last_t": np.iinfo(np.int64).min}
_EMPTY = np.zeros(0, dtype=np.int64)


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
        return Segments(order, _EMPTY, _EMPTY, _EMPTY)
    starts = np.flatnonzero(np.concatenate([[True], slots[1:] != slots[:-1]]))
    counts = np.diff(np.append(starts, len(slots)))
    return Segments(order, slots[starts], starts, counts)


class FieldAccumulator:
    """Running statistics for one field over all slots of a run.

    The arrays are allocated with spare capacity (doubling), so slots can be added group by group
    without copying everything each time; only the first ``size`` entries are meaningful.
    """

    def __init__(self, rule: FieldRule, values_memory: int = DEFAULT_VALUES_MEMORY):
        self.rule = rule
        wanted = set(rule.aggregates)
        self.want_minmax = bool(wanted & {"min", "max"})
        self.want_last = "last" in wanted
        self.want_spread = "stddev" in wanted
        self.want_increase = bool(wanted & {"increase", "rate"})
        self.percentiles = [(name, percentile_of(name) or 0.0) for name in rule.percentiles]
        self.kept = KeptValues([p for _, p in self.percentiles], values_memory) if self.percentiles else None
        self.size = 0
        self._capacity = 0
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
        if size <= self.size:
            return
        if size > self._capacity:
            capacity = max(size, 2 * self._capacity, 256)
            for name in (*_FLOAT_STATS, *_INT_STATS):
                old = getattr(self, name)
                new = np.full(capacity, _FILL.get(name, 0), dtype=old.dtype)
                new[: self.size] = old[: self.size]
                setattr(self, name, new)
            self._capacity = capacity
        self.size = size

    # -- merging a batch ----------------------------------------------------------------------

    def add_counts(self, slots: np.ndarray, target: np.ndarray) -> None:
        """Add one to ``target`` for each entry of ``slots`` (samples, invalid, resets, gaps)."""
        if not len(slots):
            return
        if len(slots) == 1:
            target[slots[0]] += 1
            return
        low, high = int(slots.min()), int(slots.max())
        target[low : high + 1] += np.bincount(slots - low, minlength=high - low + 1)

    def add_segment_counts(self, seg: Segments, target: np.ndarray, keep: np.ndarray | None = None) -> None:
        """Add each segment's row count to ``target`` (``keep``: which segments count)."""
        if keep is None:
            target[seg.slots] += seg.counts
        else:
            target[seg.slots[keep]] += seg.counts[keep]

    def add_values(
        self,
        slots: np.ndarray,
        values: np.ndarray,
        times: np.ndarray,
        increase: np.ndarray | None = None,
        seconds: np.ndarray | None = None,
    ) -> None:
        """Merge values (rates or gauge readings) stamped at ``times`` into their slots."""
        if len(slots):
            self.merge(segment(slots), values, times, increase=increase, seconds=seconds)

    def merge(
        self,
        seg: Segments,
        values: np.ndarray,
        times: np.ndarray,
        *,
        increase: np.ndarray | None = None,
        seconds: np.ndarray | None = None,
        use: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
        keep: np.ndarray | None = None,
    ) -> None:
        """Merge row values into the slots ``seg`` cuts them into.

        ``use`` (bool per row, None for all) picks the rows that count, or ``excluded`` (sorted row
        positions) the rows that do not: when only sums are asked for, those entries of ``values``,
        ``increase`` and ``seconds`` are set to 0 in place. ``keep`` (bool per segment, None for all)
        picks the segments that are merged at all: the others are not slots of a window.
        """
        if not len(seg.slots):
            return
        counts = seg.counts
        if excluded is not None and len(excluded):
            sums_only = not (self.want_minmax or self.want_last or self.want_spread or self.percentiles)
            if sums_only and seg.order is None:
                for array in (values, increase, seconds):
                    if array is not None:
                        array[excluded] = 0.0
                inside = np.searchsorted(seg.starts, excluded, side="right") - 1
                counts = counts - np.bincount(inside, minlength=len(counts))
            else:
                use = np.ones(len(values), dtype=bool)
                use[excluded] = False
        starts = seg.starts
        x = seg.take(values)
        if use is None:
            sums = np.add.reduceat(x, starts)
        else:
            use = seg.take(use)
            counts = np.add.reduceat(use, starts, dtype=np.int64)
            sums = np.add.reduceat(np.where(use, x, 0.0), starts)
        chosen = counts > 0 if keep is None else keep & (counts > 0)
        every = bool(chosen.all())
        ids = seg.slots if every else seg.slots[chosen]

        def pick(per_segment: np.ndarray) -> np.ndarray:
            return per_segment if every else per_segment[chosen]

        if self.want_spread:
            with np.errstate(divide="ignore", invalid="ignore"):
                batch_mean = sums / counts
            deviation = x - np.repeat(batch_mean, seg.counts)
            if use is not None:
                deviation = np.where(use, deviation, 0.0)
            batch_m2 = pick(np.add.reduceat(deviation * deviation, starts))
            n_a = self.n[ids].astype(np.float64)
            n_b = pick(counts).astype(np.float64)
            total_n = n_a + n_b
            delta = pick(batch_mean) - self.mean[ids]
            self.mean[ids] += delta * n_b / total_n
            self.m2[ids] += batch_m2 + delta * delta * n_a * n_b / total_n
        self.total[ids] += pick(sums)
        self.n[ids] += pick(counts)
        if self.want_minmax:
            low = x if use is None else np.where(use, x, np.inf)
            high = x if use is None else np.where(use, x, -np.inf)
            self.vmin[ids] = np.minimum(self.vmin[ids], pick(np.minimum.reduceat(low, starts)))
            self.vmax[ids] = np.maximum(self.vmax[ids], pick(np.maximum.reduceat(high, starts)))
        if self.want_last:
            t = seg.take(times)
            if use is not None:
                t = np.where(use, t, np.iinfo(np.int64).min)
            newest = np.maximum.reduceat(t, starts)
            rows = np.arange(len(t))
            at_newest = t == np.repeat(newest, seg.counts)
            if use is not None:
                at_newest &= use
            latest = pick(np.maximum.reduceat(np.where(at_newest, rows, -1), starts))
            newest = pick(newest)
            newer = newest >= self.last_t[ids]
            self.last_t[ids[newer]] = newest[newer]
            self.last_v[ids[newer]] = x[latest[newer]]
        if increase is not None and self.want_increase:
            inc = seg.take(increase)
            self.increase[ids] += pick(
                np.add.reduceat(inc if use is None else np.where(use, inc, 0.0), starts)
            )
        if seconds is not None:
            sec = seg.take(seconds)
            self.seconds[ids] += pick(
                np.add.reduceat(sec if use is None else np.where(use, sec, 0.0), starts)
            )
        if self.kept is not None:
            rows_kept = np.repeat(chosen, seg.counts)
            if use is not None:
                rows_kept &= use
            self.kept.add(ids, pick(counts), x if rows_kept.all() else x[rows_kept])

    # -- results ------------------------------------------------------------------------------

    def finish(self, slots: np.ndarray) -> None:
        """No further value will come for ``slots`` (ascending): reduce what is kept for them."""
        if self.kept is not None:
            self.kept.finish(slots)

    def percentile_table(self) -> dict[str, np.ndarray]:
        """Nearest-rank percentiles per slot (NaN where a slot has no value)."""
        if self.kept is None:
            return {}
        table = self.kept.table(self.size)
        return {name: table[i] for i, (name, _) in enumerate(self.percentiles)}

    def columns(self, slots: np.ndarray) -> list[tuple[str, list[float | int | None]]]:
        """Coverage, then the requested aggregates, of ``slots``: one list per output field, None
        where a slot has no value for it (no sample, a single one for ``stddev`` …)."""
        rule = self.rule
        prefix = rule.output
        out: list[tuple[str, list[float | int | None]]] = [
            (f"{prefix}_samples", self.samples[slots].tolist()),
            (f"{prefix}_invalid", self.invalid[slots].tolist()),
        ]
        if rule.kind == "counter":
            out.append((f"{prefix}_seconds", self.seconds[slots].astype(np.float64).tolist()))
            out.append((f"{prefix}_resets", self.resets[slots].tolist()))
            out.append((f"{prefix}_gaps", self.gaps[slots].tolist()))
        n = self.n[slots]
        has = n > 0
        percentiles = self.percentile_table()
        for name in rule.aggregates:
            if name == "count":
                out.append(
                    (
                        output_field(prefix, name),
                        [c if h else None for c, h in zip(n.tolist(), has.tolist(), strict=True)],
                    )
                )
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                if name == "mean":
                    value = self.total[slots] / n
                elif name == "sum":
                    value = self.total[slots]
                elif name == "min":
                    value = self.vmin[slots]
                elif name == "max":
                    value = self.vmax[slots]
                elif name == "last":
                    value = self.last_v[slots]
                elif name == "stddev":
                    value = np.where(n > 1, np.sqrt(self.m2[slots] / (n - 1)), np.nan)
                elif name == "increase":
                    value = self.increase[slots]
                elif name == "rate":
                    seconds = self.seconds[slots]
                    value = np.where(seconds > 0, self.increase[slots] / seconds * rule.unit_seconds, np.nan)
                else:
                    value = percentiles[name][slots]
            present = has & ~np.isnan(value)
            out.append(
                (
                    output_field(prefix, name),
                    [v if p else None for v, p in zip(value.tolist(), present.tolist(), strict=True)],
                )
            )
        return out

"""Per-(group, window) accumulators for one field, merged batch by batch.

A *slot* is ``group × windows + window``. Each batch is reduced per slot (sorted segments and
``reduceat``) and merged into arrays that grow with the number of groups, never with the number of
points. The one exception is ``pNN``: an exact percentile needs every value of its slot, so a field
that asks for one keeps its values until the slot is finished (:mod:`rollup.core.percentiles`).
Plug-in aggregates (:mod:`rollup.core.plugin_runs`) are fed the same rows: a streaming one keeps a
state per slot, one that needs the whole window has its values kept like those of ``pNN``.

Every result has the same bits however the rows were batched and in whichever order series came:
float sums (``mean``, ``sum``, ``increase``, ``rate``, ``stddev``) are made by
:mod:`rollup.core.sums`, covered seconds are summed as integer nanoseconds, ``min``, ``max`` and
counts do not depend on the order, and ``last`` at an instant several series share is the
greatest of their values. A zero is always written +0.0. Percentiles are nearest rank: the
smallest value with at least p % of the values at or below it (the 95th-percentile billing rule).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rollup.core.durations import NS_PER_SECOND
from rollup.core.percentiles import KeptValues
from rollup.core.plugin_runs import FieldPlugins, SeriesOrder, WindowsOf
from rollup.core.spec import DEFAULT_VALUES_MEMORY, FieldRule, output_field, percentile_of
from rollup.core.sums import FieldSums, Pieces

_FLOAT_STATS = ("vmin", "vmax", "last_v")
_INT_STATS = ("n", "last_t", "samples", "invalid", "resets", "gaps", "seconds_high", "seconds_low")
_FILL = {"vmin": np.inf, "vmax": -np.inf, "last_t": np.iinfo(np.int64).min}
_EMPTY = np.zeros(0, dtype=np.int64)
_NS_BITS = 30
"""Covered nanoseconds are kept as ``seconds_high × 2^30 + seconds_low``: int64 never overflows."""


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

    def __init__(
        self,
        rule: FieldRule,
        values_memory: int = DEFAULT_VALUES_MEMORY,
        windows_of: WindowsOf | None = None,
        series_order: SeriesOrder | None = None,
    ):
        """``windows_of`` tells plug-ins the window of a slot; ``series_order`` how series sort."""
        self.rule = rule
        wanted = set(rule.aggregates)
        self.want_minmax = bool(wanted & {"min", "max"})
        self.want_last = bool(wanted & {"last", "last_time"})
        self.want_spread = "stddev" in wanted
        self.want_increase = bool(wanted & {"increase", "rate"})
        self.percentiles = [(name, percentile_of(name) or 0.0) for name in rule.percentiles]
        self.sums = FieldSums(
            values=bool(wanted & {"mean", "sum"}), increase=self.want_increase, spread=self.want_spread
        )
        self.plugins: FieldPlugins | None = None
        if rule.plugins:
            if windows_of is None:
                raise ValueError(f"field {rule.name!r}: plug-in aggregates need the windows of the slots")
            self.plugins = FieldPlugins(rule.plugins, windows_of, series_order)
        self.kept: KeptValues | None = None
        if rule.keeps_values:
            whole = self.plugins if self.plugins is not None and self.plugins.keeps_values else None
            self.kept = KeptValues(
                [p for _, p in self.percentiles],
                values_memory,
                width=1 if whole is None else whole.width,
                reduce=None if whole is None else whole.reduce,
            )
        self.size = 0
        self._capacity = 0
        self._low_bound = 0
        for name in _FLOAT_STATS:
            setattr(self, name, np.zeros(0, dtype=np.float64))
        for name in _INT_STATS:
            setattr(self, name, np.zeros(0, dtype=np.int64))

    # Attribute annotations for type checkers (created dynamically above).
    vmin: np.ndarray
    vmax: np.ndarray
    last_v: np.ndarray
    n: np.ndarray
    last_t: np.ndarray
    samples: np.ndarray
    invalid: np.ndarray
    resets: np.ndarray
    gaps: np.ndarray
    seconds_high: np.ndarray
    seconds_low: np.ndarray

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
        self.sums.grow(size)
        if self.plugins is not None:
            self.plugins.grow(size)
        self.size = size

    @property
    def wants_series(self) -> bool:
        """Whether :meth:`merge` needs the series of each row (for a plug-in)."""
        return self.plugins is not None and self.plugins.wants_series

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

    def merge(
        self,
        seg: Segments,
        pieces: Pieces,
        values: np.ndarray,
        times: np.ndarray,
        *,
        stream: int = 0,
        increase: np.ndarray | None = None,
        nanoseconds: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
        keep: np.ndarray | None = None,
        series: np.ndarray | None = None,
    ) -> None:
        """Merge row values into the slots ``seg`` cuts them into; ``pieces`` are the same rows cut
        by series and slot, in row order, for the float sums (see :mod:`rollup.core.sums`).

        ``nanoseconds`` (int64) are the intervals' lengths. ``excluded`` (sorted row positions) are
        rows that do not count: when only sums are asked for, those entries of ``values``,
        ``increase`` and ``nanoseconds`` are set to 0 in place. ``keep`` (bool per segment, None
        for all) picks the segments that are merged at all: the others are not slots of a window.
        ``series`` (the series id of each row) is needed when :attr:`wants_series`.
        """
        if not len(seg.slots):
            return
        counts = seg.counts
        use: np.ndarray | None = None
        if excluded is not None and len(excluded):
            keeps_rows = self.kept is not None or self.plugins is not None
            sums_only = not (self.want_minmax or self.want_last or keeps_rows)
            if sums_only and seg.order is None:
                for array in (values, increase, nanoseconds):
                    if array is not None:
                        array[excluded] = 0
                inside = np.searchsorted(seg.starts, excluded, side="right") - 1
                counts = counts - np.bincount(inside, minlength=len(counts))
            else:
                use = np.ones(len(values), dtype=bool)
                use[excluded] = False
        if self.sums.wanted:
            terms = values if use is None else np.where(use, values, 0.0)
            inc = increase if use is None or increase is None else np.where(use, increase, 0.0)
            self.sums.add(stream, pieces, terms, inc, use)
        starts = seg.starts
        x = seg.take(values)
        if use is not None:
            use = seg.take(use)
            counts = np.add.reduceat(use, starts, dtype=np.int64)
        chosen = counts > 0 if keep is None else keep & (counts > 0)
        every = bool(chosen.all())
        ids = seg.slots if every else seg.slots[chosen]

        def pick(per_segment: np.ndarray) -> np.ndarray:
            return per_segment if every else per_segment[chosen]

        self.n[ids] += pick(counts)
        if self.want_minmax:
            low = x if use is None else np.where(use, x, np.inf)
            high = x if use is None else np.where(use, x, -np.inf)
            self.vmin[ids] = np.minimum(self.vmin[ids], pick(np.minimum.reduceat(low, starts)))
            self.vmax[ids] = np.maximum(self.vmax[ids], pick(np.maximum.reduceat(high, starts)))
        if self.want_last:
            self._merge_last(seg, x, seg.take(times), use, ids, pick)
        if nanoseconds is not None:
            ns = seg.take(nanoseconds)
            self._merge_nanoseconds(seg, ns if use is None else np.where(use, ns, 0), ids, pick)
        if self.kept is not None or self.plugins is not None:
            self._merge_rows(seg, x, times, series, use, chosen, ids, pick(counts))

    def _merge_rows(
        self,
        seg: Segments,
        x: np.ndarray,
        times: np.ndarray,
        series: np.ndarray | None,
        use: np.ndarray | None,
        chosen: np.ndarray,
        ids: np.ndarray,
        counts: np.ndarray,
    ) -> None:
        """Hand the rows that count, by slot, to what keeps them and to the streaming plug-ins."""
        rows_kept = np.repeat(chosen, seg.counts)
        if use is not None:
            rows_kept &= use
        every = bool(rows_kept.all())
        values = x if every else x[rows_kept]
        plugins = self.plugins
        if plugins is None:
            assert self.kept is not None
            self.kept.add(ids, counts, values)
            return
        t = seg.take(times) if plugins.wants_times or plugins.keeps_times else times
        t = t if every else t[rows_kept]
        if series is not None:
            series = seg.take(series)
            series = series if every else series[rows_kept]
        if self.kept is not None:
            self.kept.add(ids, counts, plugins.kept_rows(values, t, series))
        plugins.update(ids, counts, values, t, series)

    def _merge_last(
        self,
        seg: Segments,
        x: np.ndarray,
        t: np.ndarray,
        use: np.ndarray | None,
        ids: np.ndarray,
        pick: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        """The value at the newest instant; where several series share it, the greatest value."""
        if use is not None:
            t = np.where(use, t, np.iinfo(np.int64).min)
        newest = np.maximum.reduceat(t, seg.starts)
        at_newest = t == np.repeat(newest, seg.counts)
        if use is not None:
            at_newest &= use
        candidate = pick(np.maximum.reduceat(np.where(at_newest, x, -np.inf), seg.starts))
        newest = pick(newest)
        before, value = self.last_t[ids], self.last_v[ids]
        value = np.where(newest > before, candidate, value)
        self.last_v[ids] = np.where(newest == before, np.maximum(value, candidate), value)
        self.last_t[ids] = np.maximum(before, newest)

    def _merge_nanoseconds(
        self, seg: Segments, ns: np.ndarray, ids: np.ndarray, pick: Callable[[np.ndarray], np.ndarray]
    ) -> None:
        """Add interval lengths exactly, as integers. No int64 overflows: ``_low_bound`` bounds
        every ``seconds_low``, which are carried into ``seconds_high`` before it could."""
        longest = int(ns.max()) if len(ns) else 0
        if len(ns) * longest < 2**62:
            sums = pick(np.add.reduceat(ns, seg.starts))
            self._low_bound += len(ns) * longest
        else:  # a long batch of long intervals: add in two halves
            self.seconds_high[ids] += pick(np.add.reduceat(ns >> _NS_BITS, seg.starts))
            sums = pick(np.add.reduceat(ns & (2**_NS_BITS - 1), seg.starts))
            self._low_bound += len(ns) << _NS_BITS
        self.seconds_low[ids] += sums
        if self._low_bound >= 2**62:
            self.seconds_high += self.seconds_low >> _NS_BITS
            self.seconds_low &= 2**_NS_BITS - 1
            self._low_bound = 2**_NS_BITS

    # -- results ------------------------------------------------------------------------------

    @property
    def failures(self) -> dict[int, tuple[str, str]]:
        """Slot → (plug-in, reason) of the slots a plug-in failed on (see :meth:`columns`)."""
        return {} if self.plugins is None else self.plugins.failures

    def finish(self, slots: np.ndarray) -> None:
        """No further value will come for ``slots`` (ascending): reduce what is kept for them."""
        if self.kept is not None:
            self.kept.finish(slots)

    def percentile_table(self) -> dict[str, np.ndarray]:
        """Nearest-rank percentiles per slot (NaN where a slot has no value), after reducing every
        slot still open (whole-window plug-ins included)."""
        if self.kept is None:
            return {}
        table = self.kept.table(self.size)
        return {name: table[i] for i, (name, _) in enumerate(self.percentiles)}

    def seconds(self, slots: np.ndarray) -> np.ndarray:
        """Covered seconds of ``slots`` (the sum of exact nanoseconds, rounded once at the end)."""
        nanoseconds = self.seconds_high[slots].astype(np.float64) * 2.0**_NS_BITS + self.seconds_low[slots]
        seconds: np.ndarray = nanoseconds / NS_PER_SECOND
        return seconds

    def columns(self, slots: np.ndarray) -> list[tuple[str, list[float | int | None]]]:
        """Coverage, then the requested aggregates, then the plug-ins', of ``slots``: one list per
        output field, None where a slot has no value for it (no sample, a single one for
        ``stddev`` …, a plug-in failed on it: see :attr:`failures`)."""
        rule = self.rule
        prefix = rule.output
        n = self.n[slots]
        self.sums.settle()
        out: list[tuple[str, list[float | int | None]]] = [
            (f"{prefix}_samples", self.samples[slots].tolist()),
            (f"{prefix}_invalid", self.invalid[slots].tolist()),
        ]
        if rule.kind == "counter":
            out.append((f"{prefix}_seconds", (self.seconds(slots) + 0.0).tolist()))
            out.append((f"{prefix}_resets", self.resets[slots].tolist()))
            out.append((f"{prefix}_gaps", self.gaps[slots].tolist()))
        has = n > 0
        percentiles = self.percentile_table()
        total = (
            self.sums.values.values(slots) if self.sums.values is not None else np.full(len(slots), np.nan)
        )
        for name in rule.aggregates:
            if name in ("count", "last_time"):
                whole = n if name == "count" else self.last_t[slots]
                out.append(
                    (
                        output_field(prefix, name),
                        [c if h else None for c, h in zip(whole.tolist(), has.tolist(), strict=True)],
                    )
                )
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                if name == "mean":
                    value = total / n
                elif name == "sum":
                    value = total
                elif name == "min":
                    value = self.vmin[slots]
                elif name == "max":
                    value = self.vmax[slots]
                elif name == "last":
                    value = self.last_v[slots]
                elif name == "stddev":
                    value = self.sums.stddev(slots, n)
                elif name == "increase":
                    value = self.sums.increase.values(slots)  # type: ignore[union-attr]
                elif name == "rate":
                    seconds = self.seconds(slots)
                    increase = self.sums.increase.values(slots)  # type: ignore[union-attr]
                    value = np.where(seconds > 0, increase / seconds * rule.unit_seconds, np.nan)
                else:
                    value = percentiles[name][slots]
            value = (
                value + 0.0
            )  # -0.0 and 0.0 compare equal, so which one a min or max keeps depends on order
            present = has & ~np.isnan(value)
            out.append(
                (
                    output_field(prefix, name),
                    [v if p else None for v, p in zip(value.tolist(), present.tolist(), strict=True)],
                )
            )
        if self.plugins is not None:
            out.extend((f"{prefix}_{name}", column) for name, column in self.plugins.columns(slots, has))
        return out

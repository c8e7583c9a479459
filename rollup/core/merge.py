"""Exact merges: a coarser rollup made of the rows of a finer one (a *ladder* of jobs).

A job that reads another job's output gets one row per upstream window and upstream group: a
*part*, holding ``<field>_<aggregate>`` values and the field's coverage. The parts that fall into
one downstream (group, window) — the upstream windows it covers, the upstream groups it merges —
are combined so that the result equals the same aggregate computed from the raw data in one job,
up to the rounding of the parts themselves:

=============  ==========================================  =============================================
aggregate      read from each part                         merged
=============  ==========================================  =============================================
``mean``       ``mean``, ``count``                         ``Σ mean·count / Σ count``
``rate``       ``increase`` and the coverage ``seconds``   ``Σ increase / Σ seconds × unit``
``increase``   ``increase``                                ``Σ``
``sum``        ``sum``                                     ``Σ``
``count``      ``count``                                   ``Σ``
``min``        ``min``                                     the smallest
``max``        ``max``                                     the largest
``last``       ``last`` (and ``last_time`` when groups     the value of the part whose last is newest;
               merge)                                      at a tie, the greatest value
``last_time``  ``last_time``                               the newest
``stddev``     ``stddev``, ``mean``, ``count``             pooled: ``√(SS / (N − 1))`` with
                                                           ``SS = Σ (n−1)s² + Σ n (m − M)²``
coverage       ``samples``, ``invalid``, ``seconds``,      ``Σ``
               ``resets``, ``gaps``
=============  ==========================================  =============================================

``last`` needs the time of each part's last value only when parts of one upstream window belong
to one downstream group (groups merge): with the same groups, the newest part is the newest
upstream window. Percentiles cannot be merged (the parts' percentiles do not determine the
whole's): :func:`upstream_aggregates` refuses them.

Float sums are binned (:mod:`rollup.core.binned`), so they do not depend on the order of the
parts. ``stddev`` is pooled around a reference, the mean of the first part of its slot
(``Σ n (m − M)² = Σ n (m − K)² − (Σ n (m − K))² / N``), which keeps the cancellation as small as
the spread of the parts' means; its error grows with ``(mean / stddev)²`` times the rounding of
the parts' means (about 1e-16 each).

Coverage of an upstream (group, window) in which no field had a value cannot be carried up: the
upstream writes no row for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rollup.core import numbers
from rollup.core.accumulate import segment
from rollup.core.batch import Batch, FieldColumn, SeriesKey
from rollup.core.binned import BinnedSums
from rollup.core.pipeline import OutputRow, WindowResult
from rollup.core.spec import FieldRule, Kind, RollupSpec, output_field, percentile_of
from rollup.core.windows import Window

_NEEDS: dict[str, tuple[str, ...]] = {
    "mean": ("mean", "count"),
    "rate": ("increase",),
    "increase": ("increase",),
    "sum": ("sum",),
    "count": ("count",),
    "min": ("min",),
    "max": ("max",),
    "last": ("last",),
    "last_time": ("last_time",),
    "stddev": ("stddev", "mean", "count"),
}
_PRESENCE = ("count", "mean", "min", "max", "sum", "last", "increase", "last_time")
"""Aggregates a part holds exactly when its field had a value (``stddev`` needs two values)."""
_COUNTER_COVERAGE = ("seconds", "resets", "gaps")
_INT_COVERAGE = ("samples", "invalid", "resets", "gaps")
_NEWEST = np.iinfo(np.int64).min


class NotMergeableError(ValueError):
    """An aggregate that cannot be computed from the rows of another rollup."""


def upstream_aggregates(aggregate: str, *, merged_groups: bool) -> tuple[str, ...]:
    """The aggregates each part must hold for ``aggregate`` to be merged exactly (NotMergeableError
    for a percentile)."""
    if percentile_of(aggregate) is not None:
        raise NotMergeableError(
            f"{aggregate} cannot be merged: the percentiles of parts (days, interfaces) do not "
            "determine the percentile of the whole. Compute it from the raw data instead, in a job "
            "whose source buffer keeps a whole window (e.g. a monthly p95 needs a 31-day buffer)"
        )
    needed = _NEEDS.get(aggregate)
    if needed is None:
        raise NotMergeableError(f"unknown aggregate {aggregate!r}")
    if aggregate == "last" and merged_groups:
        return (*needed, "last_time")
    return needed


def coverage_names(kind: Kind) -> tuple[str, ...]:
    """The coverage every row carries for a field of ``kind``."""
    return ("samples", "invalid", *_COUNTER_COVERAGE) if kind == "counter" else ("samples", "invalid")


@dataclass(frozen=True, slots=True)
class MergeSpec:
    """A downstream rollup: its fields (``FieldRule.name`` is the upstream's output name, ``kind``
    and ``unit_seconds`` the upstream's), groups and stamp, and whether groups merge."""

    rollup: RollupSpec
    merged_groups: bool = False
    """Parts of one upstream window may fall into one downstream group (``last`` needs times)."""

    def columns(self) -> tuple[str, ...]:
        """Every upstream output field the merge reads."""
        names: list[str] = []
        for rule in self.rollup.fields:
            names += [output_field(rule.name, c) for c in coverage_names(rule.kind)]
            names += [output_field(rule.name, a) for a in _read(rule, self.merged_groups)]
        return tuple(dict.fromkeys(names))


def _read(rule: FieldRule, merged_groups: bool) -> tuple[str, ...]:
    """The upstream aggregates of ``rule``'s field that are read."""
    found: list[str] = []
    for aggregate in rule.aggregates:
        found += upstream_aggregates(aggregate, merged_groups=merged_groups)
    return tuple(dict.fromkeys(found))


class MissingPartError(ValueError):
    """An upstream row lacks a value the merge needs (the upstream wrote it before it was asked
    for that aggregate, or the field is not written at all)."""

    def __init__(self, column: str, beside: str, tags: dict[str, str], time: int):
        self.column = column
        self.beside = beside
        self.tags = tags
        self.time = time
        super().__init__(f"{column} is missing from the upstream row of {tags or '(all series)'} at {time}")


@dataclass(slots=True)
class _Rows:
    """The rows of a batch that fall into a window, sorted by slot for the binned sums."""

    index: np.ndarray
    """Their positions in the batch, in batch order."""
    slot: np.ndarray
    order: np.ndarray
    """``index`` positions sorted by slot (stable)."""
    segment_slots: np.ndarray
    segment_starts: np.ndarray
    runs: np.ndarray
    """Each row's run in the batch (for its tags)."""
    time: np.ndarray
    """Each row's time: the start of its upstream window."""


@dataclass(slots=True)
class _Column:
    values: np.ndarray
    present: np.ndarray


class _FieldMerge:
    """Running merges of one field over every slot."""

    def __init__(self, rule: FieldRule, merged_groups: bool):
        self.rule = rule
        self.merged_groups = merged_groups
        self.read = _read(rule, merged_groups)
        self.presence = next(name for name in _PRESENCE if name in self.read) if self.read else None
        wanted = set(self.read)
        self.size = 0
        self.ints: dict[str, np.ndarray] = {
            name: np.zeros(0, dtype=np.int64)
            for name in (*(n for n in _INT_COVERAGE if n in coverage_names(rule.kind)), "n")
        }
        self.has = np.zeros(0, dtype=bool)
        self.sums: dict[str, BinnedSums] = {}
        for name in ("seconds", "sum", "increase"):
            if (name == "seconds" and rule.kind == "counter") or name in wanted:
                self.sums[name] = BinnedSums()
        if "mean" in wanted:
            self.sums["mean"] = BinnedSums()
        if "stddev" in wanted:
            for name in ("within", "squares", "deviations"):
                self.sums[name] = BinnedSums()
        self.floats: dict[str, np.ndarray] = {}
        fills = {"min": np.inf, "max": -np.inf, "last": np.nan, "reference": np.nan}
        for name in ("min", "max", "last", "reference"):
            if name in wanted or (name == "reference" and "stddev" in wanted):
                self.floats[name] = np.zeros(0)
        self._fills = fills
        self.times: dict[str, np.ndarray] = {}
        if "last" in wanted:
            self.times["last"] = np.zeros(0, dtype=np.int64)
        if "last_time" in wanted:
            self.times["last_time"] = np.zeros(0, dtype=np.int64)

    def grow(self, size: int) -> None:
        if size <= self.size:
            return
        capacity = max(size, 2 * self.size)
        for store, fill in ((self.ints, None), (self.floats, None), (self.times, _NEWEST)):
            for name, old in store.items():
                value = fill if fill is not None else self._fills.get(name, 0)
                new = np.full(capacity, value, dtype=old.dtype)
                new[: len(old)] = old
                store[name] = new
        has = np.zeros(capacity, dtype=bool)
        has[: len(self.has)] = self.has
        self.has = has
        for sums in self.sums.values():
            sums.grow(capacity)
        self.size = capacity

    # -- adding a batch's parts ------------------------------------------------------------------

    def add(self, batch: Batch, rows: _Rows) -> None:
        rule = self.rule
        columns = {
            name: _column(batch.fields.get(output_field(rule.name, name)), rows.index, integer=name in _EXACT)
            for name in (*coverage_names(rule.kind), *self.read)
        }
        slot = rows.slot
        for name, target in self.ints.items():
            if name != "n":
                np.add.at(target, slot, columns[name].values)
        if "seconds" in self.sums:
            self._add_sum("seconds", rows, columns["seconds"])
        if self.presence is None:
            return
        present = columns[self.presence].present
        self._check(batch, rows, columns, present)
        if not present.any():
            return
        self.has[slot[present]] = True
        if "count" in columns:
            count = columns["count"]
            np.add.at(self.ints["n"], slot[present], count.values[present])
        for name in ("sum", "increase"):
            if name in self.sums:
                self._add_sum(name, rows, columns[name])
        if "mean" in self.sums:
            total = columns["mean"].values * columns["count"].values
            self._add_sum("mean", rows, _Column(total, present))
        for name, reduce in (("min", np.minimum), ("max", np.maximum)):
            if name in self.floats:
                column = columns[name]
                reduce.at(self.floats[name], slot[column.present], column.values[column.present])
        if "last_time" in self.times:
            column = columns["last_time"]
            np.maximum.at(self.times["last_time"], slot[column.present], column.values[column.present])
        if "last" in self.floats:
            self._add_last(rows, columns)
        if "reference" in self.floats:
            self._add_spread(rows, columns, present)

    def _add_sum(self, name: str, rows: _Rows, column: _Column) -> None:
        terms = np.where(column.present, column.values, 0.0).astype(np.float64)
        self.sums[name].add(rows.segment_slots, rows.segment_starts, terms[rows.order], None)

    def _add_last(self, rows: _Rows, columns: dict[str, _Column]) -> None:
        last = columns["last"]
        # Without merged groups there is one part per upstream window: the newest holds the newest value.
        when = columns["last_time"].values if self.merged_groups else rows.time
        chosen = np.flatnonzero(last.present)
        if not len(chosen):
            return
        slot, when, value = rows.slot[chosen], when[chosen], last.values[chosen]
        order = np.lexsort((value, when, slot))
        slot, when, value = slot[order], when[order], value[order]
        ends = np.flatnonzero(np.append(slot[1:] != slot[:-1], True))
        slot, when, value = slot[ends], when[ends], value[ends]
        before, kept = self.times["last"][slot], self.floats["last"][slot]
        newer = when > before
        tie = when == before
        self.floats["last"][slot] = np.where(newer, value, np.where(tie, np.fmax(kept, value), kept))
        self.times["last"][slot] = np.maximum(before, when)

    def _add_spread(self, rows: _Rows, columns: dict[str, _Column], present: np.ndarray) -> None:
        """Terms of the pooled sum of squares around each slot's reference mean."""
        mean, count, spread = columns["mean"].values, columns["count"].values, columns["stddev"]
        reference = self.floats["reference"]
        slots = rows.slot[present]
        unset = np.isnan(reference[slots])
        if unset.any():
            first_slots, first = np.unique(slots[unset], return_index=True)
            reference[first_slots] = mean[present][unset][first]
        n = count.astype(np.float64)
        deviation = np.where(present, mean - reference[rows.slot], 0.0)
        within = np.where(spread.present & (count > 1), (n - 1) * spread.values * spread.values, 0.0)
        self._add_sum("within", rows, _Column(within, present))
        self._add_sum("squares", rows, _Column(n * deviation * deviation, present))
        self._add_sum("deviations", rows, _Column(n * deviation, present))

    def _check(self, batch: Batch, rows: _Rows, columns: dict[str, _Column], present: np.ndarray) -> None:
        """MissingPartError unless every value the merge reads is there wherever the field has one."""
        assert self.presence is not None
        for name in self.read:
            column = columns[name]
            needed = present if name != "stddev" else present & (columns["count"].values > 1)
            if name == "last_time" and "last" in columns:
                needed = needed | columns["last"].present
            lacking = np.flatnonzero(needed & ~column.present)
            if name != "stddev":
                lacking = np.union1d(lacking, np.flatnonzero(column.present & ~present))
            if len(lacking):
                row = int(lacking[0])
                missing, beside = (name, self.presence) if present[row] else (self.presence, name)
                raise MissingPartError(
                    output_field(self.rule.name, missing),
                    output_field(self.rule.name, beside),
                    dict(batch.keys[int(rows.runs[row])]),
                    int(batch.time[rows.index[row]]),
                )

    # -- results ---------------------------------------------------------------------------------

    def columns(self, slots: np.ndarray) -> list[tuple[str, list[float | int | None]]]:
        """Coverage, then the aggregates, of ``slots``, as :class:`FieldAccumulator` gives them."""
        rule = self.rule
        out: list[tuple[str, list[float | int | None]]] = []
        for name in coverage_names(rule.kind):
            if name == "seconds":
                out.append((output_field(rule.output, name), (self._sum("seconds", slots) + 0.0).tolist()))
            else:
                out.append((output_field(rule.output, name), self.ints[name][slots].tolist()))
        has = self.has[slots]
        for name in rule.aggregates:
            value: np.ndarray
            if name == "count":
                out.append((output_field(rule.output, name), _where(self.ints["n"][slots], has)))
                continue
            if name == "last_time":
                out.append((output_field(rule.output, name), _where(self.times["last_time"][slots], has)))
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                if name == "mean":
                    value = self._sum("mean", slots) / self.ints["n"][slots]
                elif name in ("sum", "increase"):
                    value = self._sum(name, slots)
                elif name in ("min", "max", "last"):
                    value = self.floats[name][slots].copy()
                elif name == "rate":
                    seconds = self._sum("seconds", slots)
                    value = np.where(
                        seconds > 0, self._sum("increase", slots) / seconds * rule.unit_seconds, np.nan
                    )
                else:
                    value = self._stddev(slots)
            value = value + 0.0  # never -0.0
            out.append((output_field(rule.output, name), _where(value, has & ~np.isnan(value))))
        return out

    def _sum(self, name: str, slots: np.ndarray) -> np.ndarray:
        return self.sums[name].values(slots)

    def _stddev(self, slots: np.ndarray) -> np.ndarray:
        n = self.ints["n"][slots]
        deviations = self._sum("deviations", slots)
        with np.errstate(divide="ignore", invalid="ignore"):
            between = self._sum("squares", slots) - deviations * deviations / n
            variance = (self._sum("within", slots) + np.maximum(between, 0.0)) / (n - 1)
            result: np.ndarray = np.where(n > 1, np.sqrt(np.maximum(variance, 0.0)), np.nan)
        return result


_EXACT = frozenset({"count", "last_time", *_INT_COVERAGE})
"""Integer values, read exactly (a time in nanoseconds does not fit a float)."""


def _column(column: FieldColumn | None, index: np.ndarray, *, integer: bool) -> _Column:
    """The values of ``index``'s rows (0 where absent) and which rows have one."""
    if column is None:
        dtype = np.int64 if integer else np.float64
        return _Column(np.zeros(len(index), dtype=dtype), np.zeros(len(index), dtype=bool))
    values, kinds = column.values[index], None if column.kinds is None else column.kinds[index]
    present = np.ones(len(index), dtype=bool)
    if column.valid is not None:
        present &= column.valid[index].astype(bool)
    if column.invalid is not None:
        present &= ~column.invalid[index].astype(bool)
    if integer:
        whole = _integers(values, kinds)
        return _Column(np.where(present, whole, 0), present)
    floats = numbers.as_float(values, kinds)
    present &= np.isfinite(floats)
    return _Column(np.where(present, floats, 0.0), present)


def _integers(values: np.ndarray, kinds: np.ndarray | None) -> np.ndarray:
    """Whole numbers as int64, exactly (counts and nanosecond times; a float is rounded)."""
    if kinds is None:
        if values.dtype != np.float64:
            converted: np.ndarray = values.astype(np.int64)
            return converted
        with np.errstate(invalid="ignore"):
            rounded: np.ndarray = np.rint(np.nan_to_num(values)).astype(np.int64)
        return rounded
    whole = values.view(np.int64).copy()
    floats = kinds == numbers.FLOAT
    whole[floats] = np.rint(np.nan_to_num(values[floats].view(np.float64))).astype(np.int64)
    return whole


def _where(values: np.ndarray, keep: np.ndarray) -> list[float | int | None]:
    return [v if k else None for v, k in zip(values.tolist(), keep.tolist(), strict=True)]


@dataclass
class Merge:
    """Merges the parts of a contiguous run of downstream windows, batch by batch; the same
    interface as :class:`~rollup.core.pipeline.Rollup`. A batch row is a part: its series is the
    upstream group, its time the start of its upstream window."""

    spec: MergeSpec
    windows: Sequence[Window]
    _series: dict[SeriesKey, int] = field(default_factory=dict)
    _groups: dict[SeriesKey | tuple[str, ...], int] = field(default_factory=dict)
    _group_tags: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("a merge needs at least one window")
        for before, after in itertools.pairwise(self.windows):
            if before.end != after.start:
                raise ValueError(f"windows must be contiguous: {before} is followed by {after}")
        self.windows = list(self.windows)
        self.bounds = np.asarray([w.start for w in self.windows] + [self.windows[-1].end], dtype=np.int64)
        self._fields = [_FieldMerge(rule, self.spec.merged_groups) for rule in self.spec.rollup.fields]
        self._points = np.zeros(len(self.windows), dtype=np.int64)

    @property
    def group_count(self) -> int:
        return len(self._groups)

    def feed(self, batch: Batch) -> None:
        if not batch.rows:
            return
        runs = np.repeat(np.arange(len(batch.keys)), batch.run_lengths)
        groups = np.asarray([self._group_of(key) for key in batch.keys], dtype=np.int64)
        time = np.asarray(batch.time, dtype=np.int64)
        nwin = len(self.windows)
        window = np.searchsorted(self.bounds, time, side="right") - 1
        inside = (window >= 0) & (window < nwin)
        index = np.flatnonzero(inside)
        if not len(index):
            return
        window = window[index]
        self._points += np.bincount(window, minlength=nwin)
        slot = groups[runs[index]] * nwin + window
        order = np.argsort(slot, kind="stable")
        cut = segment(slot[order])
        rows = _Rows(index, slot, order, cut.slots, cut.starts, runs[index], time[index])
        for merge in self._fields:
            merge.grow(len(self._groups) * nwin)
            merge.add(batch, rows)

    def finish(self) -> list[WindowResult]:
        nwin = len(self.windows)
        size = len(self._groups) * nwin
        active = np.zeros(size, dtype=bool)
        for merge in self._fields:
            merge.grow(size)
            active |= merge.has[:size]
        order = sorted(range(len(self._groups)), key=lambda g: sorted(self._group_tags[g].items()))
        by_group = active.reshape(len(self._groups), nwin)
        chosen = [(gid, w) for gid in order for w in np.flatnonzero(by_group[gid]).tolist()]
        slots = np.asarray([gid * nwin + w for gid, w in chosen], dtype=np.int64)
        columns: list[tuple[str, list[float | int | None]]] = []
        for merge in self._fields:
            columns.extend(merge.columns(slots))
        per_window: list[list[OutputRow]] = [[] for _ in range(nwin)]
        for i, (gid, w) in enumerate(chosen):
            values = {name: column[i] for name, column in columns if column[i] is not None}
            window = self.windows[w]
            stamp = window.start if self.spec.rollup.stamp == "start" else window.end
            per_window[w].append(OutputRow(dict(self._group_tags[gid]), window, stamp, values))  # type: ignore[arg-type]
        return [
            WindowResult(window, per_window[i], int(self._points[i])) for i, window in enumerate(self.windows)
        ]

    def _group_of(self, key: SeriesKey) -> int:
        known = self._series.get(key)
        if known is not None:
            return known
        group_by = self.spec.rollup.group_by
        group_key: SeriesKey | tuple[str, ...]
        if group_by is None:
            group_key, tags = key, dict(key)
        else:
            found = dict(key)
            group_key = tuple(found.get(name, "") for name in group_by)
            tags = {name: value for name, value in zip(group_by, group_key, strict=True) if value}
        gid = self._groups.get(group_key)
        if gid is None:
            gid = len(self._groups)
            self._groups[group_key] = gid
            self._group_tags.append(tags)
        self._series[key] = gid
        return gid

"""The streaming rollup: batches in, one result per window out.

Memory holds each series' ``prev`` and each (group, window)'s accumulators, nothing per point, so a
day of data for a thousand series costs the same as an hour of it. The rows a batch ends with are
held back until the next batch: a series that continues there, even with a duplicate timestamp,
is then treated exactly as if the two batches had been one.

Samples before the first window (the *lookback*) only provide each series' ``prev``: the first
interval of the first window is not lost.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rollup.core.accumulate import FieldAccumulator
from rollup.core.batch import Batch, SeriesKey
from rollup.core.derivative import PrevState, derive
from rollup.core.spec import FieldRule, RollupSpec
from rollup.core.windows import Window


@dataclass(frozen=True, slots=True)
class OutputRow:
    """One aggregate point: a group's values for one window."""

    tags: dict[str, str]
    window: Window
    time: int
    values: dict[str, float]


@dataclass(slots=True)
class WindowResult:
    window: Window
    rows: list[OutputRow]
    points: int
    """Source rows whose time falls in the window (all series, whether or not valid)."""


@dataclass(slots=True)
class _Column:
    values: np.ndarray
    valid: np.ndarray
    invalid: np.ndarray


@dataclass(slots=True)
class _Rows:
    series: np.ndarray
    time: np.ndarray
    columns: dict[str, _Column] = field(default_factory=dict)

    def take(self, index: np.ndarray | slice) -> _Rows:
        return _Rows(
            self.series[index],
            self.time[index],
            {
                name: _Column(c.values[index], c.valid[index], c.invalid[index])
                for name, c in self.columns.items()
            },
        )

    @staticmethod
    def join(first: _Rows, second: _Rows) -> _Rows:
        return _Rows(
            np.concatenate([first.series, second.series]),
            np.concatenate([first.time, second.time]),
            {
                name: _Column(
                    _concat_values(first.columns[name], c),
                    np.concatenate([first.columns[name].valid, c.valid]),
                    np.concatenate([first.columns[name].invalid, c.invalid]),
                )
                for name, c in second.columns.items()
            },
        )


def _concat_values(first: _Column, second: _Column) -> np.ndarray:
    a, b = first.values, second.values
    # Rows without a usable value hold mere placeholders: their dtype must not turn exact integers
    # of the other side into floats.
    if not first.valid.any():
        a = np.zeros(len(a), dtype=b.dtype)
    elif not second.valid.any():
        b = np.zeros(len(b), dtype=a.dtype)
    if a.dtype == b.dtype:
        return np.concatenate([a, b])
    if a.dtype.kind in "iu" and b.dtype.kind in "iu" and a.min() >= 0 and b.min() >= 0:
        # int64 and uint64 counters (a source switches when a value needs 64 bits): stay exact.
        return np.concatenate([a.astype(np.uint64), b.astype(np.uint64)])
    return np.concatenate([a.astype(np.float64), b.astype(np.float64)])


class Rollup:
    """Aggregates a contiguous run of windows from a stream of batches."""

    def __init__(self, spec: RollupSpec, windows: Sequence[Window]):
        if not windows:
            raise ValueError("a rollup needs at least one window")
        for before, after in itertools.pairwise(windows):
            if before.end != after.start:
                raise ValueError(f"windows must be contiguous: {before} is followed by {after}")
        self.spec = spec
        self.windows = list(windows)
        self.bounds = np.asarray([w.start for w in windows] + [windows[-1].end], dtype=np.int64)
        self._series: dict[SeriesKey, int] = {}
        self._series_group = np.zeros(0, dtype=np.int64)
        self._groups: dict[SeriesKey | tuple[str, ...], int] = {}
        self._group_tags: list[dict[str, str]] = []
        self._prev = {rule.name: PrevState() for rule in spec.fields}
        self._acc = {rule.name: FieldAccumulator(rule) for rule in spec.fields}
        self._points = np.zeros(len(windows), dtype=np.int64)
        self.lookback_points = 0
        self._held: _Rows | None = None

    @property
    def group_count(self) -> int:
        return len(self._groups)

    # -- input --------------------------------------------------------------------------------

    def feed(self, batch: Batch) -> None:
        rows = self._rows_of(batch)
        if self._held is not None:
            rows = _Rows.join(self._held, rows)
            self._held = None
        if not len(rows.series):
            return
        # The series the batch ends with (in input order) may continue in the next batch, possibly
        # with more rows at its newest time: hold all of those back, in input order.
        tail = rows.series == rows.series[-1]
        hold = tail & (rows.time == rows.time[tail].max())
        self._held = rows.take(hold)
        self._process(_sorted(rows.take(~hold)))

    def finish(self) -> list[WindowResult]:
        if self._held is not None:
            self._process(self._held)
            self._held = None
        return self._results()

    # -- internals ----------------------------------------------------------------------------

    def _series_ids(self, keys: list[SeriesKey]) -> np.ndarray:
        ids = np.empty(len(keys), dtype=np.int64)
        new_groups: list[int] = []
        for i, key in enumerate(keys):
            sid = self._series.get(key)
            if sid is None:
                sid = len(self._series)
                self._series[key] = sid
                new_groups.append(self._group_of(key))
            ids[i] = sid
        if new_groups:
            self._series_group = np.concatenate([self._series_group, np.asarray(new_groups, dtype=np.int64)])
            for prev in self._prev.values():
                prev.grow(len(self._series))
            slots = len(self._groups) * len(self.windows)
            for acc in self._acc.values():
                acc.grow(slots)
        return ids

    def _group_of(self, key: SeriesKey) -> int:
        tags = dict(key)
        group_key: SeriesKey | tuple[str, ...]
        if self.spec.group_by is None:
            group_key = key  # the tag pairs themselves: joining them into text could collide
            group_tags = tags
        else:
            group_key = tuple(tags.get(name, "") for name in self.spec.group_by)
            group_tags = {
                name: value for name, value in zip(self.spec.group_by, group_key, strict=True) if value
            }
        gid = self._groups.get(group_key)
        if gid is None:
            gid = len(self._groups)
            self._groups[group_key] = gid
            self._group_tags.append(group_tags)
        return gid

    def _rows_of(self, batch: Batch) -> _Rows:
        series = np.repeat(self._series_ids(batch.keys), batch.run_lengths)
        n = len(series)
        columns: dict[str, _Column] = {}
        for rule in self.spec.fields:
            column = batch.fields.get(rule.name)
            if column is None:
                columns[rule.name] = _Column(np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
                continue
            valid = np.ones(n, dtype=bool) if column.valid is None else column.valid.astype(bool, copy=True)
            invalid = (
                np.zeros(n, dtype=bool) if column.invalid is None else column.invalid.astype(bool, copy=True)
            )
            valid &= ~invalid  # a value flagged as not a number is never used, whatever ``valid`` says
            values = column.values
            if values.dtype.kind == "f":
                finite = np.isfinite(values)
                invalid |= valid & ~finite
                valid &= finite
            columns[rule.name] = _Column(values, valid, invalid)
        return _Rows(series, np.asarray(batch.time, dtype=np.int64), columns)

    def _process(self, rows: _Rows) -> None:
        nwin = len(self.windows)
        window = np.searchsorted(self.bounds, rows.time, side="right") - 1
        inside = (window >= 0) & (window < nwin)
        self._points += np.bincount(window[inside], minlength=nwin)
        self.lookback_points += int(np.count_nonzero(window < 0))
        slot = self._series_group[rows.series] * nwin + window
        for rule in self.spec.fields:
            self._process_field(rule, rows, rows.columns[rule.name], slot, inside)

    def _process_field(
        self, rule: FieldRule, rows: _Rows, column: _Column, slot: np.ndarray, inside: np.ndarray
    ) -> None:
        acc = self._acc[rule.name]
        acc.add_counts(slot[column.invalid & inside], acc.invalid)
        index = np.flatnonzero(column.valid)
        series, time = rows.series[index], rows.time[index]
        # Duplicate timestamps in a series: the last valid value wins, even if rows without a
        # usable value of this field sit between the duplicates.
        last = np.ones(len(index), dtype=bool)
        last[:-1] = (series[1:] != series[:-1]) | (time[1:] != time[:-1])
        index = index[last]
        series, time, values = series[last], time[last], column.values[index]
        slot, inside = slot[index], inside[index]
        prev = self._prev[rule.name]
        # A sample not newer than the series' last one arrived out of order across batches: skipped.
        late = prev.has[series] & (time <= prev.time[series])
        if late.any():
            acc.add_counts(slot[late & inside], acc.invalid)
            ok = ~late
            series, time, values, slot, inside = series[ok], time[ok], values[ok], slot[ok], inside[ok]
        acc.add_counts(slot[inside], acc.samples)
        if rule.kind == "gauge":
            prev.remember(series, time, values)
            scaled = values.astype(np.float64) * rule.scale
            acc.add_values(slot[inside], scaled[inside], time[inside])
            return
        intervals = derive(rule, series, time, values, prev, self.spec.max_gap_ns)
        nwin = len(self.windows)
        window = np.searchsorted(self.bounds, intervals.time, side="right") - 1
        counted = (window >= 0) & (window < nwin)
        islot = self._series_group[intervals.series] * nwin + window
        acc.add_counts(islot[counted & intervals.decreased], acc.resets)
        acc.add_counts(islot[counted & intervals.gap], acc.gaps)
        use = counted & intervals.kept
        acc.add_values(
            islot[use],
            intervals.rate[use],
            intervals.time[use],
            increase=intervals.increase[use],
            seconds=intervals.seconds[use],
        )

    def _results(self) -> list[WindowResult]:
        nwin = len(self.windows)
        active = np.zeros(len(self._groups) * nwin, dtype=bool)
        for acc in self._acc.values():
            active |= acc.n > 0
        percentiles = {name: acc.percentile_table() for name, acc in self._acc.items()}
        per_window: list[list[OutputRow]] = [[] for _ in range(nwin)]
        order = sorted(range(len(self._groups)), key=lambda g: sorted(self._group_tags[g].items()))
        for gid in order:
            for w in np.flatnonzero(active[gid * nwin : (gid + 1) * nwin]).tolist():
                slot = gid * nwin + w
                values: dict[str, float] = {}
                for name, acc in self._acc.items():
                    values.update(acc.coverage(slot))
                    if acc.n[slot] > 0:
                        values.update(acc.aggregate(slot, percentiles[name]))
                window = self.windows[w]
                stamp = window.start if self.spec.stamp == "start" else window.end
                per_window[w].append(OutputRow(dict(self._group_tags[gid]), window, stamp, values))
        return [
            WindowResult(window, per_window[i], int(self._points[i])) for i, window in enumerate(self.windows)
        ]


def _sorted(rows: _Rows) -> _Rows:
    """Rows grouped by series and time-ordered within each (stable, so duplicates keep their order)."""
    series, time = rows.series, rows.time
    if len(series) < 2:
        return rows
    same = series[1:] == series[:-1]
    ordered = np.all(series[1:] >= series[:-1]) and not np.any(same & (time[1:] < time[:-1]))
    if ordered:
        return rows
    return rows.take(np.lexsort((time, series)))

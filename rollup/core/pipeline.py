"""The streaming rollup: batches in, one result per window out.

Memory holds each series' ``prev`` and each (group, window)'s accumulators, nothing per point, so a
day of data for a thousand series costs the same as an hour of it. The rows a batch ends with are
held back until the next batch: a series that continues there, even with a duplicate timestamp,
is then treated exactly as if the two batches had been one.

Samples before the first window (the *lookback*) only provide each series' ``prev``: the first
interval of the first window is not lost.

Aggregates that need every value (``pNN``, whole-window plug-ins) keep those of a group only until
the group is finished:
when the source declares an order that shows the group's last series has been read
(:mod:`rollup.core.completion`), else at the end. What they keep in memory is bounded by the
spec's ``values_memory``, beyond which it goes to a temporary file (:mod:`rollup.core.percentiles`).

A plug-in aggregate that fails on a (group, window) fails that window: its result has no rows and
says why (:attr:`WindowResult.failures`); the other windows are unaffected.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rollup.core import numbers
from rollup.core.accumulate import FieldAccumulator, Segments, segment
from rollup.core.batch import Batch, SeriesKey
from rollup.core.completion import Completion
from rollup.core.derivative import PrevState, derive_rows, run_starts
from rollup.core.plugins import PluginFailure
from rollup.core.spec import FieldRule, RollupSpec
from rollup.core.sums import Pieces
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
    """Empty when a plug-in failed on the window: nothing of it may be written."""
    points: int
    """Source rows whose time falls in the window (all series, whether or not valid)."""
    failures: list[PluginFailure] = field(default_factory=list)
    """Where a plug-in aggregate failed in this window (then ``rows`` is empty)."""


@dataclass(slots=True)
class _Column:
    values: np.ndarray
    valid: np.ndarray | None
    """Rows whose value is usable; None: every row."""
    invalid: np.ndarray | None
    """Rows that carried something that is not a number; None: no row."""
    kinds: np.ndarray | None = None
    """How each row's bits read, for a mixed column (see :mod:`rollup.core.numbers`)."""

    def any_valid(self) -> bool:
        return bool(len(self.values)) if self.valid is None else bool(self.valid.any())

    def take(self, index: np.ndarray | slice) -> _Column:
        return _Column(
            self.values[index],
            None if self.valid is None else self.valid[index],
            None if self.invalid is None else self.invalid[index],
            None if self.kinds is None else self.kinds[index],
        )


@dataclass(slots=True)
class _Rows:
    """Rows in runs: series ``run_ids[i]`` from row ``starts[i]`` on (neighbouring runs differ)."""

    run_ids: np.ndarray
    starts: np.ndarray
    time: np.ndarray
    columns: dict[str, _Column] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.time)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(np.append(self.starts, len(self.time)))

    def series(self) -> np.ndarray:
        """The series id of every row."""
        return np.repeat(self.run_ids, self.lengths)

    @staticmethod
    def of_series(series: np.ndarray, time: np.ndarray, columns: dict[str, _Column]) -> _Rows:
        starts = run_starts(series)
        return _Rows(series[starts], starts, time, columns)

    def take(self, index: np.ndarray) -> _Rows:
        """The rows picked by a mask or positions."""
        return _Rows.of_series(
            self.series()[index], self.time[index], {name: c.take(index) for name, c in self.columns.items()}
        )

    def between(self, low: int, high: int) -> _Rows:
        """Rows ``low`` to ``high`` (exclusive), as views."""
        first = int(np.searchsorted(self.starts, low, side="right")) - 1
        last = int(np.searchsorted(self.starts, high, side="left"))
        starts = self.starts[first:last] - low
        starts[0] = 0
        window = slice(low, high)
        return _Rows(
            self.run_ids[first:last],
            starts,
            self.time[window],
            {name: c.take(window) for name, c in self.columns.items()},
        )

    @staticmethod
    def join(first: _Rows, second: _Rows) -> _Rows:
        columns = {}
        for name, c in second.columns.items():
            a = first.columns[name]
            values, kinds = _concat_values(a, c)
            columns[name] = _Column(
                values,
                _concat_masks(a.valid, c.valid, len(a.values), len(c.values), True),
                _concat_masks(a.invalid, c.invalid, len(a.values), len(c.values), False),
                kinds,
            )
        run_ids, starts = second.run_ids, second.starts + len(first)
        if len(run_ids) and run_ids[0] == first.run_ids[-1]:
            run_ids, starts = run_ids[1:], starts[1:]
        return _Rows(
            np.concatenate([first.run_ids, run_ids]),
            np.concatenate([first.starts, starts]),
            np.concatenate([first.time, second.time]),
            columns,
        )


def _concat_masks(
    a: np.ndarray | None, b: np.ndarray | None, na: int, nb: int, fill: bool
) -> np.ndarray | None:
    if a is None and b is None:
        return None
    return np.concatenate([np.full(na, fill) if a is None else a, np.full(nb, fill) if b is None else b])


def _concat_values(first: _Column, second: _Column) -> tuple[np.ndarray, np.ndarray | None]:
    """The values of two columns as one, every value kept exact (a mixed column if need be)."""
    a, b = (first.values, first.kinds), (second.values, second.kinds)
    # Rows without a usable value hold mere placeholders: they take the other side's type.
    if not first.any_valid():
        a = (np.zeros(len(first.values), dtype=second.values.dtype), _placeholder_kinds(second, first))
    elif not second.any_valid():
        b = (np.zeros(len(second.values), dtype=first.values.dtype), _placeholder_kinds(first, second))
    return numbers.concat(a, b)


def _placeholder_kinds(model: _Column, placeholders: _Column) -> np.ndarray | None:
    return None if model.kinds is None else np.full(len(placeholders.values), numbers.INT, dtype=np.uint8)


@dataclass(slots=True)
class _Frame:
    """Rows of one field ready for the derivative: in runs of one series each (``run_ids``,
    ``starts``), time-ordered, unique times, none late. ``seg`` cuts the rows by accumulator slot and
    ``keep`` tells which of those segments are slots of a window (the others are padding, see
    :class:`Rollup`); ``pieces`` cuts them by series and slot; ``steps`` is ``np.diff(time)`` when
    known."""

    run_ids: np.ndarray
    starts: np.ndarray
    time: np.ndarray
    seg: Segments
    keep: np.ndarray | None
    pieces: Pieces
    steps: np.ndarray | None = None
    _slot: np.ndarray | None = None

    def series(self) -> np.ndarray:
        return np.repeat(self.run_ids, np.diff(np.append(self.starts, len(self.time))))

    def slots_at(self, positions: np.ndarray) -> np.ndarray:
        """The slot of the rows at ``positions``."""
        if self._slot is not None:
            picked: np.ndarray = self._slot[positions]
            return picked
        # Segments are in row order here: each one is a range of rows.
        found: np.ndarray = self.seg.slots[np.searchsorted(self.seg.starts, positions, side="right") - 1]
        return found

    def slots(self) -> np.ndarray:
        if self._slot is None:
            self._slot = np.repeat(self.seg.slots, self.seg.counts)
        return self._slot


class Rollup:
    """Aggregates a contiguous run of windows from a stream of batches.

    Each group owns ``len(windows) + 2`` consecutive accumulator slots: one per window, framed by a
    slot for rows before the first window (the lookback) and one for rows after the last. A row's
    slot is then ``group's first slot + searchsorted(bounds, time)``, rows of a series sorted by time
    have sorted slots, and rows outside the windows need no mask: their padding slots are never read.

    ``finish_early``: finish groups as soon as the order the source declares allows (see
    :mod:`rollup.core.completion`); a read that breaks its declared order raises
    :class:`~rollup.core.completion.SeriesOrderError`, and reading it again with ``False`` is exact.
    """

    def __init__(self, spec: RollupSpec, windows: Sequence[Window], finish_early: bool = True):
        if not windows:
            raise ValueError("a rollup needs at least one window")
        for before, after in itertools.pairwise(windows):
            if before.end != after.start:
                raise ValueError(f"windows must be contiguous: {before} is followed by {after}")
        self.spec = spec
        self.windows = list(windows)
        self.bounds = np.asarray([w.start for w in windows] + [windows[-1].end], dtype=np.int64)
        self._stride = len(self.windows) + 2
        self._series: dict[SeriesKey, int] = {}
        self._series_keys: list[SeriesKey] = []
        self._series_group = np.zeros(64, dtype=np.int64)
        self._groups: dict[SeriesKey | tuple[str, ...], int] = {}
        self._group_tags: list[dict[str, str]] = []
        self._prev = {rule.name: PrevState() for rule in spec.fields}
        keeping = sum(1 for rule in spec.fields if rule.keeps_values)
        share = spec.values_memory // max(keeping, 1)
        self._acc = {
            rule.name: FieldAccumulator(rule, share, self._windows_of, self._series_order)
            for rule in spec.fields
        }
        # Only values kept for all of a window gain from finishing a group early.
        self._completion = Completion(spec.group_by, enabled=finish_early and keeping > 0)
        self._points = np.zeros(len(windows), dtype=np.int64)
        self.lookback_points = 0
        self._held: dict[int, _Rows] = {}
        """Per stream, the rows its last batch ended with (see :meth:`feed`)."""

    @property
    def group_count(self) -> int:
        return len(self._groups)

    @property
    def groups_finished_early(self) -> int:
        """Groups whose kept values were reduced and freed before the end of the read."""
        return self._completion.finished_groups

    @property
    def spilled_bytes(self) -> int:
        """Bytes of kept values written to temporary files (0 when they fitted in memory)."""
        return sum(acc.kept.spilled for acc in self._acc.values() if acc.kept is not None)

    # -- input --------------------------------------------------------------------------------

    def feed(self, batch: Batch) -> None:
        series = self._series_ids(batch.keys)
        finished = self._completion.observe(batch, series, self._series_group[series])
        self._feed_rows(self._rows_of(batch, series), batch.stream)
        if len(finished):
            self._finish_groups(finished)

    def _feed_rows(self, rows: _Rows, stream: int) -> None:
        held = self._held.pop(stream, None)
        if held is not None:
            rows = _Rows.join(held, rows) if len(rows) else held
        n = len(rows)
        if not n:
            return
        # The series the batch ends with (in input order) may continue in the stream's next batch,
        # possibly with more rows at its newest time: hold all of those back, in input order.
        last = rows.run_ids[-1]
        tail_start = int(rows.starts[-1])
        tail_time = rows.time[tail_start:]
        if not np.any(rows.run_ids[:-1] == last) and bool(np.all(tail_time[1:] >= tail_time[:-1])):
            # The usual case: the last series is one time-ordered run at the end, so its rows at the
            # newest time are a suffix.
            cut = tail_start + int(np.searchsorted(tail_time, tail_time[-1], side="left"))
            self._held[stream] = rows.between(cut, n)
            if cut:
                self._process(rows.between(0, cut), stream)
            return
        series = rows.series()
        tail = series == last
        hold = tail & (rows.time == rows.time[tail].max())
        self._held[stream] = rows.take(hold)
        rest = rows.take(~hold)
        if len(rest):
            self._process(rest, stream)

    def finish(self) -> list[WindowResult]:
        for stream in sorted(self._held):
            self._process(self._held.pop(stream), stream)
        return self._results()

    # -- internals ----------------------------------------------------------------------------

    def _series_ids(self, keys: list[SeriesKey]) -> np.ndarray:
        ids = np.empty(len(keys), dtype=np.int64)
        known = len(self._series)
        for i, key in enumerate(keys):
            sid = self._series.get(key)
            if sid is None:
                sid = len(self._series)
                self._series[key] = sid
                self._series_keys.append(key)
                if sid >= len(self._series_group):
                    grown = np.zeros(2 * len(self._series_group), dtype=np.int64)
                    grown[:sid] = self._series_group[:sid]
                    self._series_group = grown
                self._series_group[sid] = self._group_of(key)
            ids[i] = sid
        if len(self._series) > known:
            for prev in self._prev.values():
                prev.grow(len(self._series))
            slots = len(self._groups) * self._stride
            for acc in self._acc.values():
                acc.grow(slots)
        return ids

    def _windows_of(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The bounds of the windows of ``slots`` (slots of windows, not padding)."""
        position = slots % self._stride
        return self.bounds[position - 1], self.bounds[position]

    def _series_order(self, ids: np.ndarray) -> np.ndarray:
        """Each of the distinct series ``ids``' position among them in the order of their tags."""
        keys = [self._series_keys[i] for i in ids.tolist()]
        rank = np.empty(len(keys), dtype=np.int64)
        rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
        return rank

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

    def _rows_of(self, batch: Batch, run_ids: np.ndarray) -> _Rows:
        lengths = np.asarray(batch.run_lengths, dtype=np.int64)
        n = int(lengths.sum())
        starts = np.cumsum(lengths) - lengths
        # Empty runs carry nothing, and neighbouring runs of one series are one run.
        distinct = lengths > 0
        distinct[1:] &= run_ids[1:] != run_ids[:-1]
        if not distinct.all():
            nonempty = lengths > 0
            run_ids, starts = run_ids[nonempty], starts[nonempty]
            distinct = np.ones(len(run_ids), dtype=bool)
            distinct[1:] = run_ids[1:] != run_ids[:-1]
            run_ids, starts = run_ids[distinct], starts[distinct]
        columns: dict[str, _Column] = {}
        for rule in self.spec.fields:
            column = batch.fields.get(rule.name)
            if column is None:
                columns[rule.name] = _Column(np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
                continue
            values, kinds = column.values, column.kinds
            if column.valid is None and column.invalid is None:
                bad = numbers.non_finite(values, kinds)
                if bad is None or not bad.any():
                    columns[rule.name] = _Column(values, None, None, kinds)
                else:
                    columns[rule.name] = _Column(values, ~bad, bad, kinds)
                continue
            valid = np.ones(n, dtype=bool) if column.valid is None else column.valid.astype(bool, copy=True)
            invalid = (
                np.zeros(n, dtype=bool) if column.invalid is None else column.invalid.astype(bool, copy=True)
            )
            valid &= ~invalid  # a value flagged as not a number is never used, whatever ``valid`` says
            bad = numbers.non_finite(values, kinds)
            if bad is not None:
                invalid |= valid & bad
                valid &= ~bad
            columns[rule.name] = _Column(values, valid, invalid, kinds)
        return _Rows(run_ids, starts, np.asarray(batch.time, dtype=np.int64), columns)

    def _finish_groups(self, groups: np.ndarray) -> None:
        """No further series of ``groups`` (ascending) will come: reduce what is kept for them."""
        finished = set(groups.tolist())
        for stream in sorted(self._held):
            held = self._held[stream]
            if not finished.isdisjoint(self._series_group[held.run_ids].tolist()):
                del self._held[stream]  # rows held for a series that cannot continue
                self._process(held, stream)
        window_slots = np.arange(1, len(self.windows) + 1)
        slots = (groups[:, None] * self._stride + window_slots[None, :]).ravel()
        for acc in self._acc.values():
            acc.finish(slots)

    def _process(self, rows: _Rows, stream: int) -> None:
        """Roll up rows: put them in order if they are not, count points, then each field."""
        # Rows must be grouped by series and time-ordered within each: sort them if they are not
        # (stable, so duplicates keep their order).
        steps = np.diff(rows.time)
        steps[rows.starts[1:] - 1] = 1  # where one run ends and the next begins
        ordered = not len(steps) or int(steps.min()) >= 0
        ids = rows.run_ids
        grouped = len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])) or len(np.unique(ids)) == len(ids)
        if not (ordered and grouped):
            rows = rows.take(np.lexsort((rows.time, rows.series())))
            steps = np.diff(rows.time)
            steps[rows.starts[1:] - 1] = 1
        unique_times = not len(steps) or int(steps.min()) > 0
        run_ids, starts, time = rows.run_ids, rows.starts, rows.time

        frame, pieces = self._frame(run_ids, starts, time, steps)
        nwin = len(self.windows)
        self._points += pieces[:, 1 : nwin + 1].sum(axis=0)
        self.lookback_points += int(pieces[:, 0].sum())
        for rule in self.spec.fields:
            column = rows.columns[rule.name]
            if column.invalid is not None:
                acc = self._acc[rule.name]
                acc.add_counts(frame.slots_at(np.flatnonzero(column.invalid)), acc.invalid)
            clean = column.valid is None and unique_times
            if clean:
                prev = self._prev[rule.name]
                clean = not np.any(prev.has[run_ids] & (time[starts] <= prev.time[run_ids]))
            if clean:
                self._process_field(rule, frame, column.values, column.kinds, stream)
            else:
                self._process_field_rows(rule, frame, column, stream)

    def _frame(
        self, run_ids: np.ndarray, starts: np.ndarray, time: np.ndarray, steps: np.ndarray | None = None
    ) -> tuple[_Frame, np.ndarray]:
        """The frame of time-ordered runs, and how many rows of each run fall in each slot of its
        group (runs × (windows + 2))."""
        n = len(time)
        stride = self._stride
        lengths = np.diff(np.append(starts, n))
        below = self._rows_below(run_ids, starts, lengths, time)  # runs × bounds
        pieces = np.empty((len(starts), stride), dtype=np.int64)
        pieces[:, 0] = below[:, 0]
        pieces[:, 1:-1] = np.diff(below, axis=1)
        pieces[:, -1] = lengths - below[:, -1]
        piece_slots = (self._series_group[run_ids] * stride)[:, None] + np.arange(stride)
        sizes = pieces.ravel()
        present = sizes > 0
        sizes, slots = sizes[present], piece_slots.ravel()[present]
        piece_starts = np.cumsum(sizes) - sizes
        slot_rows = None
        if len(slots) > 1 and np.any(slots[1:] < slots[:-1]):
            slot_rows = np.repeat(slots, sizes)
            seg = segment(slot_rows)
        else:
            # Pieces in slot order: a segment is a run of pieces with one slot (neighbouring series
            # of one group), no row needs to move.
            first = np.ones(len(slots), dtype=bool)
            first[1:] = slots[1:] != slots[:-1]
            counts = np.add.reduceat(sizes, np.flatnonzero(first)) if len(sizes) else sizes
            seg = Segments(None, slots[first], piece_starts[first], counts)
        position = seg.slots % stride
        window = (position > 0) & (position < stride - 1)
        cut = Pieces(piece_starts, slots, np.repeat(run_ids, stride)[present])
        frame = _Frame(run_ids, starts, time, seg, None if window.all() else window, cut, steps, slot_rows)
        return frame, pieces

    def _rows_below(
        self, run_ids: np.ndarray, starts: np.ndarray, lengths: np.ndarray, time: np.ndarray
    ) -> np.ndarray:
        """For each (time-ordered) run and each bound: how many of its rows are before the bound."""
        bounds = self.bounds
        runs = len(starts)
        if not runs:
            return np.zeros((0, len(bounds)), dtype=np.int64)
        ends = starts + lengths - 1
        low = int(time[starts].min())
        span = int(time[ends].max()) - low + 1
        if runs * span < 2**62:
            # One search over all runs at once: key = run × span + time, increasing through the rows.
            offsets = np.arange(runs, dtype=np.int64) * span
            key = np.repeat(offsets - low, lengths) + time
            query = offsets[:, None] + np.minimum(np.maximum(bounds - low, 0), span)[None, :]
            found = np.searchsorted(key, query.ravel(), side="left").reshape(runs, len(bounds))
            below: np.ndarray = found - starts[:, None]
            return below
        below = np.empty((runs, len(bounds)), dtype=np.int64)  # runs × span too large for one key
        for i in range(runs):
            run = time[starts[i] : ends[i] + 1]
            below[i] = np.searchsorted(run, bounds, side="left")
        return below

    def _process_field_rows(self, rule: FieldRule, frame: _Frame, column: _Column, stream: int) -> None:
        """The general case: keep the last valid value of each timestamp, skip late samples."""
        acc = self._acc[rule.name]
        series, time = frame.series(), frame.time
        index = np.arange(len(series)) if column.valid is None else np.flatnonzero(column.valid)
        series, time = series[index], time[index]
        # Duplicate timestamps in a series: the last valid value wins, even if rows without a
        # usable value of this field sit between the duplicates.
        last = np.ones(len(index), dtype=bool)
        last[:-1] = (series[1:] != series[:-1]) | (time[1:] != time[:-1])
        index = index[last]
        series, time = series[last], time[last]
        prev = self._prev[rule.name]
        # A sample not newer than the series' last one arrived out of order across batches: skipped.
        late = prev.has[series] & (time <= prev.time[series])
        if late.any():
            acc.add_counts(frame.slots_at(index[late]), acc.invalid)
            ok = ~late
            index, series, time = index[ok], series[ok], time[ok]
        if not len(index):
            return
        starts = run_starts(series)
        sub, _ = self._frame(series[starts], starts, time)
        kinds = None if column.kinds is None else column.kinds[index]
        self._process_field(rule, sub, column.values[index], kinds, stream)

    def _process_field(
        self, rule: FieldRule, frame: _Frame, values: np.ndarray, kinds: np.ndarray | None, stream: int
    ) -> None:
        acc = self._acc[rule.name]
        prev = self._prev[rule.name]
        acc.add_segment_counts(frame.seg, acc.samples, frame.keep)
        if rule.kind == "gauge":
            ends = np.append(frame.starts[1:] - 1, len(frame.time) - 1)
            prev.remember_runs(frame.run_ids, ends, frame.time, values, kinds)
            scaled = numbers.as_float(values, kinds) * rule.scale
            series = frame.series() if acc.wants_series else None
            acc.merge(
                frame.seg, frame.pieces, scaled, frame.time, stream=stream, keep=frame.keep, series=series
            )
            return
        rows = derive_rows(
            rule,
            frame.run_ids,
            frame.starts,
            frame.time,
            values,
            prev,
            self.spec.max_gap_ns,
            frame.steps,
            kinds,
        )
        if len(rows.decreased):
            acc.add_counts(frame.slots_at(rows.decreased), acc.resets)
        if len(rows.gaps):
            acc.add_counts(frame.slots_at(rows.gaps), acc.gaps)
        excluded = rows.excluded()
        if len(excluded):
            # Only rows in a window's slot matter; the padding slots are never merged.
            position = frame.slots_at(excluded) % self._stride
            excluded = excluded[(position > 0) & (position < self._stride - 1)]
        increase = rows.dv * rule.scale if acc.want_increase else None
        acc.merge(
            frame.seg,
            frame.pieces,
            rows.rate,
            frame.time,
            stream=stream,
            increase=increase,
            nanoseconds=rows.nanoseconds,
            excluded=excluded if len(excluded) else None,
            keep=frame.keep,
            series=frame.series() if acc.wants_series else None,
        )

    def _results(self) -> list[WindowResult]:
        nwin = len(self.windows)
        stride = self._stride
        size = len(self._groups) * stride
        active = np.zeros(size, dtype=bool)
        for acc in self._acc.values():
            active |= acc.n[:size] > 0
        order = sorted(range(len(self._groups)), key=lambda g: sorted(self._group_tags[g].items()))
        by_group = active.reshape(len(self._groups), stride)[:, 1 : nwin + 1]
        chosen = [(gid, w) for gid in order for w in np.flatnonzero(by_group[gid]).tolist()]
        slots = np.asarray([gid * stride + 1 + w for gid, w in chosen], dtype=np.int64)
        columns: list[tuple[str, list[float | int | None]]] = []
        for acc in self._acc.values():
            columns.extend(acc.columns(slots))
        failures = self._failures()
        per_window: list[list[OutputRow]] = [[] for _ in range(nwin)]
        for i, (gid, w) in enumerate(chosen):
            if failures[w]:
                continue  # nothing of a window a plug-in failed on is written
            values = {name: column[i] for name, column in columns if column[i] is not None}
            window = self.windows[w]
            stamp = window.start if self.spec.stamp == "start" else window.end
            per_window[w].append(OutputRow(dict(self._group_tags[gid]), window, stamp, values))  # type: ignore[arg-type]
        return [
            WindowResult(window, per_window[i], int(self._points[i]), failures[i])
            for i, window in enumerate(self.windows)
        ]

    def _failures(self) -> list[list[PluginFailure]]:
        """Per window, where plug-ins failed (group by group in tag order, field by field)."""
        found: list[list[PluginFailure]] = [[] for _ in self.windows]
        for rule in self.spec.fields:
            for slot, (plugin, reason) in sorted(self._acc[rule.name].failures.items()):
                gid, position = divmod(slot, self._stride)
                window = self.windows[position - 1]
                found[position - 1].append(
                    PluginFailure(plugin, rule.name, window, reason, self._group_tags[gid])
                )
        for failures in found:
            failures.sort(key=lambda f: sorted(f.group.items()))
        return found

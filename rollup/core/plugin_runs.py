"""Running the plug-in aggregates of one field over the slots (group × window) of a rollup.

A streaming plug-in's state lives in arrays with one entry per slot, like the built-ins' sums;
each batch's chunks are folded in with one ``update`` and one ``merge`` call for all the slots the
batch touches. A whole-window plug-in is called once per slot when the slot is finished, with the
rows its values were kept in (see :class:`~rollup.core.percentiles.KeptValues`), sorted by time,
then series, and its series numbered in the order of their tags.

Isolation: a call that raises or answers something unusable is made again entry by entry, so
that only the slots it really fails on fail; a failed slot gets no further call and no value,
and its failure is reported with the slot (:attr:`FieldPlugins.failures`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rollup.core.plugins import (
    Chunks,
    PluginUse,
    ResultError,
    State,
    StreamingAggregate,
    Values,
    WindowAggregate,
    many_results,
    one_result,
    state_of,
)

WindowsOf = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Slots → the starts and ends of their windows (epoch ns)."""
SeriesOrder = Callable[[np.ndarray], np.ndarray]
"""Distinct series ids → the position of each among them in the order of their tags."""

_NONE = np.zeros(0, dtype=np.int64)


def _reason(method: str, exc: Exception) -> str:
    if isinstance(exc, ResultError):
        return f"{method} {exc}"
    return f"{method} raised {type(exc).__name__}: {exc}"


@dataclass(slots=True)
class _Streamed:
    """A streaming plug-in's state, one entry per slot (``seen``: the slot has one)."""

    use: PluginUse
    state: list[np.ndarray] | None = None
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


class FieldPlugins:
    """The plug-ins of one field: their states, their results, the slots they failed on."""

    def __init__(
        self,
        uses: Sequence[PluginUse],
        windows_of: WindowsOf,
        series_order: SeriesOrder | None = None,
    ):
        self.uses = list(uses)
        self.windows_of = windows_of
        self.series_order = series_order
        self._streamed = [_Streamed(use) for use in uses if use.streaming]
        self._whole = [use for use in uses if not use.streaming]
        kept_needs = {need for use in self._whole for need in use.aggregate.needs}
        self.keeps_times = "times" in kept_needs
        self.keeps_series = "series" in kept_needs
        every_need = {need for use in uses for need in use.aggregate.needs}
        self.wants_times = "times" in every_need
        self.wants_series = "series" in every_need
        self.failures: dict[int, tuple[str, str]] = {}
        """Slot → (plug-in, reason) of the first failure in it."""
        self._failed = np.zeros(0, dtype=bool)
        self._results: dict[str, np.ndarray] = {
            name: np.zeros(0) for use in self._whole for name in self._names(use)
        }

    @property
    def keeps_values(self) -> bool:
        """Whether some plug-in needs every value of a slot at once."""
        return bool(self._whole)

    @property
    def width(self) -> int:
        """Columns of a kept row: the value, then its time and its series if needed."""
        return 1 + self.keeps_times + self.keeps_series

    def grow(self, size: int) -> None:
        """Make room for slots ``0 … size - 1`` (doubling, like the accumulators)."""
        if size <= len(self._failed):
            return
        capacity = max(size, 2 * len(self._failed), 256)
        self._failed = _grown(self._failed, capacity, False)
        for name, array in self._results.items():
            self._results[name] = _grown(array, capacity, np.nan)
        for streamed in self._streamed:
            streamed.seen = _grown(streamed.seen, capacity, False)
            if streamed.state is not None:
                streamed.state = [_grown(a, capacity, a.dtype.type(0)) for a in streamed.state]

    def kept_rows(self, values: np.ndarray, times: np.ndarray, series: np.ndarray | None) -> np.ndarray:
        """The rows to keep for ``values``: each value, then its time and series if needed."""
        if self.width == 1:
            return values
        rows = np.empty((len(values), self.width), dtype=np.float64)
        rows[:, 0] = values
        column = 1
        if self.keeps_times:
            rows[:, column] = times.view(np.float64)
            column += 1
        if self.keeps_series:
            assert series is not None, "series are kept but were not given"
            rows[:, column] = series.view(np.float64)
        return rows

    # -- streaming ----------------------------------------------------------------------------

    def update(
        self,
        slots: np.ndarray,
        counts: np.ndarray,
        values: np.ndarray,
        times: np.ndarray,
        series: np.ndarray | None,
    ) -> None:
        """Fold in the values of one batch: ``counts[i]`` rows of ``slots[i]`` (ascending), in order."""
        if not self._streamed or not len(slots):
            return
        failed = self._failed[slots]
        if failed.any():
            rows = np.repeat(~failed, counts)
            values, times = values[rows], times[rows]
            series = None if series is None else series[rows]
            slots, counts = slots[~failed], counts[~failed]
            if not len(slots):
                return
        starts, ends = self.windows_of(slots)
        chunks = Chunks(
            _read_only(values),
            _read_only(times) if self.wants_times else None,
            None if series is None or not self.wants_series else _read_only(series),
            np.cumsum(counts) - counts,
            counts,
            starts,
            ends,
        )
        for streamed in self._streamed:
            self._update(streamed, slots, chunks)

    def _update(self, streamed: _Streamed, slots: np.ndarray, chunks: Chunks) -> None:
        aggregate = streamed.use.aggregate
        assert isinstance(aggregate, StreamingAggregate)
        live = ~self._failed[slots]
        if not live.all():  # an earlier plug-in failed some of these slots
            chunks, slots = chunks.select(np.flatnonzero(live)), slots[live]
        template = None if streamed.state is None else tuple(streamed.state)
        done, new = self._guarded(
            streamed.use,
            slots,
            "update",
            lambda index: state_of(aggregate.update(chunks.select(index)), len(index), template),
        )
        if new is None:
            return
        slots = slots[done]
        if streamed.state is None:
            streamed.state = [_grown(a[:0], len(self._failed), a.dtype.type(0)) for a in new]
        seen = streamed.seen[slots]
        if seen.any():
            old = tuple(array[slots[seen]] for array in streamed.state)
            fresh = tuple(array[seen] for array in new)
            merged_at, merged = self._guarded(
                streamed.use,
                slots[seen],
                "merge",
                lambda index: state_of(
                    aggregate.merge(tuple(a[index] for a in old), tuple(a[index] for a in fresh)),
                    len(index),
                    template or new,
                ),
            )
            if merged is not None:
                for array, part in zip(streamed.state, merged, strict=True):
                    array[slots[seen][merged_at]] = part
        first = ~seen
        if first.any():
            for array, part in zip(streamed.state, new, strict=True):
                array[slots[first]] = part[first]
            streamed.seen[slots[first]] = True

    def _guarded(
        self, use: PluginUse, slots: np.ndarray, method: str, call: Callable[[np.ndarray], State]
    ) -> tuple[np.ndarray, State | None]:
        """``call`` on every entry at once; if that fails, entry by entry, failing the slots of the
        entries that fail. Returns the entries that succeeded and their states, in order."""
        everything = np.arange(len(slots))
        try:
            return everything, call(everything)
        except Exception as exc:  # whatever a plug-in raises fails its slots, never the run
            if len(slots) == 1:
                self._fail(use, slots, _reason(method, exc))
                return _NONE, None
        done: list[int] = []
        states: list[State] = []
        for entry in range(len(slots)):
            try:
                state = call(np.array([entry]))
                if states:  # the entries' states must go together
                    state_of(state, 1, states[0])
                states.append(state)
                done.append(entry)
            except Exception as exc:  # as above, for this slot alone
                self._fail(use, slots[entry : entry + 1], _reason(method, exc))
        if not states:
            return _NONE, None
        return np.asarray(done, dtype=np.int64), tuple(
            np.concatenate(parts) for parts in zip(*states, strict=True)
        )

    # -- whole windows ------------------------------------------------------------------------

    def reduce(self, slots: np.ndarray, counts: np.ndarray, rows: np.ndarray) -> None:
        """Compute the whole-window plug-ins of finished ``slots`` from their kept ``rows``."""
        starts, ends = self.windows_of(slots)
        offsets = np.cumsum(counts) - counts
        for i, slot in enumerate(slots.tolist()):
            if self._failed[slot]:
                continue
            low = int(offsets[i])
            window = self._values(rows[low : low + int(counts[i])], int(starts[i]), int(ends[i]))
            for use in self._whole:
                if self._failed[slot]:
                    break
                assert isinstance(use.aggregate, WindowAggregate)
                try:
                    answer = one_result(use, use.aggregate.compute(window))
                except Exception as exc:  # whatever a plug-in raises fails its slot, never the run
                    self._fail(use, slots[i : i + 1], _reason("compute", exc))
                    continue
                for part, value in answer.items():
                    self._results[_output(use, part)][slot] = value

    def _values(self, rows: np.ndarray, start: int, end: int) -> Values:
        """A slot's kept rows as a plug-in sees them: by time, then series; series numbered."""
        values = rows[:, 0]
        times = series = None
        column = 1
        if self.keeps_times:
            times = rows[:, column].view(np.int64)
            column += 1
        if self.keeps_series:
            ids = rows[:, column].view(np.int64)
            distinct, inverse = np.unique(ids, return_inverse=True)
            rank = np.arange(len(distinct)) if self.series_order is None else self.series_order(distinct)
            series = rank[inverse].astype(np.int64)
        if times is not None:
            order = np.argsort(times, kind="stable") if series is None else np.lexsort((series, times))
            values, times = values[order], times[order]
            series = None if series is None else series[order]
        values = _read_only(np.ascontiguousarray(values))
        times = None if times is None else _read_only(np.ascontiguousarray(times))
        series = None if series is None else _read_only(series)
        return Values(values, times, series, start, end)

    # -- results ------------------------------------------------------------------------------

    def columns(self, slots: np.ndarray, has: np.ndarray) -> list[tuple[str, list[float | int | None]]]:
        """Each plug-in output of ``slots`` (None: no value), named without the field's prefix
        (``busy_hour_mean``), computing the streaming results; a slot whose result is not finite
        fails."""
        computed: dict[str, np.ndarray] = {}
        for streamed in self._streamed:
            computed.update(self._streaming_results(streamed, slots, has))
        failed = self._failed[slots]  # after the streaming results: they may fail slots too
        out: list[tuple[str, list[float | int | None]]] = []
        for use in self.uses:
            for name in self._names(use):
                value = computed[name] if use.streaming else self._results[name][slots]
                present = has & ~failed & ~np.isnan(value)
                column = [v if p else None for v, p in zip(value.tolist(), present.tolist(), strict=True)]
                out.append((name, column))
        return out

    def _streaming_results(
        self, streamed: _Streamed, slots: np.ndarray, has: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The results of a streaming plug-in for ``slots`` (NaN: none); a non-finite one fails
        its slot."""
        use = streamed.use
        aggregate = use.aggregate
        assert isinstance(aggregate, StreamingAggregate)
        values = {name: np.full(len(slots), np.nan) for name in self._names(use)}
        wanted = np.flatnonzero(has & streamed.seen[slots] & ~self._failed[slots])
        if not len(wanted) or streamed.state is None:
            return values
        state = tuple(array[slots[wanted]] for array in streamed.state)
        parts = use.parts or ("",)

        def call(index: np.ndarray) -> State:
            answer = many_results(use, aggregate.result(tuple(a[index] for a in state)), len(index))
            return tuple(answer[part] for part in parts)

        done, results = self._guarded(use, slots[wanted], "result", call)
        if results is None:
            return values
        at = wanted[done]
        for part, array in zip(parts, results, strict=True):
            where = f" for part {part!r}" if part else ""
            for position in np.flatnonzero(~np.isfinite(array)).tolist():
                slot = slots[at[position] : at[position] + 1]
                self._fail(use, slot, f"result returned {array[position]}{where}")
            values[_output(use, part)][at] = array
        return values

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _names(use: PluginUse) -> list[str]:
        return [_output(use, part) for part in use.parts or ("",)]

    def _fail(self, use: PluginUse, slots: np.ndarray, reason: str) -> None:
        for slot in slots.tolist():
            if not self._failed[slot]:
                self._failed[slot] = True
                self.failures[slot] = (use.name, reason)


def _output(use: PluginUse, part: str) -> str:
    """The output name of a part of a plug-in, without the field's prefix."""
    return f"{use.name}_{part}" if part else use.name


def _read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` a plug-in cannot write to: the same numbers feed other aggregates."""
    view = array.view()
    view.flags.writeable = False
    return view


def _grown(array: np.ndarray, capacity: int, fill: object) -> np.ndarray:
    grown = np.full((capacity, *array.shape[1:]), fill, dtype=array.dtype)
    grown[: len(array)] = array
    return grown

"""Exact nearest-rank percentiles whose memory is bounded: the values of a slot are kept only until
the slot is finished, in memory up to a budget and in a temporary file beyond it.

Values arrive batch by batch as *pieces*: a piece holds some slots (ascending), how many values
each, and the values grouped by slot, as float64 (8 bytes a value, plus 24 bytes a slot of a
piece; no Python object per value). A value may come with more numbers of 8 bytes (a *row* of
``width`` columns: a plug-in aggregate may keep each value's time and series too, see
:mod:`rollup.core.plugins`); percentiles are selected from the first column, and ``reduce`` gets
the whole rows of each slot when it is finished. A slot is finished either early, when the pipeline knows that
no further value of it can arrive (:mod:`rollup.core.completion`), or at the end. Its percentiles
are then selected by ``numpy.partition`` (introselect, O(n)), every requested rank at once and the
slots that hold as many values as each other (so the same ranks) in one call, as the rows of a
matrix; then its values are freed.

Percentiles are nearest rank: the smallest value with at least p % of the values at or below it,
i.e. the ``ceil(n × p / 100)``-th smallest (the 95th-percentile billing rule).

Past ``budget`` bytes in memory, every piece held is merged into one *run* sorted by slot and
appended to an unnamed temporary file (``tempfile.TemporaryFile``: gone when closed or when the
process dies). Finishing slots then also reads their values back from the runs; what is left at the
end is read slot range by slot range, each range a 32nd of the budget (2 MiB at most), so that
memory stays within about 1.1 × the budget plus the largest slot (a slot's values must be in memory
together to select).
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np

Grouped = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(slots ascending, how many values each, the values grouped by slot)."""

_COLUMN_BYTES = 8
_SLOT_BYTES = 24  # slot, count and start of a slot in a piece (int64 each)


def nearest_rank(count: int, percentile: float) -> int:
    """1-based rank of the ``percentile`` of ``count`` values (count > 0): ``ceil(count × p / 100)``,
    where ``- 1e-9`` keeps an exact product from being rounded up (p95 of 20 values is the 19th)."""
    return max(math.ceil(count * (percentile / 100.0) - 1e-9), 1)


def select(values: np.ndarray, counts: np.ndarray, percentiles: Sequence[float]) -> np.ndarray:
    """Percentiles of consecutive slots: ``values`` holds ``counts[0]`` values of the first slot, then
    those of the second … (in any order within a slot). One row per percentile, one column per slot.

    Slots with the same number of values have the same ranks: they are selected together, as the
    rows of one matrix (one ``numpy.partition`` along the rows, every rank at once)."""
    out = np.empty((len(percentiles), len(counts)), dtype=np.float64)
    count = int(counts[0])
    if (counts == count).all():  # common: every slot a full window of samples
        kth = [nearest_rank(count, p) - 1 for p in percentiles]
        out[:] = np.partition(values.reshape(len(counts), count), kth, axis=1)[:, kth].T
        return out
    starts = np.cumsum(counts) - counts
    by_count = np.argsort(counts, kind="stable")
    sorted_counts = counts[by_count]
    firsts = np.flatnonzero(np.concatenate([[True], sorted_counts[1:] != sorted_counts[:-1]]))
    for first, stop in itertools.pairwise([*firsts.tolist(), len(counts)]):
        rows = by_count[first:stop]
        count = int(sorted_counts[first])
        kth = [nearest_rank(count, p) - 1 for p in percentiles]
        if len(rows) == 1:
            start = int(starts[rows[0]])
            out[:, rows[0]] = np.partition(values[start : start + count], kth)[kth]
        else:
            first_row, last_row = int(rows[0]), int(rows[-1])
            if last_row - first_row + 1 == len(rows):  # neighbours: their values are one stretch
                low = int(starts[first_row])
                matrix = values[low : low + len(rows) * count].reshape(len(rows), count)
            else:
                matrix = values[starts[rows, None] + np.arange(count)]
            out[:, rows] = np.partition(matrix, kth, axis=1)[:, kth].T
    return out


Reduce = Callable[[np.ndarray, np.ndarray, np.ndarray], None]
"""Called with finished slots (ascending), how many rows each, and their rows grouped by slot."""


@dataclass(slots=True)
class _Piece:
    """Rows grouped by slot: ``counts[i]`` rows of ``slots[i]`` from ``starts[i]`` on, either in
    ``values`` (rows × width) or, for a run, in the spill file from byte ``offset`` on."""

    slots: np.ndarray
    counts: np.ndarray
    starts: np.ndarray
    values: np.ndarray | None
    offset: int = 0

    @staticmethod
    def of(slots: np.ndarray, counts: np.ndarray, values: np.ndarray | None, offset: int = 0) -> _Piece:
        return _Piece(slots, counts, np.cumsum(counts) - counts, values, offset)

    @property
    def memory(self) -> int:
        held = 0 if self.values is None else self.values.nbytes
        return held + len(self.slots) * _SLOT_BYTES

    def without(self, drop: np.ndarray) -> _Piece | None:
        """This piece without the slots at the positions ``drop`` marks (None if none is left)."""
        keep = ~drop
        if not keep.any():
            return None
        if self.values is None:  # a run: its values stay in the file, unread
            return _Piece(self.slots[keep], self.counts[keep], self.starts[keep], None, self.offset)
        stretch = _stretch(keep)
        if stretch is None:
            values = self.values[_positions(self.starts[keep], self.counts[keep])]
        else:
            low = int(self.starts[stretch.start])
            values = self.values[low : low + int(self.counts[stretch].sum())].copy()
        return _Piece.of(self.slots[keep], self.counts[keep], values)


def _stretch(mask: np.ndarray) -> slice | None:
    """The slice that ``mask`` marks, if its marks are one stretch without a hole (else None)."""
    marked = np.flatnonzero(mask)
    first, last = int(marked[0]), int(marked[-1])
    return slice(first, last + 1) if last - first + 1 == len(marked) else None


def _members(slots: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Which of ``slots`` are in ``wanted`` (ascending)."""
    at = np.minimum(np.searchsorted(wanted, slots), len(wanted) - 1)
    found: np.ndarray = wanted[at] == slots
    return found


def _positions(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Every index of the ranges ``[starts[i], starts[i] + counts[i])``, in order."""
    positions: np.ndarray = np.arange(int(counts.sum()), dtype=np.int64)
    positions += np.repeat(starts - (np.cumsum(counts) - counts), counts)
    return positions


class KeptValues:
    """Every value of the slots not finished yet, for the percentiles ``percentiles`` (0 < p ≤ 100)
    and for ``reduce``, which gets the rows of ``width`` columns of each slot once it is finished."""

    def __init__(
        self, percentiles: Sequence[float], budget: int, *, width: int = 1, reduce: Reduce | None = None
    ):
        if budget < 1:
            raise ValueError(f"the memory budget for kept values must be positive, got {budget}")
        if width < 1:
            raise ValueError(f"a kept row needs at least one column, got {width}")
        self.percentiles = tuple(percentiles)
        self.budget = budget
        self.width = width
        self.reduce = reduce
        self.peak_memory = 0
        """The most bytes held in memory at once."""
        self.spilled = 0
        """Bytes written to the temporary file (its size)."""
        self._pieces: list[_Piece] = []  # in memory
        self._runs: list[_Piece] = []  # in the file
        self._memory = 0
        self._file: IO[bytes] | None = None
        self._results = np.full((len(self.percentiles), 0), np.nan)

    # -- input ------------------------------------------------------------------------------------

    def add(self, slots: np.ndarray, counts: np.ndarray, values: np.ndarray) -> None:
        """Keep ``values``: ``counts[i]`` values (rows) of ``slots[i]`` after another, slots ascending."""
        nonempty = counts > 0
        if not nonempty.all():
            slots, counts = slots[nonempty], counts[nonempty]
        if not len(slots):
            return
        rows = np.asarray(values, dtype=np.float64).reshape(-1, self.width)
        piece = _Piece.of(np.asarray(slots, dtype=np.int64), np.asarray(counts, dtype=np.int64), rows)
        self._pieces.append(piece)
        self._memory += piece.memory
        self.peak_memory = max(self.peak_memory, self._memory)
        if self._memory > self.budget:
            self._spill()

    # -- finishing --------------------------------------------------------------------------------

    def finish(self, slots: np.ndarray) -> None:
        """Select the percentiles of ``slots`` (ascending) now and free their values: no further value
        of them may be added."""
        if not len(slots) or not (self._pieces or self._runs):
            return
        taken: list[Grouped] = []
        for store in (self._pieces, self._runs):
            kept: list[_Piece] = []
            for piece in store:
                chosen = _members(piece.slots, slots)
                if chosen.any():
                    taken.append((piece.slots[chosen], piece.counts[chosen], self._read(piece, chosen)))
                    rest = piece.without(chosen)
                    if rest is not None:
                        kept.append(rest)
                else:
                    kept.append(piece)
            store[:] = kept
        self._memory = sum(piece.memory for piece in self._pieces)
        if taken:
            self._compute(*_by_slot(taken))

    def table(self, size: int) -> np.ndarray:
        """The percentiles of slots ``0 … size - 1``, one row per percentile (NaN: no value), after
        finishing every slot still open (and reducing it). The temporary file is closed."""
        for slots, counts, values in self._ranges(self._pieces + self._runs, self._range_values):
            self._compute(slots, counts, values)
        self._pieces, self._runs, self._memory = [], [], 0
        self.close()
        self._grow(size)
        return self._results[:, :size]

    def close(self) -> None:
        """Delete the temporary file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- internals --------------------------------------------------------------------------------

    @property
    def _row_bytes(self) -> int:
        return _COLUMN_BYTES * self.width

    @property
    def _range_values(self) -> int:
        """Rows gathered at once when reading everything back: a 32nd of the budget, at most
        2^18, so that copying them (twice) and their positions takes under a tenth of it."""
        return max(min(self.budget // (32 * self._row_bytes), 2**18), 1)

    def _compute(self, slots: np.ndarray, counts: np.ndarray, rows: np.ndarray) -> None:
        self._grow(int(slots[-1]) + 1)
        if self.percentiles:
            self._results[:, slots] = select(rows[:, 0], counts, self.percentiles)
        if self.reduce is not None:
            self.reduce(slots, counts, rows)

    def _grow(self, size: int) -> None:
        have = self._results.shape[1]
        if size > have:
            grown = np.full((len(self.percentiles), max(size, 2 * have, 256)), np.nan)
            grown[:, :have] = self._results
            self._results = grown

    def _spill(self) -> None:
        """Write every piece held in memory to the file as one run sorted by slot, range by range."""
        if self._file is None:
            # Open until the table is made; unnamed, so nothing is left behind whatever happens.
            self._file = tempfile.TemporaryFile(prefix="rollup-values-")  # noqa: SIM115
        offset = self.spilled
        index: list[tuple[np.ndarray, np.ndarray]] = []
        for slots, counts, values in self._ranges(self._pieces, self._range_values):
            self._write_file(values)
            index.append((slots, counts))
        slots = np.concatenate([s for s, _ in index])
        counts = np.concatenate([c for _, c in index])
        self._runs.append(_Piece.of(slots, counts, None, offset))
        self._pieces = []
        self._memory = 0

    def _ranges(self, pieces: list[_Piece], step: int) -> Iterator[Grouped]:
        """Every slot of ``pieces`` in ascending ranges of about ``step`` values (a slot is never cut):
        (slots, counts, values grouped by slot) per range."""
        if not pieces:
            return
        slots = np.concatenate([p.slots for p in pieces])
        counts = np.concatenate([p.counts for p in pieces])
        totals = np.bincount(slots, weights=counts).astype(np.int64)
        present = np.flatnonzero(totals)
        cumulative = np.cumsum(totals[present])
        # A range begins at each slot where the running total passes another multiple of ``step``.
        passes = np.searchsorted(cumulative, np.arange(step, int(cumulative[-1]), step), side="right")
        firsts = np.unique(np.concatenate([[0], passes]))
        bounds = [*present[firsts[firsts < len(present)]].tolist(), int(present[-1]) + 1]
        for low, high in itertools.pairwise(bounds):
            parts = []
            for piece in pieces:
                first, stop = np.searchsorted(piece.slots, (low, high)).tolist()
                if first < stop:
                    window = slice(first, stop)
                    parts.append((piece.slots[window], piece.counts[window], self._read(piece, window)))
            yield _by_slot(parts)

    def _read(self, piece: _Piece, chosen: np.ndarray | slice) -> np.ndarray:
        """The rows of the slots of ``piece`` that ``chosen`` picks (a mask, or a slice of
        consecutive slots), grouped by slot in the piece's order."""
        if piece.values is not None:  # in memory, compact: a slice of slots is a slice of values
            if not isinstance(chosen, slice):
                chosen = _stretch(chosen) or chosen
            if isinstance(chosen, slice):
                low = int(piece.starts[chosen.start])
                return piece.values[low : low + int(piece.counts[chosen].sum())]
            picked: np.ndarray = piece.values[_positions(piece.starts[chosen], piece.counts[chosen])]
            return picked
        # A run: slots finished early left holes in it, so read each stretch without one at once.
        index = np.arange(len(piece.slots))[chosen]
        starts, counts = piece.starts[index], piece.counts[index]
        breaks = np.flatnonzero(starts[1:] != starts[:-1] + counts[:-1]) + 1
        parts = [
            self._read_file(piece.offset + int(starts[a]) * self._row_bytes, int(counts[a:b].sum()))
            for a, b in itertools.pairwise([0, *breaks.tolist(), len(index)])
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _write_file(self, values: np.ndarray) -> None:
        """Append ``values`` (rows) to the file."""
        assert self._file is not None, "spilling without a file"
        data = memoryview(np.ascontiguousarray(values).data).cast("B")
        while len(data):
            written = os.pwrite(self._file.fileno(), data, self.spilled)
            self.spilled += written
            data = data[written:]

    def _read_file(self, offset: int, count: int) -> np.ndarray:
        """``count`` rows from byte ``offset`` of the file on."""
        assert self._file is not None, "a run without its file"
        values = np.empty((count, self.width), dtype=np.float64)
        buffer = memoryview(values.data).cast("B")
        while len(buffer):
            got = os.preadv(self._file.fileno(), [buffer], offset)
            if got == 0:
                raise OSError("the temporary file of kept values ended early")
            offset += got
            buffer = buffer[got:]
        return values


def _by_slot(parts: list[Grouped]) -> Grouped:
    """Parts of (slots ascending, counts, values grouped by slot) as one: slots ascending and unique,
    their counts, their values grouped by slot."""
    if len(parts) == 1:
        return parts[0]
    slots = np.concatenate([s for s, _, _ in parts])
    counts = np.concatenate([c for _, c, _ in parts])
    values = np.concatenate([v for _, _, v in parts])
    if np.any(slots[1:] < slots[:-1]):  # else the values already come slot after slot
        starts = np.cumsum(counts) - counts
        order = np.argsort(slots, kind="stable")
        slots, counts, starts = slots[order], counts[order], starts[order]
        values = values[_positions(starts, counts)]
    first = np.ones(len(slots), dtype=bool)
    first[1:] = slots[1:] != slots[:-1]
    if not first.all():
        heads = np.flatnonzero(first)
        slots, counts = slots[heads], np.add.reduceat(counts, heads)
    return slots, counts, values

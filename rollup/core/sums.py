"""A field's float sums per slot that give the same bits however its rows were batched.

Adding floats is not associative, so the order of the additions must not depend on where batches
end or in which order series arrive. It is fixed where it can be, and exact where it cannot:

* A *piece* is one series' rows in one slot (one window), in time order. Its sum is numpy's sum
  of the piece's terms, taken once the piece is complete, so a batch boundary never splits it: the
  last piece of a batch may go on in the next batch of the same stream, so it stays *pending* (its
  terms, unsummed) until that batch shows whether it does. A source sends each stream's series one
  after the other (:class:`~rollup.core.batch.Batch`), so only that one piece can go on.
* The pieces of a slot (the series of a group, in whatever order they come) are added with binned
  sums (:mod:`rollup.core.binned`), exact and so independent of their order. They are collected
  and binned in bulk, so this costs little per piece and nothing per row.

``stddev`` is combined the same way from each piece's count ``n``, mean ``c`` (its sum over ``n``,
rounded), ``D = Σ(x - c)`` and ``Q = Σ(x - c)²``: the sum of squared deviations of a slot is
``ΣQ + 2ΣcD + Σnc² - (ΣD + Σnc)² / N``, with the products split into exact float pairs, their
sums binned and the formula evaluated in double-double arithmetic (exactly in integers where even
that would lose digits). Unlike sums of raw squares this stays accurate when the mean is large and
the spread small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rollup.core.binned import BinnedSums, two_sum

_FLUSH = 1 << 14
"""Complete pieces collected before they are binned."""
_FINISHED = 64
_FINISHED_ROWS = 1 << 16
"""Pending pieces that have ended are summed together once this many are waiting (or rows)."""


@dataclass(slots=True)
class Pieces:
    """The pieces of a batch's rows, in row order: piece i is series ``series[i]``'s rows in slot
    ``slots[i]``, from row ``starts[i]`` to the next piece. Pieces in slots that are no window's
    may hold anything: they are summed too, and never read."""

    starts: np.ndarray
    slots: np.ndarray
    series: np.ndarray


@dataclass(slots=True)
class _Pending:
    """The last piece of a stream's last batch, which its next batch may continue: its rows' terms,
    increases and use (None: every row counts), in parts as they came."""

    series: int
    slot: int
    parts: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = field(default_factory=list)
    rows: int = 0

    def extend(self, terms: np.ndarray, increase: np.ndarray | None, used: np.ndarray | None) -> None:
        """Add rows, copied: a view would keep its whole batch alive."""
        self.parts.append(
            (
                terms.copy(),
                None if increase is None else increase.copy(),
                None if used is None else used.copy(),
            )
        )
        self.rows += len(terms)


class _Complete:
    """Complete pieces waiting to be binned: their slots and, per name, their numbers."""

    def __init__(self) -> None:
        self.slots: list[np.ndarray] = []
        self.columns: dict[str, list[np.ndarray]] = {}
        self.count = 0

    def add(self, slots: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        self.slots.append(slots)
        for name, values in columns.items():
            self.columns.setdefault(name, []).append(values)
        self.count += len(slots)


class FieldSums:
    """The float sums of one field's slots: its values (``mean``, ``sum``), increases and spread."""

    def __init__(self, *, values: bool, increase: bool, spread: bool):
        self.want_values = values or spread
        self.want_increase = increase
        self.want_spread = spread
        self.wanted = self.want_values or self.want_increase
        self._pending: dict[int, _Pending] = {}
        self._finished: list[_Pending] = []
        self._finished_rows = 0
        self._complete = _Complete()
        self.values = BinnedSums() if self.want_values else None
        self.increase = BinnedSums() if increase else None
        self._spread: dict[str, BinnedSums] = {}
        if spread:
            # Q and D are rounded sums; the products are exact pairs, kept to about 119 bits.
            self._spread = {"q": BinnedSums(), "d": BinnedSums(), "cd": BinnedSums(5), "nc": BinnedSums(5)}
            self._spread["ncc"] = BinnedSums(5)

    def grow(self, size: int) -> None:
        for sums in (self.values, self.increase, *self._spread.values()):
            if sums is not None:
                sums.grow(size)

    # -- adding --------------------------------------------------------------------------------

    def add(
        self,
        stream: int,
        pieces: Pieces,
        terms: np.ndarray,
        increase: np.ndarray | None,
        used: np.ndarray | None,
    ) -> None:
        """Add a batch's pieces: ``terms`` (and ``increase``) per row, 0 where a row does not count
        (``used``, bool per row, None: every row counts)."""
        count = len(pieces.starts)
        if not count or not self.wanted:
            return
        if not self.want_increase:
            increase = None
        starts, slots, series = pieces.starts, pieces.slots, pieces.series
        first = 0  # the complete pieces of this batch: first to the last but one
        pending = self._pending.pop(stream, None)
        if pending is not None:
            if series[0] == pending.series and slots[0] == pending.slot:
                # The first piece continues the pending one.
                cut = int(starts[1]) if count > 1 else len(terms)
                pending.extend(
                    terms[:cut],
                    None if increase is None else increase[:cut],
                    None if used is None else used[:cut],
                )
                if count == 1:
                    self._pending[stream] = pending
                    return
                first = 1
            self._finish(pending)
        begin = int(starts[-1])
        last = _Pending(int(series[-1]), int(slots[-1]))
        last.extend(
            terms[begin:],
            None if increase is None else increase[begin:],
            None if used is None else used[begin:],
        )
        self._pending[stream] = last
        if first < count - 1:
            self._collect(starts, slots, terms, increase, used, first, count - 1)

    def _finish(self, pending: _Pending) -> None:
        """A pending piece is complete: it is summed with the next few (one call for many)."""
        self._finished.append(pending)
        self._finished_rows += pending.rows
        if len(self._finished) >= _FINISHED or self._finished_rows >= _FINISHED_ROWS:
            self._sum_finished()

    def _sum_finished(self) -> None:
        finished, self._finished, self._finished_rows = self._finished, [], 0
        if not finished:
            return
        parts = [part for pending in finished for part in pending.parts]
        terms = np.concatenate([t for t, _, _ in parts])
        increase = None if parts[0][1] is None else np.concatenate([i for _, i, _ in parts if i is not None])
        used = None
        if any(u is not None for _, _, u in parts):
            used = np.concatenate([np.ones(len(t), dtype=bool) if u is None else u for t, _, u in parts])
        starts = np.cumsum([0, *(pending.rows for pending in finished[:-1])], dtype=np.int64)
        slots = np.asarray([pending.slot for pending in finished], dtype=np.int64)
        self._collect(starts, slots, terms, increase, used, 0, len(finished))

    def _collect(
        self,
        starts: np.ndarray,
        slots: np.ndarray,
        terms: np.ndarray,
        increase: np.ndarray | None,
        used: np.ndarray | None,
        first: int,
        end: int,
    ) -> None:
        """Sum the pieces ``first`` to ``end`` (exclusive) and keep their numbers to bin."""
        columns: dict[str, np.ndarray] = {}
        if self.want_values:
            sums = np.add.reduceat(terms, starts)
            columns["values"] = sums[first:end]
            if self.want_spread:
                spread = _spread(starts, terms, used, sums)
                columns.update((name, values[first:end]) for name, values in spread.items())
        if increase is not None:
            columns["increase"] = np.add.reduceat(increase, starts)[first:end]
        self._complete.add(slots[first:end], columns)
        if self._complete.count >= _FLUSH:
            self._bin()

    def _bin(self) -> None:
        """Add the complete pieces collected so far to the binned sums of their slots."""
        complete, self._complete = self._complete, _Complete()
        if not complete.count:
            return
        slots = np.concatenate(complete.slots)
        order = np.argsort(slots, kind="stable")
        slots = slots[order]
        starts = np.flatnonzero(np.concatenate([[True], slots[1:] != slots[:-1]]))
        ids = slots[starts]

        def column(name: str) -> np.ndarray:
            values: np.ndarray = np.concatenate(complete.columns[name])[order]
            return values

        if self.values is not None:
            self.values.add(ids, starts, column("values"), None)
        if self.increase is not None:
            self.increase.add(ids, starts, column("increase"), None)
        if self.want_spread:
            count, mean, d, q = column("n"), column("c"), column("d"), column("q")
            self._spread["q"].add(ids, starts, q, None)
            self._spread["d"].add(ids, starts, d, None)
            for part in _product(mean, d):
                self._spread["cd"].add(ids, starts, part, None)
            nc_high, nc_low = _product(count, mean)
            for part in (nc_high, nc_low):
                self._spread["nc"].add(ids, starts, part, None)
            for part in (*_product(nc_high, mean), *_product(nc_low, mean)):
                self._spread["ncc"].add(ids, starts, part, None)

    def settle(self) -> None:
        """Every batch is in: add the pending pieces and bin everything collected."""
        for stream in sorted(self._pending):
            self._finish(self._pending.pop(stream))
        self._sum_finished()
        self._bin()

    # -- reading (after :meth:`settle`) --------------------------------------------------------

    def stddev(self, slots: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Sample standard deviation of ``slots`` with ``counts`` values each (NaN below two):
        ``count (Q + 2 cD + n c²) - (D + n c)²`` over ``count (count - 1)``. It is evaluated in
        double-double arithmetic from the binned sums (about 106 bits), or, for a slot whose two
        terms are so close that that would not keep 50 bits (a mean some 10^7 times the spread),
        exactly in integers."""
        parts = {name: sums.pairs(slots) for name, sums in self._spread.items()}
        cd_high, cd_low = parts["cd"]
        first = _dd_add(_dd_add(parts["q"], (2.0 * cd_high, 2.0 * cd_low)), parts["ncc"])
        total = _dd_add(parts["d"], parts["nc"])
        n = counts.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            whole = _dd_mul((n, np.zeros_like(n)), first)
            scaled = _dd_add(whole, _dd_neg(_dd_mul(total, total)))
            variance = (scaled[0] + scaled[1]) / (n * (n - 1))
            result: np.ndarray = np.where(counts > 1, np.sqrt(np.maximum(variance, 0.0)), np.nan)
            close = (counts > 1) & (np.abs(scaled[0]) < np.abs(whole[0]) * 2.0**-50)
        for i in np.flatnonzero(close).tolist():
            result[i] = self._exact_stddev(int(slots[i]), int(counts[i]))
        return result

    def _exact_stddev(self, slot: int, count: int) -> float:
        parts = self._spread
        if any(sums.special[slot] for sums in parts.values()):
            return float("nan")
        q, d, cd, nc, ncc = (parts[name].exact(slot) for name in ("q", "d", "cd", "nc", "ncc"))
        total, e_total = _add(d, nc)
        first, e_first = _add(_add(q, (cd[0], cd[1] + 1)), ncc)
        e = min(e_first, 2 * e_total)
        scaled = count * (first << (e_first - e)) - ((total * total) << (2 * e_total - e))
        return math.sqrt(_quotient(scaled, count * (count - 1), e)) if scaled > 0 else 0.0


def _spread(
    starts: np.ndarray, terms: np.ndarray, used: np.ndarray | None, sums: np.ndarray
) -> dict[str, np.ndarray]:
    """Each piece's count, mean and sums of deviations from it (plain and squared)."""
    sizes = np.diff(np.append(starts, len(terms)))
    count = sizes if used is None else np.add.reduceat(used, starts, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(count > 0, sums / count, 0.0)
    deviation = terms - np.repeat(mean, sizes)
    if used is not None:
        deviation[~used] = 0.0
    d = np.add.reduceat(deviation, starts)
    q = np.add.reduceat(deviation * deviation, starts)
    return {"n": count.astype(np.float64), "c": mean, "d": d, "q": q}


def _product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a × b`` as ``high + low`` exactly (Dekker; values below 2^995, products not underflowing)."""
    with np.errstate(over="ignore", invalid="ignore"):
        high = a * b
        a_high, a_low = _split(a)
        b_high, b_low = _split(b)
        low = ((a_high * b_high - high) + a_high * b_low + a_low * b_high) + a_low * b_low
    return high, low


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scaled = x * 134217729.0  # 2^27 + 1
    high = scaled - (scaled - x)
    return high, x - high


def _dd_add(
    x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The sum of two double-double numbers (pairs ``high + low``)."""
    high, low = two_sum(x[0], y[0])
    return two_sum(high, low + x[1] + y[1])


def _dd_mul(
    x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The product of two double-double numbers."""
    high, low = _product(x[0], y[0])
    return two_sum(high, low + x[0] * y[1] + x[1] * y[0])


def _dd_neg(x: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return -x[0], -x[1]


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """The sum of two numbers ``m × 2^e``."""
    e = min(a[1], b[1])
    return (a[0] << (a[1] - e)) + (b[0] << (b[1] - e)), e


def _quotient(numerator: int, denominator: int, exponent: int) -> float:
    """``numerator / denominator × 2^exponent`` as a float (positive integers; 64 bits kept)."""
    shift = numerator.bit_length() - denominator.bit_length() - 64
    scaled = numerator >> shift if shift > 0 else numerator << -shift
    try:
        return math.ldexp(scaled / denominator, exponent + shift)
    except OverflowError:
        return math.inf

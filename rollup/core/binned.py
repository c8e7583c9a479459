"""Sums that do not depend on the order of their terms: binned summation, one sum per slot.

Adding floats is not associative: the same rates added in another order (batches cut elsewhere,
series read by concurrent queries in another interleaving) give other last bits. Here each term is
split exactly into parts on a fixed grid of bins, bin ``j`` holding multiples of ``2^(j·W)``, and
the parts are added as integers, which is exact and so does not depend on the order (the binned
summation of ReproBLAS, Demmel & Nguyen). A sum keeps ``levels`` bins from its *top* bin down; the
top bin is the one of the largest magnitude among all the sum's terms, wherever they come from, so
which parts are kept depends on the terms only, never on their order. With W = 30 and 3 bins every
term keeps at least 60 bits below the leading bit of the largest term: terms within a factor 2^7
of it are added exactly, smaller ones lose their bits below 2^-60 of it.

A term is split by rounding it to the unit of each bin in turn (``(x + M) - M`` with ``M = 1.5 ×
2^52`` times that unit rounds ``x`` to a multiple of the unit, exactly), the remainder going to the
bin below. Every term is below half the unit of the bin above the top bin, so a term yields the
same parts whatever the top bin is when it comes: raising the top bin (a larger term came later)
only drops the lowest bins, which are the parts the term would not have had if the larger one had
come first. Bins are never carried into each other for the same reason.

Bins are int64 and a part is below 2^29 in its bin's unit, so a sum takes 2^34 terms (its terms
are the sums of pieces, see :mod:`rollup.core.sums`: never more than the slot's rows). Non-finite
terms are summed apart (whether their sum is +inf, -inf or NaN does not depend on the order
either).
"""

from __future__ import annotations

import numpy as np

W = 30
"""Bits per bin."""

EMPTY = -(2**40)
"""The top bin of a sum without a non-zero term."""

_MAGIC = 1.5 * 2.0**52
_UNITS = 2.0 ** -(np.arange(8) * W)
_MAX_ROWS = 2**22
"""Rows per extraction: the parts of a bin in one segment must add up exactly in float64."""


def _largest(starts: np.ndarray, values: np.ndarray, chosen: np.ndarray | None) -> np.ndarray:
    """The largest magnitude in each segment (0 for segments not chosen)."""
    largest: np.ndarray = np.maximum(
        np.maximum.reduceat(values, starts), -np.minimum.reduceat(values, starts)
    )
    if chosen is not None:
        largest[~chosen] = 0.0
    return largest


class BinnedSums:
    """One order-independent sum per slot; slots are added with :meth:`grow`."""

    def __init__(self, levels: int = 3):
        self.levels = levels
        self.size = 0
        self._capacity = 0
        self.top = np.zeros(0, dtype=np.int64)
        self.bins = np.zeros((0, levels), dtype=np.int64)
        self.special = np.zeros(0, dtype=np.float64)

    def grow(self, size: int) -> None:
        if size <= self.size:
            return
        if size > self._capacity:
            capacity = max(size, 2 * self._capacity, 256)
            top = np.full(capacity, EMPTY, dtype=np.int64)
            top[: self.size] = self.top[: self.size]
            bins = np.zeros((capacity, self.levels), dtype=np.int64)
            bins[: self.size] = self.bins[: self.size]
            special = np.zeros(capacity, dtype=np.float64)
            special[: self.size] = self.special[: self.size]
            self.top, self.bins, self.special = top, bins, special
            self._capacity = capacity
        self.size = size

    # -- adding --------------------------------------------------------------------------------

    def add(
        self, slots: np.ndarray, starts: np.ndarray, values: np.ndarray, chosen: np.ndarray | None
    ) -> None:
        """Add ``values``, cut into segments at ``starts``, segment i to the sum of ``slots[i]``
        (distinct) if ``chosen[i]`` (None: every segment; the others may hold anything)."""
        if not len(slots):
            return
        largest = _largest(starts, values, chosen)
        if not np.isfinite(largest).all():
            values = self._set_aside(slots, starts, values, ~np.isfinite(largest))
            largest = _largest(starts, values, chosen)
        exponent = np.frexp(largest)[1].astype(np.int64)  # int32: EMPTY would not fit
        level = np.where(largest > 0, exponent // W, EMPTY)
        old = self.top[slots]
        top = np.maximum(old, level)
        raised = top > old
        if raised.any():
            self._raise(slots[raised], old[raised], top[raised])
        # Scaled so that the unit of a segment's lowest bin is 1; segments that add nothing take
        # any scale, the first one's (so that one scale usually does for all).
        free = top == EMPTY if chosen is None else (top == EMPTY) | ~chosen
        base = (top - (self.levels - 1)) * W
        if free.any():
            used = np.flatnonzero(~free)
            base[free] = base[used[0]] if len(used) else 0
        if len(values) > _MAX_ROWS:
            self._add_in_pieces(slots, starts, values, base, chosen)
            return
        parts = self._parts(starts, values, base, chosen)
        if chosen is None:
            self.bins[slots] += parts
        else:
            self.bins[slots[chosen]] += parts[chosen]

    def _parts(
        self, starts: np.ndarray, values: np.ndarray, base: np.ndarray, chosen: np.ndarray | None
    ) -> np.ndarray:
        """Each segment's sum of parts per bin, as integers in the bin's unit (segments × levels)."""
        first = int(base[0])
        # Segments not chosen may hold values far beyond their scale: ignore what they do.
        with np.errstate(over="ignore", invalid="ignore"):
            if abs(first) < 1000 and (base == first).all():
                scaled = values * 2.0**-first
            else:
                counts = np.diff(np.append(starts, len(values)))
                scaled = np.ldexp(values, np.repeat(-base, counts))
            rounded = np.empty((self.levels, len(values)), dtype=np.float64)
            for k in range(self.levels - 1, -1, -1):
                magic = _MAGIC * 2.0 ** (k * W)
                part = rounded[k]
                np.add(scaled, magic, out=part)
                part -= magic
                if k:
                    scaled -= part
            sums = np.add.reduceat(rounded, starts, axis=1)  # exact: integers (times 2^kW) below 2^53
        sums *= _UNITS[: self.levels, None]
        if chosen is not None:
            sums[:, ~chosen] = 0.0
        parts: np.ndarray = sums.T.astype(np.int64)
        return parts

    def _add_in_pieces(
        self,
        slots: np.ndarray,
        starts: np.ndarray,
        values: np.ndarray,
        base: np.ndarray,
        chosen: np.ndarray | None,
    ) -> None:
        """:meth:`add` for very long batches: the rows in pieces, so that each bin's float sum is exact."""
        ends = np.append(starts[1:], len(values))
        for low in range(0, len(values), _MAX_ROWS):
            high = min(low + _MAX_ROWS, len(values))
            inside = np.flatnonzero((starts < high) & (ends > low))
            piece_chosen = None if chosen is None else chosen[inside]
            parts = self._parts(
                np.maximum(starts[inside], low) - low, values[low:high], base[inside], piece_chosen
            )
            if chosen is not None:
                parts, inside = parts[chosen[inside]], inside[chosen[inside]]
            self.bins[slots[inside]] += parts

    def _raise(self, slots: np.ndarray, old: np.ndarray, top: np.ndarray) -> None:
        """Move the bins of sums whose top bin goes up; the lowest ones fall off."""
        self.top[slots] = top
        moving = np.flatnonzero(old != EMPTY)
        for slot, shift in zip(slots[moving].tolist(), (top - old)[moving].tolist(), strict=True):
            bins = self.bins[slot]
            kept = bins[shift:].copy()
            bins[:] = 0
            bins[: len(kept)] = kept

    def _set_aside(
        self, slots: np.ndarray, starts: np.ndarray, values: np.ndarray, odd: np.ndarray
    ) -> np.ndarray:
        """Add the non-finite values of the segments ``odd`` to ``special``; the values without them."""
        bad = ~np.isfinite(values)
        with np.errstate(invalid="ignore"):
            specials = np.add.reduceat(np.where(bad, values, 0.0), starts)
            self.special[slots[odd]] += specials[odd]
        return np.where(bad, 0.0, values)

    # -- reading -------------------------------------------------------------------------------

    def values(self, slots: np.ndarray) -> np.ndarray:
        """The sums of ``slots`` as float64 (the same bits whatever the order of the terms)."""
        bins = self.bins[slots].copy()
        for k in range(self.levels - 1):  # carries, on a copy: the stored bins never mix
            carry = bins[:, k] >> W
            bins[:, k] -= carry << W
            bins[:, k + 1] += carry
        total = bins[:, -1].astype(np.float64)
        for k in range(self.levels - 2, -1, -1):
            total = total * 2.0**W + bins[:, k]
        top = self.top[slots]
        base = np.where(top == EMPTY, 0, (top - (self.levels - 1)) * W)
        with np.errstate(over="ignore", invalid="ignore"):
            result: np.ndarray = np.ldexp(total, base) + self.special[slots]
        return result

    def pairs(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sums of ``slots`` as double-double numbers ``high + low`` (about 106 bits; NaN or
        ±inf where a term was not finite)."""
        bins = self.bins[slots]
        high = np.zeros(len(slots))
        low = np.zeros(len(slots))
        for k in range(self.levels - 1, -1, -1):
            # Scaled by 2^W (exactly), plus the bin, an int64 taken as two floats.
            bin_high = bins[:, k].astype(np.float64)
            bin_low = (bins[:, k] - bin_high.astype(np.int64)).astype(np.float64)
            high, error = two_sum(high * 2.0**W, bin_high)
            high, low = two_sum(high, error + low * 2.0**W + bin_low)
        top = self.top[slots]
        base = np.where(top == EMPTY, 0, (top - (self.levels - 1)) * W)
        special = self.special[slots]
        with np.errstate(over="ignore", invalid="ignore"):
            return np.ldexp(high, base) + special, np.where(special == 0, np.ldexp(low, base), 0.0)

    def exact(self, slot: int) -> tuple[int, int]:
        """The finite part of a sum exactly: ``(m, e)`` with the sum ``m × 2^e``."""
        top = int(self.top[slot])
        if top == EMPTY:
            return 0, 0
        whole = sum(int(b) << (k * W) for k, b in enumerate(self.bins[slot].tolist()))
        return whole, (top - (self.levels - 1)) * W


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a + b`` as ``high + low`` exactly (Knuth)."""
    high = a + b
    b_part = high - a
    low = (a - (high - b_part)) + (b - b_part)
    return high, low

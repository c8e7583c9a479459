"""Plug-in aggregates: what a plug-in is given, what it returns, and how a result is checked.

A plug-in computes one number, or a few named numbers (*parts*), per (group, window) of a field,
from numpy arrays: the per-interval rates of a counter (the raw values of a gauge), multiplied by
the field's ``scale``, the instant each is stamped at and the series each came from. It comes in
one of two styles:

* :class:`WindowAggregate` needs every value of a window at once: ``compute(window)`` is called
  once per (group, window) with a :class:`Values`. The values are kept until the group is
  finished, exactly like those of ``pNN``: they count against the job's ``values_memory`` and go
  to a temporary file beyond it (:mod:`rollup.core.percentiles`).
* :class:`StreamingAggregate` keeps a small state per (group, window) instead, so its memory is
  bounded like the built-ins'. It is vectorized across (group, window)s: ``update(chunks)`` gets
  every (group, window) a batch touches at once (:class:`Chunks`) and returns a state per chunk,
  ``merge(old, new)`` combines states element-wise, ``result(state)`` turns states into numbers.

A plug-in instance holds its parameters (the keyword arguments of its constructor, from the job
file) and no state of a run: one instance serves every window of its job.

Whatever a plug-in does wrong — raise, return something of the wrong shape, a NaN or an infinity —
fails the (group, window) it was computing (:class:`PluginFailure`), never the process.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from rollup.core.windows import Window

Number = float | int
Result = Number | Mapping[str, Number | None] | None
"""What ``compute`` returns: one number, a number per declared part, or None (no value)."""
State = tuple[np.ndarray, ...]
"""A streaming plug-in's state: arrays with one entry per (group, window) each."""
Results = np.ndarray | Mapping[str, np.ndarray]
"""What ``result`` returns: an array of numbers, or one per declared part."""

NAME = re.compile(r"[a-z][a-z0-9_]*")
"""Names of plug-ins and of their parts: they become parts of output field names."""
NEEDS = frozenset({"times", "series"})


class _Arrays:
    """Arrays a plug-in reads; those its ``needs`` leave out are not kept, and reading one says so."""

    __slots__ = ("_series", "_times", "values")

    def __init__(self, values: np.ndarray, times: np.ndarray | None, series: np.ndarray | None):
        self.values = values
        self._times = times
        self._series = series

    @property
    def times(self) -> np.ndarray:
        """Epoch nanoseconds (int64) of each value: the end of its interval for a counter."""
        if self._times is None:
            raise AttributeError("times are not kept for this plug-in: add 'times' to its needs")
        return self._times

    @property
    def series(self) -> np.ndarray:
        if self._series is None:
            raise AttributeError("series are not kept for this plug-in: add 'series' to its needs")
        return self._series

    def __len__(self) -> int:
        return len(self.values)


class Values(_Arrays):
    """Every value of one field in one (group, window), for :meth:`WindowAggregate.compute`.
    The arrays are read-only (copy one to change it).

    ``values`` (float64) come sorted by time, then by series; ``series`` (int64) numbers the
    window's series 0 … k − 1 in the order of their tags; ``window_start`` and ``window_end`` are
    the window's bounds (epoch ns, ``[start, end)``)."""

    __slots__ = ("window_end", "window_start")

    def __init__(
        self,
        values: np.ndarray,
        times: np.ndarray | None,
        series: np.ndarray | None,
        window_start: int,
        window_end: int,
    ):
        super().__init__(values, times, series)
        self.window_start = window_start
        self.window_end = window_end


class Chunks(_Arrays):
    """The values one batch brings to several (group, window)s, for
    :meth:`StreamingAggregate.update`: chunk ``i`` is rows ``starts[i]`` to
    ``starts[i] + counts[i]`` of ``values``, ``times`` and ``series``, and lies in the window
    ``[window_starts[i], window_ends[i])``. Within a chunk rows come series by series, each in time
    order; ``series`` is an id of the series, the same throughout a read (not dense). The arrays
    are read-only (copy one to change it)."""

    __slots__ = ("counts", "starts", "window_ends", "window_starts")

    def __init__(
        self,
        values: np.ndarray,
        times: np.ndarray | None,
        series: np.ndarray | None,
        starts: np.ndarray,
        counts: np.ndarray,
        window_starts: np.ndarray,
        window_ends: np.ndarray,
    ):
        super().__init__(values, times, series)
        self.starts = starts
        self.counts = counts
        self.window_starts = window_starts
        self.window_ends = window_ends

    @property
    def chunks(self) -> int:
        """How many chunks (and so states ``update`` must return)."""
        return len(self.starts)

    def select(self, index: np.ndarray) -> Chunks:
        """The chunks at ``index`` (ascending positions), as one :class:`Chunks`."""
        if len(index) == len(self.starts):
            return self
        counts = self.counts[index]
        if len(index) == 1:
            low = int(self.starts[index[0]])
            rows: slice | np.ndarray = slice(low, low + int(counts[0]))
        else:
            rows = np.arange(int(counts.sum()), dtype=np.int64)
            rows += np.repeat(self.starts[index] - (np.cumsum(counts) - counts), counts)
        return Chunks(
            self.values[rows],
            None if self._times is None else self._times[rows],
            None if self._series is None else self._series[rows],
            np.cumsum(counts) - counts,
            counts,
            self.window_starts[index],
            self.window_ends[index],
        )


class Aggregate:
    """What every plug-in declares.

    ``name``: how jobs call it (entry points name it themselves); ``parts``: the names of the
    numbers it returns, each written ``<field>_<name>_<part>`` (empty: one number, written
    ``<field>_<name>``); ``needs``: which arrays besides the values it reads, ``"times"`` and
    ``"series"`` (a whole-window plug-in keeps 8 bytes per value for each)."""

    name: ClassVar[str] = ""
    parts: ClassVar[tuple[str, ...]] = ()
    needs: ClassVar[tuple[str, ...]] = ("times", "series")


class WindowAggregate(Aggregate):
    """A plug-in that needs every value of a (group, window) at once."""

    def compute(self, window: Values) -> Result:
        """One number, a number per part (None: that part has no value), or None: no value."""
        raise NotImplementedError


class StreamingAggregate(Aggregate):
    """A plug-in that keeps a bounded state per (group, window), vectorized across them."""

    def update(self, chunks: Chunks) -> State:
        """The state of each chunk: arrays of ``chunks.chunks`` entries each."""
        raise NotImplementedError

    def merge(self, old: State, new: State) -> State:
        """Element-wise: entry i of the result combines entry i of ``old`` and of ``new``."""
        raise NotImplementedError

    def result(self, state: State) -> Results:
        """One number per entry of the states (or per part, one array each)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True, eq=False)
class PluginUse:
    """A plug-in as a field uses it: its name in the job and the instance with its parameters.

    Two uses are equal when they have the same name, class and parameters (a job file loaded
    again is the same job), whatever their instances."""

    name: str
    aggregate: WindowAggregate | StreamingAggregate
    parameters: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_declaration(self.name, type(self.aggregate))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PluginUse):
            return NotImplemented
        return (self.name, type(self.aggregate), dict(self.parameters)) == (
            other.name,
            type(other.aggregate),
            dict(other.parameters),
        )

    def __hash__(self) -> int:
        return hash((self.name, type(self.aggregate)))

    @property
    def streaming(self) -> bool:
        return isinstance(self.aggregate, StreamingAggregate)

    @property
    def parts(self) -> tuple[str, ...]:
        return self.aggregate.parts

    def outputs(self, prefix: str) -> list[str]:
        """The output fields it writes for a field whose output name is ``prefix``."""
        base = f"{prefix}_{self.name}"
        return [f"{base}_{part}" for part in self.parts] or [base]


def check_declaration(name: str, kind: type) -> None:
    """ValueError unless ``kind`` is a plug-in class whose declarations are usable under ``name``."""
    if not (isinstance(kind, type) and issubclass(kind, WindowAggregate | StreamingAggregate)):
        raise ValueError(f"{name}: not a plug-in: it must subclass WindowAggregate or StreamingAggregate")
    if not NAME.fullmatch(name):
        raise ValueError(f"{name!r}: a plug-in name is lower case letters, digits and '_'")
    parts = kind.parts
    if not isinstance(parts, tuple) or not all(isinstance(p, str) and NAME.fullmatch(p) for p in parts):
        raise ValueError(f"{name}: parts must be a tuple of lower case names, got {parts!r}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"{name}: a part is declared twice in {parts!r}")
    unknown = set(kind.needs) - NEEDS
    if unknown or not isinstance(kind.needs, tuple):
        raise ValueError(f"{name}: needs must be a tuple of 'times' and 'series', got {kind.needs!r}")


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A plug-in failed on a (group, window): the window is not written."""

    plugin: str
    field: str
    window: Window
    reason: str
    group: dict[str, str] = dataclasses.field(default_factory=dict)


class ResultError(Exception):
    """A plug-in's answer that cannot be written: the wrong shape, a NaN, an infinity."""


def one_result(use: PluginUse, answer: object) -> dict[str, float]:
    """The output values (by part; "" for a single number) of what ``compute`` returned."""
    if answer is None:
        return {}
    parts = use.parts
    if not parts:
        return {"": _number(answer, "")}
    _check_parts(answer, parts)
    assert isinstance(answer, Mapping)
    return {part: _number(answer[part], part) for part in parts if answer[part] is not None}


def many_results(use: PluginUse, answer: object, count: int) -> dict[str, np.ndarray]:
    """The output arrays (by part; "" for a single number) of what ``result`` returned for
    ``count`` states; a non-finite number is left in (it fails its slot alone)."""
    parts = use.parts
    if not parts:
        return {"": _array(answer, count, "")}
    _check_parts(answer, parts)
    assert isinstance(answer, Mapping)
    return {part: _array(answer[part], count, part) for part in parts}


def state_of(answer: object, count: int, previous: State | None) -> State:
    """``answer`` as a state of ``count`` entries: arrays whose first dimension is ``count``, like
    ``previous`` (if any) in number, further dimensions and kind of numbers."""
    if not isinstance(answer, tuple) or not answer:
        raise ResultError(f"returned {_shape(answer)} where a state (a tuple of arrays) was expected")
    if previous is not None and len(answer) != len(previous):
        raise ResultError(f"returned a state of {len(answer)} arrays, before of {len(previous)}")
    for i, item in enumerate(answer):
        if not isinstance(item, np.ndarray) or item.ndim < 1 or item.shape[0] != count:
            raise ResultError(f"returned a state holding {_shape(item)} for {count} chunk(s)")
        if previous is None:
            continue
        before = previous[i]
        if item.shape[1:] != before.shape[1:] or not np.can_cast(item.dtype, before.dtype, "same_kind"):
            raise ResultError(f"returned a state holding {_shape(item)}, before {_shape(before)}")
    return answer


def _check_parts(answer: object, parts: tuple[str, ...]) -> None:
    declared = ", ".join(parts)
    if not isinstance(answer, Mapping):
        raise ResultError(f"returned {_shape(answer)} where parts {declared} were declared")
    if set(answer) != set(parts):
        raise ResultError(f"returned parts {', '.join(map(str, answer))} where {declared} were declared")


def _number(value: object, part: str) -> float:
    where = f" for part {part!r}" if part else ""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise ResultError(f"returned {_shape(value)}{where} where a number was expected")
    number = float(value)
    if not math.isfinite(number):
        raise ResultError(f"returned {number}{where}")
    return number + 0.0


def _array(value: object, count: int, part: str) -> np.ndarray:
    where = f" for part {part!r}" if part else ""
    if not isinstance(value, np.ndarray) or value.shape != (count,) or value.dtype.kind not in "iuf":
        raise ResultError(f"returned {_shape(value)}{where} for {count} state(s)")
    return value.astype(np.float64) + 0.0


def _shape(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} ({value.dtype})"
    return f"a {type(value).__name__}"

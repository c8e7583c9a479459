"""Batches from InfluxDB's JSON: series gathered until a batch is due, then made columns at once.

A chunk of a ``/query`` response is a JSON document of series (``tags``, ``columns``, ``values``).
:class:`ObjectBatcher` gathers them, a series continued in the next chunk making one run, with the
fields in the order asked for (a field a series lacks is missing in all its rows). A series' rows
are either a numpy integer array, read from the JSON text by :mod:`rollup.sources.jsonrows` and put
into the decoded skeleton by :func:`fill_integer_rows`, or the Python objects orjson decoded. The
documents of a MessagePack response (:mod:`rollup.sources.msgpackrows`) come the same way.

Every value keeps its exactness, whatever else the batch holds: a field whose values are all
integers becomes ``int64`` (``uint64`` when one is at least 2^63 and none is negative), a field of
floats ``float64`` (integers among them too, when each is exactly a float64: within ±2^53), and
values that no one dtype holds exactly (a negative integer and one from 2^63 on, an integer beyond
2^53 among fractions) a mixed column (:mod:`rollup.core.numbers`). A missing value (``null``) is
simply not valid; a string or a boolean is not valid and counted as invalid
(:func:`object_column`).

InfluxQL's ``GROUP BY *`` gives every series every tag key of the result (those it lacks with an
empty value) and sorts the series by those values: the batches declare that order
(:class:`~rollup.core.batch.SeriesOrder`) with the keys of the first series, and stop declaring it
if a series comes with other keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rollup.core import numbers
from rollup.core.batch import Batch, FieldColumn, SeriesKey, SeriesOrder, series_key
from rollup.errors import SourceError
from rollup.sources.jsonrows import integer_rows

_NONE = np.array(None, dtype=object)
_INT64_MAX = np.iinfo(np.int64).max


# -- series ---------------------------------------------------------------------------------------


def fill_integer_rows(doc: object, texts: list[bytes]) -> bool:
    """Put the rows of ``texts`` as arrays where the skeleton ``doc`` has their index; False unless
    every one of them is plain integer rows of its series' width (and used exactly once)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        return False
    used = 0
    for result in doc["results"]:
        series_list = result.get("series") if isinstance(result, dict) else None
        if not isinstance(series_list, list):
            continue
        for series in series_list:
            if not isinstance(series, dict) or "values" not in series:
                continue
            index, columns = series["values"], series.get("columns")
            if type(index) is not int or index != used or not isinstance(columns, list):
                return False
            rows = integer_rows(texts[index], len(columns))
            if rows is None:
                return False
            series["values"] = rows
            used += 1
    return used == len(texts)


class ObjectBatcher:
    """Gathers JSON series until a batch is due, then converts them at once. A series' rows are
    either a numpy integer array (see :func:`fill_integer_rows`) or Python objects. ``stream``
    tells the batches of one query from those of others read at the same time."""

    def __init__(self, fields: Sequence[str], stream: int = 0, split_on: str | None = None):
        self.fields = list(fields)
        self.wanted = ["time", *self.fields]
        self.stream = stream
        self.split_on = split_on
        self.order: SeriesOrder | None = None
        self._tag_keys: set[str] | None = None  # of the first series
        self.keys: list[SeriesKey] = []
        self.lengths: list[int] = []
        self.blocks: list[np.ndarray] = []
        self.rows = 0

    def add(self, series: object) -> None:
        if not isinstance(series, dict):
            raise SourceError(f"unexpected series in the InfluxDB response: {short(series)}")
        columns = expect_list(series.get("columns"), "columns")
        values = series.get("values", [])
        tags = series.get("tags") or {}
        if not isinstance(tags, dict) or "time" not in columns:
            raise SourceError(f"unexpected series in the InfluxDB response: {short(series)}")
        self._note_tag_keys(tags)
        if isinstance(values, np.ndarray):
            block = values
        else:
            values = expect_list(values, "values")
            if not values:
                return
            block = np.array(values, dtype=object)
            if block.shape != (len(values), len(columns)):
                raise SourceError(
                    f"a series in the InfluxDB response has rows of the wrong width: {short(values)}"
                )
        n = len(block)
        if n == 0:
            return
        if columns != self.wanted:
            block = self._reorder(block, columns)
        key = series_key({str(k): str(v) for k, v in tags.items() if v is not None})
        if self.keys and self.keys[-1] == key:
            self.lengths[-1] += n
        else:
            self.keys.append(key)
            self.lengths.append(n)
        self.blocks.append(block)
        self.rows += n

    def _note_tag_keys(self, tags: dict[Any, Any]) -> None:
        if self._tag_keys is None:
            self._tag_keys = set(tags)
            self.order = SeriesOrder(tuple(sorted(map(str, tags))), self.split_on)
        elif self.order is not None and tags.keys() != self._tag_keys:
            self.order = None  # not the result of a GROUP BY *: no order known

    def _reorder(self, block: np.ndarray, columns: list[Any]) -> np.ndarray:
        position = {name: i for i, name in enumerate(columns)}
        if block.dtype != object and all(name in position for name in self.wanted):
            return block[:, [position[name] for name in self.wanted]]
        block = block.astype(object)  # a missing field becomes None: Python objects it is
        absent = np.full(len(block), None, dtype=object)
        return np.stack(
            [block[:, position[name]] if name in position else absent for name in self.wanted], axis=1
        )

    def emit(self) -> Batch:
        blocks = self.blocks
        integer = _integer_batch(blocks)
        if integer is not None:
            time, *values = integer
            fields = {name: FieldColumn(values[i]) for i, name in enumerate(self.fields)}
        else:
            block = np.concatenate([b if b.dtype == object else b.astype(object) for b in blocks])
            time = _times(block[:, 0])
            fields = {name: object_column(block[:, i + 1]) for i, name in enumerate(self.fields)}
        batch = Batch(
            keys=self.keys,
            run_lengths=np.asarray(self.lengths, dtype=np.int64),
            time=time,
            fields=fields,
            stream=self.stream,
            order=self.order,
        )
        self.keys, self.lengths, self.blocks, self.rows = [], [], [], 0
        return batch


# -- columns --------------------------------------------------------------------------------------


def _integer_batch(blocks: list[np.ndarray]) -> list[np.ndarray] | None:
    """Blocks of integer rows as columns, time first: int64, or uint64 for a column with a number
    from 2^63 on (blocks read as text hold no negative number). None when some block holds Python
    objects (:func:`object_column` decides then) or a time does not fit in int64."""
    if any(b.dtype == object for b in blocks):
        return None
    if any(b.dtype == np.uint64 for b in blocks):
        blocks = [b.astype(np.uint64, copy=False) for b in blocks]
    joined = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    columns = list(np.ascontiguousarray(joined.T))
    if joined.dtype == np.uint64:
        if columns[0].max() > _INT64_MAX:
            return None
        columns = [c.view(np.int64) if c.max() <= _INT64_MAX else c for c in columns]
    return columns


def _times(column: np.ndarray) -> np.ndarray:
    if set(map(type, column)) != {int}:
        raise SourceError("InfluxDB sent times that are not integer epoch nanoseconds")
    try:
        return column.astype(np.int64)
    except OverflowError:
        raise SourceError("InfluxDB sent a time outside the int64 nanosecond range") from None


def object_column(values: np.ndarray) -> FieldColumn:
    """A field column from an object array of JSON values (int, float, None, str, bool)."""
    kinds = set(map(type, values))
    if kinds <= {int, float}:
        converted, mixed = exact_numbers(values, float in kinds)
        return FieldColumn(converted, kinds=mixed)
    present = np.not_equal(values, _NONE)
    if kinds <= {int, float, type(None)}:
        numeric = present
    else:
        numeric = np.fromiter((type(v) in (int, float) for v in values), dtype=bool, count=len(values))
    filled = values.copy()
    filled[~numeric] = 0
    converted, mixed = exact_numbers(filled, float in kinds)
    return FieldColumn(converted, valid=numeric, invalid=present & ~numeric, kinds=mixed)


def exact_numbers(values: np.ndarray, floats: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Python ints (and ``floats``) as a column that keeps each exact: int64, uint64 or float64
    when one dtype does, else mixed (values and kinds, see :mod:`rollup.core.numbers`)."""
    if not floats:
        for dtype in (np.int64, np.uint64):
            try:
                return values.astype(dtype), None
            except OverflowError:
                pass
    else:
        as_float = values.astype(np.float64)
        if not len(as_float) or float(np.abs(as_float).max()) < numbers.TWO_53:
            return as_float, None  # every integer among them is exactly its float
    return numbers.from_python(values.tolist())


# -- checks of the response's shape ---------------------------------------------------------------


def expect_list(value: object, what: str) -> list[Any]:
    """``value``, which the response should hold as a list under the name ``what``."""
    if not isinstance(value, list):
        raise SourceError(f"unexpected {what!r} in the InfluxDB response: {short(value)}")
    return value


def short(value: object) -> str:
    """A part of the response, cut short to quote in an error message."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"

"""Batches from InfluxDB's CSV: rows gathered column-wise, cells read as numbers, tags as series keys.

The body is decoded in pieces that end at a line break (:func:`texts`) for Python's csv module,
whose rows (``name,tags,time,<fields>``, after a header naming the columns of each statement)
:class:`TextBatcher` gathers column by column; a batch's runs are where the tags text changes.
CSV carries no types: a column's cells are read as numbers all at once (:func:`text_column`),
``int64``, else ``uint64``, else ``float64`` (when every integer among them is exactly a float64),
else cell by cell, each exact, as JSON values are; a blank cell is not valid, and a cell that is no
number (a word, ``true``) is not valid and counted as invalid.

The ``tags`` column (``k=v,k2=v2``) escapes ``,``, ``=`` and space with a backslash but leaves
backslashes alone, so ``\\,`` may be an escaped comma or a key or value ending in a backslash
followed by the separator. Readings are only accepted with keys in InfluxDB's sorted order, which
settles the usual cases (values holding commas, spaces, ``=``); tags that still read two ways
raise :class:`SourceError` rather than guess (:func:`parse_csv_tags`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from rollup.core.batch import Batch, FieldColumn, SeriesKey, series_key
from rollup.core.numbers import TWO_53
from rollup.errors import SourceError
from rollup.sources.jsonbatch import object_column, short


class TextBatcher:
    """Gathers CSV rows (``name,tags,time,<fields>``) column-wise until a batch is due."""

    def __init__(self, fields: Sequence[str], url: str, stream: int = 0):
        self.fields = list(fields)
        self.url = url
        self.stream = stream
        self.index: list[int] | None = None
        self.width = 0
        self.columns: list[list[str]] = [[] for _ in range(len(self.fields) + 2)]
        self.rows = 0
        self._keys: dict[str, SeriesKey] = {}

    def add(self, block: list[list[str]]) -> None:
        if self.index is not None and set(map(len, block)) == {self.width}:
            transposed = list(zip(*block, strict=True))
            if "tags" not in transposed[1]:
                self._extend(transposed, len(block))
                return
        self._add_rows(block)

    def _add_rows(self, block: list[list[str]]) -> None:
        """The slow path, for blocks holding a header, a blank line or an error row."""
        data: list[list[str]] = []
        for i, row in enumerate(block):
            if not row:
                continue  # a blank line separates statements
            if row == ["error"]:
                message = ",".join(block[i + 1]) if i + 1 < len(block) else "(no message)"
                raise SourceError(f"InfluxDB at {self.url} reported an error: {message}")
            if row[:2] == ["name", "tags"]:
                self._flush(data)
                self._header(row)
            elif self.index is None:
                raise SourceError(f"InfluxDB sent CSV rows before a header: {short(row)}")
            elif len(row) != self.width:
                raise SourceError(f"a CSV row from InfluxDB has {len(row)} columns, its header {self.width}")
            else:
                data.append(row)
        self._flush(data)

    def _flush(self, rows: list[list[str]]) -> None:
        if rows:
            self._extend(list(zip(*rows, strict=True)), len(rows))
            rows.clear()

    def _header(self, row: list[str]) -> None:
        if "time" not in row:
            raise SourceError(f"the CSV header from InfluxDB has no time column: {row}")
        position = {name: i for i, name in enumerate(row)}
        self.index = [1, position["time"], *(position.get(name, -1) for name in self.fields)]
        self.width = len(row)

    def _extend(self, transposed: list[tuple[str, ...]], n: int) -> None:
        assert self.index is not None
        for out, i in zip(self.columns, self.index, strict=True):
            out.extend(transposed[i] if i >= 0 else ("",) * n)
        self.rows += n

    def emit(self) -> Batch:
        tags, times, *values = self.columns
        tag_array = np.array(tags, dtype=object)
        starts = np.flatnonzero(np.concatenate([[True], tag_array[1:] != tag_array[:-1]]))
        try:
            time = np.fromiter(map(int, times), dtype=np.int64, count=len(times))
        except (ValueError, OverflowError):
            raise SourceError("InfluxDB sent CSV times that are not integer epoch nanoseconds") from None
        batch = Batch(
            keys=[self._key(tag) for tag in tag_array[starts]],
            run_lengths=np.diff(np.append(starts, len(tags))).astype(np.int64),
            time=time,
            fields={name: text_column(cells) for name, cells in zip(self.fields, values, strict=True)},
            stream=self.stream,
        )
        self.columns = [[] for _ in range(len(self.fields) + 2)]
        self.rows = 0
        return batch

    def _key(self, tags: str) -> SeriesKey:
        key = self._keys.get(tags)
        if key is None:
            key = self._keys[tags] = parse_csv_tags(tags)
        return key


# -- cells ----------------------------------------------------------------------------------------


def text_column(cells: Sequence[str]) -> FieldColumn:
    """A field column from CSV cells: numbers parsed exactly, blanks absent, anything else invalid."""
    if "" not in cells:
        numbers = _parse_numbers(cells)
        if numbers is not None:
            return FieldColumn(numbers)
        return object_column(np.array([_cell(c) for c in cells], dtype=object))
    present = np.fromiter(map(bool, cells), dtype=bool, count=len(cells))
    numbers = _parse_numbers(list(itertools.compress(cells, present)))
    if numbers is None:
        return object_column(np.array([_cell(c) for c in cells], dtype=object))
    filled = np.zeros(len(cells), dtype=numbers.dtype)
    filled[present] = numbers
    return FieldColumn(filled, valid=present)


def _parse_numbers(cells: Sequence[str]) -> np.ndarray | None:
    """All cells as int64, else uint64, else float64 if that is exact for every integer among them;
    None if some cell is not a number or no one dtype will do (the cells are then read one by one)."""
    for dtype in (np.int64, np.uint64):
        try:
            return np.fromiter(map(int, cells), dtype=dtype, count=len(cells))
        except (ValueError, OverflowError):
            pass
    try:
        parsed = np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
    except ValueError:
        return None
    if len(parsed) and not float(np.abs(parsed).max()) < TWO_53:
        return None  # an integer cell beyond 2^53 may be there: cell by cell keeps it exact
    return parsed


def _cell(text: str) -> object:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


# -- the tags column ------------------------------------------------------------------------------

_KEY, _VALUE = 0, 1
_MAX_TAG_STEPS = 100_000
_Reading = tuple[int, int, tuple[tuple[str, str], ...], str, str]
"""A partial reading of a tags text: next unit, state, pairs so far, current key, current text."""


def parse_csv_tags(text: str) -> SeriesKey:
    """The tags column of InfluxDB's CSV (``k=v,k2=v2``, with ``,``, ``=`` and space escaped).

    Backslashes themselves are not escaped, so ``\\,`` is either an escaped comma or a name ending
    in a backslash followed by the separator (likewise ``\\=``). Every reading is tried that gives
    non-empty keys in strictly increasing order (as InfluxDB sorts them) and non-empty values (empty
    ones are left out); a :class:`SourceError` is raised unless exactly one does.
    """
    if not text:
        return ()
    if "\\" not in text:
        items = [item.split("=", 1) for item in text.split(",")]
        if any(len(item) != 2 or not item[0] for item in items):
            raise SourceError(f"malformed tags in InfluxDB's CSV: {text!r}")
        return series_key({item[0]: item[1] for item in items})
    units = _tag_units(text)
    # possible[i][state]: whether units[i:] can be read to a well-formed end from `state`
    possible = [[False, False] for _ in range(len(units) + 1)]
    possible[-1][_VALUE] = True
    for i in range(len(units) - 1, -1, -1):
        for state in (_KEY, _VALUE):
            possible[i][state] = any(possible[i + 1][after] for after, _ in _readings(units[i], state))
    found: list[tuple[tuple[str, str], ...]] = []
    stack: list[_Reading] = [(0, _KEY, (), "", "")] if possible[0][_KEY] else []
    steps = 0
    while stack and len(found) < 2 and steps < _MAX_TAG_STEPS:
        steps += 1
        i, state, pairs, key, current = stack.pop()
        if i == len(units):
            if current:
                found.append((*pairs, (key, current)))
            continue
        for after, chars in _readings(units[i], state):
            if not possible[i + 1][after]:
                continue
            if after == state:
                stack.append((i + 1, after, pairs, key, current + chars))
            elif after == _VALUE:
                name = current + chars
                if name and (not pairs or pairs[-1][0] < name):
                    stack.append((i + 1, after, pairs, name, ""))
            elif current + chars:
                stack.append((i + 1, after, (*pairs, (key, current + chars)), "", ""))
    if len(found) != 1:
        problem = "malformed" if not found and not stack else "ambiguous"
        raise SourceError(
            f"{problem} tags in InfluxDB's CSV (CSV cannot tell a tag name or value ending in a "
            f"backslash apart from an escaped separator; use the JSON format): {text!r}"
        )
    return series_key(dict(found[0]))


def _tag_units(text: str) -> list[str]:
    units: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 2] in (",", "=", " "):
            units.append(text[i : i + 2])
            i += 2
        else:
            units.append(text[i])
            i += 1
    return units


def _readings(unit: str, state: int) -> list[tuple[int, str]]:
    """(state after, characters added to the current name or value) for each reading of a unit."""
    if unit == "=":
        return [(_VALUE, "")] if state == _KEY else []
    if unit == ",":
        return [(_KEY, "")] if state == _VALUE else []
    if unit == "\\=":
        return [(state, "=")] + ([(_VALUE, "\\")] if state == _KEY else [])
    if unit == "\\,":
        return [(state, ",")] + ([(_KEY, "\\")] if state == _VALUE else [])
    return [(state, unit[-1])]


# -- the body -------------------------------------------------------------------------------------


def texts(chunks: Iterable[bytes]) -> Iterator[str]:
    """The body decoded in pieces that each end at a line break (CSV reads them line by line)."""
    pending: list[bytes] = []
    for chunk in chunks:
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            pending.append(chunk)
            continue
        pending.append(chunk[:cut])
        yield b"".join(pending).decode("utf-8")
        pending = [chunk[cut:]]
    rest = b"".join(pending)
    if rest:
        yield rest.decode("utf-8")

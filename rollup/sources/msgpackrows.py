"""InfluxDB's MessagePack responses: chunks split off the stream, integer rows read by numpy.

With ``Accept: application/x-msgpack`` influxd 1.x sends the same documents as in JSON (``results``,
``series`` with ``tags``, ``columns``, ``values``, ``partial``, ``error``), each chunk one msgpack
map, back to back with nothing between them. With ``epoch=ns`` times are plain integers, in the
smallest encoding that holds them (as every integer: a positive fixint, int8 … int64, uint8 …
uint64); floats are float64, strings str, booleans and null their own types.

:func:`documents` cuts the stream into documents. A chunk is first walked by :func:`_fast_document`,
a small reader of the skeleton (maps, arrays, strings, numbers) that reads each series' ``values``
with numpy when they are rows of non-negative integers (timestamps and counters: the common case):
in runs of rows encoded alike, one check and one view per column, no Python object per value.
Anything else (a null, a float, a string, a boolean, a negative number, a series whose encodings
change more than a few dozen times within a chunk, any other msgpack type) makes it give up, and the
whole chunk is decoded by the ``msgpack`` package into Python objects, which
:class:`rollup.sources.jsonbatch.ObjectBatcher` turns into columns as it does JSON's; so the fast
path never has to be right about anything unusual.

A stream that ends inside a document is an error (:class:`TruncatedError`), never a short result.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack
import numpy as np

_INT64_MAX = np.iinfo(np.int64).max

# Encodings of a non-negative integer: type byte -> (size in bytes after it, numpy type of them).
_INTEGERS: dict[int, tuple[int, str]] = {
    0xCC: (1, ">u1"),
    0xCD: (2, ">u2"),
    0xCE: (4, ">u4"),
    0xCF: (8, ">u8"),
    0xD0: (1, ">i1"),
    0xD1: (2, ">i2"),
    0xD2: (4, ">i4"),
    0xD3: (8, ">i8"),
}


class MalformedError(ValueError):
    """The bytes are not a msgpack document."""


class TruncatedError(MalformedError):
    """The stream ended inside a document."""


class _NeedMoreError(Exception):
    """The buffer ends before the document does; ``size`` is what it needs at least (0: unknown)."""

    def __init__(self, size: int = 0):
        self.size = size


class _GiveUpError(Exception):
    """Something the fast reader does not handle: the msgpack package decodes the chunk."""


def documents(chunks: Iterable[bytes]) -> Iterator[Any]:
    """The documents of a msgpack stream, as they complete; series ``values`` made of non-negative
    integer rows come as (rows × columns) int64 arrays (uint64 when a number needs it)."""
    buffer = b""
    position = 0  # where the next document starts in buffer
    needed = 0  # the length buffer must have before the fast reader can read the next document
    slow: msgpack.Unpacker | None = None  # decoding the next document the general way, as it comes
    for chunk in chunks:
        if not chunk:
            continue
        buffer = buffer[position:] + chunk if position < len(buffer) else chunk
        needed -= position
        position = 0
        if slow is not None:
            slow.feed(chunk)
            if (done := _resume(slow)) is None:
                continue
            doc, position = done
            slow = None
            yield doc
        elif len(buffer) < needed:
            continue
        while position < len(buffer):
            try:
                doc, end = _fast_document(buffer, position)
            except _NeedMoreError as more:
                needed = more.size
                break
            except _GiveUpError:
                slow = _unpacker()
                slow.feed(memoryview(buffer)[position:])
                if (done := _resume(slow)) is None:
                    break
                doc, size = done
                slow = None
                end = position + size
            position = end
            yield doc
    if slow is not None:
        raise TruncatedError("the stream ended inside a msgpack document")
    while position < len(buffer):  # what the fast reader waited for (it may ask for too much)
        slow = _unpacker()
        slow.feed(memoryview(buffer)[position:])
        if (done := _resume(slow)) is None:
            raise TruncatedError(
                f"the stream ended inside a msgpack document ({len(buffer) - position} bytes of it)"
            )
        doc, size = done
        position += size
        yield doc


def _unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(raw=False, strict_map_key=False)


def _resume(unpacker: msgpack.Unpacker) -> tuple[Any, int] | None:
    """The document the unpacker has been fed and its size, or None until all of it has come."""
    try:
        doc = unpacker.unpack()
    except msgpack.OutOfData:
        return None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedError(f"malformed msgpack: {exc}") from None
    return doc, unpacker.tell()


# -- the fast reader --------------------------------------------------------------------------------


def _fast_document(buffer: bytes, position: int) -> tuple[Any, int]:
    reader = _Reader(buffer, position)
    doc = reader.item()
    _check_widths(doc)
    return doc, reader.position


class _Reader:
    """A msgpack reader for the skeleton of influxd's documents; ``values`` by :func:`integer_rows`."""

    __slots__ = ("buffer", "position")

    def __init__(self, buffer: bytes, position: int):
        self.buffer = buffer
        self.position = position

    def _take(self, size: int) -> bytes:
        start = self.position
        end = start + size
        if end > len(self.buffer):
            raise _NeedMoreError()
        self.position = end
        return self.buffer[start:end]

    def _byte(self) -> int:
        if self.position >= len(self.buffer):
            raise _NeedMoreError()
        value = self.buffer[self.position]
        self.position += 1
        return value

    def _unsigned(self, size: int) -> int:
        return int.from_bytes(self._take(size), "big")

    def item(self) -> Any:
        t = self._byte()
        if t <= 0x7F:
            return t
        if t >= 0xE0:
            return t - 0x100
        if 0xA0 <= t <= 0xBF:
            return self._text(t & 0x1F)
        if 0x90 <= t <= 0x9F:
            return self._array(t & 0x0F)
        if 0x80 <= t <= 0x8F:
            return self._map(t & 0x0F)
        if t == 0xC0:
            return None
        if t == 0xC2:
            return False
        if t == 0xC3:
            return True
        if t in _INTEGERS:
            size, kind = _INTEGERS[t]
            return int.from_bytes(self._take(size), "big", signed=kind[1] == "i")
        if t == 0xCB:
            return float(struct.unpack(">d", self._take(8))[0])
        if t in (0xD9, 0xDA, 0xDB):
            return self._text(self._unsigned(1 << (t - 0xD9)))
        if t in (0xDC, 0xDD):
            return self._array(self._unsigned(2 if t == 0xDC else 4))
        if t in (0xDE, 0xDF):
            return self._map(self._unsigned(2 if t == 0xDE else 4))
        raise _GiveUpError()  # float32, bin, ext: rare, the msgpack package knows them

    def _text(self, size: int) -> str:
        try:
            return self._take(size).decode("utf-8")
        except UnicodeDecodeError:
            raise _GiveUpError() from None

    def _array(self, size: int) -> list[Any]:
        return [self.item() for _ in range(size)]

    def _map(self, size: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for _ in range(size):
            key = self.item()
            if not isinstance(key, str | int):
                raise _GiveUpError()
            if key == "values" and self.position < len(self.buffer):
                result[key] = self._values()
            else:
                result[key] = self.item()
        return result

    def _values(self) -> Any:
        t = self.buffer[self.position]
        if 0x90 <= t <= 0x9F:
            rows = t & 0x0F
            self.position += 1
        elif t in (0xDC, 0xDD):
            self.position += 1
            rows = self._unsigned(2 if t == 0xDC else 4)
        else:
            return self.item()
        if rows == 0:
            return []
        block, size = integer_rows(self.buffer, self.position, rows)
        self.position += size
        return block


def integer_rows(buffer: bytes, position: int, rows: int) -> tuple[np.ndarray, int]:
    """``rows`` msgpack arrays of non-negative integers from ``position`` as a (rows × width) int64
    array (uint64 if a number needs it) and the bytes they take. Raises _GiveUpError unless they are
    exactly that, _NeedMoreError if the buffer ends before them.

    Rows are read in runs of rows encoded alike (an integer's encoding depends on its size, so a
    counter passing 2^31 starts a new run); each run is checked and read column by column."""
    parts: list[np.ndarray] = []
    start = position
    done = 0
    while done < rows:
        if len(parts) >= _MAX_RUNS:
            raise _GiveUpError()
        block, count, size = _run(buffer, position, rows - done)
        parts.append(block)
        done += count
        position += size
    if len(parts) == 1:
        return parts[0], position - start
    if any(p.shape[1] != parts[0].shape[1] for p in parts):
        raise _GiveUpError()
    if any(p.dtype == np.uint64 for p in parts):
        parts = [p.astype(np.uint64) for p in parts]  # no negative numbers: exact
    return np.concatenate(parts), position - start


_MAX_RUNS = 64


def _run(buffer: bytes, position: int, rows: int) -> tuple[np.ndarray, int, int]:
    """The longest run (up to ``rows``) of rows encoded like the one at ``position``: the block, its
    rows and its bytes."""
    if position >= len(buffer):
        raise _NeedMoreError()
    head = buffer[position]
    if not 0x91 <= head <= 0x9F:
        raise _GiveUpError()
    layout: list[tuple[int, int, int, str]] = []  # (offset in the row, type byte, size, numpy type)
    offset = 1
    for _ in range(head & 0x0F):
        if position + offset >= len(buffer):
            raise _NeedMoreError()
        t = buffer[position + offset]
        if t <= 0x7F:
            layout.append((offset, t, 0, "u1"))
            offset += 1
        elif t in _INTEGERS:
            size, kind = _INTEGERS[t]
            layout.append((offset, t, size, kind))
            offset += 1 + size
        else:
            raise _GiveUpError()
    width = offset
    available = min(rows, (len(buffer) - position) // width)
    if available == 0:
        raise _NeedMoreError(position + width)
    table = np.frombuffer(buffer, dtype=np.uint8, count=available * width, offset=position)
    table = table.reshape(available, width)
    alike = table[:, 0] == head
    for offset, t, size, _ in layout:
        alike &= (table[:, offset] <= 0x7F) if size == 0 else (table[:, offset] == t)
    count = available if alike.all() else int(alike.argmin())
    if count == available < rows:
        raise _NeedMoreError(position + rows * width)  # (at least: later rows may be narrower)
    table = table[:count]
    columns: list[np.ndarray] = []
    for offset, _, size, kind in layout:
        if size == 0:  # positive fixint: the type byte is the value
            columns.append(table[:, offset])
            continue
        column = np.ascontiguousarray(table[:, offset + 1 : offset + 1 + size]).view(kind).ravel()
        if kind[1] == "i" and column.min() < 0:
            raise _GiveUpError()  # negative numbers go the general way (uint64 blocks assume none)
        columns.append(column)
    dtype = np.uint64 if any(c.dtype == ">u8" and c.max() > _INT64_MAX for c in columns) else np.int64
    block = np.empty((count, len(columns)), dtype=dtype)
    for i, column in enumerate(columns):
        block[:, i] = column
    return block, count, count * width


def _check_widths(doc: Any) -> None:
    """Arrays of rows must be as wide as their series' columns (else the general way reports it)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        return
    for result in doc["results"]:
        series_list = result.get("series") if isinstance(result, dict) else None
        if not isinstance(series_list, list):
            continue
        for series in series_list:
            if not isinstance(series, dict):
                continue
            values = series.get("values")
            if isinstance(values, np.ndarray):
                columns = series.get("columns")
                if not isinstance(columns, list) or values.shape[1] != len(columns):
                    raise _GiveUpError()

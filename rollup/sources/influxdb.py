"""Raw points from InfluxDB's v1 HTTP API: one chunked InfluxQL ``/query``, streamed into batches.

The response is read as it arrives and turned into :class:`Batch` objects of about ``chunk_size``
rows (InfluxDB 1.x sends every series in a chunk of its own, so small series are gathered into one
batch; a long series split over several chunks becomes one run per batch).

Two response formats, ``json`` (the default) and ``csv``:

- JSON carries value types (a string ``"42"`` is not the number 42), reports a failed statement
  inside a 200 (``results[i].error``) or mid-stream (a top-level ``error`` line), and marks every
  chunk but the last ``"partial": true``, so a stream that ends early is detected even when the HTTP
  framing looks complete.
- CSV has none of that: no ``partial`` marker (only a broken chunked transfer encoding reveals a cut
  stream), no types (a string field holding ``42`` reads as a number, ``true``/``false`` as
  booleans), and InfluxDB 1.6 answers a failed statement such as "database not found" with an
  empty 200, which reads as an empty result. Its ``tags`` column (``k=v,k2=v2``) escapes ``,``,
  ``=`` and space with a backslash but leaves backslashes alone, so ``\\,`` may be an escaped comma
  or a key or value ending in a backslash followed by the separator. Readings are only accepted
  with keys in InfluxDB's sorted order, which settles the usual cases (values holding commas,
  spaces, ``=``); tags that still read two ways raise :class:`SourceError` rather than guess.

JSON is the default: it is exact, and at least as fast end to end, where influxd is the bottleneck
(``bench/source_formats.py``, 200k rows from a local influxd 1.6 on 2 cores: JSON 150-215k rows/s,
CSV 135-175k rows/s). Series whose values are all non-negative integers (counters) are read from
the JSON text by numpy (:mod:`rollup.sources.jsonrows`), some 3x faster than decoding them into
Python objects; CSV rows go through Python's csv module one by one (~0.25M rows/s).

Values keep their exactness: a field whose values in a batch are all integers becomes ``int64``
(``uint64`` when one is at least 2^63 and none is negative, ``float64`` when both occur), a float
anywhere makes the column ``float64``. A missing value (``null``) is simply not valid; a string or
a boolean is not valid and counted as invalid.

Responses are requested uncompressed unless ``compress=True``: on a fast link, gzipping costs
influxd more time than the 3-6x smaller transfer saves (JSON from a local influxd 1.6: 95-135k
rows/s gzipped against 150-215k rows/s plain).

Reading overlaps rolling up: a thread per query receives and parses up to ``read_ahead`` batches
ahead, in a bounded queue (:mod:`rollup.sources.prefetch`), so influxd keeps producing while the
caller computes and memory stays flat. With ``concurrency = N`` the series are split into N subsets
on one tag's values (``SHOW TAG VALUES``; a tag of the job's groups when one has enough values, so
each group's rows come in one order) and N queries run at once, their batches interleaved; the last
subset is "every other value", so a series whose tag value appeared meanwhile is not missed. That
pays off when influxd has cores to spare.

Connecting is retried with exponential backoff and jitter (connection errors, timeouts, HTTP 5xx);
once a response is being read nothing is retried, since the caller may already hold batches from it.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import httpx
import numpy as np
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from rollup.core.batch import Batch, FieldColumn, SeriesKey, series_key
from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.sources.base import SourceQuery, TagMatch
from rollup.sources.influxql import build_query, tag_values_query
from rollup.sources.jsonrows import integer_rows, split_values
from rollup.sources.prefetch import read_ahead

log = logging.getLogger(__name__)

Format = Literal["json", "csv"]

_ERROR_TEXT_LIMIT = 500
_NONE = np.array(None, dtype=object)
_INT64_MAX = np.iinfo(np.int64).max


class _RetryableError(SourceError):
    """A failure before any response body was read: the request can safely be sent again."""


class InfluxQLSource:
    """Reads a :class:`SourceQuery` from InfluxDB 1.x (or the v1 API of 2.x/3.x) over HTTP."""

    def __init__(
        self,
        connection: InfluxConnection,
        *,
        chunk_size: int = 10000,
        format: Format = "json",
        transport: httpx.BaseTransport | None = None,
        attempts: int = 4,
        backoff: float = 0.5,
        compress: bool = False,
        concurrency: int = 1,
        read_ahead: int = 4,
    ):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if read_ahead < 0:
            raise ValueError(f"read_ahead must not be negative, got {read_ahead}")
        if format not in ("json", "csv"):
            raise ValueError(f"format must be 'json' or 'csv', got {format!r}")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.chunk_size = chunk_size
        self.format: Format = format
        self.attempts = attempts
        self.backoff = backoff
        self.compress = compress
        self.concurrency = concurrency
        self.read_ahead = read_ahead
        self._url = connection.url
        self._timeout = connection.timeout
        self._client = connection.client("InfluxDB source", transport)

    # -- Source protocol --------------------------------------------------------------------------

    def read(self, query: SourceQuery) -> Iterator[Batch]:
        subsets = self._subsets(query) if self.concurrency > 1 else [()]
        readers = [self._read_statement(query, build_query(query, extra)) for extra in subsets]
        if self.read_ahead == 0 and len(readers) == 1:
            yield from readers[0]
        else:
            yield from read_ahead(readers, depth=max(self.read_ahead, 1) * len(readers))

    def _read_statement(self, query: SourceQuery, statement: str) -> Iterator[Batch]:
        response = self._open(query.database, statement)
        try:
            if self.format == "json":
                yield from self._read_json(response, query.fields)
            else:
                yield from self._read_csv(response, query.fields)
        except httpx.TimeoutException:
            raise SourceError(
                f"InfluxDB at {self._url} sent nothing for {self._timeout} in the middle of a result"
            ) from None
        except httpx.HTTPError as exc:
            raise SourceError(f"the result stream from InfluxDB at {self._url} broke off: {exc}") from None
        finally:
            response.close()

    def _subsets(self, query: SourceQuery) -> list[tuple[tuple[str, TagMatch], ...]]:
        """Conditions that split the query's series into up to ``concurrency`` disjoint subsets
        covering them all: on one tag, the first subsets take lists of its values and the last one
        everything else (series without the tag, and values that appeared since we asked)."""
        values = self._tag_values(query)
        if not values:
            return [()]
        # A tag of the groups if one has enough values (a group's rows then come in one stream),
        # else the tag with the most values.
        grouping = [tag for tag in query.together if len(values.get(tag, ())) >= self.concurrency]
        tag = grouping[0] if grouping else max(sorted(values), key=lambda name: len(values[name]))
        known = sorted(values[tag])
        parts = min(self.concurrency, len(known))
        if parts < 2:
            return [()]
        size = -(-len(known) // parts)
        lists = [tuple(known[i : i + size]) for i in range(0, len(known), size)]
        subsets: list[tuple[tuple[str, TagMatch], ...]] = [((tag, TagMatch(values=v)),) for v in lists[:-1]]
        taken = tuple(value for chosen in lists[:-1] for value in chosen)
        subsets.append(((tag, TagMatch(values=taken, negate=True)),))
        return subsets

    def _tag_values(self, query: SourceQuery) -> dict[str, set[str]]:
        """Every tag of the series the query selects, with its values (SHOW TAG VALUES)."""
        response = self._open(query.database, tag_values_query(query), chunked=False)
        try:
            body = response.read()
        except httpx.HTTPError as exc:
            raise SourceError(f"the answer from InfluxDB at {self._url} broke off: {exc}") from None
        finally:
            response.close()
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise SourceError(f"InfluxDB at {self._url} sent malformed JSON: {exc}") from None
        values: dict[str, set[str]] = {}
        for result in self._results(doc):
            for series in _list(result.get("series", []), "series"):
                if not isinstance(series, dict):
                    raise SourceError(f"unexpected series in the InfluxDB response: {_short(series)}")
                for row in _list(series.get("values", []), "values"):
                    if not (isinstance(row, list) and len(row) == 2 and all(isinstance(x, str) for x in row)):
                        raise SourceError(f"unexpected tag value in the InfluxDB response: {_short(row)}")
                    if row[1]:
                        values.setdefault(row[0], set()).add(row[1])
        return values

    def check(self) -> None:
        try:
            response = self._client.get("/ping")
        except httpx.TimeoutException:
            raise SourceError(
                f"InfluxDB at {self._url} did not answer /ping within {self._timeout}"
            ) from None
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach InfluxDB at {self._url}: {exc}") from None
        if response.status_code != 204:
            raise SourceError(
                f"InfluxDB at {self._url} answered /ping with HTTP {response.status_code}: "
                f"{_error_text(response.content)}"
            )

    def close(self) -> None:
        self._client.close()

    # -- request ----------------------------------------------------------------------------------

    def _open(self, database: str, statement: str, chunked: bool = True) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff, max=self.backoff * 16)
            + wait_random(0, self.backoff),
            retry=retry_if_exception_type(_RetryableError),
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            return retrying(self._send, database, statement, chunked)
        except _RetryableError as exc:
            tries = "once" if self.attempts == 1 else f"{self.attempts} times"
            raise SourceError(f"{exc} (tried {tries})") from None

    def _send(self, database: str, statement: str, chunked: bool = True) -> httpx.Response:
        params = {"db": database, "epoch": "ns"}
        if chunked:
            params |= {"chunked": "true", "chunk_size": str(self.chunk_size)}
        request = self._client.build_request(
            "POST",
            "/query",
            params=params,
            data={"q": statement},
            headers={
                "Accept": "application/csv" if self.format == "csv" and chunked else "application/json",
                "Accept-Encoding": "gzip" if self.compress else "identity",
            },
        )
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise _RetryableError(f"InfluxDB at {self._url} did not answer within {self._timeout}") from None
        except httpx.TransportError as exc:
            raise _RetryableError(f"cannot connect to InfluxDB at {self._url}: {exc}") from None
        if response.status_code == 200:
            return response
        try:
            body = response.read()
        except httpx.HTTPError:
            body = b""
        finally:
            response.close()
        message = f"InfluxDB at {self._url} answered HTTP {response.status_code}: {_error_text(body)}"
        if response.status_code >= 500:
            raise _RetryableError(message)
        raise SourceError(message)

    # -- JSON -------------------------------------------------------------------------------------

    def _read_json(self, response: httpx.Response, fields: Sequence[str]) -> Iterator[Batch]:
        batcher = _ObjectBatcher(fields)
        partial = False
        seen_any = False
        for line in _lines(response.iter_bytes()):
            if not line.strip():
                continue
            seen_any = True
            doc = self._decode(line)
            partial = False
            for result in self._results(doc):
                for series in _list(result.get("series", []), "series"):
                    batcher.add(series)
                partial = bool(result.get("partial", False))
            if batcher.rows >= self.chunk_size:
                yield batcher.emit()
        if not seen_any:
            raise SourceError(f"InfluxDB at {self._url} sent an empty response")
        if partial:
            raise SourceError(
                f"the result stream from InfluxDB at {self._url} ended while its last chunk was marked "
                "partial: the result is incomplete"
            )
        if batcher.rows:
            yield batcher.emit()

    def _decode(self, line: bytes) -> object:
        """One chunk; series whose values are all non-negative integers get them as a numpy array
        (read as text, see :mod:`rollup.sources.jsonrows`), the others as Python lists."""
        split = split_values(line)
        if split is not None:
            skeleton, texts = split
            try:
                doc = orjson.loads(skeleton)
            except orjson.JSONDecodeError:
                doc = None
            if _fill_integer_rows(doc, texts):
                return doc
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise SourceError(f"InfluxDB at {self._url} sent malformed JSON: {exc}") from None

    def _results(self, doc: object) -> list[dict[str, Any]]:
        if not isinstance(doc, dict):
            raise SourceError(f"InfluxDB at {self._url} sent an unexpected JSON document: {_short(doc)}")
        if "error" in doc:
            raise SourceError(f"InfluxDB at {self._url} reported an error: {doc['error']}")
        results = _list(doc.get("results"), "results")
        for result in results:
            if not isinstance(result, dict):
                raise SourceError(f"InfluxDB at {self._url} sent an unexpected result: {_short(result)}")
            if "error" in result:
                raise SourceError(f"InfluxDB at {self._url} could not run the query: {result['error']}")
        return results

    # -- CSV --------------------------------------------------------------------------------------

    def _read_csv(self, response: httpx.Response, fields: Sequence[str]) -> Iterator[Batch]:
        batcher = _TextBatcher(fields, self._url)
        lines = itertools.chain.from_iterable(map(io.StringIO, _texts(response.iter_bytes())))
        reader = csv.reader(lines)
        try:
            while block := list(itertools.islice(reader, self.chunk_size - batcher.rows)):
                batcher.add(block)
                if batcher.rows >= self.chunk_size:
                    yield batcher.emit()
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"InfluxDB at {self._url} sent malformed CSV: {exc}") from None
        if batcher.rows:
            yield batcher.emit()


# -- batches from JSON series ---------------------------------------------------------------------


def _fill_integer_rows(doc: object, texts: list[bytes]) -> bool:
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


class _ObjectBatcher:
    """Gathers JSON series until a batch is due, then converts them at once. A series' rows are
    either a numpy integer array (see :func:`_fill_integer_rows`) or Python objects."""

    def __init__(self, fields: Sequence[str]):
        self.fields = list(fields)
        self.wanted = ["time", *self.fields]
        self.keys: list[SeriesKey] = []
        self.lengths: list[int] = []
        self.blocks: list[np.ndarray] = []
        self.rows = 0

    def add(self, series: object) -> None:
        if not isinstance(series, dict):
            raise SourceError(f"unexpected series in the InfluxDB response: {_short(series)}")
        columns = _list(series.get("columns"), "columns")
        values = series.get("values", [])
        tags = series.get("tags") or {}
        if not isinstance(tags, dict) or "time" not in columns:
            raise SourceError(f"unexpected series in the InfluxDB response: {_short(series)}")
        if isinstance(values, np.ndarray):
            block = values
        else:
            values = _list(values, "values")
            if not values:
                return
            block = np.array(values, dtype=object)
            if block.shape != (len(values), len(columns)):
                raise SourceError(
                    f"a series in the InfluxDB response has rows of the wrong width: {_short(values)}"
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
            keys=self.keys, run_lengths=np.asarray(self.lengths, dtype=np.int64), time=time, fields=fields
        )
        self.keys, self.lengths, self.blocks, self.rows = [], [], [], 0
        return batch


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
    if kinds <= {int}:
        return FieldColumn(_integers(values))
    if kinds <= {int, float}:
        return FieldColumn(values.astype(np.float64))
    present = np.not_equal(values, _NONE)
    if kinds <= {int, float, type(None)}:
        numeric = present
    else:
        numeric = np.fromiter((type(v) in (int, float) for v in values), dtype=bool, count=len(values))
    filled = values.copy()
    filled[~numeric] = 0
    converted = _integers(filled) if float not in kinds else filled.astype(np.float64)
    return FieldColumn(converted, valid=numeric, invalid=present & ~numeric)


def _integers(values: np.ndarray) -> np.ndarray:
    """Python ints as int64, or uint64 when some exceed int64 and none is negative, else float64."""
    try:
        return values.astype(np.int64)
    except OverflowError:
        pass
    if min(values) >= 0:
        try:
            return values.astype(np.uint64)
        except OverflowError:
            pass
    return values.astype(np.float64)


# -- batches from CSV rows ------------------------------------------------------------------------


class _TextBatcher:
    """Gathers CSV rows (``name,tags,time,<fields>``) column-wise until a batch is due."""

    def __init__(self, fields: Sequence[str], url: str):
        self.fields = list(fields)
        self.url = url
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
                raise SourceError(f"InfluxDB sent CSV rows before a header: {_short(row)}")
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
        )
        self.columns = [[] for _ in range(len(self.fields) + 2)]
        self.rows = 0
        return batch

    def _key(self, tags: str) -> SeriesKey:
        key = self._keys.get(tags)
        if key is None:
            key = self._keys[tags] = parse_csv_tags(tags)
        return key


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
    """All cells as int64, else uint64, else float64; None if some cell is not a number."""
    for dtype in (np.int64, np.uint64):
        try:
            return np.fromiter(map(int, cells), dtype=dtype, count=len(cells))
        except (ValueError, OverflowError):
            pass
    try:
        return np.fromiter(map(float, cells), dtype=np.float64, count=len(cells))
    except ValueError:
        return None


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


# -- helpers --------------------------------------------------------------------------------------


def _log_retry(state: RetryCallState) -> None:
    failure = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "InfluxDB source: attempt %d failed (%s); retrying in %.2fs", state.attempt_number, failure, wait
    )


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines split on ``\\n`` only: JSON escapes line feeds inside strings but leaves U+0085 raw,
    which ``str.splitlines`` would split on too."""
    pending: list[memoryview] = []  # the start of a line that continues in the next chunk
    for chunk in chunks:
        view = memoryview(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if pending:
                pending.append(view[start:end])
                yield b"".join(pending)
                pending = []
            else:
                yield chunk[start:end]
            start = end + 1
        if start < len(chunk):
            pending.append(view[start:])
    if pending:
        yield b"".join(pending)


def _texts(chunks: Iterable[bytes]) -> Iterator[str]:
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


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise SourceError(f"unexpected {what!r} in the InfluxDB response: {_short(value)}")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def _error_text(body: bytes) -> str:
    """InfluxDB's error message from a JSON (``{"error": …}``) or CSV (``error\\n"…"``) body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    text = body.decode("utf-8", "replace").strip()
    rows = [row for row in csv.reader(io.StringIO(text)) if row] if text.startswith("error") else []
    if len(rows) == 2 and rows[0] == ["error"]:
        text = ",".join(rows[1])
    text = text or "(no error text)"
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "…"

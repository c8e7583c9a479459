"""Raw points from InfluxDB's v1 HTTP API: one chunked InfluxQL ``/query``, streamed into batches.

The response is read as it arrives and turned into :class:`Batch` objects of about ``chunk_size``
rows (InfluxDB 1.x sends every series in a chunk of its own, so small series are gathered into one
batch; a long series split over several chunks becomes one run per batch). This module speaks HTTP
and checks the response as a whole; its rows become batches in :mod:`rollup.sources.jsonbatch`
(through :mod:`rollup.sources.jsonrows` and :mod:`rollup.sources.msgpackrows`).

Two response formats, ``msgpack`` (the default) and ``json``:

- JSON carries value types (a string ``"42"`` is not the number 42), reports a failed statement
  inside a 200 (``results[i].error``) or mid-stream (a top-level ``error`` line), and marks every
  chunk but the last ``"partial": true``, so a stream that ends early is detected even when the HTTP
  framing looks complete.
- MessagePack (``Accept: application/x-msgpack``) is the same documents, one msgpack map per chunk:
  the same types, errors and ``partial`` marks, so the same guarantees, and the same batches (a
  stream that ends inside a document is an error too).

InfluxDB's third format, CSV, is not offered: it has no ``partial`` marker, no types, and InfluxDB
1.6 answers a failed statement with an empty 200, so a partial or failed read could pass for a
short one.

msgpack is the default because influxd, the bottleneck of a backfill, encodes it with less CPU
than JSON, and it is smaller and cheaper to read (BENCHMARKS.md has the figures).

Rows of non-negative integers (times and counters) are read without a Python object per value: from
the JSON text by numpy (:mod:`rollup.sources.jsonrows`), from the msgpack bytes by numpy views in
runs of rows encoded alike (:mod:`rollup.sources.msgpackrows`); other rows are decoded by orjson
or the msgpack package.

Responses are requested uncompressed unless ``compress=True``: on a fast link, gzipping costs
influxd more time than the smaller transfer saves (BENCHMARKS.md).

Reading overlaps rolling up: a thread per query receives and parses up to ``read_ahead`` batches
ahead, in a bounded queue (:mod:`rollup.sources.prefetch`), so influxd keeps producing while the
caller computes and memory stays flat. With ``concurrency = N`` the series are split into N subsets
on one tag's values (``SHOW TAG VALUES``; a tag of the job's groups when one has enough values, so
each group's rows come in one order) and N queries run at once, their batches interleaved and
numbered by query (``Batch.stream``); the last subset is "every other value", so a series whose tag
value appeared meanwhile is not missed. That pays off when influxd has cores to spare.

JSON and msgpack batches declare the order of their series (``Batch.order``): ``GROUP BY *``
returns them sorted by their values of every tag key, keys sorted, a missing tag as "", and every
series of a result carries every such key (empty or not), which is how the keys are known. The core
uses it to finish a group once its last series has been read (:mod:`rollup.core.completion`); the
split tag is chosen so that this still holds with several queries.

Connecting is retried (:mod:`rollup.retry`: connection errors, timeouts, HTTP 5xx and 429, with
exponential backoff and jitter); once a response is being read nothing is retried, since the caller
may already hold batches from it. Every :class:`SourceError` says whether it is transient
(:mod:`rollup.errors`): the server unreachable, overloaded or cutting the answer short is; an HTTP
4xx, a query error inside the answer and malformed data are not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import httpx
import msgpack
import orjson

from rollup.core.batch import Batch
from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.retry import Retry, RetryableError, retry_after, retryable_status
from rollup.secrets import redact
from rollup.sources.base import SourceQuery, SourceSchema, TagMatch
from rollup.sources.influxql import (
    build_query,
    first_point_query,
    measurement_path,
    quote_ident,
    tag_values_query,
)
from rollup.sources.jsonbatch import ObjectBatcher, expect_list, fill_integer_rows, short
from rollup.sources.jsonrows import split_values
from rollup.sources.msgpackrows import MalformedError, TruncatedError
from rollup.sources.msgpackrows import documents as msgpack_documents
from rollup.sources.prefetch import read_ahead

log = logging.getLogger(__name__)

Format = Literal["json", "msgpack"]

_ERROR_TEXT_LIMIT = 500
_ACCEPT = {"json": "application/json", "msgpack": "application/x-msgpack"}


class InfluxQLSource:
    """Reads a :class:`SourceQuery` from InfluxDB 1.x (or the v1 API of 2.x/3.x) over HTTP."""

    def __init__(
        self,
        connection: InfluxConnection,
        *,
        chunk_size: int = 10000,
        format: Format = "msgpack",
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
        if format not in ("json", "msgpack"):
            raise ValueError(f"format must be 'msgpack' or 'json', got {format!r}")
        self.chunk_size = chunk_size
        self.format: Format = format
        self.retry = Retry(attempts, backoff)
        self.compress = compress
        self.concurrency = concurrency
        self.read_ahead = read_ahead
        self._url = connection.url
        self._timeout = connection.timeout
        self._client = connection.client("InfluxDB source", transport)

    # -- Source protocol --------------------------------------------------------------------------

    def read(self, query: SourceQuery) -> Iterator[Batch]:
        subsets = self._subsets(query) if self.concurrency > 1 else [()]
        readers = [
            self._read_statement(query, build_query(query, extra), stream, extra[0][0] if extra else None)
            for stream, extra in enumerate(subsets)
        ]
        if self.read_ahead == 0 and len(readers) == 1:
            yield from readers[0]
        else:
            yield from read_ahead(readers, depth=max(self.read_ahead, 1) * len(readers))

    def _read_statement(
        self, query: SourceQuery, statement: str, stream: int = 0, split_on: str | None = None
    ) -> Iterator[Batch]:
        """The batches of one statement, numbered ``stream``; ``split_on``: the tag whose values
        split the series between the statements of one read."""
        response = self._open(query.database, statement)
        try:
            batcher = ObjectBatcher(query.fields, stream, split_on)
            if self.format == "json":
                yield from self._read_documents(self._json_documents(response), batcher)
            else:
                yield from self._read_documents(self._msgpack_documents(response), batcher)
        except httpx.TimeoutException as exc:
            raise SourceError(
                f"InfluxDB at {self._url} sent nothing for {self._timeout} in the middle of a result",
                transient=True,
            ) from exc
        except httpx.HTTPError as exc:
            raise SourceError(
                f"the result stream from InfluxDB at {self._url} broke off: {exc}", transient=True
            ) from exc
        except SourceError as exc:
            _malformed_unless_said(exc)
            raise
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
        # else the tag with the most values. Of the group tags, the first in sorted order: if the
        # series sort by a group tag first, that one keeps each group's series together in the
        # order of one stream, and the core can finish groups early.
        grouping = [tag for tag in sorted(query.together) if len(values.get(tag, ())) >= self.concurrency]
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
        values: dict[str, set[str]] = {}
        for row in self._rows(query.database, tag_values_query(query), width=2):
            if row[1]:
                values.setdefault(row[0], set()).add(row[1])
        return values

    def schema(self, database: str, retention_policy: str | None, measurement: str) -> SourceSchema:
        path = measurement_path(database, retention_policy, measurement)
        fields = {row[0]: row[1] for row in self._rows(database, f"SHOW FIELD KEYS FROM {path}", width=2)}
        tags = frozenset(row[0] for row in self._rows(database, f"SHOW TAG KEYS FROM {path}", width=1))
        if fields:
            return SourceSchema(True, fields=fields, tags=tags)
        listed = f"SHOW MEASUREMENTS ON {quote_ident(database)}"
        names = tuple(sorted(row[0] for row in self._rows(database, listed, width=1)))
        return SourceSchema(measurement in names, names, fields, tags)

    def first_time(self, query: SourceQuery) -> int | None:
        for series in self._series(query.database, first_point_query(query)):
            for row in expect_list(series.get("values", []), "values"):
                if isinstance(row, list) and row and isinstance(row[0], int):
                    return int(row[0])
                raise SourceError(f"unexpected point in the InfluxDB response: {short(row)}", transient=False)
        return None

    def _rows(self, database: str, statement: str, width: int) -> list[list[str]]:
        """The rows of a statement answering strings only (SHOW …), each ``width`` wide."""
        rows: list[list[str]] = []
        for series in self._series(database, statement):
            for row in expect_list(series.get("values", []), "values"):
                if not (isinstance(row, list) and len(row) == width and all(isinstance(x, str) for x in row)):
                    raise SourceError(
                        f"unexpected row in the InfluxDB response: {short(row)}", transient=False
                    )
                rows.append(row)
        return rows

    def _series(self, database: str, statement: str) -> list[dict[str, Any]]:
        """The series of a statement, answered at once (not chunked) as JSON."""
        response = self._open(database, statement, chunked=False)
        try:
            body = response.read()
        except httpx.HTTPError as exc:
            raise SourceError(
                f"the answer from InfluxDB at {self._url} broke off: {exc}", transient=True
            ) from exc
        finally:
            response.close()
        try:
            return self._series_of(body)
        except SourceError as exc:
            _malformed_unless_said(exc)
            raise

    def _series_of(self, body: bytes) -> list[dict[str, Any]]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise SourceError(f"InfluxDB at {self._url} sent malformed JSON: {exc}", transient=False) from exc
        found: list[dict[str, Any]] = []
        for result in self._results(doc):
            for series in expect_list(result.get("series", []), "series"):
                if not isinstance(series, dict):
                    raise SourceError(f"unexpected series in the InfluxDB response: {short(series)}")
                found.append(series)
        return found

    def check(self) -> None:
        try:
            response = self._client.get("/ping")
        except httpx.TimeoutException as exc:
            raise SourceError(
                f"InfluxDB at {self._url} did not answer /ping within {self._timeout}", transient=True
            ) from exc
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach InfluxDB at {self._url}: {exc}", transient=True) from exc
        if response.status_code != 204:
            raise SourceError(
                f"InfluxDB at {self._url} answered /ping with HTTP {response.status_code}: "
                f"{_error_text(response.content)}",
                transient=retryable_status(response.status_code),
            )

    def close(self) -> None:
        self._client.close()

    # -- request ----------------------------------------------------------------------------------

    def _open(self, database: str, statement: str, chunked: bool = True) -> httpx.Response:
        try:
            return self.retry.call(
                lambda: self._send(database, statement, chunked), "InfluxDB source", logger=log
            )
        except RetryableError as exc:
            tries = "once" if self.retry.attempts == 1 else f"{self.retry.attempts} times"
            raise SourceError(f"{exc} (tried {tries})", transient=True) from exc

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
                "Accept": _ACCEPT[self.format] if chunked else "application/json",
                "Accept-Encoding": "gzip" if self.compress else "identity",
            },
        )
        try:
            response = self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise RetryableError(f"InfluxDB at {self._url} did not answer within {self._timeout}") from exc
        except httpx.TransportError as exc:
            raise RetryableError(f"cannot connect to InfluxDB at {self._url}: {exc}") from exc
        if response.status_code == 200:
            return response
        try:
            body = response.read()
        except httpx.HTTPError:
            body = b""
        finally:
            response.close()
        status = response.status_code
        message = f"InfluxDB at {self._url} answered HTTP {status}: {_error_text(body)}"
        if retryable_status(status):
            raise RetryableError(message, retry_after(response.headers.get("Retry-After")))
        raise SourceError(message, transient=False)

    # -- JSON and msgpack: documents of results ---------------------------------------------------

    def _read_documents(self, documents: Iterable[object], batcher: ObjectBatcher) -> Iterator[Batch]:
        partial = False
        seen_any = False
        for doc in documents:
            seen_any = True
            partial = False
            for result in self._results(doc):
                for series in expect_list(result.get("series", []), "series"):
                    batcher.add(series)
                partial = bool(result.get("partial", False))
            if batcher.rows >= self.chunk_size:
                yield batcher.emit()
        if not seen_any:
            raise SourceError(f"InfluxDB at {self._url} sent an empty response", transient=True)
        if partial:
            raise SourceError(
                f"the result stream from InfluxDB at {self._url} ended while its last chunk was marked "
                "partial: the result is incomplete",
                transient=True,
            )
        if batcher.rows:
            yield batcher.emit()

    def _json_documents(self, response: httpx.Response) -> Iterator[object]:
        for line, ended in _lines(response.iter_bytes()):
            if line.strip():
                try:
                    yield self._decode(line)
                except SourceError as exc:
                    if not ended:  # the answer stopped in the middle of a document
                        exc.transient = True
                    raise

    def _msgpack_documents(self, response: httpx.Response) -> Iterator[object]:
        try:
            yield from msgpack_documents(response.iter_bytes())
        except MalformedError as exc:
            raise SourceError(
                f"InfluxDB at {self._url} sent malformed msgpack: {exc}",
                transient=isinstance(exc, TruncatedError),  # a stream cut inside a document
            ) from exc

    def _decode(self, line: bytes) -> object:
        """One chunk; series whose values are all non-negative integers get them as a numpy array
        (read as text, see :mod:`rollup.sources.jsonrows`), the others as Python lists."""
        split = split_values(line)
        if split is not None:
            skeleton, values = split
            try:
                doc = orjson.loads(skeleton)
            except orjson.JSONDecodeError:
                doc = None
            if fill_integer_rows(doc, values):
                return doc
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise SourceError(f"InfluxDB at {self._url} sent malformed JSON: {exc}", transient=False) from exc

    def _results(self, doc: object) -> list[dict[str, Any]]:
        if not isinstance(doc, dict):
            raise SourceError(
                f"InfluxDB at {self._url} sent an unexpected document: {short(doc)}", transient=False
            )
        if "error" in doc:
            raise SourceError(
                redact(f"InfluxDB at {self._url} reported an error: {doc['error']}"), transient=False
            )
        results = expect_list(doc.get("results"), "results")
        for result in results:
            if not isinstance(result, dict):
                raise SourceError(
                    f"InfluxDB at {self._url} sent an unexpected result: {short(result)}", transient=False
                )
            if "error" in result:
                raise SourceError(
                    redact(f"InfluxDB at {self._url} could not run the query: {result['error']}"),
                    transient=False,
                )
        return results


# -- helpers --------------------------------------------------------------------------------------


def _malformed_unless_said(error: SourceError) -> None:
    """The batch builders raise SourceError on data of the wrong shape without saying whether it is
    transient: malformed data is not (this source says so where it knows better)."""
    if error.transient is None:
        error.transient = False


def _lines(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Lines split on ``\\n`` only (JSON escapes line feeds inside strings but leaves U+0085 raw,
    which ``str.splitlines`` would split on too), each with whether its ``\\n`` arrived: only the
    last one may lack it, when the answer was cut short."""
    pending: list[memoryview] = []  # the start of a line that continues in the next chunk
    for chunk in chunks:
        view = memoryview(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if pending:
                pending.append(view[start:end])
                yield b"".join(pending), True
                pending = []
            else:
                yield chunk[start:end], True
            start = end + 1
        if start < len(chunk):
            pending.append(view[start:])
    if pending:
        yield b"".join(pending), False


def _error_text(body: bytes) -> str:
    """InfluxDB's error message from a JSON or msgpack (``{"error": …}``) body (influxd answers an
    error in the format asked for)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if doc is None and body[:1] in (b"\x81", b"\xde", b"\xdf"):  # a msgpack map
        try:
            doc = msgpack.unpackb(body, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException):
            doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return redact(str(doc["error"]))
    text = body.decode("utf-8", "replace").strip() or "(no error text)"
    text = text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "…"
    return redact(text)  # a server may quote the request's credentials

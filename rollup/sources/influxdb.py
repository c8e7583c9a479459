"""Raw points from InfluxDB's v1 HTTP API: one chunked InfluxQL ``/query``, streamed into batches.

The response is read as it arrives and turned into :class:`Batch` objects of about ``chunk_size``
rows (InfluxDB 1.x sends every series in a chunk of its own, so small series are gathered into one
batch; a long series split over several chunks becomes one run per batch). This module speaks HTTP
and checks the response as a whole; its rows become batches in :mod:`rollup.sources.jsonbatch`
(JSON and msgpack, through :mod:`rollup.sources.jsonrows` and :mod:`rollup.sources.msgpackrows`)
and :mod:`rollup.sources.csvrows`.

Three response formats, ``msgpack`` (the default), ``json`` and ``csv``:

- JSON carries value types (a string ``"42"`` is not the number 42), reports a failed statement
  inside a 200 (``results[i].error``) or mid-stream (a top-level ``error`` line), and marks every
  chunk but the last ``"partial": true``, so a stream that ends early is detected even when the HTTP
  framing looks complete.
- MessagePack (``Accept: application/x-msgpack``) is the same documents, one msgpack map per chunk:
  the same types, errors and ``partial`` marks, so the same guarantees, and the same batches (a
  stream that ends inside a document is an error too).
- CSV has none of that: no ``partial`` marker (only a broken chunked transfer encoding reveals a cut
  stream), no types (a string field holding ``42`` reads as a number, ``true``/``false`` as
  booleans), and InfluxDB 1.6 answers a failed statement such as "database not found" with an
  empty 200, which reads as an empty result. Its ``tags`` column can even read two ways, which is
  refused rather than guessed (see :mod:`rollup.sources.csvrows`).

msgpack is the default because influxd, the bottleneck of a backfill, encodes it with ~20 % less CPU
than JSON (the 2.88M-row export of ``bench/backfill.py``: 13.5 s against 17.7 s, 11.7 s against
14.3 s in another run), and it is smaller and cheaper to read: a ``rollup backfill`` of those rows
took 0.96-0.97 × the time of the raw JSON export of the same run, 1.09-1.29 × reading JSON
(``bench/source_formats.py``, 200k rows with a float field, from a local influxd 1.6 on 2 cores:
msgpack 269k rows/s end to end, JSON 193k, CSV 173k).

Rows of non-negative integers (times and counters) are read without a Python object per value: from
the JSON text by numpy (:mod:`rollup.sources.jsonrows`, ~3M rows/s), from the msgpack bytes by numpy
views in runs of rows encoded alike (:mod:`rollup.sources.msgpackrows`, ~10M rows/s); other rows
are decoded by orjson or the msgpack package; CSV rows go through Python's csv module one by one
(~0.25M rows/s).

Responses are requested uncompressed unless ``compress=True``: on a fast link, gzipping costs
influxd more time than the 3-6x smaller transfer saves (JSON from a local influxd 1.6: 95-135k
rows/s gzipped against 150-215k rows/s plain).

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
split tag is chosen so that this still holds with several queries. CSV batches declare nothing.

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
import msgpack
import orjson
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from rollup.core.batch import Batch
from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.sources.base import SourceQuery, TagMatch
from rollup.sources.csvrows import TextBatcher, texts
from rollup.sources.influxql import build_query, tag_values_query
from rollup.sources.jsonbatch import ObjectBatcher, expect_list, fill_integer_rows, short
from rollup.sources.jsonrows import split_values
from rollup.sources.msgpackrows import MalformedError
from rollup.sources.msgpackrows import documents as msgpack_documents
from rollup.sources.prefetch import read_ahead

log = logging.getLogger(__name__)

Format = Literal["json", "csv", "msgpack"]

_ERROR_TEXT_LIMIT = 500
_ACCEPT = {"json": "application/json", "csv": "application/csv", "msgpack": "application/x-msgpack"}


class _RetryableError(SourceError):
    """A failure before any response body was read: the request can safely be sent again."""


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
        if format not in ("json", "csv", "msgpack"):
            raise ValueError(f"format must be 'json', 'csv' or 'msgpack', got {format!r}")
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
            if self.format == "json":
                documents = self._json_documents(response)
                yield from self._read_documents(documents, ObjectBatcher(query.fields, stream, split_on))
            elif self.format == "msgpack":
                documents = self._msgpack_documents(response)
                yield from self._read_documents(documents, ObjectBatcher(query.fields, stream, split_on))
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
            for series in expect_list(result.get("series", []), "series"):
                if not isinstance(series, dict):
                    raise SourceError(f"unexpected series in the InfluxDB response: {short(series)}")
                for row in expect_list(series.get("values", []), "values"):
                    if not (isinstance(row, list) and len(row) == 2 and all(isinstance(x, str) for x in row)):
                        raise SourceError(f"unexpected tag value in the InfluxDB response: {short(row)}")
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
                "Accept": _ACCEPT[self.format] if chunked else "application/json",
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
            raise SourceError(f"InfluxDB at {self._url} sent an empty response")
        if partial:
            raise SourceError(
                f"the result stream from InfluxDB at {self._url} ended while its last chunk was marked "
                "partial: the result is incomplete"
            )
        if batcher.rows:
            yield batcher.emit()

    def _json_documents(self, response: httpx.Response) -> Iterator[object]:
        for line in _lines(response.iter_bytes()):
            if line.strip():
                yield self._decode(line)

    def _msgpack_documents(self, response: httpx.Response) -> Iterator[object]:
        try:
            yield from msgpack_documents(response.iter_bytes())
        except MalformedError as exc:
            raise SourceError(f"InfluxDB at {self._url} sent malformed msgpack: {exc}") from None

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
            raise SourceError(f"InfluxDB at {self._url} sent malformed JSON: {exc}") from None

    def _results(self, doc: object) -> list[dict[str, Any]]:
        if not isinstance(doc, dict):
            raise SourceError(f"InfluxDB at {self._url} sent an unexpected document: {short(doc)}")
        if "error" in doc:
            raise SourceError(f"InfluxDB at {self._url} reported an error: {doc['error']}")
        results = expect_list(doc.get("results"), "results")
        for result in results:
            if not isinstance(result, dict):
                raise SourceError(f"InfluxDB at {self._url} sent an unexpected result: {short(result)}")
            if "error" in result:
                raise SourceError(f"InfluxDB at {self._url} could not run the query: {result['error']}")
        return results

    # -- CSV --------------------------------------------------------------------------------------

    def _read_csv(self, response: httpx.Response, fields: Sequence[str]) -> Iterator[Batch]:
        batcher = TextBatcher(fields, self._url)
        lines = itertools.chain.from_iterable(map(io.StringIO, texts(response.iter_bytes())))
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


def _error_text(body: bytes) -> str:
    """InfluxDB's error message from a JSON or msgpack (``{"error": …}``) or CSV (``error\\n"…"``)
    body (influxd answers an error in the format asked for)."""
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
        return str(doc["error"])
    text = body.decode("utf-8", "replace").strip()
    rows = [row for row in csv.reader(io.StringIO(text)) if row] if text.startswith("error") else []
    if len(rows) == 2 and rows[0] == ["error"]:
        text = ",".join(rows[1])
    text = text or "(no error text)"
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[:_ERROR_TEXT_LIMIT] + "…"

"""The sink shared by Elasticsearch and OpenSearch (see the package docstring).

On the first write the sink installs its job's index template, unless an identical one is there
(same fingerprint), and refuses to replace a template of another job or tool. Before the first
document of a run goes to an index that already exists, it adds the job's fields to that index's
mapping, so a job that gained an aggregate in the middle of a month can still write to the
month's index (a changed type cannot be added: that is reported as a mapping conflict).

Rows are streamed as documents in batches of ``batch_size`` documents and ``batch_bytes`` bytes.
Connection errors, timeouts, 429 and 5xx are retried with exponential backoff plus jitter
(:mod:`rollup.retry`); so are the documents of a batch that the cluster turned away for now
(per-item 429, 502-504), and only those: if they persist, the :class:`~rollup.errors.SinkError`
is transient. Any other refusal raises a SinkError at once, not transient, with the first few
per-item errors in the message: the runner then marks the window failed. A window is never
reported written unless every one of its documents was accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar, TypeVar

from rollup.core.pipeline import OutputRow
from rollup.errors import SinkError
from rollup.retry import Retry
from rollup.secrets import redact
from rollup.sinks.base import OutputTarget
from rollup.sinks.search.bulk import Failure, Item, MalformedResponseError, batches, body, read_results
from rollup.sinks.search.client import HttpError, SearchClient, UnreachableError
from rollup.sinks.search.documents import Documents
from rollup.sinks.search.index_names import IndexNames
from rollup.sinks.search.profile import SearchSinkProfile
from rollup.sinks.search.template import MANAGED_BY, mapping, template_body

log = logging.getLogger(__name__)

T = TypeVar("T")
SHOWN_ERRORS = 3
"""Per-item errors quoted in a SinkError."""
_AUTH_HINT = (
    " (check the profile's username and password_env/password_file, api_key_env/api_key_file "
    "or token_env/token_file)"
)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UnreachableError) or (isinstance(exc, HttpError) and exc.retryable)


Connect = Callable[[SearchSinkProfile, str], SearchClient]
"""Makes the client of a profile; the string names the sink in errors."""


class SearchSink:
    """Writes one job's rows to an Elasticsearch-compatible cluster through the client ``connect`` makes."""

    product: ClassVar[str] = "search"

    def __init__(self, name: str, profile: SearchSinkProfile, target: OutputTarget, connect: Connect):
        self.name = name
        self.profile = profile
        self.target = target
        self._what = f"{self.product} sink {name!r}"
        self._names = IndexNames.of(profile.index, target.job, target.measurement, target.timezone)
        self._documents = Documents(target)
        self._mapping = mapping(target)
        self._template = template_body(self._names, target, profile.shards, profile.replicas)
        self._client = connect(profile, self._what)  # last: reads the secrets once the job fits
        self._template_ready = not profile.install_template
        self._mapped: set[str] = set()
        self._retry = Retry(profile.retries + 1, profile.backoff)

    # -- Sink ---------------------------------------------------------------------------------

    def write(self, rows: Sequence[OutputRow]) -> int:
        if not rows:
            return 0
        self._install_template()
        written = 0
        for batch in batches(self._items(rows), self.profile.batch_size, self.profile.batch_bytes):
            if self.profile.install_template:
                for index in dict.fromkeys(item.index for item in batch):
                    self._extend_mapping(index)
            self._send(batch)
            written += len(batch)
        return written

    def check(self) -> None:
        try:
            self._client.info()
        except (UnreachableError, HttpError) as exc:
            message = self._text(f"{self.profile.hosts} does not answer as expected: {exc}")
            raise SinkError(message, transient=_retryable(exc)) from exc

    def close(self) -> None:
        self._client.close()

    # -- internals ----------------------------------------------------------------------------

    def _items(self, rows: Sequence[OutputRow]) -> Iterator[Item]:
        for row in rows:
            index = self._names.name(row.window.start)
            try:
                source = self._documents.source(row)
            except SinkError as exc:  # a row that cannot be a document
                raise SinkError(self._text(str(exc)), transient=False) from exc
            yield Item.of(index, self._documents.id(row), row, source)

    def _install_template(self) -> None:
        if self._template_ready:
            return
        name = self._names.template_name
        found = self._call(f"reading index template {name!r}", lambda: self._client.get_template(name))
        meta = (found or {}).get("_meta") or {}
        if found is not None and meta.get("managed_by") != MANAGED_BY:
            raise SinkError(
                self._text(
                    f"index template {name!r} exists and was not made by rollup: change the profile's "
                    f"index pattern ({self.profile.index!r}) or set install_template = false to use "
                    "it as it is"
                ),
                transient=False,
            )
        if found is not None and meta.get("job") != self.target.job:
            raise SinkError(
                self._text(
                    f"index template {name!r} (indices {self._names.wildcard}) belongs to job "
                    f"{meta.get('job')!r}: job {self.target.job!r} cannot share its indices; put {{job}} "
                    f"in the profile's index pattern ({self.profile.index!r})"
                ),
                transient=False,
            )
        if found is None or meta.get("fingerprint") != self._template["_meta"]["fingerprint"]:
            self._call(
                f"installing index template {name!r}", lambda: self._client.put_template(name, self._template)
            )
            log.info("%s: installed index template %s for %s", self._what, name, self._names.wildcard)
        self._template_ready = True

    def _extend_mapping(self, index: str) -> None:
        if index in self._mapped:
            return
        # No such index yet (False): the first document creates it from the template.
        self._call(
            f"adding the job's fields to the mapping of index {index!r}",
            lambda: self._client.put_mapping(index, self._mapping),
        )
        self._mapped.add(index)

    def _send(self, batch: list[Item]) -> None:
        pending = batch

        def attempt() -> None:
            nonlocal pending
            response = self._client.bulk(body(pending))
            try:
                results = read_results(response, pending)
            except MalformedResponseError as exc:
                raise SinkError(self._text(str(exc)), transient=False) from exc
            if results.rejected:
                raise SinkError(self._text(self._rejected(results.rejected, len(batch))), transient=False)
            if results.retry:
                pending = [failure.item for failure in results.retry]
                first = results.retry[0]
                reason = f"{len(pending)} of {len(batch)} documents turned away: {first.reason}"
                raise HttpError(first.status, reason)

        self._call(f"writing {len(batch)} documents", attempt)

    def _rejected(self, failures: list[Failure], sent: int) -> str:
        shown = "; ".join(
            f"{f.item.index}/{f.item.id} {dict(sorted(f.item.row.tags.items()))}: HTTP {f.status} {f.reason}"
            for f in failures[:SHOWN_ERRORS]
        )
        more = f" (first {SHOWN_ERRORS})" if len(failures) > SHOWN_ERRORS else ""
        return f"{len(failures)} of {sent} documents were rejected{more}: {shown}"

    def _call(self, doing: str, action: Callable[[], T]) -> T:
        """``action`` with retries; SinkError (caused by the last error) once it cannot succeed."""
        try:
            return self._retry.call(action, f"{self._what}: {doing}", retryable=_retryable, logger=log)
        except (UnreachableError, HttpError) as exc:
            transient = _retryable(exc)
            if transient:
                hosts = ", ".join(self.profile.hosts)
                message = f"{doing} at {hosts} failed after {self._retry.tried}: {exc}"
            else:
                hint = _AUTH_HINT if isinstance(exc, HttpError) and exc.status in (401, 403) else ""
                if isinstance(exc, HttpError) and exc.status == 413:
                    hint = " (lower batch_bytes or batch_size)"
                message = f"{doing}: {self.product} refused: {exc}{hint}"
            raise SinkError(self._text(message), transient=transient) from exc

    def _text(self, message: str) -> str:
        return redact(f"{self._what}: {message}")

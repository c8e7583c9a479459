"""The sink shared by Elasticsearch and OpenSearch (see the package docstring).

On the first write the sink installs its job's index template, unless an identical one is there
(same fingerprint), and refuses to replace a template of another job or tool. Before the first
document of a run goes to an index that already exists, it adds the job's fields to that index's
mapping, so a job that gained an aggregate in the middle of a month can still write to the
month's index (a changed type cannot be added: that is reported as a mapping conflict).

Rows are streamed as documents in batches of ``batch_size`` documents and ``batch_bytes`` bytes.
Connection errors, timeouts, 429 and 5xx are retried with exponential backoff plus jitter; so are
the documents of a batch that the cluster turned away for now (per-item 429, 502-504), and only
those. Any other refusal raises :class:`~rollup.errors.SinkError` at once, with the first few
per-item errors in the message: the runner then marks the window failed. A window is never
reported written unless every one of its documents was accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from rollup.core.pipeline import OutputRow
from rollup.errors import SinkError
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
MAX_BACKOFF_SECONDS = 30.0
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
        self._backoff = wait_exponential(multiplier=profile.backoff, max=MAX_BACKOFF_SECONDS) + wait_random(
            0, profile.backoff
        )

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
            raise SinkError(self._text(f"{self.profile.hosts} does not answer as expected: {exc}")) from None

    def close(self) -> None:
        self._client.close()

    # -- internals ----------------------------------------------------------------------------

    def _items(self, rows: Sequence[OutputRow]) -> Iterator[Item]:
        for row in rows:
            index = self._names.name(row.window.start)
            yield Item.of(index, self._documents.id(row), row, self._documents.source(row))

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
                )
            )
        if found is not None and meta.get("job") != self.target.job:
            raise SinkError(
                self._text(
                    f"index template {name!r} (indices {self._names.wildcard}) belongs to job "
                    f"{meta.get('job')!r}: job {self.target.job!r} cannot share its indices; put {{job}} "
                    f"in the profile's index pattern ({self.profile.index!r})"
                )
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
                raise SinkError(self._text(str(exc))) from None
            if results.rejected:
                raise SinkError(self._text(self._rejected(results.rejected, len(batch))))
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
        attempts = self.profile.retries + 1
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=self._backoff,
            retry=retry_if_exception(_retryable),
            before_sleep=lambda state: self._log_retry(doing, state),
            reraise=True,
        )
        try:
            return retrying(action)
        except (UnreachableError, HttpError) as exc:
            if _retryable(exc):
                tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
                message = f"{doing} at {', '.join(self.profile.hosts)} failed after {tries}: {exc}"
            else:
                hint = _AUTH_HINT if isinstance(exc, HttpError) and exc.status in (401, 403) else ""
                if isinstance(exc, HttpError) and exc.status == 413:
                    hint = " (lower batch_bytes or batch_size)"
                message = f"{doing}: {self.product} refused: {exc}{hint}"
            raise SinkError(self._text(message)) from exc

    def _log_retry(self, doing: str, state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            self._text(f"{doing}: attempt {state.attempt_number} failed ({failure}); retrying in {wait:.2f}s")
        )

    def _text(self, message: str) -> str:
        return redact(f"{self._what}: {message}")

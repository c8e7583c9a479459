"""Bulk requests: documents as NDJSON ``index`` operations, cut into batches, and their results.

An ``index`` operation with an explicit ``_id`` creates or replaces the document, so sending a
batch again — after a lost response, or on a re-run — never duplicates anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from rollup.core.pipeline import OutputRow

RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""Per-item statuses worth another attempt (a full queue, a shard not available)."""


@dataclass(frozen=True, slots=True)
class Item:
    """One document ready to send."""

    index: str
    id: str
    row: OutputRow
    lines: bytes
    """The action and the document, each on its own line."""

    @classmethod
    def of(cls, index: str, doc_id: str, row: OutputRow, source: Mapping[str, object]) -> Item:
        action = orjson.dumps({"index": {"_index": index, "_id": doc_id}})
        return cls(index, doc_id, row, action + b"\n" + orjson.dumps(source) + b"\n")


def batches(items: Iterable[Item], max_count: int, max_bytes: int) -> Iterator[list[Item]]:
    """Consecutive batches of at most ``max_count`` items and ``max_bytes`` bytes (an item larger
    than ``max_bytes`` goes alone)."""
    batch: list[Item] = []
    size = 0
    for item in items:
        if batch and (len(batch) == max_count or size + len(item.lines) > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item.lines)
    if batch:
        yield batch


def body(items: Sequence[Item]) -> bytes:
    return b"".join(item.lines for item in items)


@dataclass(frozen=True, slots=True)
class Failure:
    item: Item
    status: int
    reason: str


@dataclass(slots=True)
class Results:
    """What a bulk response says about each item sent."""

    retry: list[Failure] = field(default_factory=list)
    rejected: list[Failure] = field(default_factory=list)


class MalformedResponseError(Exception):
    """The response does not account for every item sent."""


def read_results(response: Mapping[str, Any], items: Sequence[Item]) -> Results:
    results = Results()
    answers = response.get("items")
    if not isinstance(answers, list) or len(answers) != len(items):
        count = len(answers) if isinstance(answers, list) else "no"
        raise MalformedResponseError(f"the bulk response lists {count} items for {len(items)} documents sent")
    if response.get("errors") is False:
        return results
    for item, answer in zip(items, answers, strict=True):
        # {"index": {"status": …, "error": …}}: one key, the operation
        outcome = next(iter(answer.values()), None) if isinstance(answer, dict) else None
        status = outcome.get("status") if isinstance(outcome, Mapping) else None
        if not isinstance(outcome, Mapping) or not isinstance(status, int):
            raise MalformedResponseError(f"the bulk response has no status for document {item.id}")
        if status < 300:
            continue
        failure = Failure(item, status, describe_error(outcome.get("error")))
        (results.retry if status in RETRY_STATUSES else results.rejected).append(failure)
    return results


def describe_error(error: object) -> str:
    """``type: reason (caused by type: reason)`` from an error object of either server."""
    if isinstance(error, str):
        return error
    if not isinstance(error, Mapping):
        return "no error details"
    text = ": ".join(str(error[key]) for key in ("type", "reason") if error.get(key))
    cause = error.get("caused_by")
    if isinstance(cause, Mapping):
        text += f" (caused by {describe_error(cause)})"
    return text or "no error details"

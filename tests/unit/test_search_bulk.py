"""Bulk batches by count and size, and reading per-item results."""

from __future__ import annotations

import orjson
import pytest

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window
from rollup.sinks.search.bulk import Item, MalformedResponseError, batches, body, describe_error, read_results

ROW = OutputRow({"host": "a"}, Window(0, 1), 0, {})


def item(n: int, size: int = 10) -> Item:
    return Item.of("idx", f"id{n}", ROW, {"pad": "x" * size})


def test_an_item_is_an_index_action_and_its_document_on_two_lines() -> None:
    action, source, end = item(1, size=1).lines.split(b"\n")
    assert orjson.loads(action) == {"index": {"_index": "idx", "_id": "id1"}}
    assert orjson.loads(source) == {"pad": "x"}
    assert end == b""


def test_batches_hold_at_most_max_count_items() -> None:
    sizes = [len(b) for b in batches((item(n) for n in range(7)), max_count=3, max_bytes=10**6)]
    assert sizes == [3, 3, 1]


def test_batches_hold_at_most_max_bytes_and_a_large_item_goes_alone() -> None:
    items = [item(0, 10), item(1, 10), item(2, 500), item(3, 10)]
    limit = len(items[0].lines) * 2
    got = list(batches(items, max_count=100, max_bytes=limit))
    assert [[i.id for i in b] for b in got] == [["id0", "id1"], ["id2"], ["id3"]]
    assert all(len(body(b)) <= limit for b in got if len(b) > 1)
    assert b"".join(body(b) for b in got) == b"".join(i.lines for i in items)


def test_no_items_no_batches() -> None:
    assert list(batches([], max_count=3, max_bytes=100)) == []


def answer(*statuses: int) -> dict[str, object]:
    items = []
    for n, status in enumerate(statuses):
        outcome: dict[str, object] = {"_id": f"id{n}", "status": status}
        if status >= 300:
            outcome["error"] = {"type": "t", "reason": f"r{n}"}
        items.append({"index": outcome})
    return {"errors": any(s >= 300 for s in statuses), "items": items}


def test_results_split_into_accepted_retry_and_rejected() -> None:
    sent = [item(n) for n in range(5)]
    results = read_results(answer(201, 429, 400, 200, 503), sent)
    assert [(f.item.id, f.status, f.reason) for f in results.retry] == [
        ("id1", 429, "t: r1"),
        ("id4", 503, "t: r4"),
    ]
    assert [(f.item.id, f.status) for f in results.rejected] == [("id2", 400)]


def test_a_response_without_errors_is_not_scanned_item_by_item() -> None:
    results = read_results({"errors": False, "items": [{"index": {}}]}, [item(0)])
    assert results.retry == results.rejected == []


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ({"errors": True}, "lists no items for 1 documents sent"),
        ({"errors": True, "items": []}, "lists 0 items for 1 documents sent"),
        ({"errors": True, "items": [{"index": {"error": "x"}}]}, "no status for document id0"),
        ({"errors": True, "items": ["index"]}, "no status for document id0"),
    ],
)
def test_malformed_responses_are_errors(response: dict[str, object], message: str) -> None:
    with pytest.raises(MalformedResponseError, match=message):
        read_results(response, [item(0)])


def test_error_descriptions_include_the_cause() -> None:
    error = {
        "type": "mapper_parsing_exception",
        "reason": "failed",
        "caused_by": {"type": "nfe", "reason": "x"},
    }
    assert describe_error(error) == "mapper_parsing_exception: failed (caused by nfe: x)"
    assert describe_error("plain text") == "plain text"
    assert describe_error(None) == "no error details"

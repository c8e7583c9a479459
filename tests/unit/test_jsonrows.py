"""Integer rows read as text from InfluxDB's JSON, and the source agreeing with its ordinary decoding."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from rollup.influx import InfluxConnection
from rollup.sources import influxdb
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import InfluxQLSource
from rollup.sources.jsonrows import integer_rows, split_values


def test_rows_of_integers_become_an_int64_array() -> None:
    rows = integer_rows(b"1,2,3],[4,5,6", 3)
    assert rows is not None
    assert rows.dtype == np.int64
    assert rows.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_one_column_and_one_row() -> None:
    assert integer_rows(b"7],[8", 1).tolist() == [[7], [8]]  # type: ignore[union-attr]
    assert integer_rows(b"7,8", 2).tolist() == [[7, 8]]  # type: ignore[union-attr]


def test_numbers_from_2_to_the_63_are_read_as_exact_uint64() -> None:
    rows = integer_rows(b"1,9223372036854775807],[2,18446744073709551614", 2)
    assert rows is not None
    assert rows.dtype == np.uint64
    assert rows.tolist() == [[1, 2**63 - 1], [2, 2**64 - 2]]


@pytest.mark.parametrize(
    ("text", "width"),
    [
        pytest.param(b"1,18446744073709551616", 2, id="beyond-uint64"),
        pytest.param(b"1,18446744073709551615", 2, id="uint64-max-as-numpy-saturates-there"),
        pytest.param(b"1,-2", 2, id="negative"),
        pytest.param(b"1,null", 2, id="null"),
        pytest.param(b"1,2.5", 2, id="float"),
        pytest.param(b"1,1e3", 2, id="exponent"),
        pytest.param(b'1,"7"', 2, id="string"),
        pytest.param(b"1,true", 2, id="boolean"),
        pytest.param(b"1,2],[3", 2, id="short-row"),
        pytest.param(b"1,2,3],[4", 2, id="long-then-short-row"),
        pytest.param(b"1,,3],[4,5,6", 3, id="empty-number"),
        pytest.param(b"1, 2", 2, id="space"),
        pytest.param(b"", 2, id="empty"),
        pytest.param(b'1,2]]},{"a":[[3,4', 2, id="past-the-end"),
    ],
)
def test_anything_but_rows_of_plain_integers_is_refused(text: bytes, width: int) -> None:
    assert integer_rows(text, width) is None


def test_values_are_cut_out_of_each_series_and_replaced_by_their_index() -> None:
    rows: list[list[int]] = [[1, 2], [3, 4]]
    body = {"results": [{"series": [series_of(rows, {"t": "a"}), series_of([[5, 6]], {"t": "b"})]}]}
    split = split_values(orjson.dumps(body))
    assert split is not None
    skeleton, texts = split
    assert texts == [b"1,2],[3,4", b"5,6"]
    doc = orjson.loads(skeleton)
    assert [s["values"] for s in doc["results"][0]["series"]] == [0, 1]
    assert [s["tags"]["t"] for s in doc["results"][0]["series"]] == ["a", "b"]


def test_brackets_in_the_next_series_tags_make_the_text_unusable_not_wrong() -> None:
    body = {"results": [{"series": [series_of([[1, 2]], {"t": "a"}), series_of([[5, 6]], {"t": "]]"})]}]}
    split = split_values(orjson.dumps(body))
    assert split is not None
    assert integer_rows(split[1][0], 2) is None  # the chunk then goes the ordinary way


def series_of(rows: list[list[int]], tags: dict[str, str]) -> dict[str, Any]:
    return {"name": "m", "tags": tags, "columns": ["time", "v"], "values": rows}


def test_a_chunk_without_values_is_left_alone() -> None:
    assert split_values(b'{"results":[{"statement_id":0}]}') is None


# -- the source: the fast way and the ordinary way agree ------------------------------------------

QUERY = SourceQuery("telegraf", "snmp", ("a", "b"), 0, 10**19)


def chunk(*series: dict[str, Any], partial: bool = False) -> bytes:
    result: dict[str, Any] = {"statement_id": 0, "series": list(series)}
    if partial:
        result["partial"] = True
    return orjson.dumps({"results": [result]}) + b"\n"


def series(host: str, rows: list[list[Any]], columns: tuple[str, ...] = ("time", "a", "b")) -> dict[str, Any]:
    return {"name": "snmp", "tags": {"host": host}, "columns": list(columns), "values": rows}


def read(body: bytes, chunk_size: int = 3) -> list[Any]:
    source = InfluxQLSource(
        InfluxConnection(url="http://influx.example:8086", timeout="2s"),
        chunk_size=chunk_size,
        format="json",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body)),
    )
    out = []
    for batch in source.read(QUERY):
        fields = {}
        for name, column in batch.fields.items():
            fields[name] = (
                column.values.dtype.str,
                column.values.tolist(),
                None if column.valid is None else column.valid.tolist(),
                None if column.invalid is None else column.invalid.tolist(),
            )
        out.append(
            (batch.keys, batch.run_lengths.tolist(), batch.time.dtype.str, batch.time.tolist(), fields)
        )
    return out


BODIES = {
    "integers": chunk(series("x", [[1, 5, 6], [2, 7, 8]]), partial=True) + chunk(series("y", [[1, 9, 9]])),
    "split-series": chunk(series("x", [[1, 5, 6], [2, 7, 8]]), partial=True)
    + chunk(series("x", [[3, 9, 9], [4, 10, 10]]), partial=True)
    + chunk(series("y", [[1, 1, 1]])),
    "huge-in-one-block": chunk(series("x", [[1, 2**63, 6], [2, 2**63 + 1, 8]]), partial=True)
    + chunk(series("y", [[1, 3, 4]])),
    "huge-and-negative": chunk(series("x", [[1, 2**63, 6]]), partial=True) + chunk(series("y", [[1, -3, 4]])),
    "float-block": chunk(series("x", [[1, 5, 6]]), partial=True) + chunk(series("y", [[1, 2.5, 4]])),
    "null-block": chunk(series("x", [[1, 5, 6]]), partial=True) + chunk(series("y", [[1, None, 4]])),
    "reordered-columns": chunk(series("x", [[5, 1, 6], [7, 2, 8]], columns=("a", "time", "b"))),
    "missing-column": chunk(series("x", [[1, 5], [2, 7]], columns=("time", "a"))),
    "two-series-one-chunk": chunk(series("x", [[1, 5, 6]]), series("y", [[1, 7, 8], [2, 9, 9]])),
    "mixed-in-one-chunk": chunk(series("x", [[1, 5, 6]]), series("y", [[1, "s", 8]])),
    "markers-in-tags": chunk(series('"values":[[1]]', [[1, 5, 6]]), series("]]", [[1, 7, 8]])),
    "uint64-max": chunk(series("x", [[1, 2**64 - 1, 6]])),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_integer_rows_read_as_text_give_the_batches_of_ordinary_decoding(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = read(BODIES[name])
    monkeypatch.setattr(influxdb, "split_values", lambda line: None)
    assert fast == read(BODIES[name])

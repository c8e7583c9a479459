"""InfluxQLSource's CSV format: the tags column, value conversion and stream structure."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from rollup.core import numbers
from rollup.core.batch import Batch, SeriesKey
from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.sources.base import SourceQuery
from rollup.sources.csvrows import parse_csv_tags, text_column
from rollup.sources.influxdb import InfluxQLSource

QUERY = SourceQuery("db", "m", ("v",), 0, 1000)


def read_csv(body: str, query: SourceQuery = QUERY, chunk_size: int = 10000) -> list[Batch]:
    source = InfluxQLSource(
        InfluxConnection(url="http://influx.example:8086"),
        format="csv",
        chunk_size=chunk_size,
        transport=httpx.MockTransport(lambda request: httpx.Response(200, text=body)),
    )
    return list(source.read(query))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", (), id="no-tags"),
        pytest.param("a=1,b=x", (("a", "1"), ("b", "x")), id="plain-pairs"),
        pytest.param(r"t=a\ b\,c\=d", (("t", "a b,c=d"),), id="escaped-space-comma-equals"),
        pytest.param(r"t=back\\slash", (("t", r"back\\slash"),), id="backslashes-are-literal"),
        pytest.param("t=nl\\\nx", (("t", "nl\\\nx"),), id="backslash-before-newline-is-literal"),
        pytest.param(
            r"a=x\,b=y", (("a", "x\\"), ("b", "y")), id="value-ending-in-backslash-before-sorted-key"
        ),
        pytest.param(r"b=x\,a\=y", (("b", "x,a=y"),), id="escaped-comma-when-key-would-be-out-of-order"),
        pytest.param(r"a\=1", (("a\\", "1"),), id="key-ending-in-backslash"),
        pytest.param(r"a\\=1", (("a\\\\", "1"),), id="key-ending-in-two-backslashes"),
        pytest.param('host=üñï,x="q"', (("host", "üñï"), ("x", '"q"')), id="unicode-and-quotes"),
    ],
)
def test_parse_csv_tags(text: str, expected: SeriesKey) -> None:
    assert parse_csv_tags(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(r"a=2,b=y\,z\ w\=q", id="comma-then-equals-with-a-later-key-in-order"),
        pytest.param(r"k=v\,w\=x", id="escaped-or-backslash-ended-pair"),
    ],
)
def test_parse_csv_tags_refuses_to_guess(text: str) -> None:
    with pytest.raises(SourceError, match="ambiguous tags in InfluxDB's CSV"):
        parse_csv_tags(text)


@pytest.mark.parametrize("text", ["a", "a=b,c", "a=1,=2", "=1", r"a=b\=c=d"])
def test_parse_csv_tags_rejects_malformed(text: str) -> None:
    with pytest.raises(SourceError, match="malformed tags"):
        parse_csv_tags(text)


def test_text_column_integers_exact() -> None:
    column = text_column(["1", "-5", str(2**62 + 1)])
    assert column.values.dtype == np.int64
    assert column.values.tolist() == [1, -5, 2**62 + 1]
    assert column.valid is None


def test_text_column_uint64_exact() -> None:
    column = text_column([str(2**64 - 1), "0"])
    assert column.values.dtype == np.uint64
    assert column.values.tolist() == [2**64 - 1, 0]


def test_text_column_negative_and_huge_integers_stay_exact() -> None:
    column = text_column(["-1", str(2**63 + 1)])
    assert column.kinds is not None
    assert numbers.python_values(column.values, column.kinds) == [-1, 2**63 + 1]


def test_text_column_huge_integer_among_floats_stays_exact() -> None:
    column = text_column([str(2**60 + 1), "2.5", ""])
    assert column.kinds is not None
    assert column.valid is not None
    assert numbers.python_values(column.values, column.kinds)[:2] == [2**60 + 1, 2.5]
    assert column.valid.tolist() == [True, True, False]


def test_text_column_float_makes_float64() -> None:
    column = text_column(["1", "2.5"])
    assert column.values.tolist() == [1.0, 2.5]


def test_text_column_blanks_are_absent() -> None:
    column = text_column(["1", "", str(2**63)])
    assert column.values.dtype == np.uint64
    assert column.values[[0, 2]].tolist() == [1, 2**63]
    assert column.valid is not None
    assert column.valid.tolist() == [True, False, True]
    assert column.invalid is None


def test_text_column_words_and_booleans_are_invalid() -> None:
    column = text_column(["3", "up", "", "true", "1.5"])
    assert column.values[[0, 4]].tolist() == [3.0, 1.5]
    assert column.valid is not None
    assert column.valid.tolist() == [True, False, False, False, True]
    assert column.invalid is not None
    assert column.invalid.tolist() == [False, True, False, True, False]


def test_csv_rows_become_runs_per_tag_set() -> None:
    body = (
        "name,tags,time,v\n"
        'm,"a=1,b=x",10,1\n'
        'm,"a=1,b=x",20,2\n'
        "m,a=2,5,7\n"
        'm,"t=q""uote",1,3\n'
        'm,"t=nl\\\nx",2,4\n'
    )
    (batch,) = read_csv(body)
    assert batch.keys == [(("a", "1"), ("b", "x")), (("a", "2"),), (("t", 'q"uote'),), (("t", "nl\\\nx"),)]
    assert batch.run_lengths.tolist() == [2, 1, 1, 1]
    assert batch.time.tolist() == [10, 20, 5, 1, 2]
    assert batch.fields["v"].values.tolist() == [1, 2, 7, 3, 4]


def test_csv_batches_hold_chunk_size_rows() -> None:
    body = "name,tags,time,v\n" + "".join(f"m,h=a,{t},{t}\n" for t in range(7))
    batches = read_csv(body, chunk_size=3)
    assert [b.rows for b in batches] == [3, 3, 1]
    assert np.concatenate([b.time for b in batches]).tolist() == list(range(7))


def test_csv_columns_are_matched_by_name_even_when_the_header_changes() -> None:
    query = SourceQuery("db", "m", ("a", "b"), 0, 1000)
    body = "name,tags,time,a,b\nm,h=1,1,10,20\n\nname,tags,time,b\nm,h=2,2,30\n"
    (batch,) = read_csv(body, query)
    assert batch.fields["a"].values[0] == 10
    assert batch.fields["a"].valid is not None
    assert batch.fields["a"].valid.tolist() == [True, False]
    assert batch.fields["b"].values.tolist() == [20, 30]


def test_csv_error_row_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="reported an error: database not found: db"):
        read_csv('error\n"database not found: db"\n')


def test_csv_rows_before_a_header_are_a_source_error() -> None:
    with pytest.raises(SourceError, match="before a header"):
        read_csv("m,h=1,1,10\n")


def test_csv_row_of_the_wrong_width_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="has 5 columns, its header 4"):
        read_csv("name,tags,time,v\nm,h=1,1,10\nm,h=1,2,10,11\n")


def test_csv_non_integer_time_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="not integer epoch nanoseconds"):
        read_csv("name,tags,time,v\nm,h=1,2023-11-14T22:13:20Z,10\n")


def test_csv_empty_body_is_an_empty_result() -> None:
    assert read_csv("") == []


@pytest.mark.parametrize("size", [1, 3, 64])
def test_csv_body_arriving_in_small_pieces_reads_the_same(size: int) -> None:
    body = 'name,tags,time,v\nm,"t=ü,u=a\\,b",1,1\nm,"t=nl\\\nx",2,2\n'.encode()

    class Pieces(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            for start in range(0, len(body), size):
                yield body[start : start + size]

    source = InfluxQLSource(
        InfluxConnection(url="http://influx.example:8086"),
        format="csv",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, stream=Pieces())),
    )
    (batch,) = source.read(QUERY)
    assert batch.keys == [(("t", "ü"), ("u", "a,b")), (("t", "nl\\\nx"),)]
    assert batch.fields["v"].values.tolist() == [1, 2]

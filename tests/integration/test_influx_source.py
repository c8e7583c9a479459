"""InfluxQLSource against a real influxd: round trips, tag filters and escaping, auth, server errors."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from rollup.core.batch import Batch, SeriesKey, SeriesOrder
from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.sources.base import SourceQuery, TagMatch
from rollup.sources.influxdb import Format, InfluxQLSource
from scripts.servers import RunningServer, start_influxd
from tests.conftest import InfluxHelper

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
FORMATS: tuple[Format, ...] = ("json", "msgpack")

Row = tuple[SeriesKey, int, tuple[object, ...]]


def rows_of(batches: Iterable[Batch], fields: tuple[str, ...]) -> list[Row]:
    """Every row as (series key, time, field values); None when absent, "invalid" when not a number."""
    rows: list[Row] = []
    for batch in batches:
        index = 0
        for key, length in zip(batch.keys, batch.run_lengths.tolist(), strict=True):
            for i in range(index, index + length):
                values: list[object] = []
                for name in fields:
                    column = batch.fields[name]
                    if column.invalid is not None and column.invalid[i]:
                        values.append("invalid")
                    elif column.valid is not None and not column.valid[i]:
                        values.append(None)
                    else:
                        values.append(column.values[i].item())
                rows.append((key, int(batch.time[i]), tuple(values)))
            index += length
    return rows


def lp_tag(value: str) -> str:
    """A tag value in influxd 1.6's line protocol (backslashes are taken literally there)."""
    return value.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def go_quote_meta(value: str) -> str:
    """Go's regexp.QuoteMeta: an RE2 pattern matching ``value`` literally."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", value)


def source_for(server_url: str, **options: object) -> InfluxQLSource:
    return InfluxQLSource(InfluxConnection(url=server_url), attempts=1, **options)  # type: ignore[arg-type]


# -- round trips ------------------------------------------------------------------------------------

ROUND_TRIP_FIELDS = ("in", "temp", "state")


@pytest.fixture
def ifstats(influx: InfluxHelper) -> list[Row]:
    """Points of five series (one split over many chunks) and the rows expected back."""
    expected: list[Row] = []
    lines: list[str] = []
    tagsets = [
        {"host": "r1", "ifname": "eth0"},
        {"host": "r1", "ifname": "eth1"},
        {"host": "r2", "ifname": "Gi0/1 uplink, core=1"},
        {"host": "r2", "ifname": "üñï'\"q"},
        {"host": "r3"},
    ]
    for s, tags in enumerate(tagsets):
        tag_text = ",".join(f"{k}={lp_tag(v)}" for k, v in sorted(tags.items()))
        for i in range(7 if s == 0 else 2):
            t = T0 + i * 60 * S
            counter = 2**63 - 1 - i if s == 1 else i * 1000 + s
            fields = [f"in={counter}i"]
            values: list[object] = [counter, None, None]
            if i % 2 == 0:
                fields.append(f"temp={20.5 + i}")
                values[1] = 20.5 + i
            if s == 4 and i == 1:
                fields.append('state="down"')
                values[2] = "invalid"
            lines.append(f"ifstats,{tag_text} {','.join(fields)} {t}")
            expected.append((tuple(sorted(tags.items())), t, tuple(values)))
    influx.write(lines)
    return sorted(expected, key=lambda row: (row[0], row[1]))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk_size", [3, 10000])
def test_round_trip(influx: InfluxHelper, ifstats: list[Row], fmt: Format, chunk_size: int) -> None:
    source = source_for(influx.url, format=fmt, chunk_size=chunk_size)
    query = SourceQuery(influx.database, "ifstats", ROUND_TRIP_FIELDS, T0, T0 + 3600 * S)
    batches = list(source.read(query))
    rows = rows_of(batches, ROUND_TRIP_FIELDS)
    assert sorted(rows, key=lambda row: (row[0], row[1])) == ifstats
    if chunk_size == 3:
        assert len(batches) > 3
        assert max(batch.rows for batch in batches) <= 2 * chunk_size
    # every series arrives in one piece, time-ordered
    keys = [row[0] for row in rows]
    assert len(set(keys)) == len([k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k])
    for before, after in itertools.pairwise(rows):
        if before[0] == after[0]:
            assert before[1] < after[1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_integers_stay_exact_and_types_are_kept(
    influx: InfluxHelper, ifstats: list[Row], fmt: Format
) -> None:
    source = source_for(influx.url, format=fmt)
    query = SourceQuery(
        influx.database, "ifstats", ("in",), T0, T0 + 3600 * S, where={"ifname": TagMatch(("eth1",))}
    )
    (batch,) = source.read(query)
    assert batch.fields["in"].values.dtype.kind == "i"
    assert batch.fields["in"].values.tolist() == [2**63 - 1, 2**63 - 2]


@pytest.mark.parametrize("chunk_size", [1, 3, 10000])
@pytest.mark.parametrize("query_fields", [ROUND_TRIP_FIELDS, ("in",)])
def test_msgpack_gives_the_same_batches_as_json(
    influx: InfluxHelper, ifstats: list[Row], chunk_size: int, query_fields: tuple[str, ...]
) -> None:
    """Integer rows (the numpy fast path: an int64 counter near 2^63, small ones), floats, nulls
    and a string, over many chunks or one: batch for batch the same as JSON's."""
    query = SourceQuery(influx.database, "ifstats", query_fields, T0, T0 + 3600 * S)
    as_json = list(source_for(influx.url, format="json", chunk_size=chunk_size).read(query))
    as_msgpack = list(source_for(influx.url, format="msgpack", chunk_size=chunk_size).read(query))
    assert len(as_msgpack) == len(as_json)
    for a, b in zip(as_json, as_msgpack, strict=True):
        assert b.keys == a.keys
        assert b.run_lengths.tolist() == a.run_lengths.tolist()
        assert b.time.tolist() == a.time.tolist()
        for name in query_fields:
            x, y = a.fields[name], b.fields[name]
            assert y.values.dtype == x.values.dtype
            for mask in ("valid", "invalid"):
                mx, my = getattr(x, mask), getattr(y, mask)
                assert (None if my is None else my.tolist()) == (None if mx is None else mx.tolist())
            usable = x.valid if x.valid is not None else slice(None)
            assert y.values[usable].tolist() == x.values[usable].tolist()
    assert sorted(rows_of(as_msgpack, query_fields)) == sorted(rows_of(as_json, query_fields))


def test_time_range_is_half_open(influx: InfluxHelper, ifstats: list[Row]) -> None:
    source = source_for(influx.url)
    query = SourceQuery(
        influx.database, "ifstats", ("in",), T0 + 60 * S, T0 + 180 * S, where={"ifname": TagMatch(("eth0",))}
    )
    assert [row[1] for row in rows_of(source.read(query), ("in",))] == [T0 + 60 * S, T0 + 120 * S]


def test_tag_filters_select_series(influx: InfluxHelper, ifstats: list[Row]) -> None:
    source = source_for(influx.url)

    def hosts_and_ifnames(where: dict[str, TagMatch]) -> set[SeriesKey]:
        query = SourceQuery(influx.database, "ifstats", ("in",), T0, T0 + 3600 * S, where=where)
        return {row[0] for row in rows_of(source.read(query), ("in",))}

    assert hosts_and_ifnames({"host": TagMatch(("r1", "r3"))}) == {
        (("host", "r1"), ("ifname", "eth0")),
        (("host", "r1"), ("ifname", "eth1")),
        (("host", "r3"),),
    }
    assert hosts_and_ifnames({"host": TagMatch(("r1",)), "ifname": TagMatch(regex="1$")}) == {
        (("host", "r1"), ("ifname", "eth1")),
    }
    assert hosts_and_ifnames({"ifname": TagMatch(regex="^eth", negate=True)}) == {
        (("host", "r2"), ("ifname", "Gi0/1 uplink, core=1")),
        (("host", "r2"), ("ifname", "üñï'\"q")),
        (("host", "r3"),),
    }


# -- escaping and injection -------------------------------------------------------------------------

ODD_VALUES = [
    "plain",
    "it's",
    'dq"uote',
    "back\\slash",
    "q\\'x",
    "nl\\\nx",
    "cr\rx",
    "with space",
    "com,ma",
    "eq=ual",
    "a/b",
    "üñï\u0085\u2028",
    "x' OR 1=1 --",
    'a" OR "b',
    "dot.star*",
]


@pytest.fixture
def odd(influx: InfluxHelper) -> dict[str, int]:
    """One series per awkward tag value, its number as the field value."""
    influx.write([f"odd,t={lp_tag(value)} v={i}i {T0}" for i, value in enumerate(ODD_VALUES)])
    written = {row["t"]: row["v"] for row in influx.points("odd")}
    assert written == {value: i for i, value in enumerate(ODD_VALUES)}
    return {value: i for i, value in enumerate(ODD_VALUES)}


def select_odd(influx: InfluxHelper, match: TagMatch) -> dict[str, object]:
    source = source_for(influx.url)
    query = SourceQuery(influx.database, "odd", ("v",), T0, T0 + S, where={"t": match})
    return {dict(key)["t"]: values[0] for key, _, values in rows_of(source.read(query), ("v",))}


@pytest.mark.parametrize("value", ODD_VALUES)
def test_equality_filter_selects_exactly_the_value(
    influx: InfluxHelper, odd: dict[str, int], value: str
) -> None:
    assert select_odd(influx, TagMatch((value,))) == {value: odd[value]}


@pytest.mark.parametrize("value", ODD_VALUES)
def test_negated_filter_selects_everything_else(
    influx: InfluxHelper, odd: dict[str, int], value: str
) -> None:
    assert select_odd(influx, TagMatch((value,), negate=True)) == {k: v for k, v in odd.items() if k != value}


@pytest.mark.parametrize("value", ODD_VALUES)
def test_regex_filter_matches_the_literal_value(
    influx: InfluxHelper, odd: dict[str, int], value: str
) -> None:
    assert select_odd(influx, TagMatch(regex="^" + go_quote_meta(value) + "$")) == {value: odd[value]}


def test_regex_ending_in_a_backslash_is_safe(influx: InfluxHelper, odd: dict[str, int]) -> None:
    assert select_odd(influx, TagMatch(regex="^back\\\\")) == {"back\\slash": odd["back\\slash"]}
    with pytest.raises(SourceError, match="HTTP 400"):
        select_odd(influx, TagMatch(regex="slash\\"))


@pytest.mark.parametrize(
    "attempt",
    [
        TagMatch(("nope' OR 't' = 't",)),
        TagMatch(("nope' OR 1=1 --",)),
        TagMatch(('nope" OR "t" != \'\'',)),
        TagMatch(("nope') OR ('1' = '1",)),
        TagMatch(regex='nope/ OR "t" =~ /.*'),
        TagMatch(regex='nope\\/ OR time > 0 OR "t" =~ /.*'),
    ],
)
def test_injection_attempts_select_nothing(
    influx: InfluxHelper, odd: dict[str, int], attempt: TagMatch
) -> None:
    assert select_odd(influx, attempt) == {}


def test_odd_names_are_quoted(influx: InfluxHelper) -> None:
    influx.write(f'we\\ ird\\,"m,t\\=ag=1 f\\ i"e\\=ld=5i {T0}')
    source = source_for(influx.url)
    query = SourceQuery(
        influx.database, 'we ird,"m', ('f i"e=ld',), T0, T0 + S, where={"t=ag": TagMatch(("1",))}
    )
    assert rows_of(source.read(query), ('f i"e=ld',)) == [((("t=ag", "1"),), T0, (5,))]


# -- server errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_database_not_found_is_a_source_error(influx: InfluxHelper, fmt: Format) -> None:
    source = source_for(influx.url, format=fmt)
    with pytest.raises(SourceError, match="database not found: no_such_db"):
        list(source.read(SourceQuery("no_such_db", "m", ("v",), T0, T0 + S)))


def test_check_pings_the_real_server(influx: InfluxHelper) -> None:
    source_for(influx.url).check()


# -- authentication ---------------------------------------------------------------------------------

ADMIN_PASSWORD = "correct-h0rse-battery"


@pytest.fixture(scope="module")
def secured_influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_influxd(Path(tmp_path_factory.mktemp("influxd-auth")), auth=True)
    try:
        response = httpx.post(
            f"{server.url}/query",
            data={"q": f"CREATE USER admin WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES"},
            timeout=30,
        )
        response.raise_for_status()
        auth = ("admin", ADMIN_PASSWORD)
        httpx.post(
            f"{server.url}/query", data={"q": "CREATE DATABASE secure"}, auth=auth, timeout=30
        ).raise_for_status()
        written = httpx.post(
            f"{server.url}/write", params={"db": "secure"}, content=f"m,h=a v=1i {T0}", auth=auth, timeout=30
        )
        assert written.status_code == 204, written.text
        yield server
    finally:
        server.stop()


def secured_source(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, password: str, fmt: Format
) -> InfluxQLSource:
    monkeypatch.setenv("ROLLUP_TEST_INFLUX_PASSWORD", password)
    connection = InfluxConnection(
        url=server.url, username="admin", password_env="ROLLUP_TEST_INFLUX_PASSWORD"
    )
    return InfluxQLSource(connection, format=fmt, attempts=1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_right_password_reads(
    secured_influxd: RunningServer, monkeypatch: pytest.MonkeyPatch, fmt: Format
) -> None:
    source = secured_source(secured_influxd, monkeypatch, ADMIN_PASSWORD, fmt)
    assert rows_of(source.read(SourceQuery("secure", "m", ("v",), T0, T0 + S)), ("v",)) == [
        ((("h", "a"),), T0, (1,))
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_password_says_authorization_failed_without_the_password(
    secured_influxd: RunningServer, monkeypatch: pytest.MonkeyPatch, fmt: Format
) -> None:
    wrong = "not-the-Pa55word"
    source = secured_source(secured_influxd, monkeypatch, wrong, fmt)
    with pytest.raises(SourceError) as caught:
        list(source.read(SourceQuery("secure", "m", ("v",), T0, T0 + S)))
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "authorization failed" in message
    assert wrong not in message
    assert ADMIN_PASSWORD not in message


def test_missing_credentials_are_refused(secured_influxd: RunningServer) -> None:
    source = source_for(secured_influxd.url)
    with pytest.raises(SourceError, match="HTTP 401: unable to parse authentication credentials"):
        list(source.read(SourceQuery("secure", "m", ("v",), T0, T0 + S)))


# -- several queries in flight ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("concurrency", [2, 3, 10])
def test_concurrent_subsets_read_every_row_exactly_once(
    influx: InfluxHelper, ifstats: list[Row], fmt: Format, concurrency: int
) -> None:
    source = source_for(influx.url, format=fmt, chunk_size=3, concurrency=concurrency)
    query = SourceQuery(influx.database, "ifstats", ROUND_TRIP_FIELDS, T0, T0 + 3600 * S)
    rows = rows_of(source.read(query), ROUND_TRIP_FIELDS)
    assert sorted(rows, key=lambda row: (row[0], row[1])) == ifstats
    for key in {row[0] for row in rows}:  # each series time-ordered, however the streams interleave
        times = [t for k, t, _ in rows if k == key]
        assert times == sorted(times)


def test_concurrent_subsets_keep_the_query_filters(influx: InfluxHelper, ifstats: list[Row]) -> None:
    source = source_for(influx.url, chunk_size=3, concurrency=2)
    where = {"ifname": TagMatch(("eth0",), negate=True)}
    query = SourceQuery(influx.database, "ifstats", ("in",), T0, T0 + 3600 * S, where=where)
    rows = rows_of(source.read(query), ("in",))
    expected = [(k, t, v[:1]) for k, t, v in ifstats if dict(k).get("ifname") != "eth0"]
    assert sorted(rows, key=lambda row: (row[0], row[1])) == expected


def test_subsets_split_on_a_grouping_tag_else_the_tag_with_most_values(
    influx: InfluxHelper, ifstats: list[Row]
) -> None:
    source = source_for(influx.url, concurrency=2)
    query = SourceQuery(influx.database, "ifstats", ("in",), T0, T0 + 3600 * S)
    # ifname has 4 values, host 3: without a hint, ifname; the last subset takes everything else
    # (here host r3, which has no ifname, and any value written since).
    first, rest = source._subsets(query)
    assert first == (("ifname", TagMatch(("Gi0/1 uplink, core=1", "eth0"))),)
    assert rest == (("ifname", TagMatch(("Gi0/1 uplink, core=1", "eth0"), negate=True)),)
    grouped = SourceQuery(influx.database, "ifstats", ("in",), T0, T0 + 3600 * S, together=("host",))
    first, rest = source._subsets(grouped)
    assert first == (("host", TagMatch(("r1", "r2"))),)
    assert rest == (("host", TagMatch(("r1", "r2"), negate=True)),)


# -- the order of series ----------------------------------------------------------------------------

ORDER_TAGSETS = [
    {"host": "a"},
    {"host": "a", "zone": "1"},
    {"host": "a", "ifname": "p"},
    {"host": "a", "ifname": "p", "zone": "2"},
    {"host": "a", "alias": "x", "ifname": "q"},
    {"host": "a", "alias": "y", "ifname": "p"},
    {"host": "a b", "ifname": "p"},
    {"host": "a!", "ifname": "p"},
    {"host": "a,c", "ifname": "p"},
    {"host": "a0"},
    {"host": "Z"},
    {"host": "é"},
    {"ifname": "p"},
    {"aaa": "1", "ifname": "q"},
    {"zone": "0"},
]


@pytest.fixture
def unordered(influx: InfluxHelper) -> list[dict[str, str]]:
    """Series whose tags are missing here and there or sort in tricky ways, written shuffled."""
    shuffled = ORDER_TAGSETS[:]
    random.Random(3).shuffle(shuffled)
    lines = [
        f"m,{','.join(f'{k}={lp_tag(v)}' for k, v in sorted(tags.items()))} v={i}i {T0 + j * S}"
        for i, tags in enumerate(shuffled)
        for j in range(4)
    ]
    influx.write(lines)
    return ORDER_TAGSETS


def order_key(key: SeriesKey, tag_keys: tuple[str, ...]) -> tuple[str, ...]:
    tags = dict(key)
    return tuple(tags.get(name, "") for name in tag_keys)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
@pytest.mark.parametrize("chunk_size", [1, 3, 10000])
def test_batches_declare_the_order_influxd_sends_series_in(
    influx: InfluxHelper, unordered: list[dict[str, str]], fmt: Format, chunk_size: int
) -> None:
    """GROUP BY * sorts series by their values of every tag key (keys sorted, a missing tag as ""),
    by code point: the order the batches declare, with every key of the measurement."""
    source = source_for(influx.url, format=fmt, chunk_size=chunk_size)
    batches = list(source.read(SourceQuery(influx.database, "m", ("v",), T0, T0 + 60 * S)))
    tag_keys = ("aaa", "alias", "host", "ifname", "zone")
    assert {batch.order for batch in batches} == {SeriesOrder(tag_keys)}
    assert {batch.stream for batch in batches} == {0}
    keys = [key for key, _, _ in rows_of(batches, ("v",))]
    series = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
    assert len(series) == len(unordered)
    assert [order_key(k, tag_keys) for k in series] == sorted(order_key(k, tag_keys) for k in series)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_concurrent_streams_are_numbered_each_in_the_declared_order_split_on_the_first_group_tag(
    influx: InfluxHelper, unordered: list[dict[str, str]], fmt: Format
) -> None:
    source = source_for(influx.url, format=fmt, chunk_size=2, concurrency=2)
    query = SourceQuery(influx.database, "m", ("v",), T0, T0 + 60 * S, together=("ifname", "host"))
    batches = list(source.read(query))
    tag_keys = ("aaa", "alias", "host", "ifname", "zone")
    assert {batch.order for batch in batches} == {SeriesOrder(tag_keys, split_on="host")}
    assert {batch.stream for batch in batches} == {0, 1}
    hosts: list[set[str]] = []
    for stream in (0, 1):
        keys = [key for key, _, _ in rows_of([b for b in batches if b.stream == stream], ("v",))]
        series = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
        assert [order_key(k, tag_keys) for k in series] == sorted(order_key(k, tag_keys) for k in series)
        hosts.append({dict(k).get("host", "") for k in series})
    assert not hosts[0] & hosts[1]  # a host's series all come in one stream

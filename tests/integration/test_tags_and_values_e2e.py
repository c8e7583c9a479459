"""Awkward tags and values through the real command, a real influxd and a search server.

* Tag values with quotes, backslashes, spaces, commas, ``=``, tabs and Unicode (and a tag key
  with a space) are selected by a job's ``where`` and come out unchanged in InfluxDB and in
  Elasticsearch.
* A tag value influxd holds but line protocol cannot carry (a backslash before a newline) fails
  the window for the InfluxDB sink with a message naming it; Elasticsearch takes it unchanged.
* ``where`` values and regexes built to inject InfluxQL select nothing and execute nothing.
* A field that holds strings or booleans (InfluxDB types a field per shard, so one hour of it can
  be text) is skipped and counted in ``<field>_invalid``, never written as a value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import dates
from tests.conftest import InfluxHelper, SearchHelper
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
MONDAY = dates.monday(7)
"""The UTC day the points are on: a Monday at least a week ago."""
DAY1 = dates.seconds(MONDAY)
NOW = {"ROLLUP_NOW": dates.utc_minute(DAY1 + 86400 + 30 * 60)}
ODD = [
    'say "hi"',
    "it's",
    r"C:\Program Files\x",
    r"a\,b",
    "a b",
    "c,d",
    "e=f",
    "tab\there",
    "zürich ☃ 日本語 😀",
    "x' OR host =~ /.*/ OR host = 'y",
    "\\lead",
]
UNWRITABLE = "z\\\n"
"""A backslash and a newline: influxd stores it as a tag value, line protocol cannot write it back."""


def lp(text: str) -> str:
    """A tag key or value in line protocol, escaped independently of rollup's serializer."""
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


@pytest.fixture
def search(elasticsearch_url: str) -> Iterator[SearchHelper]:
    helper = SearchHelper("elasticsearch", elasticsearch_url, f"odd-{os.getpid()}")
    yield helper
    helper.clean()
    helper.http.close()


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper, search: SearchHelper) -> Workspace:
    lines = []
    for number, host in enumerate([*ODD, UNWRITABLE]):
        for k in range(-1, 144):
            # a raw line: lp() would escape the backslash-newline pair's neighbours, not the pair
            tag = "z\\\n" if host == UNWRITABLE else lp(host)
            lines.append(
                f"odd,host={tag},{lp('port id')}=1 octets={k * 600 * (number + 1)}i {(DAY1 + k * 600) * S}"
            )
    influx.write(lines)
    hosts = {row["host"] for row in influx.points("odd")}
    assert hosts == {*ODD, UNWRITABLE}, "influxd holds every value as written"
    made = Workspace(tmp_path / "ws", influx.url, influx.database)
    made.sink(
        "search",
        f"""
        type = "elasticsearch"
        url = "{search.url}"
        index = "{search.prefix}-{{job}}-{{yyyy.MM}}"
        """,
    )
    return made


def job(workspace: Workspace, name: str, where: str, sinks: str) -> None:
    workspace.job(
        name,
        f"""
        group_by = ["host", "port id"]

        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "odd"
        where = {{ {where} }}

        [window]
        every = "1d"
        lookback = "10m"

        [fields.octets]
        aggregates = ["mean"]

        [output]
        measurement = "{name}_daily"
        sinks = {sinks}
        """,
    )


def backfill(workspace: Workspace, name: str) -> Any:
    return workspace.run("backfill", name, *dates.range_options(MONDAY), env=NOW)


def test_odd_tag_values_are_selected_and_written_unchanged_to_influxdb_and_elasticsearch(
    workspace: Workspace, influx: InfluxHelper, search: SearchHelper
) -> None:
    job(workspace, "odd", f"host = [{', '.join(toml(v) for v in ODD)}]", '["out", "search"]')
    result = backfill(workspace, "odd")
    assert result.code == 0, result.stderr

    expected = {(host, "1", float(number + 1)) for number, host in enumerate(ODD)}
    points = influx.points("odd_daily", database=workspace.out_database)
    assert {(p["host"], p["port id"], p["octets_mean"]) for p in points} == expected
    documents = [hit["_source"] for hit in search.documents()]
    assert {(d["host"], d["port id"], d["octets_mean"]) for d in documents} == expected


def test_a_tag_value_line_protocol_cannot_carry_fails_the_window_clearly_and_is_never_altered(
    workspace: Workspace, influx: InfluxHelper, search: SearchHelper
) -> None:
    job(workspace, "unwritable", f"host = {toml(UNWRITABLE)}", '["out"]')
    result = backfill(workspace, "unwritable")
    assert result.code == 1
    refused = r"tag 'host'='z\\\n' cannot be written in InfluxDB line protocol (it contains a newline"
    assert refused in result.stderr, result.stderr
    assert influx.query("SHOW MEASUREMENTS", database=workspace.out_database) == []

    job(workspace, "unwritable", f"host = {toml(UNWRITABLE)}", '["search"]')
    result = workspace.run("backfill", "unwritable", *dates.range_options(MONDAY), "--force", env=NOW)
    assert result.code == 0, result.stderr
    [document] = [hit["_source"] for hit in search.documents()]
    assert document["host"] == UNWRITABLE


@pytest.mark.parametrize(
    "where",
    [
        toml("nope' OR host =~ /.*/ OR host = 'x"),
        toml('x\'; DROP MEASUREMENT "odd"; SELECT * FROM "odd" WHERE host = \'x'),
        toml('x" OR "host" != \''),
        "{ regex = " + toml("^$/ OR host =~ /.*") + " }",
        "{ regex = " + toml("^$/; DROP MEASUREMENT odd; SELECT * FROM odd WHERE host =~ /x") + " }",
        "{ not = [" + toml("x' AND host = 'nope") + ", " + toml(UNWRITABLE) + "] }",
    ],
    ids=["or", "drop", "double-quote", "regex-or", "regex-drop", "not"],
)
def test_a_where_filter_built_to_inject_influxql_selects_nothing_and_executes_nothing(
    workspace: Workspace, influx: InfluxHelper, where: str
) -> None:
    job(workspace, "inject", f"host = {where}", '["out"]')
    result = backfill(workspace, "inject")
    assert result.code == 0, result.stderr
    points = influx.points("inject_daily", database=workspace.out_database)
    if where.startswith("{ not"):  # every series but the unwritable one: none has the other value
        assert len(points) == len(ODD)
    else:
        assert points == []
        assert "1 window(s) done (1 empty)" in result.stderr  # said once, in the summary
    assert {row["host"] for row in influx.points("odd")} == {*ODD, UNWRITABLE}, "the raw data is intact"


def test_strings_and_booleans_in_a_numeric_field_are_skipped_and_counted_not_written(
    tmp_path: Path, influx: InfluxHelper
) -> None:
    """Hourly shards: ``temp`` is a float in hour 0, a string in hour 1, a boolean in hour 2."""
    policy = "DURATION INF REPLICATION 1 SHARD DURATION 1h"
    influx.query(f'CREATE RETENTION POLICY "hourly" ON "{influx.database}" {policy}')
    temps = {0: lambda k: f"{21.5 + k % 2}", 1: lambda k: '"n/a"', 2: lambda k: "true"}
    for hour, temp in temps.items():
        first = DAY1 + hour * 3600
        lines = [
            f"sensor,host=a octets={(hour * 12 + k) * 300}i,temp={temp(k)} {(first + k * 300) * S}"
            for k in range(12)
        ]
        written = httpx.post(
            f"{influx.url}/write", params={"db": influx.database, "rp": "hourly"}, content="\n".join(lines)
        )
        assert written.status_code == 204, written.text
    workspace = Workspace(tmp_path / "ws", influx.url, influx.database)
    workspace.job(
        "temps",
        f"""
        [source]
        profile = "buffer"
        database = "{influx.database}"
        retention_policy = "hourly"
        measurement = "sensor"

        [window]
        every = "1h"
        lookback = "0s"

        [fields.octets]
        aggregates = ["mean"]

        [fields.temp]
        kind = "gauge"
        aggregates = ["mean", "min", "max"]

        [output]
        measurement = "temps"
        sinks = ["out"]
        """,
    )
    for hour in temps:  # a query reads one type per field from influxd: the first shard's
        start = dates.utc_minute(DAY1 + hour * 3600)
        end = dates.utc_minute(DAY1 + (hour + 1) * 3600)
        result = workspace.run("backfill", "temps", "--start", start, "--end", end, env=NOW)
        assert result.code == 0, result.stderr

    points = sorted(
        influx.points("temps", database=workspace.out_database), key=lambda p: str(p["time"]).zfill(20)
    )
    assert [p["time"] for p in points] == [(DAY1 + hour * 3600) * S for hour in temps]
    numeric, text, boolean = points
    assert (numeric["temp_samples"], numeric["temp_invalid"], numeric["temp_min"], numeric["temp_max"]) == (
        12, 0, 21.5, 22.5
    )  # fmt: skip
    for invalid in (text, boolean):
        assert (invalid["temp_samples"], invalid["temp_invalid"]) == (0, 12)
        assert not {"temp_mean", "temp_min", "temp_max"} & set(invalid), "nothing is written for them"
        assert invalid["octets_mean"] == 1.0, "the other field of the same points is still read"

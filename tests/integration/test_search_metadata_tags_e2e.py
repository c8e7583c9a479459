"""A tag named like an Elasticsearch/OpenSearch metadata field (``_id``, ``_routing`` …), through the
real command, a real influxd and both search servers: refused with the tag's name and the reason,
never written into a document, and the same data still goes to InfluxDB."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tests.conftest import InfluxHelper, SearchHelper
from tests.integration.workspace import CliResult, Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
DAY1 = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp())
NOW = {"ROLLUP_NOW": "2026-11-03T00:30Z"}
REASON = "Elasticsearch and OpenSearch reserve names starting with '_' for metadata fields"


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper, search: SearchHelper) -> Workspace:
    influx.write(
        [
            f"meta,host=a,_id=x{k % 2},_routing=r octets={k * 600}i {(DAY1 + k * 600) * S}"
            for k in range(-1, 144)
        ]
    )
    assert {row["_id"] for row in influx.points("meta")} == {"x0", "x1"}, "influxd holds such tags"
    made = Workspace(tmp_path / "ws", influx.url, influx.database)
    made.sink(
        "search",
        f'type = "{search.flavor}"\nurl = "{search.url}"\nindex = "{search.prefix}-{{job}}-{{yyyy.MM}}"\n',
    )
    return made


def run_job(workspace: Workspace, group_by: str, sinks: str) -> CliResult:
    workspace.job(
        "meta",
        f"""
        {group_by}
        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "meta"

        [window]
        every = "1d"

        [fields.octets]
        aggregates = ["mean"]

        [output]
        measurement = "meta_daily"
        sinks = {sinks}
        """,
    )
    return workspace.run(
        "backfill", "meta", "--start", "2026-11-02", "--end", "2026-11-03", "--force", env=NOW
    )


def test_a_group_by_tag_named_like_a_metadata_field_is_refused_before_anything_is_written(
    workspace: Workspace, search: SearchHelper
) -> None:
    result = run_job(workspace, 'group_by = ["host", "_id"]', '["search"]')
    assert result.code == 2  # a configuration error: nothing ran
    assert f"job meta: group_by tag(s) _id cannot be document fields: {REASON}" in result.stderr
    assert search.indices() == []
    assert search.templates() == {}


def test_a_series_tag_named_like_a_metadata_field_fails_the_window_naming_it_and_writes_no_document(
    workspace: Workspace, influx: InfluxHelper, search: SearchHelper
) -> None:
    result = run_job(workspace, "", '["search"]')
    assert result.code == 1
    row = rf"{search.flavor_name} sink 'search': row \{{'_id': 'x[01]', '_routing': 'r', 'host': 'a'\}}: "
    assert re.search(row + re.escape(f"tag '_id' cannot be a document field: {REASON}"), result.stderr)
    assert search.indices() == []

    result = run_job(workspace, "", '["out"]')  # InfluxDB has no such reserved names
    assert result.code == 0, result.stderr
    points = influx.points("meta_daily", database=workspace.out_database)
    assert {(p["_id"], p["_routing"], p["host"]) for p in points} == {("x0", "r", "a"), ("x1", "r", "a")}

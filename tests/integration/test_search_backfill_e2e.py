"""End to end: raw points in a real influxd → `rollup backfill` subprocess → documents in a real
Elasticsearch- or OpenSearch-compatible server (and InfluxDB), read back over HTTP."""

from __future__ import annotations

import datetime as dt
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scripts.servers import RunningServer, free_port, start_elasticsearch, start_opensearch
from tests import dates
from tests.conftest import SEARCH_URL_VARIABLES, InfluxHelper, SearchHelper
from tests.integration.workspace import CliResult, Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
ZURICH = ZoneInfo("Europe/Zurich")
FIRST_OF_MONTH = dates.month_start(2, ZURICH)
"""The two local days around the latest month's end at least two days ago, both 24 hours long."""
LAST_OF_MONTH = FIRST_OF_MONTH - dt.timedelta(days=1)
LAST = dates.seconds(LAST_OF_MONTH, ZURICH)
FIRST = dates.seconds(FIRST_OF_MONTH, ZURICH)  # 23:00 or 22:00 UTC the day before
END = dates.seconds(FIRST_OF_MONTH + dt.timedelta(days=1), ZURICH)
HOSTS = 4
PASSWORD = "e2e-Pa55-w0rd"
RANGE = dates.range_options(LAST_OF_MONTH, 2)
LAST_INDEX, FIRST_INDEX = (f"bw-{day:%Y.%m}" for day in (LAST_OF_MONTH, FIRST_OF_MONTH))
"""The monthly indices (after the test's prefix) of the two days."""


def write_counters(influx: InfluxHelper) -> None:
    """Host ``h<i>`` counts ``(i + 1) × 600`` octets every 10 minutes, i.e. ``i + 1`` per second,
    from half an hour before the first local day (its lookback) to the end of the second."""
    lines = []
    for i in range(HOSTS):
        for k, t in enumerate(range(LAST - 1800, END, 600)):
            lines.append(f"ifc,host=h{i} octets={k * 600 * (i + 1)}i {t * S}")
    influx.write(lines)


def search_profile(workspace: Workspace, search: SearchHelper, url: str | None = None) -> None:
    (workspace.root / "sinks" / "search.toml").write_text(
        textwrap.dedent(
            f"""
            type = "{search.flavor}"
            url = "{url or search.url}"
            index = "{search.prefix}-{{job}}-{{yyyy.MM}}"
            username = "rollup"
            password_env = "ROLLUP_TEST_SEARCH_PASSWORD"
            retries = 1
            backoff = 0.01
            timeout = "5s"
            """
        )
    )


def job(workspace: Workspace, sinks: str = '["search"]', group_by: str | None = '["host"]') -> None:
    """A daily job in Europe/Zurich; ``group_by=None`` groups by every tag (dynamic tag mapping)."""
    workspace.job(
        "bw",
        f"""
        {"" if group_by is None else f"group_by = {group_by}"}

        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "ifc"

        [window]
        every = "1d"
        timezone = "Europe/Zurich"
        lookback = "1h"

        [fields.octets]
        aggregates = ["mean", "max", "increase", "count"]

        [output]
        measurement = "bw_daily"
        sinks = {sinks}
        """,
    )


def backfill(workspace: Workspace, *options: str) -> CliResult:
    result = workspace.run("backfill", "bw", *RANGE, *options, env={"ROLLUP_TEST_SEARCH_PASSWORD": PASSWORD})
    assert PASSWORD not in result.stdout + result.stderr
    return result


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper, search: SearchHelper) -> Workspace:
    made = Workspace(tmp_path, influx.url, influx.database)
    search_profile(made, search)
    write_counters(influx)
    return made


def sources(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents' bodies by window and host (within a window, hits come by ``_id``, a hash)."""
    return sorted((hit["_source"] for hit in hits), key=lambda doc: (doc["window_start"], doc["host"]))


def expected_sources() -> list[dict[str, object]]:
    docs = []
    for start, end in ((LAST, FIRST), (FIRST, END)):
        assert end - start == 86400
        stamp, end_stamp = dates.local_stamp(start, ZURICH), dates.local_stamp(end, ZURICH)
        for i in range(HOSTS):
            docs.append(
                {
                    "@timestamp": stamp,
                    "window": "1d",
                    "window_start": stamp,
                    "window_end": end_stamp,
                    "job": "bw",
                    "host": f"h{i}",
                    "octets_mean": float(i + 1),
                    "octets_max": float(i + 1),
                    "octets_increase": float(144 * 600 * (i + 1)),
                    "octets_count": 144,
                    "octets_samples": 144,
                    "octets_seconds": 86400.0,
                    "octets_resets": 0,
                    "octets_gaps": 0,
                    "octets_invalid": 0,
                }
            )
    return docs


def test_backfill_writes_one_document_per_group_and_local_day(
    workspace: Workspace, search: SearchHelper
) -> None:
    job(workspace)
    result = backfill(workspace)
    assert result.code == 0, result.stderr
    assert "bw: 2 window(s) done, 0 failed" in result.stderr

    hits = search.documents()
    assert sources(hits) == expected_sources()
    # The local day of the 1st starts on the last day of the month before in UTC: its index is
    # still its own month's.
    assert [hit["_index"] for hit in hits] == [f"{search.prefix}-{LAST_INDEX}"] * HOSTS + [
        f"{search.prefix}-{FIRST_INDEX}"
    ] * HOSTS
    assert len({hit["_id"] for hit in hits}) == 2 * HOSTS
    newest = search.newest()
    assert newest["_source"]["@timestamp"] == dates.local_stamp(FIRST, ZURICH)
    assert newest["sort"] == [FIRST * 1000]
    [template] = search.templates().values()
    assert template["index_patterns"] == [f"{search.prefix}-bw-*"]


def test_a_second_identical_backfill_overwrites_every_document(
    workspace: Workspace, search: SearchHelper
) -> None:
    job(workspace)
    assert backfill(workspace).code == 0
    first = search.documents()
    result = backfill(workspace, "--force")  # done windows are only re-run on request
    assert result.code == 0, result.stderr

    second = search.documents()
    assert len(second) == 2 * HOSTS
    assert [hit["_id"] for hit in second] == [hit["_id"] for hit in first]
    assert [hit["_source"] for hit in second] == [hit["_source"] for hit in first]
    assert {hit["_version"] for hit in first} == {1}
    assert {hit["_version"] for hit in second} == {2}


def test_a_mapping_conflict_fails_the_window_and_shows_the_item_error(
    workspace: Workspace, search: SearchHelper
) -> None:
    """The second day's monthly index exists with ``host`` as a number: its documents are refused
    one by one, the first day's are written."""
    search.request(
        "PUT",
        f"/{search.prefix}-{FIRST_INDEX}",
        json={"mappings": {"properties": {"host": {"type": "long"}}}},
    )
    job(workspace, group_by=None)  # a strict mapping would refuse the index's mapping already

    result = backfill(workspace)
    assert result.code == 1
    assert "bw: 1 window(s) done, 1 failed" in result.stderr
    [summary] = [line for line in result.stderr.splitlines() if line.startswith("  failed ")]
    assert summary.startswith(
        f"  failed {dates.local_stamp(FIRST, ZURICH)}: {search.flavor_name} sink 'search': 4 of 4 documents "
        f"were rejected (first 3): {search.prefix}-{FIRST_INDEX}/"
    )
    assert "failed to parse field [host] of type [long]" in summary
    assert summary.count("HTTP 400") == 3
    assert [hit["_index"] for hit in search.documents()] == [f"{search.prefix}-{LAST_INDEX}"] * HOSTS


@dataclass
class Stoppable:
    """A server of the test's own that can be stopped and started again on the same URL.

    Against an external cluster (URL from the environment) "stopped" is a port nobody listens on."""

    flavor: str
    directory: Path
    external: str | None
    port: int
    server: RunningServer | None = None

    @property
    def url(self) -> str:
        return self.external or f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.external is None:
            start = start_elasticsearch if self.flavor == "elasticsearch" else start_opensearch
            self.server = start(self.directory, port=self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def down_url(self) -> str:
        return f"http://127.0.0.1:{self.port}" if self.external is None else f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def stoppable(search: SearchHelper, tmp_path: Path) -> Iterator[Stoppable]:
    external = os.environ.get(SEARCH_URL_VARIABLES[search.flavor])
    server = Stoppable(search.flavor, tmp_path / "own-server", external, free_port())
    yield server
    server.stop()


def test_a_stopped_server_fails_the_windows_and_a_later_run_writes_them(
    workspace: Workspace, search: SearchHelper, stoppable: Stoppable
) -> None:
    job(workspace)
    search_profile(workspace, search, url=stoppable.down_url())
    result = backfill(workspace)
    assert result.code == 1
    assert "bw: 0 window(s) done, 2 failed" in result.stderr
    assert f"at {stoppable.down_url()} failed after 2 attempts" in result.stderr

    stoppable.start()
    search_profile(workspace, search, url=stoppable.url)
    result = backfill(workspace)
    assert result.code == 0, result.stderr
    assert "bw: 2 window(s) done, 0 failed" in result.stderr
    own = SearchHelper(search.flavor, stoppable.url, search.prefix)
    try:
        assert sources(own.documents()) == expected_sources()
    finally:
        own.clean()
        own.http.close()


def test_a_window_is_done_only_when_every_sink_wrote_it(
    workspace: Workspace, search: SearchHelper, influx: InfluxHelper, stoppable: Stoppable
) -> None:
    """InfluxDB takes the rows, the search server is down: the windows fail, and the next run
    writes them to both (InfluxDB overwrites its points, nothing is duplicated)."""
    job(workspace, sinks='["out", "search"]')
    search_profile(workspace, search, url=stoppable.down_url())
    result = backfill(workspace)
    assert result.code == 1
    assert "bw: 0 window(s) done, 2 failed" in result.stderr
    assert len(influx.points("bw_daily", database=workspace.out_database)) == 2 * HOSTS

    stoppable.start()
    search_profile(workspace, search, url=stoppable.url)
    result = backfill(workspace)
    assert result.code == 0, result.stderr
    points = influx.points("bw_daily", database=workspace.out_database)
    assert len(points) == 2 * HOSTS
    own = SearchHelper(search.flavor, stoppable.url, search.prefix)
    try:
        hits = own.documents()
    finally:
        own.clean()
        own.http.close()
    assert len(hits) == 2 * HOSTS
    in_influx = {(p["host"], p["octets_mean"], p["octets_count"]) for p in points}
    in_search = {
        (h["_source"]["host"], h["_source"]["octets_mean"], h["_source"]["octets_count"]) for h in hits
    }
    assert in_influx == in_search

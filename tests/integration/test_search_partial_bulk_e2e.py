"""A bulk request of which the server rejects some documents and stores the others: the window
fails with the rejected documents' errors in the message, the ledger and `rollup status`; once
the cause is fixed, the next `rollup run` converges on exactly what a clean run writes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests import dates
from tests.conftest import InfluxHelper, SearchHelper
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
MONDAY = dates.monday(7, days=2, one_month=True)
"""Two UTC days in one month (one monthly index), from a Monday at least a week ago."""
DAY1 = dates.seconds(MONDAY)
SERIES = ("host=a", "host=b", "host=c,site=zrh", "host=d,site=zrh")
NOW = {"ROLLUP_NOW": dates.utc_minute(DAY1 + 2 * 86400 + 10 * 60)}
"""00:10 after the two days."""
LATER = {"ROLLUP_NOW": dates.utc_minute(DAY1 + 2 * 86400 + 60 * 60)}


def workspace_for(root: Path, influx: InfluxHelper, search: SearchHelper, prefix: str) -> Workspace:
    """Two UTC days of counters; no group_by, so ``site`` is a field only some documents have."""
    workspace = Workspace(root, influx.url, influx.database)
    workspace.sink(
        "search",
        f"""
        type = "{search.flavor}"
        url = "{search.url}"
        index = "{prefix}-{{job}}-{{yyyy.MM}}"
        retries = 0
        """,
    )
    workspace.job(
        "bw",
        f"""
        start = {MONDAY.isoformat()}

        [source]
        profile = "buffer"
        database = "{influx.database}"
        measurement = "ifc"

        [window]
        every = "1d"

        [fields.octets]
        aggregates = ["mean", "max"]

        [output]
        measurement = "bw_daily"
        sinks = ["search"]

        [schedule]
        retry_backoff = "10m"
        """,
    )
    return workspace


def sources(search: SearchHelper, prefix: str) -> list[dict[str, Any]]:
    hits = search.documents(f"{prefix}-bw-*")
    return sorted((hit["_source"] for hit in hits), key=lambda doc: (doc["window_start"], doc["host"]))


def test_some_rejected_documents_fail_the_window_with_their_errors_and_a_rerun_converges(
    influx: InfluxHelper, search: SearchHelper, tmp_path: Path
) -> None:
    influx.write(
        [
            f"ifc,{tags} octets={k * 600}i {(DAY1 - 600 + k * 600) * S}"
            for tags in SERIES
            for k in range(2 * 144 + 1)
        ]
    )
    # The month's index exists, made by someone else: 'site' is a number there.
    index = f"{search.prefix}-bw-{MONDAY:%Y.%m}"
    search.request("PUT", f"/{index}", json={"mappings": {"properties": {"site": {"type": "long"}}}})
    workspace = workspace_for(tmp_path / "ws", influx, search, search.prefix)

    first = workspace.run("run", env=NOW)
    assert first.code == 1
    assert "pass: 0 window(s) done, 2 failed" in first.stderr
    errors = [line for line in first.stderr.splitlines() if "window failed" in line]
    assert len(errors) == 2
    for line in errors:
        assert f"{search.flavor_name} sink 'search': 2 of 4 documents were rejected: {index}/" in line
        assert "{'host': 'c', 'site': 'zrh'}: HTTP 400" in line
        assert "{'host': 'd', 'site': 'zrh'}: HTTP 400" in line
        assert "failed to parse field [site] of type [long]" in line
    assert [doc["host"] for doc in sources(search, search.prefix)] == ["a", "b", "a", "b"]
    [status] = json.loads(workspace.run("status", "--json", env=LATER).stdout)
    assert (status["done"], status["failed"], status["owed"]) == (0, 2, 2)
    assert "2 of 4 documents were rejected" in status["last_error"]["error"]

    assert status["last_error"]["transient"] is False  # a refused document needs a fix: no retry soon
    search.request("DELETE", f"/{index}")  # the cause, fixed: the index goes, the template makes it anew
    waiting = workspace.run("run", env=LATER)
    assert "pass: 0 window(s) done, 0 failed, 2 failed window(s) waiting to retry" in waiting.stderr
    end = (MONDAY + dt.timedelta(days=2)).isoformat()  # once fixed, a backfill re-runs them now
    second = workspace.run("backfill", "bw", "--start", MONDAY.isoformat(), "--end", end, env=LATER)
    assert second.code == 0, second.stderr
    assert "bw: 2 window(s) done, 0 failed" in second.stderr

    clean = workspace_for(tmp_path / "clean", influx, search, f"{search.prefix}-clean")
    assert clean.run("run", env=LATER).code == 0
    expected = sources(search, f"{search.prefix}-clean")
    assert [(doc["host"], doc.get("site")) for doc in expected] == [
        ("a", None), ("b", None), ("c", "zrh"), ("d", "zrh")
    ] * 2  # fmt: skip
    assert sources(search, search.prefix) == expected

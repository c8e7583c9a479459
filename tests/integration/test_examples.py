"""The example jobs and profiles of the repository (jobs/, sinks/, config/) validate and really run."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from scripts.synth import main as synth
from tests import dates
from tests.conftest import SEARCH_URL_VARIABLES, InfluxHelper, SearchHelper
from tests.integration.workspace import REPO

pytestmark = pytest.mark.integration

ZURICH = ZoneInfo("Europe/Zurich")  # the example job's time zone


def rollup(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROLLUP_")}
    environment.update(env, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "rollup", *args]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=120)


def test_example_jobs_validate_without_any_server() -> None:
    result = rollup("jobs", "validate", env={})
    assert result.returncode == 0, result.stderr
    assert "invalid" not in result.stderr
    assert "ok jobs/interface-daily-es.toml (job interface-daily-es)" in result.stdout
    assert "ok jobs/interface-monthly.toml (job interface-monthly)" in result.stdout
    assert "ok jobs/device-monthly.toml (job device-monthly)" in result.stdout


@pytest.fixture
def example_indices(elasticsearch_url: str) -> Iterator[SearchHelper]:
    """The example's own indices, which it writes under fixed names: only on the local server."""
    if os.environ.get(SEARCH_URL_VARIABLES["elasticsearch"]):
        pytest.skip("writes the example's fixed index names: not on an external cluster")
    helper = SearchHelper("elasticsearch", elasticsearch_url, "rollup-interface-daily-es")
    helper.clean()
    yield helper
    helper.clean()
    helper.http.close()


def test_the_elasticsearch_example_writes_to_influxdb_and_elasticsearch(
    influx: InfluxHelper, example_indices: SearchHelper, tmp_path: Path
) -> None:
    """jobs/interface-daily-es.toml with sinks/longterm.toml and sinks/search.toml, as they are: a
    local day at least a week ago, well within the example buffer's retention (30 days)."""
    day = dates.monday(7, ZURICH)
    start, end = dates.seconds(day, ZURICH), dates.seconds(day, ZURICH) + dates.DAY
    influx.create_database("telegraf")
    influx.create_database("rollups")
    raw = ("--start", dates.utc_minute(start - 3600), "--end", dates.utc_minute(end + 1800))  # and around
    args = ["--url", influx.url, *raw]
    assert synth([*args, "--devices", "2", "--interfaces", "3", "--interval", "300", "--resets", "0"]) == 0
    env = {
        "ROLLUP_INFLUX_URL": influx.url,
        "ROLLUP_ELASTICSEARCH_URL": example_indices.url,
        "ROLLUP_LEDGER": f"sqlite:{tmp_path / 'ledger.sqlite'}",  # not the repository's state/
    }

    result = rollup("backfill", "interface-daily-es", *dates.range_options(day), env=env)
    assert result.returncode == 0, result.stderr
    assert "interface-daily-es: 1 window(s) done, 0 failed" in result.stderr

    hits = example_indices.documents()
    assert {hit["_index"] for hit in hits} == {f"rollup-interface-daily-es-{day:%Y.%m}"}
    assert sorted((h["_source"]["agent_host"], h["_source"]["ifName"]) for h in hits) == [
        (f"sw{d:03d}", f"xe-0/0/{i}") for d in range(2) for i in range(3)
    ]
    assert {h["_source"]["@timestamp"] for h in hits} == {dates.local_stamp(start, ZURICH)}
    points = influx.points("interface_daily_es", database="rollups")
    assert len(points) == 6
    by_group = {(p["agent_host"], p["ifName"]): p["in_mean"] for p in points}
    in_search = {(h["_source"]["agent_host"], h["_source"]["ifName"]): h["_source"]["in_mean"] for h in hits}
    # noida-db's JSON number parser can be one ulp off (real Elasticsearch keeps _source verbatim).
    assert in_search == pytest.approx(by_group, rel=1e-15)


def test_the_monthly_examples_merge_the_daily_rows_of_interface_daily(
    influx: InfluxHelper, tmp_path: Path
) -> None:
    """jobs/interface-daily.toml, then jobs/interface-monthly.toml and jobs/device-monthly.toml
    reading its rows, as they are: a month that ended at least two weeks ago (its days are older
    than the example buffer's retention, so the daily backfill ignores it)."""
    month = (dates.today(ZURICH) - dt.timedelta(days=45)).replace(day=1)
    following = dates.next_month(month)
    start, end = dates.seconds(month, ZURICH), dates.seconds(following, ZURICH)
    influx.create_database("telegraf")
    influx.create_database("rollups")
    raw = ("--start", dates.utc_minute(start - 3600), "--end", dates.utc_minute(end + 1800))
    assert synth(["--url", influx.url, *raw, "--devices", "2", "--interfaces", "3", "--interval", "300"]) == 0
    env = {"ROLLUP_INFLUX_URL": influx.url, "ROLLUP_LEDGER": f"sqlite:{tmp_path / 'ledger.sqlite'}"}
    days = dates.range_options(month, (following - month).days)

    daily = rollup("backfill", "interface-daily", *days, "--ignore-retention", env=env)
    assert daily.returncode == 0, daily.stderr
    for job in ("interface-monthly", "device-monthly"):
        result = rollup("backfill", job, *days, env=env)
        assert result.returncode == 0, result.stderr
        assert f"{job}: 1 window(s) done, 0 failed" in result.stderr

    stamp = start * 1_000_000_000
    parts = [
        p
        for p in influx.points("interface_daily", database="rollups")
        if start <= int(p["time"]) // 10**9 < end
    ]  # type: ignore[call-overload]
    assert len(parts) == 6 * (following - month).days
    interfaces = {
        (p["agent_host"], p["ifName"]): p for p in influx.points("interface_monthly", database="rollups")
    }
    assert len(interfaces) == 6
    for (host, port), row in interfaces.items():
        assert row["time"] == stamp
        mine = [p for p in parts if (p["agent_host"], p["ifName"]) == (host, port)]
        counts = sum(int(p["in_count"]) for p in mine)  # type: ignore[call-overload]
        assert row["in_mean"] == pytest.approx(
            sum(p["in_mean"] * p["in_count"] for p in mine) / counts, rel=1e-12
        )  # type: ignore[operator]
        assert row["in_rate"] == pytest.approx(
            sum(p["in_increase"] for p in mine) / sum(p["in_seconds"] for p in mine), rel=1e-12
        )  # type: ignore[misc]
        assert row["out_max"] == max(p["out_max"] for p in mine)  # type: ignore[type-var]
        assert row["in_samples"] == sum(p["in_samples"] for p in mine)  # type: ignore[misc]
    devices = {p["agent_host"]: p for p in influx.points("device_monthly", database="rollups")}
    assert sorted(devices) == ["sw000", "sw001"]
    for host, row in devices.items():
        mine = [p for p in parts if p["agent_host"] == host]
        assert row["in_increase"] == pytest.approx(sum(p["in_increase"] for p in mine), rel=1e-12)  # type: ignore[misc]
        assert row["in_max"] == max(p["in_max"] for p in mine)  # type: ignore[type-var]

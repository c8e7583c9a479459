"""Percentiles end to end: counters in a real influxd → `rollup backfill` → p95/p50/max/mean read back,
equal to a plain-Python nearest-rank reference, whether groups come one after the other (per
interface, per device: finished early) or not (per zone, a tag that sorts last: kept to the end, and
spilled to a temporary file past a small ``values_memory``), with one query or two at once."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import InfluxHelper
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
DAY1 = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp())
DAYS = (DAY1, DAY1 + 86400)
NOW = "2026-11-05T00:00Z"  # both days closed: the test does not depend on today's date
HOSTS = [f"sw{h}" for h in range(6)]
PORTS = [f"xe-0/0/{p}" for p in range(4)]
ZONES = ("east", "north", "west")
STEP = 300

Series = tuple[dict[str, str], list[tuple[int, int]]]


def make_series() -> list[Series]:
    """Every interface of every host, polled every 5 minutes for two days (plus an hour before),
    with increments drawn so that rates tie now and then, and one counter that restarts."""
    rng = random.Random(17)
    out: list[Series] = []
    for h, host in enumerate(HOSTS):
        for p, port in enumerate(PORTS):
            tags = {"agent_host": host, "ifName": port}
            if (h + p) % 4:  # one interface in four has no zone
                tags["zone"] = ZONES[(h * 7 + p) % 3]
            value, samples = rng.randrange(10**9), []
            for t in range(DAY1 - 3600 + rng.randrange(STEP), DAY1 + 2 * 86400, STEP):
                value += rng.choice([0, STEP, STEP * rng.randrange(1, 50), rng.randrange(10**6)])
                if (h, p) == (2, 1) and len(samples) == 400:
                    value = 77  # a restart: with on_decrease = "drop" that interval is dropped
                samples.append((t, value))
            out.append((tags, samples))
    return out


def expected(
    series: list[Series], group_by: tuple[str, ...]
) -> dict[tuple[tuple[str, str], ...], list[float]]:
    """Per (group tags, day): the rates of every interval ending in the day (drop: no decrease)."""
    rates: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
    for tags, samples in series:
        group = tuple((k, tags[k]) for k in group_by if k in tags)
        for (t0, v0), (t1, v1) in itertools.pairwise(samples):
            if v1 >= v0 and t1 >= DAY1:
                day = DAYS[(t1 - DAY1) // 86400]
                rates[(*group, ("day", str(day)))].append((v1 - v0) / (t1 - t0))
    return rates


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(-(-len(values) * int(p) // 100), 1) - 1]


@pytest.fixture(scope="module")
def series() -> list[Series]:
    return make_series()


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper, series: list[Series]) -> Workspace:
    lines = []
    for tags, samples in series:
        text = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
        lines += [f"ifc,{text} octets={v}i {t * S}" for t, v in samples]
    influx.write(lines)
    return Workspace(tmp_path, influx.url, influx.database)


def job(workspace: Workspace, group_by: tuple[str, ...], values_memory: str | None = None) -> None:
    memory = f'values_memory = "{values_memory}"' if values_memory else ""
    workspace.job(
        "pct",
        f"""
        group_by = [{", ".join(f'"{tag}"' for tag in group_by)}]
        {memory}

        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "ifc"

        [window]
        every = "1d"
        lookback = "1h"

        [fields.octets]
        on_decrease = "drop"
        aggregates = ["mean", "max", "p95", "p50", "count"]

        [output]
        measurement = "pct_daily"
        sinks = ["out"]
        """,
    )


def concurrency(workspace: Workspace, queries: int) -> None:
    config = workspace.root / "config" / "rollup.toml"
    config.write_text(config.read_text() + f"concurrency = {queries}\n")


def check_against_reference(
    influx: InfluxHelper, workspace: Workspace, series: list[Series], group_by: tuple[str, ...]
) -> None:
    reference = expected(series, group_by)
    points = influx.points("pct_daily", database=workspace.out_database)
    got = {
        (*((k, str(p[k])) for k in group_by if k in p), ("day", str(int(p["time"]) // S))): p for p in points
    }
    assert set(got) == set(reference)
    for key, rates in reference.items():
        point = got[key]
        assert point["octets_count"] == len(rates), key
        assert point["octets_max"] == max(rates), key
        assert point["octets_p95"] == nearest_rank(rates, 95), key
        assert point["octets_p50"] == nearest_rank(rates, 50), key
        assert point["octets_mean"] == pytest.approx(sum(rates) / len(rates), rel=1e-12), key


CASES = {
    "per interface": ("agent_host", "ifName"),
    "per device": ("agent_host",),
    "per zone (sorts last)": ("zone",),
}


@pytest.mark.parametrize("queries", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_percentiles_equal_the_nearest_rank_of_every_rate_of_the_group_and_day(
    workspace: Workspace, influx: InfluxHelper, series: list[Series], case: str, queries: int
) -> None:
    group_by = CASES[case]
    job(workspace, group_by)
    concurrency(workspace, queries)
    result = workspace.run(
        "backfill", "pct", "--start", "2026-11-02", "--end", "2026-11-04", env={"ROLLUP_NOW": NOW}
    )
    assert result.code == 0, result.stderr
    check_against_reference(influx, workspace, series, group_by)
    assert "temporary file" not in result.stderr
    assert "reading the span again" not in result.stderr  # influxd sent series in the declared order


@pytest.mark.parametrize("case", list(CASES))
def test_a_small_values_memory_spills_only_groups_that_are_not_contiguous_and_changes_no_number(
    workspace: Workspace, influx: InfluxHelper, series: list[Series], case: str
) -> None:
    """64 KiB holds a device's day of values (4 × 288 × 8 bytes), not a whole day of the estate: per
    interface and per device each group is finished before the next one starts, nothing spills; per
    zone every value stays to the end and most go through the temporary file — same numbers."""
    group_by = CASES[case]
    job(workspace, group_by, values_memory="64KiB")
    result = workspace.run(
        "backfill", "pct", "--start", "2026-11-02", "--end", "2026-11-04", env={"ROLLUP_NOW": NOW}
    )
    assert result.code == 0, result.stderr
    check_against_reference(influx, workspace, series, group_by)
    assert "reading the span again" not in result.stderr
    spilled = [line for line in result.stderr.splitlines() if "went through a temporary file" in line]
    if group_by == ("zone",):
        assert len(spilled) == 2, result.stderr  # one line per day
        assert all("(0 of 4 groups were finished before the end of the read)" in line for line in spilled)
    else:
        assert spilled == [], result.stderr

"""Plug-in aggregates end to end, through the real command against a real influxd and a real
Elasticsearch- / OpenSearch-compatible server: one installed as a distribution (examples/busy-hour,
found by its entry point) and one from a module named in the settings (examples/plugins), written
to both sinks; the built-in mean written again as a plug-in gives the built-in's numbers on the
demo data (scripts/synth.py); a plug-in that raises, answers NaN or the wrong shape fails its
window only, and the next pass runs it again."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import dates
from tests.conftest import InfluxHelper, SearchHelper
from tests.integration.workspace import REPO, CliResult, Workspace

pytestmark = pytest.mark.integration

S = 10**9
HOSTS = 3
LOCAL_PLUGINS = REPO / "examples" / "plugins"


def with_path(*directories: Path) -> dict[str, str]:
    """The environment that puts ``directories`` on the CLI's Python path (after the repository)."""
    return {"PYTHONPATH": ":".join(str(d) for d in (REPO, *directories))}


def settings_with_plugins(workspace: Workspace, *modules: str) -> None:
    path = workspace.root / "config" / "rollup.toml"
    path.write_text(f"plugins = {json.dumps(list(modules))}\n" + path.read_text())


# -- a busy hour and a plain mean, to InfluxDB and to the search server ---------------------------

DAY = dates.monday(3)
"""A UTC Monday at least three days ago: its day is the window."""
FIRST = dates.seconds(DAY)
BUSY = 14
"""The local hour whose intervals carry three times the traffic."""


def busy_counters(influx: InfluxHelper) -> dict[str, list[tuple[int, float]]]:
    """Host ``h<i>`` every 10 minutes: ``(i + 1)`` octets a second, three times as many in the
    intervals that begin in hour 14. Returns each host's rates: (t1 in s, rate) of the day."""
    lines, rates = [], {}
    for i in range(HOSTS):
        counter, previous, host_rates = 0, None, []
        for t in range(FIRST - 1800, FIRST + 86400, 600):
            if previous is not None:
                rate = (i + 1) * (3 if (previous - FIRST) // 3600 == BUSY else 1)
                counter += 600 * rate
                if t >= FIRST:
                    host_rates.append((t, float(rate)))
            lines.append(f"ifc,host=h{i} octets={counter}i {t * S}")
            previous = t
        rates[f"h{i}"] = host_rates
    influx.write(lines)
    return rates


def busy_hour(rates: list[tuple[int, float]]) -> tuple[float, float]:
    """The highest hourly mean of the rates by the hour of t1, and when that hour starts."""
    hourly: dict[int, list[float]] = {}
    for t, rate in rates:
        hourly.setdefault((t - FIRST) // 3600, []).append(rate)
    means = {hour: sum(values) / len(values) for hour, values in hourly.items()}
    top = max(means.values())
    hour = min(h for h, mean in means.items() if mean == top)
    return top, float(FIRST + hour * 3600)


def search_sink(workspace: Workspace, search: SearchHelper) -> None:
    workspace.sink(
        "search",
        f"""
        type = "{search.flavor}"
        url = "{search.url}"
        index = "{search.prefix}-{{job}}-{{yyyy.MM}}"
        """,
    )


def test_an_installed_plugin_and_one_from_a_settings_module_write_their_fields_to_influxdb_and_search(
    tmp_path: Path, influx: InfluxHelper, search: SearchHelper
) -> None:
    workspace = Workspace(tmp_path, influx.url, influx.database)
    search_sink(workspace, search)
    settings_with_plugins(workspace, "traffic_stats")
    workspace.job(
        "busy",
        f"""
        group_by = ["host"]

        [source]
        profile = "buffer"
        database = "{influx.database}"
        measurement = "ifc"

        [window]
        every = "1d"
        lookback = "30m"

        [fields.octets]
        aggregates = ["mean", {{ name = "busy_hour", bucket = "1h" }}, "plain_mean"]

        [output]
        measurement = "busy_daily"
        sinks = ["out", "search"]
        """,
    )
    rates = busy_counters(influx)

    result = workspace.run("backfill", "busy", *dates.range_options(DAY), env=with_path(LOCAL_PLUGINS))
    assert result.code == 0, result.stderr
    assert "busy: 1 window(s) done, 0 failed" in result.stderr

    points = {p["host"]: p for p in influx.points("busy_daily", database=workspace.out_database)}
    documents = {hit["_source"]["host"]: hit["_source"] for hit in search.documents()}
    assert sorted(points) == sorted(documents) == [f"h{i}" for i in range(HOSTS)]
    for host, host_rates in rates.items():
        top, start = busy_hour(host_rates)
        assert start == FIRST + BUSY * 3600
        for written in (points[host], documents[host]):
            assert written["octets_busy_hour_mean"] == pytest.approx(top, rel=1e-12)
            assert written["octets_busy_hour_start"] == start
            assert written["octets_plain_mean"] == pytest.approx(written["octets_mean"], rel=1e-12)
    (index,) = search.indices()
    properties = search.mapping(index)["properties"]
    for name in ("octets_busy_hour_mean", "octets_busy_hour_start", "octets_plain_mean"):
        assert properties[name]["type"] == "double"


# -- the built-in mean written again, on the demo data ------------------------------------------

DEMO_DAY = dates.monday(2)


def synth(influx: InfluxHelper) -> None:
    """A day of the demo's counters (scripts/synth.py): 6 devices × 4 interfaces, a reboot and a
    32-bit counter that wraps, from an hour before the day to its end."""
    start = dt.datetime.combine(DEMO_DAY, dt.time(), dt.UTC) - dt.timedelta(hours=1)
    end = start + dt.timedelta(hours=25)
    subprocess.run(
        [sys.executable, "-m", "scripts.synth", "--url", influx.url, "--database", influx.database,
         "--start", start.isoformat(), "--end", end.isoformat(), "--devices", "6", "--interfaces", "4",
         "--resets", "1", "--wrap32"],
        cwd=REPO, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def demo_job(workspace: Workspace, influx: InfluxHelper, name: str, group_by: str, every: str) -> None:
    workspace.job(
        name,
        f"""
        group_by = {group_by}

        [source]
        profile = "buffer"
        database = "{influx.database}"
        measurement = "interface"

        [window]
        every = "{every}"
        timezone = "Europe/Zurich"
        max_gap = "10m"

        [fields.ifHCInOctets]
        as = "in"
        on_decrease = "auto"
        scale = 8
        aggregates = ["mean", "plain_mean", "window_mean"]

        [fields.ifHCOutOctets]
        as = "out"
        on_decrease = "auto"
        scale = 8
        aggregates = ["mean", "plain_mean", "window_mean"]

        [output]
        measurement = "{name}"
        sinks = ["out"]
        """,
    )


@pytest.mark.parametrize(
    ("group_by", "every", "rows"),
    [('["agent_host", "ifName"]', "1d", 6 * 4), ('["agent_host"]', "3h", 6 * 8)],
)
def test_the_mean_written_as_a_plugin_gives_the_builtin_mean_to_1e_12_on_the_demo_data(
    tmp_path: Path, influx: InfluxHelper, group_by: str, every: str, rows: int
) -> None:
    workspace = Workspace(tmp_path, influx.url, influx.database)
    settings_with_plugins(workspace, "traffic_stats")
    demo_job(workspace, influx, "demo", group_by, every)
    synth(influx)
    day = DEMO_DAY.isoformat()
    result = workspace.run(
        "preview", "demo", "--start", day, "--end", (DEMO_DAY + dt.timedelta(days=1)).isoformat(),
        "--format", "json", env=with_path(LOCAL_PLUGINS),
    )  # fmt: skip
    assert result.code == 0, result.stderr

    records = json.loads(result.stdout)
    assert len(records) == rows
    for record in records:
        for field in ("in", "out"):
            builtin = record[f"{field}_mean"]
            assert record[f"{field}_plain_mean"] == pytest.approx(builtin, rel=1e-12, abs=0)
            assert record[f"{field}_window_mean"] == pytest.approx(builtin, rel=1e-12, abs=0)


# -- a plug-in that fails ---------------------------------------------------------------------

FAILING = dates.monday(5, days=2)
"""Two UTC days at least five days ago: the first is the one the plug-in fails on."""
FAIL_START = dates.seconds(FAILING)
FLAKY = '''
"""A mean that misbehaves on the windows a marker file names: it raises, answers NaN or an array."""

from pathlib import Path

import numpy as np

from rollup.plugins import Result, Values, WindowAggregate


class Flaky(WindowAggregate):
    name = "flaky"
    needs = ()

    def __init__(self, mode: str, markers: str):
        self.mode = mode
        self.markers = Path(markers)

    def compute(self, window: Values) -> Result:
        if not (self.markers / f"fail-{window.window_start // 10**9}").exists():
            return float(np.mean(window.values))
        if self.mode == "raise":
            raise RuntimeError("the model is not trained for this day")
        if self.mode == "nan":
            return float("nan")
        return window.values[:2]
'''
REASONS = {
    "raise": "compute raised RuntimeError: the model is not trained for this day",
    "nan": "compute returned nan",
    "shape": "compute returned an array of shape (2,) (float64) where a number was expected",
}


def failing_workspace(tmp_path: Path, influx: InfluxHelper, mode: str, backoff: str) -> Workspace:
    """Jobs ``bw`` (with the flaky plug-in, failing on the first day) and ``other`` (built-ins)
    over two days of counters of two hosts."""
    workspace = Workspace(tmp_path / "ws", influx.url, influx.database)
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "flaky_aggs.py").write_text(FLAKY)
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / f"fail-{FAIL_START}").touch()
    settings_with_plugins(workspace, "flaky_aggs")
    for name, aggregates in (("bw", f'["max", {{ name = "flaky", mode = "{mode}", markers = "{markers}" }}]'),
                             ("other", '["max"]')):  # fmt: skip
        workspace.job(
            name,
            f"""
            start = {FAILING}
            group_by = ["host"]

            [source]
            profile = "buffer"
            database = "{influx.database}"
            measurement = "ifc"

            [window]
            every = "1d"

            [fields.octets]
            aggregates = {aggregates}

            [output]
            measurement = "{name}_daily"
            sinks = ["out"]

            [schedule]
            retry_backoff = "{backoff}"
            retry_backoff_max = "{backoff}"
            """,
        )
    influx.write(
        [
            f"ifc,host=h{i} octets={k * 600 * (i + 1)}i {(FAIL_START - 3600 + k * 600) * S}"
            for i in range(2)
            for k in range(6 + 2 * 144)
        ]
    )
    return workspace


def run_at_day_end(workspace: Workspace, modules: Path) -> CliResult:
    now = dates.utc_minute(FAIL_START + 2 * 86400 + 60)
    return workspace.run("run", env={**with_path(modules), "ROLLUP_NOW": now})


def window_states(workspace: Workspace, job: str, modules: Path) -> list[dict[str, object]]:
    result = workspace.run("status", job, "--windows", "--json", env=with_path(modules))
    assert result.code == 0, result.stderr
    return sorted(json.loads(result.stdout), key=lambda record: str(record["window_start"]))


def days_written(influx: InfluxHelper, workspace: Workspace, measurement: str) -> list[int]:
    stamps = {int(p["time"]) // S for p in influx.points(measurement, database=workspace.out_database)}  # type: ignore[call-overload]
    return sorted((stamp - FAIL_START) // 86400 for stamp in stamps)


@pytest.mark.parametrize("mode", sorted(REASONS))
def test_a_failing_plugin_fails_only_its_window_and_the_next_pass_runs_it_again(
    tmp_path: Path, influx: InfluxHelper, mode: str
) -> None:
    workspace = failing_workspace(tmp_path, influx, mode, backoff="1s")
    modules = tmp_path / "modules"

    first = run_at_day_end(workspace, modules)
    assert first.code == 1, first.stderr
    message = (
        f"job bw: plug-in aggregate 'flaky' failed on field 'octets' for the window starting "
        f"{dates.local_stamp(FAIL_START)}, group host=h0: {REASONS[mode]} (and 1 more failure(s) in this "
        "window)"
    )
    assert message in first.stderr
    assert "Traceback" not in first.stderr
    # its window failed, with nothing written; the job's next day and the other job carry on
    states = window_states(workspace, "bw", modules)
    assert [(s["status"], s["transient"]) for s in states] == [("failed", False), ("done", None)]
    assert states[0]["error"] == message
    assert days_written(influx, workspace, "bw_daily") == [1]
    assert days_written(influx, workspace, "other_daily") == [0, 1]

    (tmp_path / "markers" / f"fail-{FAIL_START}").unlink()  # the plug-in is fixed
    time.sleep(1.1)  # the job's retry backoff
    second = run_at_day_end(workspace, modules)
    assert second.code == 0, second.stderr
    assert [s["status"] for s in window_states(workspace, "bw", modules)] == ["done", "done"]
    assert days_written(influx, workspace, "bw_daily") == [0, 1]


def test_rollup_backfill_runs_a_failed_window_again_at_once_without_waiting_for_its_backoff(
    tmp_path: Path, influx: InfluxHelper
) -> None:
    workspace = failing_workspace(tmp_path, influx, "raise", backoff="1h")
    modules = tmp_path / "modules"
    assert run_at_day_end(workspace, modules).code == 1
    (tmp_path / "markers" / f"fail-{FAIL_START}").unlink()

    waiting = run_at_day_end(workspace, modules)  # a pass: the failed window waits for its backoff
    assert waiting.code == 0, waiting.stderr
    assert days_written(influx, workspace, "bw_daily") == [1]

    result = workspace.run("backfill", "bw", *dates.range_options(FAILING, 2), env=with_path(modules))
    assert result.code == 0, result.stderr
    assert "bw: 1 window(s) done, 0 failed" in result.stderr
    assert days_written(influx, workspace, "bw_daily") == [0, 1]


def test_a_failing_plugin_fails_preview_with_the_same_message(tmp_path: Path, influx: InfluxHelper) -> None:
    workspace = failing_workspace(tmp_path, influx, "nan", backoff="1s")
    result = workspace.run(
        "preview", "bw", *dates.range_options(FAILING, 2), env=with_path(tmp_path / "modules")
    )
    assert result.code == 1
    assert result.stderr == (
        f"error: job bw: plug-in aggregate 'flaky' failed on field 'octets' for the window starting "
        f"{dates.local_stamp(FAIL_START)}, group host=h0: compute returned nan (and 1 more failure(s) in "
        "this window)\n"
    )

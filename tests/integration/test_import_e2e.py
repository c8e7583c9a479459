"""`rollup import` against a real influxd: continuous queries read from the server and checked row by
row against their own SELECT, and a Kapacitor task imported with --exact giving Kapacitor's numbers."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from tests.conftest import InfluxHelper
from tests.integration.test_backfill_e2e import kapacitor_reference
from tests.integration.workspace import CliResult, Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
DAY1 = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp())  # seconds, a Monday
DAY = 86400
NOW = "2026-11-20T00:00Z"  # every run below acts as of this instant, whatever the clock says
KAPACITOR_TASK = Path(__file__).resolve().parents[1] / "data" / "migrate" / "kapacitor" / "classic_daily.tick"


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper) -> Workspace:
    return Workspace(tmp_path, influx.url, influx.database)


def interface_samples(host: str, field: str) -> list[tuple[int, int | None]]:
    """Two days of 1-minute polls of one counter (None: the point carries only another field), with
    a reboot on sw1 and, on sw2, a 90-minute gap across the 21:00 window edge."""
    step = {"sw1": 600, "sw2": 125}[host] * (2 if field == "ifHCOutOctets" else 1)
    samples: list[tuple[int, int | None]] = []
    value = 10_000
    for minute in range(2 * 24 * 60):
        if host == "sw2" and 20 * 60 + 30 <= minute < 22 * 60:
            continue
        if host == "sw1" and minute in (13 * 60 + 7, 24 * 60 + 300):
            value = 40  # the device rebooted: the counter starts again near 0
        else:
            value += step * (1 + minute % 4)
        samples.append((DAY1 + minute * 60, value if minute % 97 else None))
    return samples


def write_interfaces(influx: InfluxHelper, hosts: tuple[str, ...] = ("sw1", "sw2")) -> None:
    lines = []
    for host in hosts:
        for name in ("ifHCInOctets", "ifHCOutOctets"):
            for t, value in interface_samples(host, name):
                field = f"{name}={value}i" if value is not None else "ifOperStatus=1i"
                lines.append(f"interface,agent_host={host},ifName=xe-0/0/1 {field} {t * S}")
    influx.write(lines)


def run_check(workspace: Workspace, influx: InfluxHelper, *options: str) -> CliResult:
    return workspace.run(
        "import", "cq", "--from", influx.url, "--database", influx.database, "--check",
        "--start", "2026-11-02", "--end", "2026-11-04", "--now", NOW, *options,
    )  # fmt: skip


def checks(result: CliResult) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("check ")]


def test_check_exact_finds_no_difference_with_a_reset_a_gap_and_local_days(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    write_interfaces(influx)
    influx.write([f"climate,room=r{i % 3} temperature={20 + (i * 7) % 11 / 3} {(DAY1 + i * 300) * S}"
                  for i in range(2 * 288)])  # fmt: skip
    out = f"{influx.database}_out"
    influx.query(
        f"CREATE CONTINUOUS QUERY bw ON {influx.database} RESAMPLE FOR 2h BEGIN SELECT mean(rate) * 8 AS "
        f"in_bps_mean, max(rate) * 8 AS in_bps_max, count(rate) AS rate_count INTO {out}.autogen.bw_1h "
        "FROM (SELECT non_negative_derivative(ifHCInOctets, 1s) AS rate FROM interface GROUP BY *) "
        "GROUP BY time(1h), agent_host END"
    )
    influx.query(
        f'CREATE CONTINUOUS QUERY "climate 3h" ON {influx.database} BEGIN SELECT mean(temperature) AS '
        "t_mean, min(temperature) AS t_min, stddev(temperature) AS t_stddev, last(temperature) AS t_last "
        f"INTO {out}..climate_3h FROM climate GROUP BY time(3h), * tz('Europe/Zurich') END"
    )

    result = run_check(workspace, influx, "--exact")

    assert result.code == 0, result.stdout + result.stderr
    bw, climate = checks(result)
    assert bw.startswith("check bw, bw-2 (")  # the field read two ways (× 8 and not): two jobs, one CQ
    assert climate.startswith("check climate-3h (")
    for line, windows in ((bw, 48), (climate, 16)):  # --start and --end are midnights in the job's zone
        counts = re.search(
            r": (\d+) window\(s\), (\d+) row\(s\) from the CQ, (\d+) from the job: (.*)$", line
        )
        assert counts is not None, line
        assert int(counts.group(1)) == windows
        assert int(counts.group(2)) == int(counts.group(3)) > windows, line
        assert counts.group(4) == "no difference", result.stdout


def test_an_hourly_cq_imported_exact_and_backfilled_writes_what_the_cq_computes(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    """The jobs themselves, not only their preview: hourly windows with lookback 0s, run by backfill."""
    write_interfaces(influx)
    out = f"{influx.database}_out"
    select = (
        "SELECT mean(rate) * 8 AS in_bps_mean, count(rate) AS rate_count FROM (SELECT "
        "non_negative_derivative(ifHCInOctets, 1s) AS rate FROM interface GROUP BY *) WHERE {time} "
        "GROUP BY time(1h), agent_host"
    )
    influx.query(
        f"CREATE CONTINUOUS QUERY bw ON {influx.database} BEGIN "
        + select.replace(" FROM (", f" INTO {out}.autogen.bw_1h FROM (", 1).replace("WHERE {time} ", "")
        + " END"
    )
    imported = workspace.run(
        "import", "cq", "--from", influx.url, "--database", influx.database, "--exact", "--output-dir", "jobs"
    )
    assert imported.code == 0, imported.stderr
    for job in ("bw", "bw-2"):
        backfill = workspace.run(
            "backfill", job, "--start", "2026-11-02", "--end", "2026-11-04", "--now", NOW,
            env={"ROLLUP_INFLUX_URL": influx.url},
        )  # fmt: skip
        assert backfill.code == 0, backfill.stderr

    written = {(p["agent_host"], p["time"]): p for p in influx.points("bw_1h", database=out)}
    expected = {}
    for hour in range(48):
        start = (DAY1 + hour * 3600) * S
        window = select.replace("{time}", f"time >= {start} AND time < {start + 3600 * S}")
        for series in influx.query(window):
            _, mean, count = series["values"][0]  # type: ignore[index]
            if count:
                expected[(series["tags"]["agent_host"], start)] = (mean, count)  # type: ignore[index]
    assert len(expected) > 90
    assert set(written) == set(expected)
    for key, (mean, count) in expected.items():
        assert written[key]["rate_count"] == count, key
        assert written[key]["in_bps_mean"] == pytest.approx(mean, rel=1e-9), key


def test_check_shows_each_difference_and_fails_only_with_exact(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    """InfluxQL's percentile takes rank round(n·p/100), rollup's pNN rank ceil(n·p/100): ten values
    and p94 pick neighbouring values, which the check must show."""
    influx.write([f"load,host=h value={i * 1.5} {(DAY1 + 3600 + i * 60) * S}" for i in range(10)])
    influx.query(
        f"CREATE CONTINUOUS QUERY load ON {influx.database} BEGIN SELECT percentile(value, 94) AS v_p94, "
        f"mean(value) AS v_mean INTO load_1d FROM load GROUP BY time(1d), host END"
    )

    exact = run_check(workspace, influx, "--exact")
    recommended = run_check(workspace, influx)

    assert exact.code == 1, exact.stdout + exact.stderr
    assert checks(exact) == ["check load (" + influx.url + f" database {influx.database}:1): 2 window(s), "
                             "1 row(s) from the CQ, 1 from the job: 1 difference(s)"]  # fmt: skip
    assert "  2026-11-02T00:00:00+00:00 host=h v_p94: CQ 12, job v_p94 13.5" in exact.stdout
    assert recommended.code == 0, recommended.stderr
    assert "v_p94: CQ 12, job v_p94 13.5" in recommended.stdout


def test_kapacitor_classic_daily_task_imported_exact_gives_kapacitors_numbers(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    write_interfaces(influx)
    out = f"{influx.database}_out"
    script = (
        KAPACITOR_TASK.read_text()
        .replace('"telegraf"', f'"{influx.database}"')
        .replace("'rollups'", f"'{out}'")
    )
    (workspace.root / "daily.tick").write_text(script)

    imported = workspace.run("import", "kapacitor", "daily.tick", "--exact", "--output-dir", "jobs")
    assert imported.code == 0, imported.stderr
    assert "wrote jobs/daily.toml" in imported.stderr
    assert f"wrote sinks/{out}-autogen.toml" in imported.stderr
    backfill = workspace.run(
        "backfill", "daily", "--start", "2026-11-02", "--end", "2026-11-04", "--now", NOW,
        env={"ROLLUP_INFLUX_URL": influx.url},
    )  # fmt: skip
    assert backfill.code == 0, backfill.stderr

    points = {(p["agent_host"], p["time"]): p for p in influx.points("interface_daily", database=out)}
    expected = {}
    for host in ("sw1", "sw2"):
        for day in (DAY1, DAY1 + DAY):
            for field, name in (("ifHCInOctets", "in_mean"), ("ifHCOutOctets", "out_mean")):
                samples = [(t, v) for t, v in interface_samples(host, field) if day <= t < day + DAY]
                expected[(host, (day + DAY) * S, name)] = kapacitor_reference(samples)  # stamped at the end
    assert set(points) == {(host, time) for host, time, _ in expected}
    for (host, time, name), value in expected.items():
        assert value is not None
        assert points[(host, time)][name] == pytest.approx(value, rel=1e-12), (host, time, name)

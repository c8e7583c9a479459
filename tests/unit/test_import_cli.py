"""`rollup import` as a real process: what it prints, writes and exits with (no server needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rollup.jobs.loader import scan_jobs
from tests.unit.test_migrate_corpus import CORPUS

REPO = Path(__file__).resolve().parents[2]


def rollup(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROLLUP_")}
    environment["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "rollup", *args], cwd=cwd, env=environment, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    for name in ("classic_daily.tick", "refused/alert.tick", "refused/truncated.tick"):
        shutil.copy(CORPUS / "kapacitor" / name, tmp_path / Path(name).name)
    return tmp_path


def test_jobs_and_sink_profiles_are_printed_with_the_files_they_belong_in(scripts: Path) -> None:
    result = rollup(scripts, "import", "kapacitor", "classic_daily.tick", "--exact")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "# ---- jobs/classic_daily.toml ----\n# Imported from classic_daily.tick:6"
    )
    assert "\n# ---- sinks/rollups-autogen.toml ----\n" in result.stdout
    assert "job classic_daily (classic_daily.tick:6): 1 difference(s) from the original" in result.stderr


def test_output_dir_writes_files_that_validate_and_a_second_run_changes_nothing(scripts: Path) -> None:
    first = rollup(scripts, "import", "kapacitor", "classic_daily.tick", "--output-dir", "jobs")
    assert first.returncode == 0, first.stderr
    assert "wrote jobs/classic_daily.toml" in first.stderr
    assert "wrote sinks/rollups-autogen.toml" in first.stderr
    [entry] = scan_jobs(scripts / "jobs")
    assert entry.errors == []
    assert entry.job is not None
    assert entry.job.name == "classic_daily"
    again = rollup(scripts, "import", "kapacitor", "classic_daily.tick", "--output-dir", "jobs")
    assert again.returncode == 0, again.stderr
    assert "unchanged jobs/classic_daily.toml" in again.stderr


def test_a_file_with_other_content_is_only_overwritten_with_force(scripts: Path) -> None:
    assert (
        rollup(scripts, "import", "kapacitor", "classic_daily.tick", "--output-dir", "jobs").returncode == 0
    )
    target = scripts / "jobs" / "classic_daily.toml"
    target.write_text("# edited by hand\n")
    exact = rollup(scripts, "import", "kapacitor", "classic_daily.tick", "--output-dir", "jobs", "--exact")
    assert exact.returncode == 2
    assert "jobs/classic_daily.toml: exists with other content; --force overwrites it" in exact.stderr
    assert target.read_text() == "# edited by hand\n"
    forced = rollup(
        scripts, "import", "kapacitor", "classic_daily.tick", "--output-dir", "jobs", "--exact", "--force"
    )
    assert forced.returncode == 0, forced.stderr
    assert 'lookback = "0s"' in target.read_text()


def test_each_refused_script_is_one_line_and_nothing_is_written(scripts: Path) -> None:
    result = rollup(
        scripts,
        "import",
        "kapacitor",
        "classic_daily.tick",
        "alert.tick",
        "truncated.tick",
        "--output-dir",
        "jobs",
    )
    assert result.returncode == 2
    refused = [line for line in result.stderr.splitlines() if line.startswith("refused: ")]
    assert refused == [
        "refused: alert.tick:11: alert(): rollup writes aggregates, it does not alert: keep alerting in "
        "Kapacitor (or in Prometheus)",
        "refused: truncated.tick:7: mean(): the text ends where ')' closing mean(…) was expected: "
        "is it cut short?",
    ]
    assert "2 input(s) refused: nothing written" in result.stderr
    assert not (scripts / "jobs").exists()


def test_skip_refused_imports_the_rest(scripts: Path) -> None:
    result = rollup(scripts, "import", "kapacitor", "classic_daily.tick", "alert.tick", "--skip-refused")
    assert result.returncode == 0, result.stderr
    assert "refused: alert.tick:11" in result.stderr
    assert "# ---- jobs/classic_daily.toml ----" in result.stdout


def test_a_statement_given_as_an_argument_is_imported(tmp_path: Path) -> None:
    statement = (
        "CREATE CONTINUOUS QUERY cpu_1h ON telegraf BEGIN SELECT mean(usage_idle) AS idle_mean INTO cpu_1h "
        "FROM cpu GROUP BY time(1h), host END"
    )
    result = rollup(tmp_path, "import", "cq", statement)
    assert result.returncode == 0, result.stderr
    assert "# Imported from argument 1:1 (continuous query cpu_1h)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["kapacitor", "missing.tick"], "refused: missing.tick: cannot read: No such file or directory"),
        (
            ["kapacitor", "classic_daily.tick", "--exact", "--timezone", "Europe/Zurich"],
            "cannot go with --exact",
        ),
        (["cq", "SELECT 1"], "refused: SELECT 1: neither a file nor a CREATE CONTINUOUS QUERY statement"),
        (["cq"], "no continuous query to import"),
        (["cq", "x.iql", "--check"], "--check needs --start, --end and an InfluxDB"),
        (
            ["kapacitor", "classic_daily.tick", "--timezone", "Mars/Olympus"],
            "unknown time zone 'Mars/Olympus'",
        ),
    ],
)
def test_bad_usage_is_one_clear_error_and_exit_2(scripts: Path, args: list[str], message: str) -> None:
    result = rollup(scripts, "import", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_influxdb_that_does_not_answer_is_named_and_exits_1(tmp_path: Path) -> None:
    result = rollup(tmp_path, "import", "cq", "--from", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "error: cannot reach InfluxDB at http://127.0.0.1:9" in result.stderr


def test_credentials_in_the_url_are_refused_and_not_echoed(tmp_path: Path) -> None:
    result = rollup(tmp_path, "import", "cq", "--from", "http://admin:s3cret@127.0.0.1:9")
    assert result.returncode == 2
    assert "credentials cannot be written into the URL" in result.stderr
    assert "s3cret" not in result.stderr

"""Bad configuration, through the real command: one line on stderr naming the file, the key and the
reason, exit code 2, and nothing started — no ledger created, nothing written to any sink.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import dates
from tests.conftest import InfluxHelper
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

MONDAY = dates.monday(7)
"""A UTC Monday at least a week ago: the job's start and the day of its points."""
JOB = """\
start = {start}
group_by = ["host"]

[source]
profile = "buffer"
database = "{database}"
measurement = "ifc"

[window]
every = "3h"
timezone = "Europe/Zurich"
offset = "0s"

[fields.octets]
scale = 8
aggregates = ["mean"]

[output]
measurement = "bw_3h"
sinks = ["out"]
"""

Edit = Callable[[Workspace], None]


def in_job(old: str, new: str) -> Edit:
    def edit(workspace: Workspace) -> None:
        path = workspace.root / "jobs" / "bw.toml"
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))

    return edit


def raw_job(content: bytes) -> Edit:
    def edit(workspace: Workspace) -> None:
        (workspace.root / "jobs" / "bw.toml").write_bytes(content)

    return edit


def in_file(relative: str, old: str, new: str) -> Edit:
    def edit(workspace: Workspace) -> None:
        path = workspace.root / relative
        path.write_text(path.read_text().replace(old, new, 1) if old else path.read_text() + new)

    return edit


CASES: dict[str, tuple[Edit, str]] = {
    "malformed TOML": (
        in_job('every = "3h"', "every = 3h"),
        "jobs/bw.toml: invalid TOML: Expected newline or end of document after a statement (at line 10, "
        "column 10)",
    ),
    "not UTF-8": (
        raw_job(b'name = "bw\xff"\n'),
        "jobs/bw.toml: not UTF-8 text (byte 10): TOML files are UTF-8",
    ),
    "unknown key": (
        in_job("scale = 8", 'scale = 8\nagregates = ["max"]'),
        "jobs/bw.toml: fields.octets.agregates: unknown key 'agregates' (did you mean 'aggregates'?)",
    ),
    "key in the wrong section": (
        in_job('offset = "0s"', 'offset = "0s"\nsinks = ["out"]'),
        "jobs/bw.toml: window.sinks: unknown key 'sinks' here: it belongs in [output]",
    ),
    "wrong type": (
        in_job("scale = 8", 'scale = "eight"'),
        "jobs/bw.toml: fields.octets.scale: Input should be a valid number, unable to parse string as a "
        "number (got 'eight')",
    ),
    "wrong type of list": (
        in_job('group_by = ["host"]', 'group_by = "host"'),
        "jobs/bw.toml: group_by: Input should be a valid list (got 'host')",
    ),
    "unknown sink profile": (
        in_job('sinks = ["out"]', 'sinks = ["out", "archive"]'),
        "jobs/bw.toml: output.sinks: unknown sink profile 'archive' (sinks/*.toml: out)",
    ),
    "unknown source profile": (
        in_job('profile = "buffer"', 'profile = "bufer"'),
        "jobs/bw.toml: source.profile: unknown source profile 'bufer' (defined in config/rollup.toml "
        "[sources.*]: buffer)",
    ),
    "offset as long as the window": (
        in_job('offset = "0s"', 'offset = "3h"'),
        "jobs/bw.toml: window: invalid offset '3h': it must be at least 0 and shorter than the window (3h)",
    ),
    "window of zero length": (
        in_job('every = "3h"', 'every = "0h"'),
        "jobs/bw.toml: window.every: invalid window '0h': a window must be longer than zero",
    ),
    "unknown time zone": (
        in_job('timezone = "Europe/Zurich"', 'timezone = "Europe/Zurch"'),
        "jobs/bw.toml: window.timezone: unknown time zone 'Europe/Zurch': expected an IANA name such as UTC "
        "or Europe/Zurich",
    ),
    "unknown aggregate": (
        in_job('aggregates = ["mean"]', 'aggregates = ["mean", "median"]'),
        "jobs/bw.toml: fields.octets.aggregates: unknown aggregate 'median': expected one of count, "
        "increase, last, last_time, max, mean, min, rate, stddev, sum or pNN (e.g. p95)",
    ),
    "memory for kept values that is no size": (
        in_job('group_by = ["host"]', 'group_by = ["host"]\nvalues_memory = "lots"'),
        "jobs/bw.toml: values_memory: expected a size such as 128MiB, 1GiB or 500MB (got 'lots')",
    ),
    "no memory for kept values": (
        in_job('group_by = ["host"]', 'group_by = ["host"]\nvalues_memory = "0MiB"'),
        "jobs/bw.toml: values_memory: must be more than 0 bytes (got '0MiB')",
    ),
    "bad sink profile": (
        in_file("sinks/out.toml", "", "batch_size = 0\n"),
        "sinks/out.toml: batch_size: Input should be greater than or equal to 1",
    ),
    "sink profile of an unknown type": (
        in_file("sinks/out.toml", 'type = "influxdb"', 'type = "influx"'),
        "sinks/out.toml: type: expected one of elasticsearch, influxdb, opensearch (got 'influx')",
    ),
    "password written in a sink profile": (
        in_file("sinks/out.toml", "", 'username = "rollup"\npassword = "hunter2-Secret"\n'),
        "sinks/out.toml: 'password' cannot be written in a profile: use password_env (an environment "
        "variable) or password_file (a secret file) instead",
    ),
    "scale not a finite number": (
        in_job("scale = 8", "scale = nan"),
        "jobs/bw.toml: fields.octets.scale: Input should be a finite number",
    ),
    "negative scale": (
        in_job("scale = 8", "scale = -8"),
        "jobs/bw.toml: fields.octets.scale: Input should be greater than 0",
    ),
    "infinite max_rate": (
        in_job("scale = 8", "scale = 8\nmax_rate = inf"),
        "jobs/bw.toml: fields.octets.max_rate: Input should be a finite number",
    ),
    "window shorter than a second": (
        in_job('every = "3h"', 'every = "1ms"'),
        "jobs/bw.toml: window.every: invalid window '1ms': a window must be at least 1s",
    ),
    "regex that RE2 refuses": (
        in_job('measurement = "ifc"', 'measurement = "ifc"\nwhere = { host = { regex = "a(?=b)" } }'),
        "jobs/bw.toml: source.where.host.regex: invalid regex 'a(?=b)': invalid perl operator: (?= "
        "(InfluxDB reads RE2 syntax)",
    ),
    "bad settings": (
        in_file("config/rollup.toml", "chunk_size = 7", "chunk_size = 0"),
        "config/rollup.toml (or ROLLUP_ environment): sources.buffer.chunk_size: Input should be greater "
        "than or equal to 1",
    ),
}


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper) -> Workspace:
    made = Workspace(tmp_path / "ws", influx.url, influx.database)
    made.job("bw", JOB.format(start=MONDAY, database=influx.database))
    first = dates.seconds(MONDAY) - 3600
    influx.write([f"ifc,host=a octets={k * 600}i {(first + k * 600) * 10**9}" for k in range(300)])
    return made


def test_the_workspace_is_valid_before_each_case_breaks_it(workspace: Workspace) -> None:
    result = workspace.run("jobs", "validate")
    assert result.code == 0, result.stderr


@pytest.mark.parametrize(
    ("case", "command"),
    [(case, "run") for case in CASES]
    + [(case, "backfill") for case in ("unknown key", "unknown sink profile", "bad settings")],
)
def test_bad_configuration_is_one_line_naming_file_key_and_reason_and_nothing_starts(
    workspace: Workspace, influx: InfluxHelper, case: str, command: str
) -> None:
    edit, expected = CASES[case]
    edit(workspace)
    args = ["run"] if command == "run" else ["backfill", "bw", *dates.range_options(MONDAY)]
    result = workspace.run(*args, env={"ROLLUP_NOW": dates.utc_minute(dates.seconds(MONDAY) + 2 * 86400)})

    assert result.code == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: {expected}"), result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2-Secret" not in result.stderr
    assert not (workspace.root / "state").exists(), "the ledger was created"
    assert influx.query("SHOW MEASUREMENTS", database=workspace.out_database) == []


def test_two_job_names_that_differ_only_in_case_are_refused_naming_both_files(workspace: Workspace) -> None:
    (workspace.root / "jobs" / "BW.toml").write_text((workspace.root / "jobs" / "bw.toml").read_text())
    result = workspace.run("jobs", "validate")
    assert result.code == 2
    assert (
        "jobs/bw.toml: name: job name 'bw' is also used by jobs/BW.toml (as 'BW': names may not differ "
        "only in case)" in result.stderr
    )

"""Fuzzing the configuration loaders: whatever a job file, a sink profile or the settings file holds
— random bytes, a truncated or corrupted valid file, valid TOML with keys removed, added or given
values of any type — loading it either succeeds or raises :class:`ConfigError` with a one-line
message that starts with the file's path. Nothing else escapes (no traceback for the operator).

A job that loads must also be usable: its window grid, start, rollup spec and policy are built
without any other exception.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollup.core.durations import parse_duration
from rollup.errors import ConfigError
from rollup.jobs.loader import Known, load_job
from rollup.jobs.planner import policy_for
from rollup.jobs.spec import JobSpec
from rollup.settings import load_settings
from rollup.sinks.profiles import load_sink_profile

VALID_JOB: dict[str, Any] = {
    "name": "bw",
    "start": dt.date(2026, 11, 1),
    "group_by": ["host"],
    "source": {
        "profile": "buffer",
        "database": "raw",
        "measurement": "ifc",
        "where": {"host": ["a", "b"], "ifName": {"regex": "^xe-"}, "ifAlias": {"not": "x"}},
    },
    "window": {"every": "1d", "timezone": "Europe/Zurich", "offset": "6h", "delay": "15m", "max_gap": "10m"},
    "fields": {
        "octets": {
            "as": "in",
            "on_decrease": "auto",
            "max_rate": 1e11,
            "scale": 8,
            "aggregates": ["mean", "p95"],
        },
        "temp": {"kind": "gauge", "aggregates": ["min", "max"]},
    },
    "output": {"measurement": "bw_daily", "sinks": ["out"], "timestamp": "start"},
    "schedule": {
        "recompute": 1,
        "max_windows_per_pass": 10,
        "retry_backoff": "1m",
        "retry_backoff_max": "1h",
    },
}

VALID_INFLUX_SINK: dict[str, Any] = {
    "type": "influxdb",
    "url": "http://127.0.0.1:8086",
    "database": "rollups",
    "username": "rollup",
    "password_env": "ROLLUP_FUZZ_PASSWORD",
    "batch_size": 100,
    "timeout": "5s",
}

VALID_SEARCH_SINK: dict[str, Any] = {
    "type": "elasticsearch",
    "urls": ["http://127.0.0.1:9200"],
    "index": "rollup-{job}-{yyyy.MM}",
    "api_key_env": "ROLLUP_FUZZ_API_KEY",
    "batch_bytes": 100_000,
    "retries": 2,
}

VALID_SETTINGS: dict[str, Any] = {
    "jobs_dir": "jobs",
    "log_format": "json",
    "ledger": "sqlite:state/ledger.sqlite",
    "ledger_lease": "1m",
    "sources": {"buffer": {"url": "http://127.0.0.1:8086", "chunk_size": 1000, "retention": "30d"}},
}

# Words the loaders give meaning to, so that mutations often hit real validation paths.
WORDS = [
    "1d", "3h", "0s", "1mo", "7m", "1w", "25h", "-1h", "1x", "", "0", "99999999999999999999w",
    "9999999999mo", "UTC", "Europe/Zurich", "Mars/Olympus", "../etc/passwd", "counter", "gauge", "auto",
    "wrap32", "mean", "p95", "p100", "p0", "rate", "out", "buffer", "json", "csv", "${HOME}", "${NOPE}",
    "http://x", "https://u:p@x", "ftp://x", "sqlite:", "postgresql://h/db", "{job}", "{yyyy}", "\x00",
]  # fmt: skip
scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    st.datetimes(timezones=st.sampled_from([None, dt.UTC])),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def toml_key(key: str) -> str:
    return json.dumps(key)


def toml_value(value: Any) -> str:
    """``value`` as a TOML expression (tables inline); what TOML cannot hold is left for it to refuse."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(data: dict[str, Any]) -> str:
    return "".join(f"{toml_key(key)} = {toml_value(value)}\n" for key, value in data.items())


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with a few keys, at any depth, removed, replaced by any value, or added."""
    document = json.loads(json.dumps(base, default=str))
    document.update({k: v for k, v in base.items() if isinstance(v, dt.date)})
    for _ in range(draw(st.integers(1, 4))):
        table = document
        while True:
            tables = [key for key, value in table.items() if isinstance(value, dict)]
            if not tables or draw(st.booleans()):
                break
            table = table[draw(st.sampled_from(tables))]
        action = draw(st.sampled_from(["remove", "replace", "add"]))
        if action == "add" or not table:
            table[draw(st.sampled_from(WORDS) | st.text(max_size=8))] = draw(values)
        else:
            key = draw(st.sampled_from(sorted(table)))
            if action == "remove":
                del table[key]
            else:
                table[key] = draw(values)
    return document


@st.composite
def corrupted(draw: st.DrawFn, text: str) -> bytes:
    """The valid file's bytes, truncated and with a few bytes replaced."""
    data = bytearray(text.encode())
    data = data[: draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def file_contents(base: dict[str, Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated(base).map(lambda document: toml_document(document).encode()),
        corrupted(toml_document(base)),
        st.binary(max_size=200),
    )


def refusal(load: Callable[[], object]) -> ConfigError | None:
    """The ConfigError ``load`` raised, or None if it succeeded (anything else fails the test)."""
    try:
        load()
    except ConfigError as error:
        return error
    return None


def check_one_line(error: ConfigError, path: Path, start: str = ": ") -> None:
    message = str(error)
    assert message.startswith(f"{path}{start}"), message
    assert "\n" not in message, message


def load_job_file(path: Path) -> None:
    loaded: list[JobSpec] = []
    error = refusal(lambda: loaded.append(load_job(path, Known(sources={"buffer"}, sinks={"out"}))))
    if error is not None:
        check_one_line(error, path)
        return
    [job] = loaded
    job.grid.windows(1_790_000_000 * 10**9, 1_790_500_000 * 10**9)
    assert job.rollup.fields
    job.start_ns()
    error = refusal(
        lambda: policy_for(job, parse_duration("30d"))
    )  # a retention shorter than one window plus delay
    assert error is None or str(error).startswith(f"job {job.name}: the buffer retention (30d)"), error


def load_sink_file(path: Path) -> None:
    error = refusal(lambda: load_sink_profile(path))
    if error is not None:
        check_one_line(error, path)


def load_settings_file(path: Path) -> None:
    error = refusal(lambda: load_settings(path))
    if error is not None:  # "PATH: …" or "PATH (or ROLLUP_ environment): …"
        check_one_line(error, path, start="")


CASES = {
    "job": ("bw.toml", st.one_of(file_contents(VALID_JOB)), load_job_file),
    "sink": (
        "out.toml",
        st.one_of(file_contents(VALID_INFLUX_SINK), file_contents(VALID_SEARCH_SINK)),
        load_sink_file,
    ),
    "settings": ("rollup.toml", st.one_of(file_contents(VALID_SETTINGS)), load_settings_file),
}
DEFAULT = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LONG = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("kind", sorted(CASES))
@DEFAULT
@given(data=st.data())
def test_a_file_loads_or_is_refused_with_a_one_line_config_error(
    tmp_path: Path, kind: str, data: st.DataObject
) -> None:
    name, contents, load = CASES[kind]
    path = tmp_path / name
    path.write_bytes(data.draw(contents))
    load(path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CASES))
@LONG
@given(data=st.data())
def test_a_file_loads_or_is_refused_with_a_one_line_config_error_long(
    tmp_path: Path, kind: str, data: st.DataObject
) -> None:
    name, contents, load = CASES[kind]
    path = tmp_path / name
    path.write_bytes(data.draw(contents))
    load(path)


def test_the_starting_points_are_valid(tmp_path: Path) -> None:
    for name, base in (("bw", VALID_JOB), ("out", VALID_INFLUX_SINK), ("search", VALID_SEARCH_SINK)):
        path = tmp_path / f"{name}.toml"
        path.write_text(toml_document(base))
        if name == "bw":
            load_job(path, Known(sources={"buffer"}, sinks={"out"}))
        else:
            load_sink_profile(path)
    settings_path = tmp_path / "rollup.toml"
    settings_path.write_text(toml_document(VALID_SETTINGS))
    assert load_settings(settings_path).sources["buffer"].retention == parse_duration("30d")

"""Ledger settings, retention and [schedule]: where they come from and how bad values are reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rollup.core.durations import parse_duration
from rollup.errors import ConfigError
from rollup.jobs.loader import load_job
from rollup.jobs.planner import policy_for, require_owed_range
from rollup.ledger import sqlite_path
from rollup.settings import load_settings

SECRET = "s3cret-Pa55word"


def settings_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rollup.toml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROLLUP_LEDGER", "ROLLUP_LEDGER_LEASE", "ROLLUP_SERVE__SWEEP", "ROLLUP_CONFIG", "DB_URL"):
        monkeypatch.delenv(name, raising=False)


def test_the_default_ledger_is_a_sqlite_file_under_state(tmp_path: Path) -> None:
    settings = load_settings(settings_file(tmp_path, ""))
    assert settings.ledger.get_secret_value() == "sqlite:state/ledger.sqlite"
    assert settings.ledger_lease.nanos == 60 * 10**9


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/rollup/ledger.sqlite", "/var/lib/rollup/ledger.sqlite"),
        ("sqlite:state/ledger.sqlite", "state/ledger.sqlite"),
        ("sqlite://state/ledger.sqlite", "state/ledger.sqlite"),
    ],
)
def test_sqlite_urls_name_an_absolute_or_a_relative_file(url: str, path: str) -> None:
    assert sqlite_path(url) == Path(path)


def test_a_ledger_url_with_a_password_may_come_from_the_environment_and_is_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLUP_LEDGER", f"postgresql://rollup:{SECRET}@db:5432/rollup")
    settings = load_settings(settings_file(tmp_path, ""))
    assert settings.ledger.get_secret_value().endswith("@db:5432/rollup")
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


def test_a_password_written_into_the_settings_file_is_refused(tmp_path: Path) -> None:
    path = settings_file(tmp_path, f'ledger = "postgresql://rollup:{SECRET}@db/rollup"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ledger: a password cannot be written in the settings file")
    assert "ledger_password_env" in message
    assert SECRET not in message


def test_a_url_taken_from_a_variable_in_the_settings_file_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DB_URL", f"postgresql://rollup:{SECRET}@db/rollup")
    settings = load_settings(settings_file(tmp_path, 'ledger = "${DB_URL}"\n'))
    assert settings.ledger.get_secret_value() == f"postgresql://rollup:{SECRET}@db/rollup"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('ledger = "mysql://root@db/x"', "ledger: unsupported ledger URL scheme 'mysql'"),
        ('ledger = "sqlite:"', "ledger: a sqlite ledger needs a file name"),
        ('ledger_lease = "500ms"', "ledger_lease: ledger_lease must be at least 1s"),
        (
            'ledger = "postgresql://rollup@db/x"\nledger_password_env = "A"\nledger_password_file = "/f"',
            "give ledger_password_env or ledger_password_file, not both",
        ),
        ("[sources.buffer]\nurl = 'http://x'\nretention = '0s'", "retention must be longer than zero"),
    ],
)
def test_bad_ledger_settings_name_the_key_and_the_reason(tmp_path: Path, body: str, expected: str) -> None:
    path = settings_file(tmp_path, body + "\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert expected in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_bad_ledger_url_from_the_environment_is_reported_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLUP_LEDGER", f"mysql://root:{SECRET}@db/x")
    with pytest.raises(ConfigError) as raised:
        load_settings(settings_file(tmp_path, ""))
    assert "ledger: unsupported ledger URL scheme 'mysql'" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_durations_from_the_environment_are_read_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ROLLUP_LEDGER_LEASE=2s`` is a duration, not a JSON document; so are nested keys."""
    monkeypatch.setenv("ROLLUP_LEDGER_LEASE", "2s")
    monkeypatch.setenv("ROLLUP_SERVE__SWEEP", "1m30s")
    monkeypatch.setenv("ROLLUP_SERVE__SHUTDOWN_TIMEOUT", "5s")
    settings = load_settings(settings_file(tmp_path, 'ledger_lease = "1h"'))
    assert settings.ledger_lease.nanos == 2 * 10**9
    assert (settings.serve.sweep.nanos, settings.serve.shutdown_timeout.nanos) == (90 * 10**9, 5 * 10**9)
    monkeypatch.setenv("ROLLUP_LEDGER_LEASE", "2x")
    with pytest.raises(ConfigError, match="ledger_lease: invalid duration '2x'"):
        load_settings(settings_file(tmp_path, ""))


JOB = """
name = "bw"
{top}
[source]
profile = "buffer"
database = "raw"
measurement = "ifc"

[window]
every = "1d"
delay = "15m"

[fields.octets]

[output]
measurement = "bw_daily"
sinks = ["out"]
{schedule}
"""


def job(tmp_path: Path, top: str = "", schedule: str = "") -> Path:
    path = tmp_path / "bw.toml"
    path.write_text(JOB.format(top=top, schedule=schedule))
    return path


def test_retention_comes_from_the_source_profile_unless_the_job_overrides_it(tmp_path: Path) -> None:
    plain = load_job(job(tmp_path))
    assert policy_for(plain, parse_duration("30d")).retention == 30 * 86400 * 10**9
    override = load_job(job(tmp_path, schedule='[schedule]\nbuffer_retention = "7d"\nrecompute = 2'))
    policy = policy_for(override, parse_duration("30d"))
    assert (policy.retention, policy.recompute) == (7 * 86400 * 10**9, 2)


def test_a_retention_shorter_than_a_window_plus_its_delay_is_a_config_error(tmp_path: Path) -> None:
    spec = load_job(job(tmp_path))
    with pytest.raises(
        ConfigError, match=r"job bw: the buffer retention \(1d\) must be longer than one window"
    ):
        policy_for(spec, parse_duration("1d"))


def test_a_live_pass_needs_a_start_or_a_retention(tmp_path: Path) -> None:
    spec = load_job(job(tmp_path))
    with pytest.raises(ConfigError, match=r"job bw: set 'start' in the job file, or a buffer retention"):
        require_owed_range(spec, policy_for(spec, None))
    started = load_job(job(tmp_path, top="start = 2026-11-01"))
    require_owed_range(started, policy_for(started, None))


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("recompute = -1", "schedule.recompute: Input should be greater than or equal to 0"),
        ('retry_backoff = "1h"\nretry_backoff_max = "1m"', "retry_backoff_max must not be shorter"),
        ('buffer_retention = "2x"', "schedule.buffer_retention: invalid duration '2x'"),
        ("max_windows_per_pass = 0", "schedule.max_windows_per_pass"),
    ],
)
def test_bad_schedule_values_name_file_key_and_reason(tmp_path: Path, schedule: str, expected: str) -> None:
    path = job(tmp_path, schedule=f"[schedule]\n{schedule}")
    with pytest.raises(ConfigError) as raised:
        load_job(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert expected in str(raised.value)

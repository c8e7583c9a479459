"""Source profiles (``[sources.NAME]`` in the settings): bad values are refused when the settings
are loaded, with the key and the reason; and a zero timeout, in any profile, is refused so."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rollup.errors import ConfigError
from rollup.settings import load_settings
from rollup.sinks.profiles import load_sink_profile


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROLLUP_LEDGER", "ROLLUP_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def load(tmp_path: Path, body: str) -> str:
    """The one-line error of loading a settings file with ``[sources.buffer]`` holding ``body``."""
    path = tmp_path / "rollup.toml"
    path.write_text("[sources.buffer]\n" + textwrap.dedent(body))
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert message.startswith(f"{path} (or ROLLUP_ environment): sources.buffer.")
    assert "\n" not in message
    return message


def test_the_removed_csv_format_is_refused_with_what_to_use_instead(tmp_path: Path) -> None:
    message = load(tmp_path, 'url = "http://influx:8086"\nformat = "csv"\n')
    assert "sources.buffer.format: format 'csv' was removed: use 'msgpack' (default) or 'json'" in message


def test_msgpack_and_json_are_the_formats(tmp_path: Path) -> None:
    path = tmp_path / "rollup.toml"
    for fmt in ("msgpack", "json"):
        path.write_text(f'[sources.buffer]\nurl = "http://influx:8086"\nformat = "{fmt}"\n')
        assert load_settings(path).sources["buffer"].format == fmt
    assert "got 'xml'" in load(tmp_path, 'url = "http://influx:8086"\nformat = "xml"\n')


@pytest.mark.parametrize("timeout", ["0s", "0ms", "0"])
def test_a_timeout_of_zero_is_refused_naming_the_key(tmp_path: Path, timeout: str) -> None:
    message = load(tmp_path, f'url = "http://influx:8086"\ntimeout = "{timeout}"\n')
    assert "sources.buffer.timeout: timeout must be longer than zero" in message


@pytest.mark.parametrize("kind", ["influxdb", "elasticsearch", "opensearch"])
def test_a_sink_timeout_of_zero_is_refused_naming_the_key(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.toml"
    database = 'database = "rollups"\n' if kind == "influxdb" else ""
    path.write_text(f'type = "{kind}"\nurl = "http://sink:8086"\n{database}timeout = "0s"\n')
    with pytest.raises(ConfigError) as raised:
        load_sink_profile(path)
    assert str(raised.value) == f"{path}: timeout: timeout must be longer than zero (got '0s')"

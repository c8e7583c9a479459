"""Plug-in aggregates in job files and settings: found through entry points and the settings'
modules, used like the built-ins, with parameters; every mistake is the usual one-line error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rollup.errors import ConfigError
from rollup.jobs.loader import Known, load_job
from rollup.plugins import discover
from rollup.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "plugins"
JOB = """\
[source]
profile = "buffer"
database = "telegraf"
measurement = "ifc"

[window]
every = "1d"

[fields.octets]
aggregates = {aggregates}

[output]
measurement = "bw"
sinks = ["out"]
"""


@pytest.fixture
def local_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/plugins on the path: the settings may name traffic_stats."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def job_file(tmp_path: Path, aggregates: str) -> Path:
    path = tmp_path / "jobs" / "bw.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(JOB.format(aggregates=aggregates))
    return path


def known(*modules: str) -> Known:
    return Known(sources={"buffer"}, sinks={"out"}, aggregates=discover(modules))


def test_an_installed_plugin_is_used_by_its_entry_point_name_like_a_builtin(tmp_path: Path) -> None:
    job = load_job(job_file(tmp_path, '["mean", "busy_hour"]'), known())
    (rule,) = job.rollup.fields
    assert rule.aggregates == ("mean",)
    assert [use.name for use in rule.plugins] == ["busy_hour"]
    assert type(rule.plugins[0].aggregate).__module__ == "rollup_busy_hour"


def test_a_plugin_takes_parameters_in_a_table_with_its_name(tmp_path: Path) -> None:
    aggregates = '["mean", { name = "busy_hour", bucket = "2h", min_samples = 10 }]'
    job = load_job(job_file(tmp_path, aggregates), known())
    (use,) = job.rollup.fields[0].plugins
    assert (use.aggregate.bucket_ns, use.aggregate.min_samples) == (7200 * 10**9, 10)  # type: ignore[union-attr]
    assert use.parameters == {"bucket": "2h", "min_samples": 10}


def test_a_module_named_in_the_settings_provides_its_plugins(tmp_path: Path, local_modules: None) -> None:
    job = load_job(job_file(tmp_path, '["plain_mean", "window_mean", "max"]'), known("traffic_stats"))
    (rule,) = job.rollup.fields
    assert rule.aggregates == ("max",)
    assert [(use.name, use.streaming) for use in rule.plugins] == [
        ("plain_mean", True),
        ("window_mean", False),
    ]


@pytest.mark.parametrize(
    ("aggregates", "reason"),
    [
        (
            '["mean", "busy_hours"]',
            "unknown aggregate 'busy_hours': expected one of count, increase, last, last_time, max, mean, "
            "min, rate, stddev, sum or pNN (e.g. p95), "
            "or a plug-in aggregate (busy_hour, plain_mean, window_mean)",
        ),
        (
            '[{ name = "busy_hour", bucket = "0h" }]',
            "busy_hour: invalid duration '0h': it must be longer than zero",
        ),
        (
            '[{ name = "busy_hour", buket = "1h" }]',
            "busy_hour: unknown parameter 'buket' (parameters: bucket, min_samples)",
        ),
        ('[{ name = "plain_mean", window = 3 }]', "plain_mean: unknown parameter 'window' (it takes none)"),
        (
            '[{ bucket = "1h" }]',
            "{'bucket': '1h'}: an aggregate with parameters needs a name (name = \"busy_hour\")",
        ),
        ('[{ name = "mean", of = "rates" }]', "mean: a built-in aggregate takes no parameters (got of)"),
        ('["busy_hour", { name = "busy_hour", bucket = "2h" }]', "aggregates are listed more than once"),
    ],
)
def test_an_unknown_plugin_or_a_bad_parameter_is_one_line_naming_file_key_and_reason(
    tmp_path: Path, local_modules: None, aggregates: str, reason: str
) -> None:
    path = job_file(tmp_path, aggregates)
    with pytest.raises(ConfigError) as raised:
        load_job(path, known("traffic_stats"))
    assert str(raised.value) == f"{path}: fields.octets.aggregates: {reason}"


def test_a_plugin_of_a_module_not_in_the_settings_is_unknown(tmp_path: Path, local_modules: None) -> None:
    with pytest.raises(ConfigError, match="unknown aggregate 'plain_mean'"):
        load_job(job_file(tmp_path, '["plain_mean"]'), known())


def fake_distribution(root: Path, name: str, entry_points: dict[str, str]) -> None:
    """An installed distribution as importlib.metadata finds it: a .dist-info directory on the path."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[rollup.aggregates]\n{lines}\n")


def test_a_broken_or_ambiguous_entry_point_fails_only_the_jobs_that_use_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "broken_aggs", {"gone": "no_such_module:Gone", "busy_hour": "other:BusyHour"})
    fake_distribution(site, "shadowing_aggs", {"mean": "no_such_module:Mean"})
    monkeypatch.syspath_prepend(str(site))

    with pytest.raises(ConfigError) as raised:
        load_job(job_file(tmp_path, '["gone"]'), known())
    assert str(raised.value).endswith(
        "fields.octets.aggregates: plug-in 'gone' (entry point no_such_module:Gone of broken_aggs 0.1) "
        "cannot be loaded: ModuleNotFoundError: No module named 'no_such_module'"
    )
    with pytest.raises(ConfigError, match="plug-in 'busy_hour' is provided twice: by entry point "):
        load_job(job_file(tmp_path, '["busy_hour"]'), known())
    # a built-in's name always means the built-in; the other jobs load
    assert load_job(job_file(tmp_path, '["mean", "max"]'), known()).rollup.fields[0].plugins == ()


def settings_file(tmp_path: Path, plugins: str) -> Path:
    path = tmp_path / "rollup.toml"
    path.write_text(f"plugins = {plugins}\n")
    return path


def test_the_settings_name_modules_of_plugins_that_must_import(
    tmp_path: Path, local_modules: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(settings_file(tmp_path, '["traffic_stats"]')).plugins == ["traffic_stats"]

    path = settings_file(tmp_path, '["traffic_stat"]')
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert str(raised.value) == (
        f"{path} (or ROLLUP_ environment): plugins: cannot import module 'traffic_stat': "
        "ModuleNotFoundError: No module named 'traffic_stat' (is its directory on PYTHONPATH?)"
    )

    (tmp_path / "shadow_aggs.py").write_text(
        textwrap.dedent(
            """
            from rollup.plugins import WindowAggregate

            class Max(WindowAggregate):
                name = "max"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"plugins: plug-in Max of module shadow_aggs: 'max' is a built-in"):
        load_settings(settings_file(tmp_path, '["shadow_aggs"]'))


def test_a_job_file_loaded_again_is_the_same_job_unless_a_parameter_changed(tmp_path: Path) -> None:
    """rollup serve reloads job files on SIGHUP and restarts the jobs that changed: a fresh
    registry makes new plug-in instances, which must not count as a change."""
    path = job_file(tmp_path, '[{ name = "busy_hour", bucket = "1h" }]')
    before = load_job(path, known())
    assert load_job(path, known()) == before
    job_file(tmp_path, '[{ name = "busy_hour", bucket = "2h" }]')
    assert load_job(path, known()) != before

"""What --exact and the recommended settings write, and the differences each job file lists."""

from __future__ import annotations

import tomllib

import pytest

from rollup.migrate import Options, import_inputs
from rollup.migrate.importer import Input
from tests.unit.test_migrate_corpus import imported


def test_recommended_settings_keep_the_first_interval_count_resets_and_stamp_the_start() -> None:
    [job] = imported("kapacitor/classic_daily.tick", exact=False).jobs
    assert job.spec.window.lookback is None  # rollup's default: the interval across midnight counts
    assert {f.on_decrease for f in job.spec.fields.values()} == {"reset"}
    assert job.spec.output.timestamp == "start"
    header = job.toml.split("\nname = ")[0]
    for difference in ("first interval", 'on_decrease = "reset" (ifHCInOctets, ifHCOutOctets)', "window end"):
        assert difference in header.replace("\n#     ", " ")
    assert len(job.notes) == 4  # the three above, and the derivative taken per group by Kapacitor


def test_exact_settings_are_commented_as_the_originals() -> None:
    [job] = imported("kapacitor/classic_daily.tick").jobs
    data = tomllib.loads(job.toml)
    assert data["window"]["lookback"] == "0s"
    assert data["output"]["timestamp"] == "end"
    assert 'lookback = "0s"  # as the original' in job.toml
    assert job.notes == (
        "Kapacitor takes the derivative per group (agent_host, ifName), rollup per series (the same "
        "numbers only if those tags identify one series)",
    )


def test_the_original_output_names_are_kept_where_an_as_prefix_gives_them_back() -> None:
    [job] = imported("kapacitor/hourly_bits.tick").jobs
    assert job.renames == {
        "in_bps_mean": "in_bps_mean",
        "in_bps_max": "in_bps_max",
        "in_bps_p95": "in_bps_p95",
    }
    assert not any("written as" in note for note in job.notes)


def test_a_name_that_cannot_be_kept_is_listed_as_written_under_another() -> None:
    jobs = imported("cq/hourly_gauges.iql").jobs
    mem = next(job for job in jobs if job.name == "mem_1h")
    assert mem.renames["mean"] == "used_percent_mean"
    assert mem.renames["percentile"] == "used_percent_p99_9"
    assert "the original's field 'mean' is written as 'used_percent_mean'" in mem.notes


def test_spread_is_written_as_max_and_min_and_says_so() -> None:
    [job] = imported("kapacitor/gauges.tick").jobs
    assert {"max", "min"} <= set(job.spec.fields["temperature"].aggregates)
    assert "temperature_spread" not in job.renames
    assert any(note.startswith("spread() (max − min) is not a rollup aggregate") for note in job.notes)


def test_a_time_zone_in_recommended_mode_gives_local_days_and_says_every_window_changes() -> None:
    [job] = imported("kapacitor/classic_daily.tick", exact=False, timezone="Europe/Zurich").jobs
    assert job.spec.window.timezone == "Europe/Zurich"
    assert any("windows follow Europe/Zurich's calendar" in note for note in job.notes)


def test_kapacitor_offset_is_a_delay_in_recommended_mode_and_a_shift_with_exact() -> None:
    [exact] = imported("kapacitor/hourly_bits.tick").jobs
    [recommended] = imported("kapacitor/hourly_bits.tick", exact=False).jobs
    assert (exact.spec.window.offset.text, exact.spec.window.delay.text) == ("55m", "5m")
    assert (recommended.spec.window.offset.text, recommended.spec.window.delay.text) == ("0s", "5m")
    assert any(".offset(5m) delayed each query" in note for note in recommended.notes)


def test_weeks_counted_from_another_day_are_listed() -> None:
    [job] = imported("cq/weekly.iql").jobs
    assert any("start 3 day(s) after rollup's" in note for note in job.notes)


def test_a_cq_reading_a_field_two_ways_becomes_two_jobs_writing_the_same_points() -> None:
    statement = (
        "CREATE CONTINUOUS QUERY bw ON telegraf BEGIN SELECT mean(rate) * 8 AS bits_mean, max(rate) AS "
        "bytes_max INTO bw_1d FROM (SELECT non_negative_derivative(octets) AS rate FROM ifc GROUP BY *) "
        "GROUP BY time(1d), * END"
    )
    result = import_inputs("cq", [Input("argument 1", statement, "argument-1")], Options(exact=True))
    assert [(j.name, j.spec.fields["octets"].scale, j.spec.output.measurement) for j in result.jobs] == [
        ("bw", 8.0, "bw_1d"),
        ("bw-2", 1.0, "bw_1d"),
    ]
    assert [j.renames for j in result.jobs] == [{"bits_mean": "bits_mean"}, {"bytes_max": "bytes_max"}]


@pytest.mark.parametrize(
    ("measurement", "tag", "value"),
    [('weird "name"', "tag with space", "a'b\\c"), ("ünïcode", "t", "tab\there"), ("m", "t", "line\nbreak")],
)
def test_names_and_values_with_quotes_and_escapes_survive_the_toml(
    measurement: str, tag: str, value: str
) -> None:
    """InfluxQL escapes only backslash, the quote and a line feed; the TOML written must give back
    exactly what the statement said."""
    quoted_measurement = measurement.replace('"', '\\"')
    quoted_value = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    statement = (
        "CREATE CONTINUOUS QUERY q ON db BEGIN SELECT mean(v) AS v_mean INTO out "
        f'FROM "{quoted_measurement}" '
        f"WHERE \"{tag}\" = '{quoted_value}' GROUP BY time(1h), * END"
    )
    [job] = import_inputs("cq", [Input("argument 1", statement, "a")], Options()).jobs
    assert job.spec.source.measurement == measurement
    assert job.spec.source.where == {tag: value}

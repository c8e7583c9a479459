"""The corpus of tests/data/migrate: every TICKscript, continuous query and Flux task becomes the jobs
it should (with --exact), every job and sink profile validates, and every refusal names the file,
the line, the node and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollup.jobs.loader import load_job
from rollup.jobs.spec import FieldSpec, JobSpec, TagCondition
from rollup.migrate import ImportResult, Options, import_inputs, read_files
from rollup.migrate.plan import Language
from rollup.sinks.profiles import load_sink_profile

CORPUS = Path(__file__).resolve().parents[1] / "data" / "migrate"


def imported(name: str, exact: bool = True, **options: Any) -> ImportResult:
    path = CORPUS / name
    inputs, unreadable = read_files([path])
    assert unreadable == []
    language: Language = path.parent.name if path.parent.name != "refused" else path.parent.parent.name  # type: ignore[assignment]
    return import_inputs(language, inputs, Options(exact=exact, **options))


def _where(spec: JobSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag, condition in spec.source.where.items():
        if isinstance(condition, TagCondition):
            out[tag] = {"regex": condition.regex} if condition.regex is not None else {"not": condition.not_}
        else:
            out[tag] = condition
    return out


def _field(spec: FieldSpec) -> tuple[Any, ...]:
    on_decrease = spec.on_decrease if spec.kind == "counter" else None
    return (spec.output_name, spec.kind, on_decrease, spec.unit.text, spec.scale, spec.aggregates)


def summary(spec: JobSpec) -> dict[str, Any]:
    """What a job computes, in one comparable value."""
    window = spec.window
    return {
        "name": spec.name,
        "source": (spec.source.database, spec.source.retention_policy, spec.source.measurement),
        "where": _where(spec),
        "group_by": spec.group_by,
        "window": (
            window.every.text,
            window.timezone,
            window.offset.text,
            window.delay.text,
            None if window.lookback is None else window.lookback.text,
        ),
        "fields": {name: _field(f) for name, f in spec.fields.items()},
        "output": (spec.output.measurement, spec.output.sinks, spec.output.timestamp),
        "recompute": spec.schedule.recompute,
    }


def job(name: str, source: tuple[str, str | None, str], window: tuple[str, str, str, str, str | None],
        fields: dict[str, tuple[Any, ...]], output: tuple[str, list[str], str], *, where: Any = None,
        group_by: list[str] | None = None, recompute: int = 0) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name,
        "source": source,
        "where": where or {},
        "group_by": group_by,
        "window": window,
        "fields": fields,
        "output": output,
        "recompute": recompute,
    }


IF_GROUPS = ["agent_host", "ifName"]
EXACT_JOBS: dict[str, list[dict[str, Any]]] = {
    "kapacitor/classic_daily.tick": [
        job("classic_daily", ("telegraf", "autogen", "interface"), ("1d", "UTC", "0s", "0s", "0s"),
            {"ifHCInOctets": ("in", "counter", "drop", "1s", 1.0, ["mean"]),
             "ifHCOutOctets": ("out", "counter", "drop", "1s", 1.0, ["mean"])},
            ("interface_daily", ["rollups-autogen"], "end"), group_by=IF_GROUPS),
    ],
    "kapacitor/gauges.tick": [
        job("gauges", ("telegraf", "autogen", "sensors"), ("3h", "UTC", "0s", "0s", None),
            {"temperature": (None, "gauge", None, "1s", 1.0,
                             ["count", "last", "stddev", "p50", "max", "min"])},
            ("sensors_3h", ["rollups"], "end"), where={"site": "zurich"}),
    ],
    "kapacitor/hourly_bits.tick": [
        job("hourly_bits", ("telegraf", "autogen", "interface"), ("1h", "UTC", "55m", "5m", "0s"),
            {"ifHCInOctets": ("in_bps", "counter", "drop", "1s", 8.0, ["mean", "max", "p95"])},
            ("core_hourly", ["rollups"], "end"), group_by=IF_GROUPS,
            where={"agent_host": {"regex": "^core-"}, "ifName": ["xe-0/0/0", "xe-0/0/1"]}),
    ],
    "kapacitor/http_post.tick": [
        job("http_post", ("telegraf", "autogen", "interface"), ("1d", "UTC", "0s", "0s", "0s"),
            {"ifHCInOctets": ("in", "counter", "drop", "1s", 1.0, ["mean"])},
            ("interface", ["search"], "end"), group_by=["agent_host"]),
    ],
    "kapacitor/query_aggregate.tick": [
        job("query_aggregate", ("telegraf", "autogen", "cpu"), ("10m", "UTC", "0s", "0s", None),
            {"usage_idle": ("idle", "gauge", None, "1s", 1.0, ["mean"])},
            ("cpu_10m", ["rollups-forever"], "start"), group_by=["host"], where={"cpu": "cpu-total"}),
    ],
    "kapacitor/stream_derivative_first.tick": [
        job("stream_derivative_first", ("telegraf", "autogen", "interface"), ("1d", "UTC", "0s", "0s", None),
            {"ifHCOutOctets": ("out", "counter", "drop", "1s", 1.0, ["sum"])},
            ("out_daily", ["rollups"], "end")),
    ],
    "kapacitor/stream_window.tick": [
        job("stream_window", ("telegraf", "autogen", "net"), ("15m", "UTC", "0s", "0s", "0s"),
            {"bytes_recv": ("recv_per_minute", "counter", "drop", "1m", 1.0, ["mean"])},
            ("net_15m", ["rollups"], "end"), group_by=["host", "interface"],
            where={"interface": {"not": ["lo", "docker0"]}}),
    ],
    "kapacitor/unaligned.tick": [
        job("unaligned", ("collectd", "autogen", "if_octets"), ("1h", "UTC", "0s", "0s", "0s"),
            {"value": ("octets", "counter", "drop", "1s", 1.0, ["mean"])},
            ("octets_1h", ["rollups"], "end"), group_by=[]),
    ],
    "cq/daily_bandwidth.iql": [
        job("bandwidth-daily", ("telegraf", "autogen", "interface"),
            ("1d", "Europe/Zurich", "0s", "0s", "0s"),
            {"ifHCInOctets": ("in_bps", "counter", "drop", "1s", 8.0, ["mean", "max", "p95"])},
            ("interface_daily", ["rollups-autogen"], "start"), group_by=IF_GROUPS, recompute=1,
            where={"agent_host": {"regex": "^sw\\d+$"}, "ifName": {"not": "lo0"}}),
    ],
    "cq/hourly_gauges.iql": [
        job("cpu_1h", ("telegraf", None, "cpu"), ("1h", "UTC", "0s", "0s", None),
            {"usage_idle": (None, "gauge", None, "1s", 1.0, ["mean", "max", "count"])},
            ("cpu_1h", ["telegraf-rollups"], "start"), where={"cpu": "cpu-total"}),
        job("mem_1h", ("telegraf", None, "mem"), ("1h", "UTC", "0s", "0s", None),
            {"used_percent": (None, "gauge", None, "1s", 1.0,
                              ["mean", "p99.9", "p50", "max", "min", "stddev"])},
            ("mem_1h", ["telegraf-rollups"], "start"), group_by=["host"]),
    ],
    "cq/scaled_gauge.iql": [
        job("disk_gb", ("telegraf", None, "disk"), ("1d", "UTC", "0s", "0s", None),
            {"used": ("used_gb", "gauge", None, "1s", 1e-09, ["mean", "min"])},
            ("disk_1d", ["telegraf"], "start"), group_by=["host"], where={"path": ["/", "/var"]}),
    ],
    "cq/shown.iql": [
        job("cq_octets", ("telegraf", "autogen", "ifc"), ("1h", "America/New_York", "45m", "0s", "0s"),
            {"octets": (None, "counter", "drop", "1m", 1.0, ["mean", "sum", "last"])},
            ("octets_1h", ["telegraf-autogen"], "start"), group_by=["host"], recompute=2),
    ],
    "cq/weekly.iql": [
        job("load_1w", ("telegraf", None, "system"), ("1w", "UTC", "0s", "0s", None),
            {"load1": (None, "gauge", None, "1s", 1.0, ["max"])},
            ("load_1w", ["telegraf"], "start"), group_by=["host"]),
    ],
    "flux/branches.flux": [
        job(name, ("telegraf", None, "interface"), ("1h", "Europe/Zurich", "0s", "5m", "0s"),
            {f: (None, "counter", "reset", "1s", 8.0, [aggregate])
             for f in ("ifHCInOctets", "ifHCOutOctets")},
            (measurement, ["rollups"], "end"), group_by=IF_GROUPS, recompute=1,
            where={"ifName": ["xe-0/0/0", "xe-0/0/1"]})
        for name, aggregate, measurement in (
            ("traffic-hourly", "mean", "traffic_1h"),
            ("traffic-hourly-2", "max", "traffic_1h_max"),
            ("traffic-hourly-3", "p95", "traffic_1h_p95"),
        )
    ],
    "flux/count.flux": [
        job("requests", ("web", None, "nginx"), ("5m", "UTC", "0s", "0s", None),
            {"status": (None, "gauge", None, "1s", 1.0, ["count"])}, ("nginx", ["rollups"], "end")),
    ],
    "flux/daily_bandwidth.flux": [
        job("bandwidth-daily", ("telegraf", "autogen", "interface"), ("1d", "UTC", "0s", "15m", "0s"),
            {"ifHCInOctets": (None, "counter", "drop", "1s", 1.0, ["mean"])},
            ("interface_daily", ["rollups"], "end"), where={"agent_host": {"regex": "^sw"}}),
    ],
    "flux/gauge_start.flux": [
        job("temperature-3h", ("sensors", "autogen", "climate"), ("3h", "UTC", "1h", "0s", None),
            {"temperature": ("temperature_median", "gauge", None, "1s", 1.0, ["p50"])},
            ("climate", ["rollups-forever"], "start"), where={"site": {"not": "lab"}}),
    ],
}  # fmt: skip

REFUSALS: dict[str, tuple[int, str, str]] = {
    "kapacitor/refused/alert.tick": (11, "alert()", "it does not alert"),
    "kapacitor/refused/cron.tick": (4, "cron()", "use .every() with .align()"),
    "kapacitor/refused/derivative_of_mean.tick": (6, "derivative()", "a derivative of an aggregate"),
    "kapacitor/refused/eval_expression.tick": (6, "eval()", "multiplied or divided by a positive constant"),
    "kapacitor/refused/field_condition.tick": (5, "where()", "a condition on a field value cannot"),
    "kapacitor/refused/first.tick": (5, "first()", "keeps the last value of a window, not the first"),
    "kapacitor/refused/join.tick": (10, "join()", "joins several pipelines"),
    "kapacitor/refused/negated_regex.tick": (5, "where()", "no negated regex"),
    "kapacitor/refused/no_output.tick": (1, "batch", "no branch writes anything"),
    "kapacitor/refused/raw_copy.tick": (5, "influxDBOut()", "writes the points as they are"),
    "kapacitor/refused/sliding_window.tick": (5, "window()", "period 10m with every 1m"),
    "kapacitor/refused/static_tag.tick": (8, "influxDBOut().tag()", "a static tag"),
    "kapacitor/refused/template_var.tick": (
        1,
        "var measurement string",
        "a template variable without a value",
    ),
    "kapacitor/refused/truncated.tick": (7, "mean()", "is it cut short?"),
    "kapacitor/refused/udf.tick": (8, "@movingAverage()", "a user-defined function"),
    "kapacitor/refused/unknown_node.tick": (5, "derivativ()", "not a node rollup import knows"),
    "kapacitor/refused/unsigned.tick": (6, "derivative()", "keeps negative rates"),
    "cq/refused/backreference.iql": (2, "INTO :MEASUREMENT", "one job reads one measurement"),
    "cq/refused/derivative_of_mean.iql": (
        1,
        "non_negative_derivative(mean(…))",
        "an aggregate of an aggregate",
    ),
    "cq/refused/field_condition.iql": (3, "WHERE", "a condition on a field value cannot"),
    "cq/refused/first.iql": (1, "first()", "not the first"),
    "cq/refused/inner_buckets.iql": (2, "GROUP BY time", "a subquery aggregated per time bucket"),
    "cq/refused/math.iql": (1, "operator +", "only a product with a constant"),
    "cq/refused/no_into.iql": (1, "SELECT", "must SELECT … INTO a measurement"),
    "cq/refused/not_cq.iql": (1, "CREATE DATABASE", "not a CREATE CONTINUOUS QUERY"),
    "cq/refused/regex_source.iql": (1, "FROM /regex/", "one job reads one measurement"),
    "cq/refused/signed.iql": (1, "derivative()", "keeps negative rates"),
    "cq/refused/truncated.iql": (3, "", "the text ends where END was expected: is it cut short?"),
    "cq/refused/unclosed_string.iql": (1, "", "a string literal is not closed"),
    "cq/refused/wildcard.iql": (1, "mean(*)", "name the fields"),
    "flux/refused/cron.flux": (1, "option task cron", "use every"),
    "flux/refused/field_regex.flux": (4, "filter()", "r._field must be equalities"),
    "flux/refused/join.flux": (4, "join()", "joins several streams"),
    "flux/refused/map_expression.flux": (5, "map()", "only a scale"),
    "flux/refused/no_to.flux": (0, "to()", "no pipeline writes with to()"),
    "flux/refused/partial_range.flux": (2, "range()", "each run must read whole windows"),
    "flux/refused/truncated.flux": (5, "", "is it cut short?"),
    "flux/refused/unsigned.flux": (5, "derivative()", "nonNegative: true"),
    "flux/refused/value_condition.flux": (
        4,
        "filter()",
        "only conditions on r._measurement, r._field and tags",
    ),
    "flux/refused/window.flux": (5, "window()", "write aggregateWindow"),
}


def test_every_corpus_file_is_pinned_by_a_test() -> None:
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.suffix in (".tick", ".iql", ".flux")}
    assert files == set(EXACT_JOBS) | set(REFUSALS)


@pytest.mark.parametrize("name", sorted(EXACT_JOBS))
def test_exact_import_gives_the_jobs_that_compute_what_the_original_does(name: str) -> None:
    result = imported(name)
    assert result.refusals == []
    assert [summary(job.spec) for job in result.jobs] == EXACT_JOBS[name]


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "recommended"])
@pytest.mark.parametrize("name", sorted(EXACT_JOBS))
def test_every_emitted_job_and_sink_profile_loads_from_its_file(
    name: str, exact: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = imported(name, exact=exact)
    for item in result.jobs:
        path = tmp_path / f"{item.name}.toml"
        path.write_text(item.toml)
        assert load_job(path) == item.spec
    monkeypatch.setenv("ROLLUP_INFLUX_TOKEN", "a-token")
    for sink in result.sinks:
        path = tmp_path / f"{sink.name}.toml"
        path.write_text(sink.toml)
        assert getattr(load_sink_profile(path), "type") in ("influxdb", "elasticsearch")  # noqa: B009
    used = {sink for item in result.jobs for sink in item.spec.output.sinks}
    assert used == {sink.name for sink in result.sinks}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_untranslatable_input_is_refused_with_its_line_node_and_reason(name: str) -> None:
    result = imported(name)
    line, node, reason = REFUSALS[name]
    assert result.jobs == []
    assert len(result.refusals) == 1
    refusal = result.refusals[0]
    assert (refusal.file, refusal.line, refusal.node) == (str(CORPUS / name), line, node)
    assert reason in refusal.reason
    assert str(refusal).startswith(f"{CORPUS / name}:{line}: " if line else f"{CORPUS / name}: ")

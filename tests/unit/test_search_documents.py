"""Documents, their ids and the index template built from a job's output schema."""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import pytest

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window, to_ns
from rollup.errors import ConfigError, SinkError
from rollup.sinks.base import OutputTarget
from rollup.sinks.search.documents import Documents, document_id
from rollup.sinks.search.index_names import IndexNames
from rollup.sinks.search.template import mapping, template_body

ZURICH = ZoneInfo("Europe/Zurich")
SCHEMA = {"in_mean": "double", "in_samples": "long", "in_seconds": "double"}


def target(
    tags: tuple[str, ...] | None = ("host",), job: str = "bw", zone: str = "Europe/Zurich"
) -> OutputTarget:
    return OutputTarget(job, "bw_daily", "1d", zone, tags, SCHEMA)  # type: ignore[arg-type]


def local_day(year: int, month: int, day: int) -> Window:
    start = dt.datetime(year, month, day, tzinfo=ZURICH)
    end = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(), ZURICH)
    return Window(to_ns(start), to_ns(end))


DST_END = local_day(2026, 10, 25)  # 25 hours long: +02:00 at its start, +01:00 at its end


def row(tags: dict[str, str] | None = None, window: Window = DST_END, **values: float) -> OutputRow:
    return OutputRow(
        tags if tags is not None else {"host": "a"}, window, window.start, values or {"in_samples": 3}
    )


def test_a_document_has_times_in_the_job_zone_tags_and_typed_values() -> None:
    doc = Documents(target()).source(row(in_mean=2.0, in_samples=1440, in_seconds=90_000.0))
    assert doc == {
        "@timestamp": "2026-10-25T00:00:00+02:00",
        "window": "1d",
        "window_start": "2026-10-25T00:00:00+02:00",
        "window_end": "2026-10-26T00:00:00+01:00",
        "job": "bw",
        "host": "a",
        "in_mean": 2.0,
        "in_samples": 1440,
        "in_seconds": 90_000.0,
    }
    assert type(doc["in_mean"]) is float
    assert type(doc["in_samples"]) is int


def test_a_utc_job_renders_utc_times() -> None:
    window = Window(0, 86_400 * 10**9)
    assert (
        Documents(target(zone="UTC")).source(row(window=window))["@timestamp"] == "1970-01-01T00:00:00+00:00"
    )


def test_timestamp_at_the_window_end_keeps_window_start() -> None:
    stamped_at_end = OutputRow({"host": "a"}, DST_END, DST_END.end, {"in_samples": 1})
    doc = Documents(target()).source(stamped_at_end)
    assert doc["@timestamp"] == doc["window_end"] == "2026-10-26T00:00:00+01:00"
    assert doc["window_start"] == "2026-10-25T00:00:00+02:00"


def test_empty_tag_values_are_left_out() -> None:
    doc = Documents(target(tags=None)).source(row({"host": "a", "rack": ""}))
    assert "rack" not in doc


def test_non_finite_values_are_left_out_and_whole_floats_of_long_fields_become_integers() -> None:
    doc = Documents(target()).source(row(in_mean=math.inf, in_seconds=math.nan, in_samples=4.0))
    assert "in_mean" not in doc
    assert "in_seconds" not in doc
    assert doc["in_samples"] == 4
    assert type(doc["in_samples"]) is int


def test_a_fraction_in_a_long_field_is_an_error() -> None:
    with pytest.raises(SinkError, match=r"field 'in_samples' is declared long but holds 2\.5"):
        Documents(target()).source(row(in_samples=2.5))


def test_a_field_outside_the_schema_is_an_error() -> None:
    with pytest.raises(SinkError, match="has field 'out_mean' that the job's output schema does not declare"):
        Documents(target()).source(row(out_mean=1.0))


def test_a_group_by_tag_named_like_a_document_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="job bw: group_by tag\\(s\\) in_mean, window would overwrite"):
        Documents(target(tags=("window", "in_mean", "host")))


def test_a_series_tag_named_like_a_document_field_is_refused() -> None:
    with pytest.raises(SinkError, match="tag 'job' has the name of a document field"):
        Documents(target(tags=None)).source(row({"host": "a", "job": "x"}))


@pytest.mark.parametrize("tag", ["_id", "_index", "_source", "_routing", "_ignored", "_anything"])
def test_a_group_by_tag_named_like_search_metadata_is_refused_with_its_name_and_the_reason(tag: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Documents(target(tags=("host", tag)))
    message = str(raised.value)
    assert message.startswith(f"job bw: group_by tag(s) {tag} cannot be document fields: ")
    assert "reserve names starting with '_' for metadata fields" in message
    assert "leave them out of group_by" in message


def test_an_output_field_named_like_search_metadata_is_refused() -> None:
    schema = {"_id_mean": "double", "in_mean": "double"}
    with pytest.raises(
        ConfigError, match=r"job bw: output field\(s\) _id_mean cannot be document fields: .*\(as\)"
    ):
        Documents(OutputTarget("bw", "bw_daily", "1d", "UTC", ("host",), schema))  # type: ignore[arg-type]


def test_a_series_tag_named_like_search_metadata_is_refused_when_written() -> None:
    with pytest.raises(SinkError) as raised:
        Documents(target(tags=None)).source(row({"host": "a", "_id": "x"}))
    assert "tag '_id' cannot be a document field: Elasticsearch and OpenSearch reserve" in str(raised.value)
    assert raised.value.transient is False
    # an empty value is no tag of the group: nothing to refuse
    assert "_id" not in Documents(target(tags=None)).source(row({"host": "a", "_id": ""}))


def test_the_id_depends_on_job_group_and_window_start_only() -> None:
    base = row({"host": "a", "if": "xe-0"}, in_mean=1.0)
    same = OutputRow({"if": "xe-0", "host": "a", "rack": ""}, base.window, base.window.end, {"in_mean": 9.0})
    assert document_id("bw", same) == document_id("bw", base)
    assert len(document_id("bw", base)) == 32
    other_window = row({"host": "a", "if": "xe-0"}, local_day(2026, 10, 26))
    for different in (
        document_id("bw2", base),
        document_id("bw", row({"host": "a", "if": "xe-1"})),
        document_id("bw", row({"host": "a"})),
        document_id("bw", other_window),
    ):
        assert different != document_id("bw", base)


def test_tag_pairs_cannot_collide_through_separators() -> None:
    assert document_id("bw", row({"a": "b,c=d"})) != document_id("bw", row({"a": "b", "c": "d"}))


def test_with_group_by_the_mapping_is_strict_with_keyword_tags() -> None:
    strict = mapping(target(tags=("host", "ifName")))
    assert strict["dynamic"] == "strict"
    assert strict["properties"]["host"] == strict["properties"]["ifName"] == {"type": "keyword"}
    assert strict["properties"]["in_samples"] == {"type": "long"}
    assert strict["properties"]["in_mean"] == {"type": "double"}
    assert strict["properties"]["window_end"] == {"type": "date"}
    assert "dynamic_templates" not in strict


def test_without_group_by_new_strings_become_keywords_and_nothing_is_detected() -> None:
    dynamic = mapping(target(tags=None))
    assert dynamic["dynamic"] == "true"
    assert dynamic["date_detection"] is False
    assert dynamic["numeric_detection"] is False
    [rule] = dynamic["dynamic_templates"]
    assert rule["tags_as_keywords"] == {"match_mapping_type": "string", "mapping": {"type": "keyword"}}


def test_the_template_fingerprint_follows_its_content() -> None:
    names = IndexNames.of("rollup-{job}-{yyyy.MM}", "bw", "bw_daily", "UTC")
    first = template_body(names, target())
    assert template_body(names, target()) == first
    assert first["index_patterns"] == ["rollup-bw-*"]
    assert first["_meta"]["managed_by"] == "rollup"
    assert first["_meta"]["job"] == "bw"
    assert "settings" not in first["template"]
    with_replicas = template_body(names, target(), replicas=0)
    assert with_replicas["template"]["settings"] == {"number_of_replicas": 0}
    changed = {template_body(names, t)["_meta"]["fingerprint"] for t in (target(tags=None), target(job="x"))}
    assert first["_meta"]["fingerprint"] not in changed | {with_replicas["_meta"]["fingerprint"]}

"""The Elasticsearch and OpenSearch sinks against real servers: what is written is what is read back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Literal
from zoneinfo import ZoneInfo

import pytest

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window, to_ns
from rollup.errors import SinkError
from rollup.sinks.base import OutputTarget
from rollup.sinks.elasticsearch import ElasticsearchSink, ElasticsearchSinkProfile
from rollup.sinks.opensearch import OpenSearchSink, OpenSearchSinkProfile
from rollup.sinks.search.documents import document_id
from rollup.sinks.search.sink import SearchSink
from tests.conftest import SearchHelper

pytestmark = pytest.mark.integration

ZURICH = ZoneInfo("Europe/Zurich")
Schema = dict[str, Literal["long", "double"]]
SCHEMA: Schema = {"in_mean": "double", "in_max": "double", "in_samples": "long", "in_resets": "long"}
MakeSink = Callable[..., SearchSink]


def local_day(year: int, month: int, day: int) -> Window:
    start = dt.datetime(year, month, day, tzinfo=ZURICH)
    end = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(), ZURICH)
    return Window(to_ns(start), to_ns(end))


NOV1 = local_day(2026, 11, 1)  # 2026-10-31T23:00Z
OCT31 = local_day(2026, 10, 31)


def target(
    job: str = "bw", tags: tuple[str, ...] | None = ("host",), schema: Schema | None = None
) -> OutputTarget:
    return OutputTarget(job, f"{job}_daily", "1d", "Europe/Zurich", tags, schema or SCHEMA)


def rows(window: Window = NOV1, count: int = 3, mean: float = 1.5) -> list[OutputRow]:
    return [
        OutputRow(
            {"host": f"sw{i:03d}"},
            window,
            window.start,
            {"in_mean": mean * i, "in_max": 2.0 * i, "in_samples": 1440 + i, "in_resets": i % 2},
        )
        for i in range(count)
    ]


@pytest.fixture
def make_sink(search: SearchHelper) -> Iterator[MakeSink]:
    made: list[SearchSink] = []

    def make(sink_target: OutputTarget | None = None, **changes: object) -> SearchSink:
        settings: dict[str, object] = {
            "type": search.flavor,
            "url": search.url,
            "index": f"{search.prefix}-{{job}}-{{yyyy.MM}}",
            "backoff": 0.01,
        }
        settings.update(changes)
        sink: SearchSink
        if search.flavor == "elasticsearch":
            profile = ElasticsearchSinkProfile.model_validate(settings)
            sink = ElasticsearchSink("search", profile, sink_target or target())
        else:
            os_profile = OpenSearchSinkProfile.model_validate(settings)
            sink = OpenSearchSink("search", os_profile, sink_target or target())
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


def test_template_is_installed_and_maps_tags_times_and_metrics(
    search: SearchHelper, make_sink: MakeSink
) -> None:
    assert make_sink().write(rows()) == 3

    templates = search.templates()
    assert list(templates) == [f"{search.prefix}-bw-yyyy.mm"]
    template = templates[f"{search.prefix}-bw-yyyy.mm"]
    assert template["index_patterns"] == [f"{search.prefix}-bw-*"]
    assert template["_meta"]["job"] == "bw"
    assert search.indices() == [f"{search.prefix}-bw-2026.11"]
    mapping = search.mapping(f"{search.prefix}-bw-2026.11")
    assert mapping["dynamic"] == "strict"
    types = {name: spec["type"] for name, spec in mapping["properties"].items()}
    assert types == {
        "@timestamp": "date",
        "window_start": "date",
        "window_end": "date",
        "window": "keyword",
        "job": "keyword",
        "host": "keyword",
        "in_mean": "double",
        "in_max": "double",
        "in_samples": "long",
        "in_resets": "long",
    }


def test_documents_read_back_exactly(search: SearchHelper, make_sink: MakeSink) -> None:
    written = rows(count=4, mean=0.1 + 0.2)
    make_sink().write(written)

    hits = search.documents()
    assert [hit["_id"] for hit in hits] == sorted(document_id("bw", row) for row in written)
    by_host = {hit["_source"]["host"]: hit for hit in hits}
    for row in written:
        source = by_host[row.tags["host"]]["_source"]
        assert source == {
            "@timestamp": "2026-11-01T00:00:00+01:00",
            "window": "1d",
            "window_start": "2026-11-01T00:00:00+01:00",
            "window_end": "2026-11-02T00:00:00+01:00",
            "job": "bw",
            **row.tags,
            **row.values,
        }
        assert float(source["in_mean"]).hex() == float(row.values["in_mean"]).hex()
        assert type(source["in_samples"]) is int


def test_index_suffix_is_the_local_month_of_the_window_start(
    search: SearchHelper, make_sink: MakeSink
) -> None:
    """The local day of 1 November starts at 2026-10-31T23:00Z: it still goes to the November index."""
    make_sink().write(rows(OCT31, count=2) + rows(NOV1, count=2))

    assert search.indices() == [f"{search.prefix}-bw-2026.10", f"{search.prefix}-bw-2026.11"]
    october = search.documents(f"{search.prefix}-bw-2026.10")
    assert {hit["_source"]["@timestamp"] for hit in october} == {"2026-10-31T00:00:00+01:00"}
    assert {hit["_source"]["window_end"] for hit in october} == {"2026-11-01T00:00:00+01:00"}
    newest = search.newest()
    assert newest["_index"] == f"{search.prefix}-bw-2026.11"
    assert newest["sort"] == [NOV1.start // 1_000_000]  # epoch ms: 2026-10-31T23:00Z


def test_writing_again_overwrites_and_bumps_the_version(search: SearchHelper, make_sink: MakeSink) -> None:
    sink = make_sink()
    sink.write(rows(count=5))
    sink.write(rows(count=5, mean=7.0))

    hits = search.documents()
    assert len(hits) == 5
    assert {hit["_version"] for hit in hits} == {2}
    assert sorted(hit["_source"]["in_mean"] for hit in hits) == [0.0, 7.0, 14.0, 21.0, 28.0]


def test_without_group_by_every_tag_becomes_a_keyword(search: SearchHelper, make_sink: MakeSink) -> None:
    """Tag values that look like dates or numbers stay keywords; a new tag later is one too."""
    sink = make_sink(target(tags=None))
    first = OutputRow({"host": "2026-11-01", "slot": "42"}, NOV1, NOV1.start, {"in_samples": 1})
    later = OutputRow({"host": "x", "rack": "7"}, NOV1, NOV1.start, {"in_samples": 2, "in_mean": 3.0})
    sink.write([first])
    sink.write([later])

    mapping = search.mapping(f"{search.prefix}-bw-2026.11")
    types = {name: spec["type"] for name, spec in mapping["properties"].items()}
    assert types["host"] == types["slot"] == types["rack"] == "keyword"
    assert types["in_mean"] == "double"
    assert len(search.documents()) == 2


def test_a_field_added_to_the_job_is_added_to_the_existing_index(
    search: SearchHelper, make_sink: MakeSink
) -> None:
    """The month's index was created before the job gained an aggregate: strict mapping must not
    reject the new field until the next month."""
    make_sink().write(rows(count=1))
    grown = make_sink(target(schema={**SCHEMA, "in_p95": "double"}))
    row = OutputRow({"host": "new"}, NOV1, NOV1.start, {"in_samples": 3, "in_p95": 9.5})
    assert grown.write([row]) == 1

    mapping = search.mapping(f"{search.prefix}-bw-2026.11")
    assert mapping["properties"]["in_p95"] == {"type": "double"}
    assert len(search.documents()) == 2


def test_rejected_documents_are_reported_with_their_errors(search: SearchHelper, make_sink: MakeSink) -> None:
    """An index whose mapping disagrees with the documents (here made by hand): the first item
    errors are in the message, and the documents that were accepted are not counted as written."""
    index = f"{search.prefix}-bw-2026.11"
    search.request("PUT", f"/{index}", json={"mappings": {"properties": {"host": {"type": "long"}}}})
    sink = make_sink(target(tags=None))
    good = OutputRow({"host": "17"}, NOV1, NOV1.start, {"in_samples": 1})
    bad = [OutputRow({"host": f"sw{i}"}, NOV1, NOV1.start, {"in_samples": 1}) for i in range(5)]

    with pytest.raises(SinkError) as caught:
        sink.write([good, *bad])
    message = str(caught.value)
    assert "5 of 6 documents were rejected (first 3):" in message
    assert f"{index}/{document_id('bw', bad[0])} {{'host': 'sw0'}}: HTTP 400" in message
    assert "failed to parse field [host] of type [long]" in message
    assert message.count("HTTP 400") == 3


def test_another_jobs_template_is_not_replaced(search: SearchHelper, make_sink: MakeSink) -> None:
    shared = f"{search.prefix}-shared-{{yyyy.MM}}"
    make_sink(target(job="first"), index=shared).write(rows(count=1))
    with pytest.raises(SinkError) as caught:
        make_sink(target(job="second"), index=shared).write(rows(count=1))
    message = str(caught.value)
    assert f"index template '{search.prefix}-shared-yyyy.mm'" in message
    assert "belongs to job 'first'" in message
    assert "put {job} in the profile's index pattern" in message
    assert search.templates()[f"{search.prefix}-shared-yyyy.mm"]["_meta"]["job"] == "first"


def test_jobs_whose_names_extend_each_other_have_their_own_templates(
    search: SearchHelper, make_sink: MakeSink
) -> None:
    """``…-if-*`` also matches the indices of job ``if-daily``: the longer pattern has priority."""
    make_sink(target(job="if")).write(rows(count=1))
    make_sink(target(job="if-daily", tags=("port",))).write(
        [OutputRow({"port": "xe-0/0/1"}, NOV1, NOV1.start, {"in_samples": 5})]
    )
    mapping = search.mapping(f"{search.prefix}-if-daily-2026.11")
    assert mapping["properties"]["port"] == {"type": "keyword"}
    assert "host" not in mapping["properties"]


def test_small_batches_write_every_document(search: SearchHelper, make_sink: MakeSink) -> None:
    sink = make_sink(batch_size=3, batch_bytes=1000)
    assert sink.write(rows(count=10) + rows(OCT31, count=10)) == 20
    assert len(search.documents()) == 20


def test_install_template_false_writes_into_what_is_there(search: SearchHelper, make_sink: MakeSink) -> None:
    make_sink(install_template=False).write(rows(count=2))
    assert search.templates() == {}
    assert len(search.documents()) == 2


def test_the_elasticsearch_type_on_opensearch_says_which_type_to_use(opensearch_url: str) -> None:
    profile = ElasticsearchSinkProfile.model_validate(
        {"type": "elasticsearch", "url": opensearch_url, "index": "wrong-type-{job}-{yyyy}", "retries": 0}
    )
    sink = ElasticsearchSink("search", profile, target())
    with pytest.raises(SinkError, match='is it OpenSearch\\? then use type = "opensearch"'):
        sink.write(rows(count=1))
    sink.close()

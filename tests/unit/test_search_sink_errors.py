"""The Elasticsearch and OpenSearch sinks on scripted answers: retries, per-item errors, templates,
credentials. Both real client libraries talk to a scripted HTTP endpoint (tests/unit/scripted_cluster.py)."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator

import pytest

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window
from rollup.errors import SinkError
from rollup.sinks.base import OutputTarget, Sink
from rollup.sinks.elasticsearch import ElasticsearchSink, ElasticsearchSinkProfile
from rollup.sinks.opensearch import OpenSearchSink, OpenSearchSinkProfile
from rollup.sinks.search.documents import document_id
from rollup.sinks.search.index_names import IndexNames
from rollup.sinks.search.sink import SearchSink
from rollup.sinks.search.template import template_body
from scripts.servers import free_port
from tests.unit.scripted_cluster import Cluster, error, item_statuses

SECRET = "s3cr3t-Pa55word"
DAY = 86_400 * 10**9
NOV = Window(1_793_487_600 * 10**9, 1_793_487_600 * 10**9 + DAY)  # 2026-11-01 00:00 Europe/Zurich
DEC = Window(NOV.start + 30 * DAY, NOV.start + 31 * DAY)
TARGET = OutputTarget(
    "bw", "bw_daily", "1d", "Europe/Zurich", ("host",), {"in_mean": "double", "in_samples": "long"}
)
MakeSink = Callable[..., SearchSink]
PRODUCT = {"elasticsearch": "Elasticsearch", "opensearch": "OpenSearch"}


def rows(count: int = 5, window: Window = NOV) -> list[OutputRow]:
    return [
        OutputRow({"host": f"h{i}"}, window, window.start, {"in_mean": 0.5 * i, "in_samples": i})
        for i in range(count)
    ]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    scripted = Cluster()
    scripted.start()
    yield scripted
    scripted.stop()


@pytest.fixture(params=["elasticsearch", "opensearch"])
def flavor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_sink(flavor: str, cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeSink]:
    monkeypatch.setenv("ROLLUP_TEST_SEARCH_PASSWORD", SECRET)
    made: list[SearchSink] = []

    def make(**changes: object) -> SearchSink:
        settings: dict[str, object] = {
            "type": flavor,
            "url": cluster.url,
            "username": "writer",
            "password_env": "ROLLUP_TEST_SEARCH_PASSWORD",
            "backoff": 0.001,
            "retries": 3,
            "timeout": "5s",
        }
        settings.update(changes)
        sink: SearchSink
        if flavor == "elasticsearch":
            sink = ElasticsearchSink("search", ElasticsearchSinkProfile.model_validate(settings), TARGET)
        else:
            sink = OpenSearchSink("search", OpenSearchSinkProfile.model_validate(settings), TARGET)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


def test_sinks_satisfy_the_protocol(make_sink: MakeSink) -> None:
    sink: Sink = make_sink()
    assert sink.name == "search"


def test_first_write_installs_the_template_then_writes_the_documents(
    make_sink: MakeSink, cluster: Cluster
) -> None:
    assert make_sink().write(rows(3)) == 3
    assert [r.kind for r in cluster.requests] == ["get_template", "put_template", "put_mapping", "bulk"]
    put = cluster.of_kind("put_template")[0]
    assert put.path.startswith("/_index_template/rollup-bw-yyyy.mm")
    [bulk] = cluster.of_kind("bulk")
    documents = bulk.documents()
    assert [action["index"]["_index"] for action, _ in documents] == ["rollup-bw-2026.11"] * 3
    assert [action["index"]["_id"] for action, _ in documents] == [document_id("bw", row) for row in rows(3)]
    assert documents[1][1]["in_samples"] == 1
    assert documents[1][1]["@timestamp"] == "2026-11-01T00:00:00+01:00"


def test_nothing_to_write_sends_nothing(make_sink: MakeSink, cluster: Cluster) -> None:
    assert make_sink().write([]) == 0
    assert cluster.requests == []


def test_batches_follow_batch_size_and_are_gzipped(make_sink: MakeSink, cluster: Cluster) -> None:
    assert make_sink(batch_size=2).write(rows(5)) == 5
    bulks = cluster.of_kind("bulk")
    assert [len(b.documents()) for b in bulks] == [2, 2, 1]
    assert all(b.headers.get("content-encoding") == "gzip" for b in bulks)


def test_batches_follow_batch_bytes(make_sink: MakeSink, cluster: Cluster) -> None:
    assert make_sink(batch_bytes=1000, gzip=False).write(rows(10)) == 10
    bulks = cluster.of_kind("bulk")
    assert len(bulks) > 1
    assert all(len(b.body) <= 1000 for b in bulks)
    assert all("content-encoding" not in b.headers for b in bulks)
    assert sum(len(b.documents()) for b in bulks) == 10


def test_each_index_gets_its_mapping_extended_once_per_sink(make_sink: MakeSink, cluster: Cluster) -> None:
    sink = make_sink()
    sink.write(rows(2))
    sink.write(rows(2) + rows(2, DEC))
    mappings = [r.path.split("/")[1] for r in cluster.of_kind("put_mapping")]
    assert mappings == ["rollup-bw-2026.11", "rollup-bw-2026.12"]
    assert len(cluster.of_kind("get_template")) == 1


def test_an_identical_template_is_not_written_again(make_sink: MakeSink, cluster: Cluster) -> None:
    names = IndexNames.of("rollup-{job}-{yyyy.MM}", "bw", "bw_daily", "Europe/Zurich")
    installed = template_body(names, TARGET)
    cluster.script(
        "get_template",
        (200, {"index_templates": [{"name": "rollup-bw-yyyy.mm", "index_template": installed}]}),
    )
    make_sink().write(rows(1))
    assert cluster.of_kind("put_template") == []

    changed = {**installed, "_meta": {**installed["_meta"], "fingerprint": "older"}}
    cluster.script(
        "get_template", (200, {"index_templates": [{"name": "rollup-bw-yyyy.mm", "index_template": changed}]})
    )
    make_sink().write(rows(1))
    assert len(cluster.of_kind("put_template")) == 1


def test_a_template_not_made_by_rollup_is_left_alone(make_sink: MakeSink, cluster: Cluster) -> None:
    cluster.script(
        "get_template",
        (
            200,
            {
                "index_templates": [
                    {"name": "rollup-bw-yyyy.mm", "index_template": {"index_patterns": ["rollup-bw-*"]}}
                ]
            },
        ),
    )
    with pytest.raises(
        SinkError, match=r"'rollup-bw-yyyy\.mm' exists and was not made by rollup.*install_template = false"
    ):
        make_sink().write(rows(1))
    assert cluster.of_kind("put_template") == cluster.of_kind("bulk") == []


def test_install_template_false_only_writes_documents(make_sink: MakeSink, cluster: Cluster) -> None:
    make_sink(install_template=False).write(rows(2))
    assert [r.kind for r in cluster.requests] == ["bulk"]


def test_a_mapping_conflict_on_an_existing_index_stops_before_any_document(
    make_sink: MakeSink, cluster: Cluster, flavor: str
) -> None:
    cluster.script(
        "put_mapping",
        error(
            400,
            "illegal_argument_exception",
            "mapper [in_mean] cannot be changed from type [long] to [double]",
        ),
    )
    with pytest.raises(SinkError) as caught:
        make_sink().write(rows(2))
    assert str(caught.value).endswith(
        "adding the job's fields to the mapping of index 'rollup-bw-2026.11': "
        f"{PRODUCT[flavor]} refused: "
        "HTTP 400: illegal_argument_exception: mapper [in_mean] cannot be changed from type [long] "
        "to [double]"
    )
    assert len(cluster.of_kind("put_mapping")) == 1, "a 400 is not retried"
    assert cluster.of_kind("bulk") == []


def test_rejected_documents_fail_at_once_with_the_first_errors(make_sink: MakeSink, cluster: Cluster) -> None:
    cluster.script("bulk", item_statuses(201, 400))
    with pytest.raises(SinkError) as caught:
        make_sink().write(rows(5))
    message = str(caught.value)
    assert "sink 'search': 4 of 5 documents were rejected (first 3): " in message
    first = rows(5)[1]
    assert (
        f"rollup-bw-2026.11/{document_id('bw', first)} {{'host': 'h1'}}: "
        "HTTP 400 document_parsing_exception: refused document 1" in message
    )
    assert message.count("HTTP 400") == 3
    assert len(cluster.of_kind("bulk")) == 1, "a rejected document is not retried"


def test_documents_turned_away_for_now_are_sent_again_alone(make_sink: MakeSink, cluster: Cluster) -> None:
    cluster.script(
        "bulk",
        item_statuses(201, 429, 201, 503, 201, error_type="es_rejected_execution_exception"),
        item_statuses(201),
    )
    assert make_sink().write(rows(5)) == 5
    first, second = cluster.of_kind("bulk")
    assert len(first.documents()) == 5
    sent_again = [action["index"]["_id"] for action, _ in second.documents()]
    assert sent_again == [document_id("bw", rows(5)[i]) for i in (1, 3)]


def test_a_rejection_while_retrying_fails_the_write(make_sink: MakeSink, cluster: Cluster) -> None:
    cluster.script("bulk", item_statuses(201, 429), item_statuses(400))
    with pytest.raises(SinkError, match="4 of 5 documents were rejected"):
        make_sink().write(rows(5))


def test_server_errors_and_dropped_connections_are_retried(
    make_sink: MakeSink, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.script(
        "bulk",
        error(503, "unavailable_shards_exception", "primary shard is not active"),
        "drop",
        item_statuses(201),
    )
    with caplog.at_level(logging.WARNING):
        assert make_sink().write(rows(2)) == 2
    assert len(cluster.of_kind("bulk")) == 3
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2
    assert (
        "writing 2 documents: attempt 1 failed (HTTP 503: unavailable_shards_exception: primary shard"
        in retries[0]
    )
    assert "attempt 2 failed (" in retries[1]


def test_retries_end_with_the_url_the_attempts_and_the_last_error(
    make_sink: MakeSink, cluster: Cluster
) -> None:
    cluster.script(
        "bulk", (429, {"error": {"type": "es_rejected_execution_exception", "reason": "queue full"}})
    )
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        make_sink(retries=2, backoff=0.05).write(rows(2))
    assert time.monotonic() - started >= 0.05 + 0.1
    assert str(caught.value).endswith(
        f"writing 2 documents at {cluster.url} failed after 3 attempts: "
        "HTTP 429: es_rejected_execution_exception: queue full"
    )


def test_a_timeout_is_retried(make_sink: MakeSink, cluster: Cluster) -> None:
    cluster.slow_seconds = 2.0
    cluster.script("bulk", "slow", item_statuses(201))
    assert make_sink(timeout="500ms").write(rows(2)) == 2
    assert len(cluster.of_kind("bulk")) == 2


def test_nothing_listening_is_retried_then_reported(make_sink: MakeSink) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    sink = make_sink(url=url, retries=1)
    with pytest.raises(
        SinkError,
        match=rf"reading index template 'rollup-bw-yyyy\.mm' at {url} failed after 2 attempts: "
        r"\w*ConnectionError: .*Connection refused",
    ):
        sink.write(rows(1))
    with pytest.raises(SinkError, match="does not answer"):
        sink.check()


def test_refused_credentials_are_not_retried_and_point_at_the_profile(
    make_sink: MakeSink, cluster: Cluster
) -> None:
    cluster.script("get_template", error(401, "security_exception", "unable to authenticate user [writer]"))
    with pytest.raises(SinkError) as caught:
        make_sink().write(rows(1))
    message = str(caught.value)
    assert "HTTP 401: security_exception: unable to authenticate user [writer]" in message
    assert "password_env/password_file" in message
    assert SECRET not in message
    assert len(cluster.requests) == 1


def test_a_secret_echoed_by_the_server_is_masked(make_sink: MakeSink, cluster: Cluster) -> None:
    cluster.script("bulk", error(400, "parse_exception", f"bad header Basic {SECRET}"))
    with pytest.raises(SinkError) as caught:
        make_sink().write(rows(1))
    assert SECRET not in str(caught.value)
    assert "bad header Basic ***" in str(caught.value)


def test_too_large_a_request_points_at_batch_bytes(make_sink: MakeSink, cluster: Cluster) -> None:
    cluster.script("bulk", (413, {"error": "Request Entity Too Large"}))
    with pytest.raises(
        SinkError, match=r"HTTP 413: Request Entity Too Large \(lower batch_bytes or batch_size\)"
    ):
        make_sink().write(rows(1))


def test_a_response_that_does_not_account_for_every_document_is_an_error(
    make_sink: MakeSink, cluster: Cluster
) -> None:
    cluster.script("bulk", (200, {"errors": False, "items": [{"index": {"status": 201}}]}))
    with pytest.raises(SinkError, match="the bulk response lists 1 items for 2 documents sent"):
        make_sink().write(rows(2))


def test_basic_credentials_travel_in_the_authorization_header(make_sink: MakeSink, cluster: Cluster) -> None:
    make_sink().check()
    expected = "Basic " + base64.b64encode(f"writer:{SECRET}".encode()).decode()
    assert cluster.requests[0].headers["authorization"] == expected
    assert SECRET not in cluster.requests[0].path


def test_a_bearer_token_travels_in_the_authorization_header(
    make_sink: MakeSink, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLUP_TEST_TOKEN", "t0ken-value")
    make_sink(username=None, password_env=None, token_env="ROLLUP_TEST_TOKEN").write(rows(1))
    assert {r.headers["authorization"] for r in cluster.requests} == {"Bearer t0ken-value"}


def test_an_api_key_travels_in_the_authorization_header(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLUP_TEST_API_KEY", "a2V5LWlkOmtleS1zZWNyZXQ=")
    profile = ElasticsearchSinkProfile.model_validate(
        {"type": "elasticsearch", "url": cluster.url, "api_key_env": "ROLLUP_TEST_API_KEY"}
    )
    sink = ElasticsearchSink("search", profile, TARGET)
    sink.check()
    sink.close()
    assert cluster.requests[0].headers["authorization"] == "ApiKey a2V5LWlkOmtleS1zZWNyZXQ="


def test_check_reports_a_server_error(make_sink: MakeSink, cluster: Cluster) -> None:
    make_sink().check()
    cluster.script("info", error(500, "internal_server_error", "boom"))
    with pytest.raises(SinkError, match="does not answer as expected: HTTP 500: internal_server_error: boom"):
        make_sink().check()

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from rollup.ledger import open_ledger
from rollup.ledger.base import Ledger
from scripts.servers import (
    RunningServer,
    rollup_prometheus_config,
    start_elasticsearch,
    start_influxd,
    start_opensearch,
    start_postgres,
    start_prometheus,
)

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DEPLOY = REPO / "deploy" / "prometheus"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run the long randomized variants")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="long randomized variant: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A real influxd on 127.0.0.1, shared by the session; each test uses its own database."""
    server = start_influxd(Path(tmp_path_factory.mktemp("influxd")))
    yield server
    server.stop()


_database_counter = itertools.count()


class InfluxHelper:
    """Talks InfluxQL and line protocol to the test influxd."""

    def __init__(self, server: RunningServer, database: str):
        self.url = server.url
        self.database = database
        self.server = server

    def query(self, q: str, database: str | None = None) -> list[dict[str, object]]:
        response = httpx.post(
            f"{self.url}/query",
            params={"db": database or self.database, "epoch": "ns"},
            data={"q": q},
            timeout=60,
        )
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return list(result.get("series", []))

    def write(self, lines: str | list[str], database: str | None = None) -> None:
        body = lines if isinstance(lines, str) else "\n".join(lines)
        response = httpx.post(
            f"{self.url}/write",
            params={"db": database or self.database},
            content=body.encode(),
            timeout=60,
        )
        if response.status_code != 204:
            raise RuntimeError(f"write failed: {response.status_code} {response.text}")

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"', database=name)

    def points(self, measurement: str, database: str | None = None) -> list[dict[str, object]]:
        """Every point of ``measurement`` as dicts with 'time', the tags and the fields."""
        rows: list[dict[str, object]] = []
        for series in self.query(f'SELECT * FROM "{measurement}" GROUP BY *', database=database):
            tags = dict(series.get("tags") or {})  # type: ignore[call-overload]
            columns = list(series["columns"])  # type: ignore[call-overload]
            for values in series["values"]:  # type: ignore[attr-defined]
                row = dict(zip(columns, values, strict=True))
                row.update({k: v for k, v in tags.items() if v != ""})
                rows.append({k: v for k, v in row.items() if v is not None})
        return rows


@pytest.fixture
def influx(influxd: RunningServer) -> InfluxHelper:
    """A fresh raw database (and a `<name>_out` one for rollups) on the shared influxd."""
    name = f"t{next(_database_counter)}"
    helper = InfluxHelper(influxd, name)
    helper.create_database(name)
    helper.create_database(f"{name}_out")
    return helper


@pytest.fixture(scope="session")
def postgres() -> Iterator[RunningServer]:
    """A real PostgreSQL on 127.0.0.1 (password auth), shared by the session."""
    server = start_postgres()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


PASSWORD_VARIABLE = "ROLLUP_TEST_LEDGER_PASSWORD"


@dataclass(frozen=True)
class LedgerTarget:
    """A fresh, empty ledger location on one backend."""

    backend: str
    url: str
    password: str | None = None

    def open(self) -> Ledger:
        return open_ledger(SecretStr(self.url), None if self.password is None else SecretStr(self.password))

    def env(self) -> dict[str, str]:
        """Environment for a `python -m rollup` subprocess using this ledger."""
        env = {"ROLLUP_LEDGER": self.url, "ROLLUP_LEDGER_LEASE": "2s"}
        if self.password is not None:
            env.update({"ROLLUP_LEDGER_PASSWORD_ENV": PASSWORD_VARIABLE, PASSWORD_VARIABLE: self.password})
        return env


_ledger_counter = itertools.count()


def new_postgres_database(server: RunningServer) -> str:
    import psycopg

    name = f"ledger{next(_ledger_counter)}"
    with psycopg.connect(f"{server.url}/postgres", password=server.password, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{server.url}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_target(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerTarget:
    """Each test using it runs once per ledger backend, on a fresh ledger."""
    if request.param == "sqlite":
        return LedgerTarget("sqlite", f"sqlite://{tmp_path / 'ledger' / 'ledger.sqlite'}")
    server: RunningServer = request.getfixturevalue("postgres")
    return LedgerTarget("postgresql", new_postgres_database(server), server.password)


# -- Elasticsearch / OpenSearch -----------------------------------------------------------------
# ROLLUP_TEST_ELASTICSEARCH_URL / ROLLUP_TEST_OPENSEARCH_URL (no credentials) run the suite
# against that cluster instead of the local stand-in (noida-db, osmem-server); each test only
# touches indices and templates named after its own prefix and deletes them afterwards.

SEARCH_URL_VARIABLES = {
    "elasticsearch": "ROLLUP_TEST_ELASTICSEARCH_URL",
    "opensearch": "ROLLUP_TEST_OPENSEARCH_URL",
}


def _search_cluster(flavor: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get(SEARCH_URL_VARIABLES[flavor])
    if external:
        yield external.rstrip("/")
        return
    start = start_elasticsearch if flavor == "elasticsearch" else start_opensearch
    server = start(Path(tmp_path_factory.mktemp(flavor)))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def elasticsearch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _search_cluster("elasticsearch", tmp_path_factory)


@pytest.fixture(scope="session")
def opensearch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _search_cluster("opensearch", tmp_path_factory)


_prefix_counter = itertools.count()


class SearchHelper:
    """Reads an Elasticsearch or OpenSearch cluster over plain HTTP, within one test's ``prefix``."""

    def __init__(self, flavor: str, url: str, prefix: str):
        self.flavor = flavor
        self.url = url
        self.prefix = prefix
        self.http = httpx.Client(base_url=url, timeout=30)

    @property
    def flavor_name(self) -> str:
        return "Elasticsearch" if self.flavor == "elasticsearch" else "OpenSearch"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def documents(self, index: str | None = None) -> list[dict[str, Any]]:
        """Every hit (``_index``, ``_id``, ``_version``, ``_source``), by ``@timestamp`` and ``_id``."""
        self.request("POST", f"/{index or self.prefix + '-*'}/_refresh")
        query = {"size": 10_000, "version": True, "sort": [{"@timestamp": "asc"}]}
        found = self.request("POST", f"/{index or self.prefix + '-*'}/_search", json=query)
        return sorted(found["hits"]["hits"], key=lambda hit: (hit["sort"], hit["_id"]))

    def newest(self) -> dict[str, Any]:
        """The document with the newest ``@timestamp``, read with a sort (not ``max``)."""
        self.request("POST", f"/{self.prefix}-*/_refresh")
        query = {"size": 1, "sort": [{"@timestamp": "desc"}]}
        [hit] = self.request("POST", f"/{self.prefix}-*/_search", json=query)["hits"]["hits"]
        return dict(hit)

    def indices(self) -> list[str]:
        return sorted(self.request("GET", f"/{self.prefix}-*", params={"expand_wildcards": "all"}))

    def mapping(self, index: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/{index}/_mapping")[index]["mappings"])

    def templates(self) -> dict[str, dict[str, Any]]:
        response = self.http.get(f"/_index_template/{self.prefix}-*")
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        return {t["name"]: t["index_template"] for t in response.json()["index_templates"]}

    def clean(self) -> None:
        for index in self.indices():  # one by one: real clusters refuse wildcard deletes
            self.request("DELETE", f"/{index}")
        for name in self.templates():
            self.request("DELETE", f"/_index_template/{name}")


@pytest.fixture(params=["elasticsearch", "opensearch"])
def search(request: pytest.FixtureRequest) -> Iterator[SearchHelper]:
    """Each test runs against both servers, in indices and templates of its own prefix."""
    flavor = str(request.param)
    url = str(request.getfixturevalue(f"{flavor}_url"))
    helper = SearchHelper(flavor, url, f"t{next(_prefix_counter)}-{os.getpid()}")
    yield helper
    helper.clean()
    helper.http.close()


# -- Prometheus ---------------------------------------------------------------------------------


class PrometheusHelper:
    """Asks a real Prometheus through its HTTP API."""

    def __init__(self, server: RunningServer):
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30)

    def api(self, path: str, **params: Any) -> Any:
        """The ``data`` of an API answer; an error answer fails the test with Prometheus' message."""
        body = self.http.get(f"/api/v1/{path}", params=params).json()
        assert body["status"] == "success", f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at Prometheus' own now: [{"metric": labels, "value": [time, "text"]}]."""
        return list(self.api("query", query=expr)["result"])

    def one(self, expr: str) -> float | None:
        """The value of an instant query that finds one sample at most (None: none)."""
        found = self.query(expr)
        assert len(found) <= 1, f"{expr}: {found}"
        return float(found[0]["value"][1]) if found else None

    def values(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query's samples: sorted labels → value."""
        return {
            tuple(sorted(sample["metric"].items())): float(sample["value"][1]) for sample in self.query(expr)
        }


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[list[str]], PrometheusHelper]]:
    """Starts a real Prometheus (Debian's) on deploy/prometheus/prometheus.yml and its rules,
    scraping the given ``host:port`` targets every second; stopped by PID afterwards."""
    started: list[PrometheusHelper] = []

    def start(targets: list[str]) -> PrometheusHelper:
        directory = tmp_path / f"prometheus-{len(started)}"
        directory.mkdir()
        shutil.copy(PROMETHEUS_DEPLOY / "rules.yaml", directory / "rules.yaml")
        config = rollup_prometheus_config(targets, interval="1s")
        helper = PrometheusHelper(start_prometheus(directory, config))
        started.append(helper)
        return helper

    yield start
    for helper in started:
        helper.http.close()
        helper.server.stop()

"""The Elasticsearch sink, through the official ``elasticsearch`` client (8.x).

Everything but the client is shared with the OpenSearch sink (:mod:`rollup.sinks.search`). The
client library is imported when a sink is built, not when a profile is loaded: ``rollup jobs
validate`` works without it, and a missing library is a configuration error naming the extra.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from rollup.errors import ConfigError
from rollup.secrets import redact
from rollup.sinks.base import OutputTarget
from rollup.sinks.search.bulk import describe_error
from rollup.sinks.search.client import HttpError, UnreachableError, missing_library
from rollup.sinks.search.profile import SearchSinkProfile
from rollup.sinks.search.sink import SearchSink

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

T = TypeVar("T")


class ElasticsearchSinkProfile(SearchSinkProfile):
    """``type = "elasticsearch"`` in ``sinks/NAME.toml``."""

    type: Literal["elasticsearch"]


class ElasticsearchClient:
    """:class:`~rollup.sinks.search.client.SearchClient` over ``elasticsearch.Elasticsearch``."""

    def __init__(self, profile: SearchSinkProfile, what: str):
        try:
            from elasticsearch import Elasticsearch
        except ImportError as exc:
            raise missing_library("elasticsearch", "elasticsearch") from exc
        tls: dict[str, Any] = {"verify_certs": profile.verify_tls}
        ca_certs = profile.ca_certs(what)
        if ca_certs is not None:
            tls["ca_certs"] = ca_certs
        try:
            self._client: Elasticsearch = Elasticsearch(
                profile.hosts,
                headers=profile.auth_headers(what),
                request_timeout=profile.timeout.seconds,
                max_retries=0,
                retry_on_timeout=False,
                http_compress=profile.gzip,
                **tls,
            )
        except (ValueError, OSError) as exc:
            raise ConfigError(redact(f"{what}: cannot set up the Elasticsearch client: {exc}")) from exc

    def info(self) -> Mapping[str, Any]:
        return _translated(lambda: self._client.info().body)

    def bulk(self, body: bytes) -> Mapping[str, Any]:
        # The client sends bytes as they are: the batch is NDJSON encoded once, by the sink.
        return _translated(lambda: self._client.bulk(operations=body).body)  # type: ignore[arg-type]

    def get_template(self, name: str) -> Mapping[str, Any] | None:
        try:
            found = _translated(lambda: self._client.indices.get_index_template(name=name).body)
        except HttpError as exc:
            if exc.status == 404:
                return None
            raise
        templates = found.get("index_templates") or [{}]
        template: Mapping[str, Any] = templates[0].get("index_template", {})
        return template

    def put_template(self, name: str, body: Mapping[str, Any]) -> None:
        _translated(lambda: self._client.indices.put_index_template(name=name, body=dict(body)))

    def put_mapping(self, index: str, mapping: Mapping[str, Any]) -> bool:
        try:
            _translated(lambda: self._client.indices.put_mapping(index=index, body=dict(mapping)))
        except HttpError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def close(self) -> None:
        self._client.close()


def _translated(call: Callable[[], T]) -> T:
    from elasticsearch import (
        ApiError,
        ConnectionError,
        ConnectionTimeout,
        TransportError,
        UnsupportedProductError,
    )

    try:
        return call()
    except ApiError as exc:
        body = exc.body.get("error") if isinstance(exc.body, dict) else exc.body
        message = describe_error(body or exc.message)
        if isinstance(exc, UnsupportedProductError) or exc.meta.status == 406:
            message += ' (is it OpenSearch? then use type = "opensearch")'
        raise HttpError(exc.meta.status, message) from exc
    except (ConnectionError, ConnectionTimeout) as exc:
        raise UnreachableError(f"{type(exc).__name__}: {exc.message}") from exc
    except TransportError as exc:  # serialization: the answer was not what the API promises
        raise HttpError(200, f"unreadable answer: {exc}") from exc


class ElasticsearchSink(SearchSink):
    product = "Elasticsearch"

    def __init__(self, name: str, profile: ElasticsearchSinkProfile, target: OutputTarget):
        super().__init__(name, profile, target, ElasticsearchClient)

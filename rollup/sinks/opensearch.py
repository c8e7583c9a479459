"""The OpenSearch sink, through ``opensearch-py``.

OpenSearch refuses the compatibility headers the Elasticsearch 8 client sends, so it gets its own
client; everything else is shared with the Elasticsearch sink (:mod:`rollup.sinks.search`).
OpenSearch has no Elasticsearch API keys: authenticate with a username and password or a bearer
token (e.g. a JWT). The client library is imported when a sink is built, not when a profile is
loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import model_validator

from rollup.errors import ConfigError
from rollup.secrets import redact
from rollup.sinks.base import OutputTarget
from rollup.sinks.search.bulk import describe_error
from rollup.sinks.search.client import HttpError, UnreachableError, missing_library
from rollup.sinks.search.profile import SearchSinkProfile
from rollup.sinks.search.sink import SearchSink

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

T = TypeVar("T")


class OpenSearchSinkProfile(SearchSinkProfile):
    """``type = "opensearch"`` in ``sinks/NAME.toml``."""

    type: Literal["opensearch"]

    @model_validator(mode="after")
    def _no_api_key(self) -> OpenSearchSinkProfile:
        if self.api_key_env is not None or self.api_key_file is not None:
            raise ValueError(
                "OpenSearch has no API keys: use username and password_env/password_file, "
                "or token_env/token_file for a bearer token"
            )
        return self


class OpenSearchClient:
    """:class:`~rollup.sinks.search.client.SearchClient` over ``opensearchpy.OpenSearch``."""

    def __init__(self, profile: SearchSinkProfile, what: str):
        try:
            from opensearchpy import ImproperlyConfigured, OpenSearch
        except ImportError as exc:
            raise missing_library("opensearch-py", "opensearch") from exc
        try:
            self._client: OpenSearch = OpenSearch(
                profile.hosts,
                headers=profile.auth_headers(what),
                timeout=profile.timeout.seconds,
                max_retries=0,
                retry_on_timeout=False,
                verify_certs=profile.verify_tls,
                ca_certs=profile.ca_certs(what),
                http_compress=profile.gzip,
            )
        except (ImproperlyConfigured, ValueError, OSError) as exc:
            raise ConfigError(redact(f"{what}: cannot set up the OpenSearch client: {exc}")) from exc

    def info(self) -> Mapping[str, Any]:
        return _translated(self._client.info)

    def bulk(self, body: bytes) -> Mapping[str, Any]:
        return _translated(lambda: self._client.bulk(body=body))

    # ignore=404: an expected 404 is returned as its body, not logged as a failed request.

    def get_template(self, name: str) -> Mapping[str, Any] | None:
        found = _translated(lambda: self._client.indices.get_index_template(name=name, ignore=404))
        if found.get("status") == 404:
            return None
        templates = found.get("index_templates") or [{}]
        template: Mapping[str, Any] = templates[0].get("index_template", {})
        return template

    def put_template(self, name: str, body: Mapping[str, Any]) -> None:
        _translated(lambda: self._client.indices.put_index_template(name=name, body=body))

    def put_mapping(self, index: str, mapping: Mapping[str, Any]) -> bool:
        answer = _translated(lambda: self._client.indices.put_mapping(index=index, body=mapping, ignore=404))
        return bool(answer.get("status") != 404)

    def close(self) -> None:
        self._client.close()


def _translated(call: Callable[[], T]) -> T:
    from opensearchpy.exceptions import ConnectionError, OpenSearchException, TransportError

    try:
        return call()
    except ConnectionError as exc:  # includes timeouts and TLS failures
        raise UnreachableError(f"{type(exc).__name__}: {exc.error}") from exc
    except TransportError as exc:
        info = exc.info.get("error") if isinstance(exc.info, dict) else exc.info
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        raise HttpError(status, describe_error(info or exc.error)) from exc
    except OpenSearchException as exc:  # serialization: the answer was not what the API promises
        raise HttpError(200, f"unreadable answer: {exc}") from exc


class OpenSearchSink(SearchSink):
    product = "OpenSearch"

    def __init__(self, name: str, profile: OpenSearchSinkProfile, target: OutputTarget):
        super().__init__(name, profile, target, OpenSearchClient)

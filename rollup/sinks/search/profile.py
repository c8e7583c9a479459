"""The keys of an Elasticsearch or OpenSearch sink profile (``sinks/NAME.toml``).

Secrets are never written in a profile: it names the environment variable (``*_env``) or the
file (``*_file``) holding each one, read when the sink is built and remembered for masking
(:mod:`rollup.secrets`). One way to authenticate at most:

* basic: ``username`` with ``password_env`` or ``password_file``;
* API key (Elasticsearch): ``api_key_env`` or ``api_key_file``, the encoded key sent as
  ``Authorization: ApiKey …``;
* bearer token: ``token_env`` or ``token_file``, sent as ``Authorization: Bearer …``.

Credentials travel in the ``Authorization`` header only, never in a URL.
"""

from __future__ import annotations

import base64
from pathlib import Path

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from rollup.core.durations import parse_duration
from rollup.durations import PositiveSpan
from rollup.errors import ConfigError
from rollup.secrets import Credentials, plain_url, read_secret, remember
from rollup.sinks.search.index_names import check_pattern

DEFAULT_INDEX = "rollup-{job}-{yyyy.MM}"


class SearchSinkProfile(Credentials):
    """A named Elasticsearch or OpenSearch sink: where and how to write."""

    # A secret written into the profile by mistake must not be echoed by the validation error.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str | None = Field(None, description="One node, e.g. https://es.example:9200")
    urls: list[str] | None = Field(None, min_length=1, description="Several nodes of one cluster")
    api_key_env: str | None = None
    api_key_file: Path | None = None
    timeout: PositiveSpan = parse_duration("30s")
    verify_tls: bool = True
    ca_file: Path | None = None
    index: str = Field(DEFAULT_INDEX, description="Index name pattern: {job}, {measurement}, {yyyy.MM} …")
    install_template: bool = Field(True, description="Install the index template and mappings")
    shards: int | None = Field(None, ge=1, description="number_of_shards of new indices")
    replicas: int | None = Field(None, ge=0, description="number_of_replicas of new indices")
    batch_size: int = Field(1000, ge=1, description="Documents per bulk request")
    batch_bytes: int = Field(5_000_000, ge=1000, description="Bytes per bulk request (before gzip)")
    gzip: bool = True
    retries: int = Field(5, ge=0, description="Attempts after the first one")
    backoff: float = Field(0.5, ge=0, description="Seconds before the first retry; doubles each time")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else plain_url(value)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [plain_url(url) for url in value]

    @field_validator("index")
    @classmethod
    def _index(cls, value: str) -> str:
        return check_pattern(value)

    @model_validator(mode="after")
    def _one_of_each(self) -> SearchSinkProfile:
        if (self.url is None) == (self.urls is None):
            raise ValueError("give exactly one of url (one node) or urls (a list of nodes)")
        pairs = {
            "password": (self.password_env, self.password_file),
            "api_key": (self.api_key_env, self.api_key_file),
            "token": (self.token_env, self.token_file),
        }
        for secret, (env, file) in pairs.items():
            if env is not None and file is not None:
                raise ValueError(f"give {secret}_env or {secret}_file, not both")
        given = {secret for secret, (env, file) in pairs.items() if env is not None or file is not None}
        if "password" in given and self.username is None:
            raise ValueError("password_env/password_file need a username")
        if self.username is not None and "password" not in given:
            raise ValueError("username needs password_env or password_file")
        if len(given) > 1:
            raise ValueError(
                "choose one way to authenticate: username and password, api_key_env/api_key_file "
                "or token_env/token_file"
            )
        return self

    @property
    def hosts(self) -> list[str]:
        return [self.url] if self.url is not None else list(self.urls or ())

    def ca_certs(self, what: str) -> str | None:
        """The CA file's path, checked now: a missing file would only show as a TLS error later."""
        if self.ca_file is None:
            return None
        if not self.ca_file.is_file():
            raise ConfigError(f"{what}: ca_file {self.ca_file} is not a readable file")
        return str(self.ca_file)

    def api_key(self, what: str) -> SecretStr | None:
        return read_secret(self.api_key_env, self.api_key_file, f"{what} API key")

    def auth_headers(self, what: str) -> dict[str, str]:
        """The ``Authorization`` header, reading the secret now; ``what`` names the sink in errors."""
        password = self.password(what)
        if self.username is not None and password is not None:
            pair = f"{self.username}:{password.get_secret_value()}".encode()
            encoded = base64.b64encode(pair).decode("ascii")
            remember(encoded)  # a server echoing the header must not leak it either
            return {"Authorization": f"Basic {encoded}"}
        api_key = self.api_key(what)
        if api_key is not None:
            return {"Authorization": f"ApiKey {api_key.get_secret_value()}"}
        token = self.token(what)
        if token is not None:
            return {"Authorization": f"Bearer {token.get_secret_value()}"}
        return {}

"""An InfluxDB HTTP connection (v1 API) shared by the InfluxDB source and sink.

Credentials are never written into profile files: a profile names an environment variable or a
file holding each secret (``password_env``, ``password_file``, ``token_env``, ``token_file``). They
travel in the ``Authorization`` header, never in the URL, so no URL in a log or an error carries
one. With a token, the v1 API of InfluxDB 2.x/3.x is used as ``Authorization: Token …``; with a
username and password, HTTP basic auth (InfluxDB 1.x).
"""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from rollup.core.durations import parse_duration
from rollup.durations import PositiveSpan
from rollup.errors import ConfigError
from rollup.redact import remember

_LITERAL_SECRETS = ("password", "token", "api_key")


def read_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    """The secret named by an environment variable or held in a file, or None if neither is set."""
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{what}: environment variable {env} is not set")
    elif file is not None:
        try:
            value = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {file}: {exc.strerror}") from None
    else:
        return None
    remember(value)
    return SecretStr(value)


def plain_url(value: str) -> str:
    """An http(s) URL without credentials in it, without a trailing slash; ValueError otherwise."""
    try:
        parsed = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    if parsed.userinfo:
        raise ValueError("credentials cannot be written into the URL: use username and password_env")
    return value.rstrip("/")


class Credentials(BaseModel):
    """Where a connection's secrets come from (never the secrets themselves)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    token_env: str | None = None
    token_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_literal_secrets(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in _LITERAL_SECRETS:
                if key in data:
                    raise ValueError(
                        f"{key!r} cannot be written in a profile: use {key}_env (an environment "
                        f"variable) or {key}_file (a secret file) instead"
                    )
        return data

    def password(self, what: str) -> SecretStr | None:
        return read_secret(self.password_env, self.password_file, f"{what} password")

    def token(self, what: str) -> SecretStr | None:
        return read_secret(self.token_env, self.token_file, f"{what} token")


class InfluxConnection(Credentials):
    """How to reach one InfluxDB over its v1 HTTP API."""

    url: str = Field(description="Base URL, e.g. http://127.0.0.1:8086")
    timeout: PositiveSpan = parse_duration("30s")
    verify_tls: bool = True
    ca_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        return plain_url(value)

    def auth_headers(self, what: str) -> dict[str, str]:
        token = self.token(what)
        if token is not None:
            return {"Authorization": f"Token {token.get_secret_value()}"}
        password = self.password(what)
        if self.username is not None:
            secret = password.get_secret_value() if password is not None else ""
            basic = httpx.BasicAuth(self.username, secret)
            request = basic.auth_flow(httpx.Request("GET", self.url))
            header = next(request).headers["Authorization"]
            remember(header.removeprefix("Basic "))  # base64 of user:password: a server may echo it
            return {"Authorization": header}
        return {}

    def client(self, what: str, transport: httpx.BaseTransport | None = None) -> httpx.Client:
        """An ``httpx.Client`` for this connection; ``what`` names it in error messages."""
        ca_file = None if self.ca_file is None else str(self.ca_file)
        return httpx.Client(
            base_url=self.url,
            headers=self.auth_headers(what),
            timeout=httpx.Timeout(self.timeout.seconds),
            verify=tls_context(self.verify_tls, ca_file, _modified(ca_file)),
            transport=transport,
        )


def _modified(path: str | None) -> int | None:
    try:
        return None if path is None else os.stat(path).st_mtime_ns
    except OSError:
        return None  # reported by loading it


@functools.lru_cache(maxsize=32)
def tls_context(verify: bool, ca_file: str | None, modified: int | None) -> ssl.SSLContext:
    """One TLS context per setting (and CA file version), shared by every client: building one
    loads the whole CA bundle (~60 ms), which rollup serve would otherwise pay twice a pass."""
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context

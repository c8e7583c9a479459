"""An InfluxDB HTTP connection (v1 API) shared by the InfluxDB source and sink.

Credentials are never written into profile files: a profile names an environment variable or a
file holding each secret (``password_env``, ``password_file``, ``token_env``, ``token_file``, see
:mod:`rollup.secrets`). They travel in the ``Authorization`` header, never in the URL, so no URL in
a log or an error carries one. With a token, the v1 API of InfluxDB 2.x/3.x is used as
``Authorization: Token …``; with a username and password, HTTP basic auth (InfluxDB 1.x).
"""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import Field, field_validator

from rollup.core.durations import parse_duration
from rollup.durations import PositiveSpan
from rollup.secrets import Credentials, plain_url, remember
from rollup.tls import tls_context


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
        return httpx.Client(
            base_url=self.url,
            headers=self.auth_headers(what),
            timeout=httpx.Timeout(self.timeout.seconds),
            verify=tls_context(self.verify_tls, self.ca_file),
            transport=transport,
        )

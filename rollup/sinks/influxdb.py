"""The InfluxDB sink: output rows as line protocol, POSTed in batches with retries.

Two write endpoints, one code path:

* v1 ``/write?db=…&rp=…&precision=ns`` — InfluxDB 1.x (basic auth or none) and the v1
  compatibility API of 2.x/3.x (token);
* v2 ``/api/v2/write?org=…&bucket=…&precision=ns`` with ``Authorization: Token …`` when the
  profile sets ``org`` and ``bucket``. It is spoken directly over httpx rather than through
  ``influxdb_client``'s write API so that both endpoints share the serializer, the retry policy,
  the error translation and the injectable transport.

Writes are idempotent: a point is identified by measurement, tag set and timestamp, so writing
the same rows again overwrites them. That also makes retrying a write whose response was lost
harmless. Connection errors, timeouts, 5xx and 429 are retried with exponential backoff and
jitter, honouring ``Retry-After`` (:mod:`rollup.retry`), and end as a transient
:class:`~rollup.errors.SinkError` if they persist; any other status fails at once, not transient,
with InfluxDB's message.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from typing import Literal

import httpx
from pydantic import ConfigDict, Field, model_validator

from rollup.core.pipeline import OutputRow
from rollup.errors import SinkError
from rollup.influx import InfluxConnection
from rollup.retry import Retry, RetryableError, retry_after, retryable_status
from rollup.secrets import redact
from rollup.sinks.base import OutputTarget
from rollup.sinks.line_protocol import LineProtocol

log = logging.getLogger(__name__)

_GZIP_LEVEL = 1
"""Level 1 compresses line protocol nearly as well as level 6 at a fraction of the cost (BENCHMARKS.md)."""
_MESSAGE_LIMIT = 1000


class InfluxSinkProfile(InfluxConnection):
    """A named InfluxDB sink (``sinks/*.toml``): where and how to write."""

    # A secret written into the profile by mistake must not be echoed by the validation error.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    type: Literal["influxdb"]
    database: str | None = None
    retention_policy: str | None = None
    batch_size: int = Field(5000, ge=1, description="Points per request")
    gzip: bool = True
    retries: int = Field(5, ge=0, description="Attempts after the first one")
    backoff: float = Field(0.5, ge=0, description="Seconds before the first retry; doubles each time")
    org: str | None = Field(None, description="InfluxDB 2.x organization (v2 write API)")
    bucket: str | None = Field(None, description="InfluxDB 2.x bucket (v2 write API)")

    @model_validator(mode="after")
    def _one_api(self) -> InfluxSinkProfile:
        if self.org is None and self.bucket is None:
            if self.database is None:
                raise ValueError("database is required (or org and bucket for the InfluxDB 2.x write API)")
            return self
        if self.org is None or self.bucket is None:
            raise ValueError("org and bucket go together: both are needed for the InfluxDB 2.x write API")
        if self.database is not None or self.retention_policy is not None:
            raise ValueError(
                "database and retention_policy belong to the v1 API: with org and bucket, leave them out"
            )
        if self.token_env is None and self.token_file is None:
            raise ValueError("the InfluxDB 2.x write API needs a token: set token_env or token_file")
        return self


class InfluxSink:
    """Writes one job's rows to InfluxDB (see the module docstring)."""

    def __init__(
        self,
        name: str,
        profile: InfluxSinkProfile,
        target: OutputTarget,
        transport: httpx.BaseTransport | None = None,
    ):
        self.name = name
        self.profile = profile
        self.target = target
        self._what = f"InfluxDB sink {name!r}"
        self._lines = LineProtocol(target.measurement, target.schema)
        self._client = profile.client(self._what, transport)  # reads the secrets, remembered for redact
        self._path, self._params = self._endpoint(profile)
        self._retry = Retry(profile.retries + 1, profile.backoff)

    @staticmethod
    def _endpoint(profile: InfluxSinkProfile) -> tuple[str, dict[str, str]]:
        if profile.org is not None and profile.bucket is not None:
            return "/api/v2/write", {"org": profile.org, "bucket": profile.bucket, "precision": "ns"}
        assert profile.database is not None  # ensured by InfluxSinkProfile
        params = {"db": profile.database, "precision": "ns"}
        if profile.retention_policy is not None:
            params["rp"] = profile.retention_policy
        return "/write", params

    def write(self, rows: Sequence[OutputRow]) -> int:
        try:
            lines = self._lines.lines(rows)
        except SinkError as exc:  # a row that cannot be written: nothing was sent
            raise SinkError(f"{self._what}: {exc}", transient=False) from exc
        size = self.profile.batch_size
        for start in range(0, len(lines), size):
            self._post(lines[start : start + size])
        return len(lines)

    def check(self) -> None:
        try:
            response = self._client.get("/ping")
        except httpx.HTTPError as exc:
            raise SinkError(
                redact(f"{self._what}: {self.profile.url} does not answer: {_describe(exc)}"), transient=True
            ) from exc
        if not response.is_success:
            raise SinkError(
                redact(
                    f"{self._what}: {self.profile.url}/ping answered HTTP {response.status_code}: "
                    f"{_message(response)}"
                ),
                transient=retryable_status(response.status_code),
            )

    def close(self) -> None:
        self._client.close()

    # -- internals ----------------------------------------------------------------------------

    def _post(self, lines: list[str]) -> None:
        try:
            body = "\n".join(lines).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise SinkError(
                f"{self._what}: a row holds text that is not valid Unicode: {exc.reason}", transient=False
            ) from exc
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.profile.gzip:
            body = gzip.compress(body, compresslevel=_GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        try:
            self._retry.call(lambda: self._send(body, headers), self._what, logger=log)
        except RetryableError as exc:
            raise SinkError(
                redact(
                    f"{self._what}: writing {len(lines)} points of measurement "
                    f"{self.target.measurement!r} to {self.profile.url}{self._path} failed after "
                    f"{self._retry.tried}: {exc}"
                ),
                transient=True,
            ) from exc

    def _send(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            response = self._client.post(self._path, params=self._params, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise RetryableError(_describe(exc)) from exc
        if response.is_success:
            return
        status = response.status_code
        message = f"HTTP {status}: {_message(response)}"
        if retryable_status(status):
            raise RetryableError(message, retry_after(response.headers.get("Retry-After")))
        hint = ""
        if status in (401, 403):
            hint = " (check the profile's username and password_env/password_file or token_env/token_file)"
        elif status == 413:
            hint = " (lower batch_size)"
        raise SinkError(
            redact(
                f"{self._what}: InfluxDB refused points of measurement {self.target.measurement!r}: "
                f"{message}{hint}"
            ),
            transient=False,
        )


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _message(response: httpx.Response) -> str:
    """InfluxDB's own error text: ``{"error": …}`` (v1), ``{"message": …}`` (v2) or the plain body."""
    text = response.text.strip()
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        found = payload.get("error") or payload.get("message")
        if isinstance(found, str):
            text = found
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + f"… ({len(text)} characters)"
    return text or response.reason_phrase

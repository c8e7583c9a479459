"""Credentials written into a URL: refused when a source or sink profile is loaded, with a message
that points to password_env/password_file (or token_env/token_file) and never quotes the secret,
whatever the scheme; and masked in any text rollup prints (errors, logs, status)."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from rollup.config import describe_errors
from rollup.errors import ConfigError
from rollup.secrets import RedactingFilter, mask_url, plain_url, redact
from rollup.settings import load_settings
from rollup.sinks.profiles import load_sink_profile

SECRET = "S3cretPass"

IN_THE_AUTHORITY = [
    f"influx://admin:{SECRET}@host:8086",
    f"htps:/elastic:{SECRET}@host:9200",
    f"htps://elastic:{SECRET}@host:9200",
    f"elastic:{SECRET}@host:9200",
    f"http://admin:{SECRET}@host:8086",
    f"https://{SECRET}@host:9200",
    f"//admin:{SECRET}@host:8086/",
]
IN_THE_QUERY = [
    (f"http://host:8086?p={SECRET}", "'p' holds a password", "password_env or password_file"),
    (f"http://host:8086/?u=admin&p={SECRET}", "'p' holds a password", "password_env or password_file"),
    (f"http://host:8086/?password={SECRET}", "'password' holds a password", "password_env or password_file"),
    (f"https://host:8086/?db=x&token={SECRET}", "'token' holds a token", "token_env or token_file"),
    (f"http://host:8086?P={SECRET}#frag", "'P' holds a password", "password_env or password_file"),
]
KINDS = ["source", "influxdb", "elasticsearch", "opensearch"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ROLLUP_LEDGER", "ROLLUP_CONFIG", "ROLLUP_SOURCES__BUFFER__URL"):
        monkeypatch.delenv(name, raising=False)


def refusal(tmp_path: Path, kind: str, url: str) -> str:
    """The error of loading a profile of ``kind`` whose url is ``url``."""
    if kind == "source":
        path = tmp_path / "rollup.toml"
        path.write_text(f"[sources.buffer]\nurl = {url!r}\n")
        load = load_settings
    else:
        path = tmp_path / f"{kind}.toml"
        extra = 'database = "rollups"\n' if kind == "influxdb" else ""
        path.write_text(f"type = {kind!r}\nurl = {url!r}\n{extra}")
        load = load_sink_profile  # type: ignore[assignment]
    with pytest.raises(ConfigError) as raised:
        load(path)
    message = str(raised.value)
    assert message.startswith(str(path))
    assert "url: " in message
    assert "\n" not in message
    return message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("url", IN_THE_AUTHORITY)
def test_credentials_before_the_host_are_refused_whatever_the_scheme_and_never_quoted(
    tmp_path: Path, kind: str, url: str
) -> None:
    message = refusal(tmp_path, kind, url)
    assert "credentials cannot be written into the URL" in message
    assert "password_env or password_file" in message
    assert SECRET not in message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("url", "parameter", "instead"), IN_THE_QUERY)
def test_credentials_in_the_query_are_refused_pointing_to_where_they_belong(
    tmp_path: Path, kind: str, url: str, parameter: str, instead: str
) -> None:
    message = refusal(tmp_path, kind, url)
    assert f"credentials cannot be written into the URL (query parameter {parameter})" in message
    assert instead in message
    assert SECRET not in message


def test_a_url_with_credentials_from_the_environment_is_refused_without_quoting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROLLUP_SOURCES__BUFFER__URL", f"influx://admin:{SECRET}@host:8086")
    path = tmp_path / "rollup.toml"
    path.write_text('[sources.buffer]\nurl = "http://influx:8086"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert "sources.buffer.url: credentials cannot be written into the URL" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_url_given_where_a_list_is_expected_is_quoted_masked(tmp_path: Path) -> None:
    path = tmp_path / "search.toml"
    path.write_text(f'type = "elasticsearch"\nurls = "http://elastic:{SECRET}@host:9200"\n')
    with pytest.raises(ConfigError) as raised:
        load_sink_profile(path)
    assert "urls: Input should be a valid list (got 'http://elastic:***@host:9200')" in str(raised.value)


def test_each_url_of_a_list_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "search.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            type = "opensearch"
            urls = ["https://node1:9200", "https://node2:9200/?u=admin&p={SECRET}"]
            """
        )
    )
    with pytest.raises(ConfigError) as raised:
        load_sink_profile(path)
    assert "urls: credentials cannot be written into the URL (query parameter 'p'" in str(raised.value)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("ftp://host:21", "expected an http:// or https:// URL, got 'ftp://host:21'"),
        ("htps://host:9200/?db=x", "expected an http:// or https:// URL, got 'htps://host:9200/?db=x'"),
        ("http:///path-only", "expected an http:// or https:// URL, got 'http:///path-only'"),
        ("http://[::1", "invalid URL 'http://[::1': Invalid port"),
    ],
)
def test_other_bad_urls_are_quoted_in_the_error(url: str, shown: str) -> None:
    with pytest.raises(ValueError, match="URL") as raised:
        plain_url(url)
    assert shown in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_plain_url_is_accepted_as_written_without_a_trailing_slash() -> None:
    assert plain_url("https://es.example:9200/") == "https://es.example:9200"
    assert plain_url("http://influx:8086/prefix/a@b?db=x") == "http://influx:8086/prefix/a@b?db=x"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (f"influx://admin:{SECRET}@host:8086", "influx://admin:***@host:8086"),
        (f"elastic:{SECRET}@host:9200", "elastic:***@host:9200"),
        (f"http://h:8086/query?db=x&u=admin&p={SECRET}", "http://h:8086/query?db=x&u=***&p=***"),
        (f"http://h/?token={SECRET}#x", "http://h/?token=***#x"),
        ("postgresql://rollup@db:5432/x", "postgresql://rollup@db:5432/x"),
        ("http://h:8086/ping", "http://h:8086/ping"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_redact_masks_the_credentials_of_every_url_in_a_text() -> None:
    text = (
        f"window failed: cannot connect to InfluxDB at http://h:8086/query?u=admin&p={SECRET}: refused; "
        f"sink at 'https://elastic:{SECRET}@es:9200' refused"
    )
    masked = redact(text)
    assert SECRET not in masked
    assert "InfluxDB at http://h:8086/query?u=***&p=***" in masked
    assert "'https://elastic:***@es:9200' refused" in masked
    assert redact("no URL, 50% done, a=b&c") == "no URL, 50% done, a=b&c"


def test_the_log_filter_masks_url_credentials_in_messages_extras_and_tracebacks() -> None:
    url = f"http://h:8086/write?u=admin&p={SECRET}"
    try:
        raise RuntimeError(f"cannot reach {url}")
    except RuntimeError as exc:
        record = logging.LogRecord(
            "rollup", logging.ERROR, __file__, 1, "failed at %s", (url,), (type(exc), exc, None)
        )
    record.error = f"last error at {url}"
    assert RedactingFilter().filter(record)
    formatted = logging.Formatter("%(message)s %(error)s").format(record)
    assert SECRET not in formatted
    assert "failed at http://h:8086/write?u=***&p=***" in formatted
    assert "last error at http://h:8086/write?u=***&p=***" in formatted
    assert "RuntimeError: cannot reach http://h:8086/write?u=***&p=***" in formatted


def test_validation_errors_quote_no_credential() -> None:
    from pydantic import BaseModel, ValidationError

    class Nodes(BaseModel):
        urls: list[str]

    with pytest.raises(ValidationError) as raised:
        Nodes(urls=f"elastic:{SECRET}@host:9200")  # type: ignore[arg-type]
    [line] = describe_errors(raised.value)
    assert line == "urls: Input should be a valid list (got 'elastic:***@host:9200')"

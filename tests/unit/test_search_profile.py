"""Elasticsearch and OpenSearch sink profiles: keys, credentials by reference, clear errors."""

from __future__ import annotations

import base64
import logging
import re
import sys
import textwrap
from pathlib import Path

import pytest

from rollup.errors import ConfigError
from rollup.secrets import RedactingFilter
from rollup.sinks.base import OutputTarget
from rollup.sinks.elasticsearch import ElasticsearchSinkProfile
from rollup.sinks.opensearch import OpenSearchSinkProfile
from rollup.sinks.profiles import build_sink, load_sink_profile

TARGET = OutputTarget("bw", "bw_daily", "1d", "UTC", ("host",), {"in_mean": "double"})


def profile_file(tmp_path: Path, body: str, name: str = "search") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_a_complete_elasticsearch_profile(tmp_path: Path) -> None:
    path = profile_file(
        tmp_path,
        """
        type = "elasticsearch"
        urls = ["https://es1.example:9200", "https://es2.example:9200/"]
        api_key_env = "ROLLUP_ES_API_KEY"
        ca_file = "/etc/ssl/internal-ca.pem"
        timeout = "10s"
        index = "rollup-{job}-{yyyy.MM}"
        batch_size = 500
        batch_bytes = 2000000
        retries = 3
        backoff = 1.0
        replicas = 1
        """,
    )
    profile = load_sink_profile(path)
    assert isinstance(profile, ElasticsearchSinkProfile)
    assert profile.hosts == ["https://es1.example:9200", "https://es2.example:9200"]
    assert profile.verify_tls is True
    assert profile.timeout.seconds == 10.0
    assert profile.gzip is True


def test_defaults(tmp_path: Path) -> None:
    profile = load_sink_profile(profile_file(tmp_path, 'type = "opensearch"\nurl = "http://127.0.0.1:9200"'))
    assert isinstance(profile, OpenSearchSinkProfile)
    assert profile.index == "rollup-{job}-{yyyy.MM}"
    assert (profile.batch_size, profile.batch_bytes, profile.retries) == (1000, 5_000_000, 5)
    assert profile.install_template is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('url = "http://a:9200"\npassword = "hunter2-secret"', "'password' cannot be written in a profile"),
        ('url = "http://a:9200"\napi_key = "c2VjcmV0LWtleQ=="', "'api_key' cannot be written in a profile"),
        ('url = "http://user:pw@a:9200"', "credentials cannot be written into the URL"),
        ('url = "ftp://a"', "expected an http:// or https:// URL"),
        ("", "give exactly one of url (one node) or urls (a list of nodes)"),
        ('url = "http://a:9200"\nusername = "rollup"', "username needs password_env or password_file"),
        ('url = "http://a:9200"\npassword_env = "P"', "password_env/password_file need a username"),
        ('url = "http://a:9200"\ntoken_env = "T"\napi_key_env = "K"', "choose one way to authenticate"),
        (
            'url = "http://a:9200"\ntoken_env = "T"\ntoken_file = "/t"',
            "give token_env or token_file, not both",
        ),
        (
            'url = "http://a:9200"\nindex = "rollup-{job}-{YYYY}"',
            "index: Value error, unknown placeholder {YYYY}",
        ),
        ('url = "http://a:9200"\ntimeout = "0s"', "timeout must be longer than zero"),
        ('url = "http://a:9200"\nbatch_sise = 10', "unknown key 'batch_sise' (did you mean 'batch_size'?)"),
    ],
)
def test_invalid_profiles_name_the_file_and_the_reason(tmp_path: Path, body: str, message: str) -> None:
    path = profile_file(tmp_path, 'type = "elasticsearch"\n' + body)
    with pytest.raises(ConfigError) as caught:
        load_sink_profile(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message.replace("Value error, ", "") in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
    assert "c2VjcmV0LWtleQ==" not in str(caught.value)


def test_opensearch_has_no_api_keys(tmp_path: Path) -> None:
    path = profile_file(tmp_path, 'type = "opensearch"\nurl = "http://a:9200"\napi_key_env = "K"')
    with pytest.raises(ConfigError, match="OpenSearch has no API keys: use username and password_env"):
        load_sink_profile(path)


def test_an_unknown_type_lists_the_types(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="type: expected one of elasticsearch, influxdb, opensearch"):
        load_sink_profile(profile_file(tmp_path, 'type = "solr"'))


def test_a_missing_secret_variable_is_a_config_error_when_the_sink_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROLLUP_TEST_UNSET", raising=False)
    path = profile_file(
        tmp_path, 'type = "elasticsearch"\nurl = "http://a:9200"\ntoken_env = "ROLLUP_TEST_UNSET"'
    )
    profile = load_sink_profile(path)  # loading reads no secret: `jobs validate` needs none
    with pytest.raises(
        ConfigError,
        match="Elasticsearch sink 'search' token: environment variable ROLLUP_TEST_UNSET is not set",
    ):
        build_sink("search", profile, TARGET)


def test_secrets_read_from_files_are_masked_in_logs_including_the_basic_header(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("f1le-Secret\n")
    profile = ElasticsearchSinkProfile.model_validate(
        {"type": "elasticsearch", "url": "http://a:9200", "username": "u", "password_file": str(secret_file)}
    )
    headers = profile.auth_headers("Elasticsearch sink 'search'")
    encoded = base64.b64encode(b"u:f1le-Secret").decode()
    assert headers == {"Authorization": f"Basic {encoded}"}
    logger = logging.getLogger("test.search.profile")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.search.profile"):
        logger.info("server said: bad password f1le-Secret in header Basic %s", encoded)
    assert caplog.records[-1].getMessage() == "server said: bad password *** in header Basic ***"


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
def test_a_missing_ca_file_is_a_config_error_when_the_sink_is_built(tmp_path: Path, kind: str) -> None:
    missing = tmp_path / "missing.pem"
    path = profile_file(tmp_path, f'type = "{kind}"\nurl = "https://a:9200"\nca_file = "{missing}"')
    profile = load_sink_profile(path)
    with pytest.raises(ConfigError, match=f"sink 'search': ca_file {missing} is not a readable file"):
        build_sink("search", profile, TARGET)


@pytest.mark.parametrize(
    ("kind", "package", "extra"),
    [("elasticsearch", "elasticsearch", "elasticsearch"), ("opensearch", "opensearchpy", "opensearch")],
)
def test_a_missing_client_library_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, package: str, extra: str
) -> None:
    profile = load_sink_profile(profile_file(tmp_path, f'type = "{kind}"\nurl = "http://a:9200"'))
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if it were not installed
    with pytest.raises(ConfigError, match=re.escape(f"pip install 'rollup[{extra}]'")):
        build_sink("search", profile, TARGET)

"""Credentials never leave the process: failing jobs with passwords, tokens and API keys set, run
through every command in text and JSON logs at DEBUG level, never show one — neither in their
output nor in the ledger — even when a server quotes the request's Authorization header back in
its error. TLS certificates are verified unless the profile trusts a CA (``ca_file``).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from scripts.servers import RunningServer, free_port, start_influxd
from tests import dates
from tests.conftest import InfluxHelper, SearchHelper
from tests.integration.faults import TcpProxy
from tests.integration.workspace import CliResult, Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
MONDAY = dates.monday(7)
"""The UTC day of the raw points: a Monday at least a week ago."""
DAY1 = dates.seconds(MONDAY)
NOW = {"ROLLUP_NOW": dates.utc_minute(DAY1 + 86400 + 30 * 60)}
DAY = dates.range_options(MONDAY)
ADMIN = ("admin", "admin-Pa55-not-under-test")
SECRETS = {
    "ROLLUP_TEST_INFLUX_PASSWORD": "Src-Pa55-1nflux",
    "ROLLUP_TEST_WRONG_PASSWORD": "Wr0ng-Pa55-1nflux",
    "ROLLUP_TEST_INFLUX_TOKEN": "T0ken-of-1nflux-v2",
    "ROLLUP_TEST_SINK_PASSWORD": "S1nk-Pa55-1nflux",
    "ROLLUP_TEST_ES_PASSWORD": "Es-Pa55-elast1c",
    "ROLLUP_TEST_ES_API_KEY": "QXBpS2V5LWVsYXN0aWMtc2VjcmV0",
    "ROLLUP_TEST_PG_PASSWORD": "Pg-Pa55-ledger",
}


def forms(secrets: dict[str, str]) -> set[str]:
    """Each secret, and the Authorization header value of each user:password pair (base64)."""
    found = set(secrets.values())
    for name in ("INFLUX_PASSWORD", "WRONG_PASSWORD", "SINK_PASSWORD", "ES_PASSWORD"):
        pair = f"rollup:{secrets[f'ROLLUP_TEST_{name}']}".encode()
        found.add(base64.b64encode(pair).decode())
    return found


class EchoingServer:
    """Refuses every request with 401, quoting the request's Authorization header in the error
    (as a misconfigured proxy or a chatty server might)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def _refuse(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                header = self.headers.get("Authorization", "")
                reason = f"unable to authenticate with [Authorization: {header}]"
                body = json.dumps({"error": {"type": "security_exception", "reason": reason}, "status": 401})
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def do_GET(self) -> None:
                self._refuse()

            def do_HEAD(self) -> None:
                self._refuse()

            def do_POST(self) -> None:
                self._refuse()

            def do_PUT(self) -> None:
                self._refuse()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """influxd with authentication: user ``rollup`` (its password is a secret under test) and data."""
    server = start_influxd(tmp_path_factory.mktemp("influxd-auth"), auth=True)
    try:

        def query(q: str) -> None:
            answer = httpx.post(
                f"{server.url}/query", data={"q": q}, auth=ADMIN if "USER admin" not in q else None
            )
            answer.raise_for_status()

        query(f"CREATE USER admin WITH PASSWORD '{ADMIN[1]}' WITH ALL PRIVILEGES")
        query(
            f"CREATE USER rollup WITH PASSWORD '{SECRETS['ROLLUP_TEST_INFLUX_PASSWORD']}' WITH ALL PRIVILEGES"
        )
        query("CREATE DATABASE raw")
        query("CREATE DATABASE raw_out")
        lines = "\n".join(f"ifc,host=a octets={k * 600}i {(DAY1 + k * 600) * S}" for k in range(-1, 145))
        written = httpx.post(f"{server.url}/write", params={"db": "raw"}, content=lines, auth=ADMIN)
        assert written.status_code == 204, written.text
        yield server
    finally:
        server.stop()


JOB = """
start = {start}
[source]
profile = "{source}"
database = "raw"
measurement = "ifc"
[window]
every = "1d"
[fields.octets]
[output]
measurement = "{name}_daily"
sinks = ["{sink}"]
"""


@pytest.fixture
def workspace(tmp_path: Path, secured: RunningServer) -> Iterator[Workspace]:
    echo = EchoingServer()
    made = Workspace(tmp_path / "ws", secured.url, "raw")
    (made.root / "config" / "rollup.toml").write_text(
        textwrap.dedent(
            f"""
            [sources.buffer]
            url = "{secured.url}"
            username = "rollup"
            password_env = "ROLLUP_TEST_INFLUX_PASSWORD"
            retries = 0

            [sources.wrong]
            url = "{secured.url}"
            username = "rollup"
            password_env = "ROLLUP_TEST_WRONG_PASSWORD"
            retries = 0
            """
        )
    )
    basic = {"username": "rollup"}
    sinks = {
        "token": {"type": "influxdb", "url": secured.url, "token_env": "ROLLUP_TEST_INFLUX_TOKEN"},
        "echo_influx": {
            "type": "influxdb",
            "url": echo.url,
            **basic,
            "password_env": "ROLLUP_TEST_SINK_PASSWORD",
        },
        "echo_basic": {
            "type": "elasticsearch",
            "url": echo.url,
            **basic,
            "password_env": "ROLLUP_TEST_ES_PASSWORD",
        },
        "echo_key": {"type": "elasticsearch", "url": echo.url, "api_key_env": "ROLLUP_TEST_ES_API_KEY"},
    }
    for name, keys in sinks.items():
        if keys["type"] == "influxdb":
            keys["database"] = "raw_out"
        made.sink(
            name, "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items()) + "retries = 0\n"
        )
    made.job("wrong_password", JOB.format(start=MONDAY, name="wrong_password", source="wrong", sink="out"))
    for sink in sinks:
        made.job(sink, JOB.format(start=MONDAY, name=sink, source="buffer", sink=sink))
    yield made
    echo.close()


def run_everything(workspace: Workspace, log_format: str) -> list[CliResult]:
    """Every command that touches the failing jobs, at DEBUG level."""
    env = {**SECRETS, **NOW, "ROLLUP_LOG_FORMAT": log_format, "ROLLUP_LOG_LEVEL": "DEBUG"}
    pg = {
        "ROLLUP_LEDGER": f"postgresql://rollup:{SECRETS['ROLLUP_TEST_PG_PASSWORD']}@127.0.0.1:{free_port()}/x"
    }
    return [
        workspace.run("run", env=env),
        workspace.run("backfill", "echo_basic", *DAY, "--force", env=env),
        workspace.run("backfill", "token", *DAY, "--force", env=env),
        workspace.run("preview", "wrong_password", *DAY, env=env),
        workspace.run("status", env=env),
        workspace.run("status", "--json", env=env),
        workspace.run("jobs", "validate", env=env),
        workspace.run("run", env={**env, **pg}),
    ]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_appears_in_any_output_or_in_the_ledger(workspace: Workspace, log_format: str) -> None:
    results = run_everything(workspace, log_format)
    run, echo_basic, token, preview, status, status_json, validate, pg = results

    assert run.code == 1
    assert "pass: 0 window(s) done, 1 failed" in run.stderr
    for job in ("wrong_password", "token", "echo_influx", "echo_basic", "echo_key"):
        assert f"job={job}" in run.stderr or f'"job": "{job}"' in run.stderr, job
    assert "HTTP 401" in run.stderr
    assert "unable to authenticate with [Authorization: Basic ***]" in run.stderr  # the echo, masked
    assert "unable to authenticate with [Authorization: ApiKey ***]" in run.stderr
    assert echo_basic.code == token.code == preview.code == pg.code == 1
    assert "authorization failed" in preview.stderr
    assert "cannot open the ledger postgresql://rollup@127.0.0.1:" in pg.stderr
    assert status.code == status_json.code == validate.code == 0
    assert len(json.loads(status_json.stdout)) == 5

    ledger = (workspace.root / "state" / "ledger.sqlite").read_bytes()
    assert b"HTTP 401" in ledger
    leaks = [
        (secret, number)
        for secret in forms(SECRETS)
        for number, result in enumerate(results)
        if secret in result.stdout + result.stderr
    ]
    leaks += [(secret, "ledger") for secret in forms(SECRETS) if secret.encode() in ledger]
    assert leaks == []


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def https_in_front_of(url: str, certificate: tuple[Path, Path]) -> TcpProxy:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    host, port = url.removeprefix("http://").split(":")
    return TcpProxy((host, int(port)), tls=context)


@pytest.fixture
def tls_workspace(
    tmp_path: Path, influx: InfluxHelper, elasticsearch_url: str, certificate: tuple[Path, Path]
) -> Iterator[tuple[Workspace, SearchHelper]]:
    """The source, an InfluxDB sink and an Elasticsearch sink, each behind HTTPS with the
    self-signed certificate; ``ca_file`` is added to a profile by ``trust``."""
    influx.write([f"ifc,host=a octets={k * 600}i {(DAY1 + k * 600) * S}" for k in range(-1, 145)])
    proxies = [https_in_front_of(url, certificate) for url in (influx.url, influx.url, elasticsearch_url)]
    search = SearchHelper("elasticsearch", elasticsearch_url, f"tls-{os.getpid()}-{free_port()}")
    made = Workspace(tmp_path / "ws", proxies[0].url, influx.database)
    config = made.root / "config" / "rollup.toml"
    config.write_text(config.read_text() + "retries = 0\n")
    made.sink(
        "out", f'type = "influxdb"\nurl = "{proxies[1].url}"\ndatabase = "{made.out_database}"\nretries = 0\n'
    )
    made.sink(
        "search",
        f'type = "elasticsearch"\nurl = "{proxies[2].url}"\nindex = "{search.prefix}-{{job}}"\nretries = 0\n',
    )
    made.job("bw", JOB.replace("database = \"raw\"", f'database = "{influx.database}"').format(
        start=MONDAY, name="bw", source="buffer", sink='out", "search'
    ))  # fmt: skip
    yield made, search
    for proxy in proxies:
        proxy.close()
    search.clean()
    search.http.close()


def trust(path: Path, ca_file: Path) -> None:
    """Add ``ca_file`` to a profile (sink profiles have no tables; the source's table comes last)."""
    path.write_text(path.read_text() + f'ca_file = "{ca_file}"\n')


def test_tls_certificates_are_verified_unless_the_profile_trusts_their_ca(
    tls_workspace: tuple[Workspace, SearchHelper], influx: InfluxHelper, certificate: tuple[Path, Path]
) -> None:
    workspace, search = tls_workspace
    verify_failed = "certificate verify failed: self-signed certificate"
    day = ("backfill", "bw", *DAY)
    steps = [
        (workspace.root / "config" / "rollup.toml", "cannot connect to InfluxDB at https://"),
        (workspace.root / "sinks" / "out.toml", "InfluxDB sink 'out': writing 1 points"),
        (workspace.root / "sinks" / "search.toml", "Elasticsearch sink 'search': reading index template"),
    ]
    for profile, failing in steps:  # each component refuses the certificate until its profile trusts it
        result = workspace.run(*day, env=NOW)
        assert result.code == 1
        [line] = [line for line in result.stderr.splitlines() if line.startswith("  failed ")]
        assert failing in line, line
        assert verify_failed in line, line
        trust(profile, certificate[0])

    result = workspace.run(*day, env=NOW)
    assert result.code == 0, result.stderr
    assert len(influx.points("bw_daily", database=workspace.out_database)) == 1
    assert len(search.documents()) == 1


# -- credentials written into a URL -----------------------------------------------------------------

URL_SECRET = "Url-Pa55-S3cret"
BAD_URLS = {
    "scheme": "influx://admin:{secret}@{host}",
    "typo": "htps://elastic:{secret}@{host}",
    "no-scheme": "elastic:{secret}@{host}",
    "query": "http://{host}/?u=rollup&p={secret}",
    "token": "http://{host}/?db=raw&token={secret}",
}


def bad_url(form: str, server: RunningServer) -> str:
    return BAD_URLS[form].format(secret=URL_SECRET, host=server.url.removeprefix("http://"))


@pytest.fixture
def plain(tmp_path: Path, secured: RunningServer) -> Workspace:
    """A valid workspace on the secured influxd: one job, the sink ``out``."""
    made = Workspace(tmp_path / "ws", secured.url, "raw")
    made.job("bw", JOB.format(start=MONDAY, name="bw", source="buffer", sink="out"))
    return made


def refused(
    workspace: Workspace, env: dict[str, str] | None = None, *, others_run: bool = False
) -> list[CliResult]:
    """``jobs validate`` and ``run``, both refused, neither echoing the secret. A broken source
    profile stops everything (exit 2, nothing started); a broken sink profile no job uses
    (``others_run``) is reported while the valid jobs run (exit 1)."""
    env = {**NOW, "ROLLUP_LOG_LEVEL": "DEBUG", **(env or {})}
    results = [workspace.run("jobs", "validate", env=env), workspace.run("run", env=env)]
    assert [r.code for r in results] == [2, 1 if others_run else 2], [r.stderr for r in results]
    for result in results:
        assert URL_SECRET not in result.stdout + result.stderr
    assert (workspace.root / "state").exists() == others_run, "nothing started unless valid jobs ran"
    return results


@pytest.mark.parametrize("kind", ["influxdb", "elasticsearch", "opensearch"])
def test_a_sink_url_with_credentials_is_refused_without_echoing_them(
    plain: Workspace, secured: RunningServer, kind: str
) -> None:
    for form in BAD_URLS:
        database = 'database = "raw_out"\n' if kind == "influxdb" else ""
        plain.sink(form, f'type = "{kind}"\nurl = "{bad_url(form, secured)}"\n{database}')
    for result in refused(plain, others_run=True):
        for form in BAD_URLS:
            assert f"sinks/{form}.toml: url: credentials cannot be written into the URL" in result.stderr
        assert "query parameter 'p' holds a password): use username and password_env" in result.stderr
        assert "query parameter 'token' holds a token): use token_env or token_file" in result.stderr


def test_a_source_url_with_credentials_is_refused_without_echoing_them(
    plain: Workspace, secured: RunningServer
) -> None:
    config = plain.root / "config" / "rollup.toml"
    config.write_text(
        config.read_text()
        + "".join(f'[sources.{form}]\nurl = "{bad_url(form, secured)}"\n' for form in BAD_URLS)
    )
    for result in refused(plain):
        for form in BAD_URLS:
            assert f"sources.{form}.url: credentials cannot be written into the URL" in result.stderr


@pytest.mark.parametrize("form", ["scheme", "query"])
def test_a_source_url_with_credentials_from_the_environment_is_refused_without_echoing_them(
    plain: Workspace, secured: RunningServer, form: str
) -> None:
    [validate, _] = refused(plain, {"ROLLUP_SOURCES__BUFFER__URL": bad_url(form, secured)})
    assert "sources.buffer.url: credentials cannot be written into the URL" in validate.stderr


def test_status_masks_url_credentials_in_errors_recorded_before_they_were_refused(
    plain: Workspace, secured: RunningServer
) -> None:
    """A ledger written by an earlier rollup, which took ``?u=…&p=…`` and printed it in its errors."""
    from pydantic import SecretStr

    from rollup.core.windows import Window
    from rollup.ledger import open_ledger
    from rollup.ledger.base import Finished

    day = Window(DAY1 * S, (DAY1 + 86_400) * S)
    stale = (
        f"cannot connect to InfluxDB at http://127.0.0.1:1/query?db=raw&u=rollup&p={URL_SECRET}: refused; "
        f"InfluxDB sink 'out': http://rollup:{URL_SECRET}@127.0.0.1:1/ping does not answer"
    )
    (plain.root / "state").mkdir()
    with open_ledger(SecretStr(f"sqlite:{plain.root / 'state' / 'ledger.sqlite'}"), None) as ledger:
        assert ledger.claim("bw", [(day, None)], "old", day.end, 60 * S) == [day]
        ledger.finish("bw", [Finished(day, stale, 0, 0, 0.1)], "old", day.end + S)

    status = plain.run("status", env=NOW)
    assert status.code == 0, status.stderr
    assert "query?db=raw&u=***&p=***" in status.stdout
    assert "http://rollup:***@127.0.0.1:1/ping" in status.stdout
    assert URL_SECRET not in status.stdout + status.stderr

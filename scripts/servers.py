"""Real servers for tests, the demo and benchmarks, started on 127.0.0.1 in temp dirs, stopped by PID."""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    directory: Path
    log: Path
    stop_signal: signal.Signals = signal.SIGTERM
    password: str = field(default="", repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _wait_ready(server: RunningServer, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early:\n{server.log_tail()}")
        try:
            response = httpx.get(server.url + path, timeout=1.0)
            if response.status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} did not become ready within {timeout}s:\n{server.log_tail()}")


INFLUXD_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{dir}/meta"

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
{data_options}
[coordinator]
  max-select-point = 0
  max-select-series = 0

[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  auth-enabled = {auth}
  max-row-limit = 0

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false
"""


def start_influxd(
    directory: Path, port: int | None = None, auth: bool = False, data_options: dict[str, str] | None = None
) -> RunningServer:
    """Start Debian's ``influxd`` (1.x) with its data under ``directory`` (``data_options``: more
    settings of its ``[data]`` section, values written as given, e.g. ``{"cache-max-memory-size": "0"}``)."""
    binary = shutil.which("influxd")
    if binary is None:
        raise RuntimeError(
            "influxd is not installed: run `apt-get install -y influxdb` (scripts/install-deps.sh)"
        )
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "influxdb.conf"
    config.write_text(
        INFLUXD_CONFIG.format(
            dir=directory,
            port=port,
            rpc_port=free_port(),
            auth="true" if auth else "false",
            data_options="".join(f"  {k} = {v}\n" for k, v in (data_options or {}).items()),
        )
    )
    log = directory / "influxd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer("influxd", f"http://127.0.0.1:{port}", process, directory, log)
    _wait_ready(server, "/ping")
    return server


POSTGRES_USER = "rollup"


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    binary = shutil.which("postgres")
    if binary is None:
        raise RuntimeError(
            "PostgreSQL is not installed: run `apt-get install -y postgresql` (scripts/install-deps.sh)"
        )
    return Path(binary).parent


def start_postgres(port: int | None = None) -> RunningServer:
    """Start Debian's PostgreSQL on 127.0.0.1 in a fresh data directory (password auth).

    PostgreSQL refuses to run as root: as root, the server runs as ``nobody`` in a directory it
    owns under the system temp dir (pytest's own temp dirs are closed to other users). Stop it
    with ``stop()`` (SIGINT: fast shutdown) and remove ``directory`` afterwards.
    """
    binaries = _postgres_bin()
    port = port or free_port()
    as_root = os.geteuid() == 0
    # As root, a directory under /tmp itself: $TMPDIR may sit where nobody cannot enter.
    directory = Path(tempfile.mkdtemp(prefix="rollup-postgres-", dir="/tmp" if as_root else None))
    user = group = None
    if as_root:
        nobody = pwd.getpwnam("nobody")
        user, group = nobody.pw_uid, nobody.pw_gid
        os.chown(directory, user, group)
    password = f"pw-{os.urandom(6).hex()}"
    password_file = directory / "password"
    password_file.write_text(password + "\n")
    if user is not None and group is not None:
        os.chown(password_file, user, group)
    data = directory / "data"
    initdb = subprocess.run(
        [
            str(binaries / "initdb"), "-D", str(data), "-U", POSTGRES_USER, "--auth=scram-sha-256",
            f"--pwfile={password_file}", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ],
        cwd=directory, capture_output=True, text=True, check=False, user=user, group=group,
    )  # fmt: skip
    if initdb.returncode != 0:
        raise RuntimeError(f"initdb failed: {initdb.stderr[-2000:]}")
    log = directory / "postgres.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(directory),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=100",
            ],
            cwd=directory, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, user=user,
            group=group,
        )  # fmt: skip
    server = RunningServer(
        "postgres", f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}", process, directory, log,
        stop_signal=signal.SIGINT, password=password,
    )  # fmt: skip
    _wait_postgres(server, binaries)
    return server


def _wait_postgres(server: RunningServer, binaries: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    port = server.url.rsplit(":", 1)[1]
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"postgres exited early:\n{server.log_tail()}")
        ready = subprocess.run(
            [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", port, "-q"], check=False
        )
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"postgres did not become ready within {timeout}s:\n{server.log_tail()}")


def _noida_binary() -> str:
    """The noida-db server binary itself (the ``noida-db`` script only wraps it in a Python process)."""
    spec = importlib.util.find_spec("noida_db")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "noida-db is not installed: pip install -e '.[demo]' (scripts/install-deps.sh --for-demo)"
        )
    return str(Path(spec.origin).parent / "noida-db")


def start_elasticsearch(directory: Path, port: int | None = None) -> RunningServer:
    """Start noida-db serving only its Elasticsearch 8 API, with its data under ``directory``.

    Started again on the same directory and port, it serves the documents it had."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "noida-db.log"
    command = [_noida_binary(), "start", "--only", "elasticsearch", "--elasticsearch-port", str(port)]
    command += ["--host", "127.0.0.1", "--data-dir", str(directory / "data")]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=directory, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = RunningServer("noida-db", f"http://127.0.0.1:{port}", process, directory, log)
    _wait_ready(server, "/_cluster/health")
    return server


def start_opensearch(directory: Path, port: int | None = None) -> RunningServer:
    """Start osmem-server (the OpenSearch 3 API, in memory: a restart starts empty), without the
    Japanese analyzer, which takes a second to load on first use."""
    from osmem_server import resolve_binary

    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "osmem-server.log"
    command = [resolve_binary(), "--addr", f"127.0.0.1:{port}", "--no-stdin-watch", "--no-ja"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=directory, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = RunningServer("osmem-server", f"http://127.0.0.1:{port}", process, directory, log)
    _wait_ready(server, "/_cluster/health")
    return server


def start_prometheus(directory: Path, config: str, port: int | None = None) -> RunningServer:
    """Start Debian's ``prometheus`` with ``config`` (the text of a prometheus.yml; relative rule
    files are looked up in ``directory``) and its data under ``directory``."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError(
            "prometheus is not installed: run `apt-get install -y prometheus` "
            "(scripts/install-deps.sh --for-tests)"
        )
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "prometheus.yml"
    config_file.write_text(config)
    log = directory / "prometheus.log"
    command = [
        binary, f"--config.file={config_file}", f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=directory, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = RunningServer("prometheus", f"http://127.0.0.1:{port}", process, directory, log)
    _wait_ready(server, "/-/ready")
    return server


def rollup_prometheus_config(targets: list[str], interval: str) -> str:
    """deploy/prometheus/prometheus.yml scraping ``targets`` every ``interval`` (rules evaluated
    as often); its rule file is read from the directory of the config file."""
    import yaml  # pyyaml: a development dependency, not one of the demo's

    shipped = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(shipped.read_text())
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    (scrape,) = config["scrape_configs"]
    scrape["static_configs"] = [{"targets": targets}]
    return str(yaml.safe_dump(config))

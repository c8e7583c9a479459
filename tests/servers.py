"""Real servers for tests, demo and benchmarks, started on 127.0.0.1 in temp dirs, stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
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

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
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

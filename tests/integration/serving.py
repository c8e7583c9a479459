"""``rollup serve`` as a real subprocess in a test workspace: a job of 2-second windows, raw
counters for it, its HTTP endpoint, its metrics and its ledger."""

from __future__ import annotations

import datetime as dt
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from rollup.ledger.base import Record
from tests.conftest import InfluxHelper, LedgerTarget
from tests.integration.workspace import Background, CliResult, Workspace

S = 1_000_000_000
WINDOW = 2 * S
HOSTS = ("a", "b")


def iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / S, dt.UTC).isoformat().replace("+00:00", "Z")


def first_window(back: int = 4) -> int:
    """The start of the 2-second window ``back`` windows before the one now in progress."""
    now = time.time_ns()
    return now - now % WINDOW - back * WINDOW


def write_counters(influx: InfluxHelper, start: int, seconds: int = 120) -> None:
    """Counters of two hosts every 0.5 s from 10 s before ``start`` on, ahead of time; host b's
    counter restarts from 0 once (a reset)."""
    lines = []
    for number, host in enumerate(HOSTS, start=1):
        value = 0
        for step in range(-20, 2 * seconds):
            value = 7 if host == "b" and step == 25 else value + 100 * number + step % 5
            lines.append(f"ifc,host={host} octets={value}i {start + step * S // 2}")
    influx.write(lines)


def fast_job(
    workspace: Workspace, start: int, name: str = "fast", sink: str = "out", enabled: bool = True
) -> None:
    """A job of 2-second windows that close 1 second after their end."""
    workspace.job(
        name,
        f"""
        start = {iso(start)}
        enabled = {str(enabled).lower()}

        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "ifc"

        [window]
        every = "2s"
        delay = "1s"
        lookback = "2s"

        [fields.octets]
        on_decrease = "reset"
        aggregates = ["mean", "max", "increase"]

        [output]
        measurement = "fast"
        sinks = ["{sink}"]

        [schedule]
        retry_backoff = "1s"
        retry_backoff_max = "1s"
        """,
    )


def serve_env(ledger: LedgerTarget | None = None, **settings: str) -> dict[str, str]:
    """Environment of a serve process: any free port, a sweep every second, ``settings`` as
    ``ROLLUP_SERVE__NAME`` overrides."""
    env = {"ROLLUP_SERVE__PORT": "0", "ROLLUP_SERVE__SWEEP": "1s"}
    env.update({f"ROLLUP_SERVE__{key.upper()}": value for key, value in settings.items()})
    if ledger is not None:
        env.update(ledger.env())
    return env


def wait_for(condition: Callable[[], object], timeout: float, what: str, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s\n{log()}")


@dataclass
class Served:
    """A running ``rollup serve``."""

    background: Background

    @classmethod
    def start(cls, workspace: Workspace, env: dict[str, str], *options: str) -> Served:
        served = cls(workspace.start(*options, "serve", env=env))
        wait_for(lambda: served.url_or_none(), 30, "serve did not start", served.output)
        return served

    def output(self) -> str:
        return self.background.output()

    def url_or_none(self) -> str | None:
        if self.background.process.poll() is not None:
            raise AssertionError(f"serve exited with {self.background.process.returncode}:\n{self.output()}")
        found = re.search(r"(http://127\.0\.0\.1:\d+)/metrics", self.output())
        return found.group(1) if found else None

    @property
    def url(self) -> str:
        url = self.url_or_none()
        assert url is not None
        return url

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample: (name, sorted labels) → value."""
        response = self.get("/metrics")
        assert response.status_code == 200, response.text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics()[(name, tuple(sorted(labels.items())))]

    def signal(self, signum: signal.Signals) -> None:
        self.background.process.send_signal(signum)

    def stop(self, timeout: float = 30) -> CliResult:
        """SIGTERM and wait for the exit."""
        self.signal(signal.SIGTERM)
        return self.background.wait(timeout)

    def kill(self) -> None:
        self.background.kill()


def done_records(ledger: LedgerTarget, job: str = "fast") -> list[Record]:
    with ledger.open() as opened:
        return opened.records(job, 0, 2**62, ["done"])


def all_records(ledger: LedgerTarget, job: str = "fast") -> list[Record]:
    with ledger.open() as opened:
        return opened.records(job, 0, 2**62)

"""A backfill of many windows into InfluxDB and Elasticsearch, for the fault tests.

Three local days (Europe/Zurich, from a Monday at least a week ago: :mod:`tests.dates`) of
5-minute counters and temperatures of eight series (four hosts × two interfaces, a counter reset
and a 32-bit wrap among them), rolled up into 3-hour windows (24 of them) and written to an
InfluxDB sink and a search sink, each reached through its own URL so a test can put a proxy in
between. :func:`state` reads back everything the sinks and
the ledger hold, to compare a disturbed run with an uninterrupted one value for value.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests import dates
from tests.conftest import InfluxHelper, LedgerTarget, SearchHelper
from tests.integration.faults import HttpProxy
from tests.integration.workspace import CliResult, Workspace

S = 1_000_000_000
ZURICH = ZoneInfo("Europe/Zurich")
DAYS = 3
WINDOWS = DAYS * 8
FIRST_DAY = dates.monday(7, ZURICH, days=DAYS)
"""A Monday at least a week ago, and no clock change in Zurich in the three days from it."""
FIRST = dates.midnight(FIRST_DAY, ZURICH)
START, END = FIRST_DAY.isoformat(), (FIRST_DAY + dt.timedelta(days=DAYS)).isoformat()
NOW = dates.utc_minute(dates.seconds(FIRST_DAY + dt.timedelta(days=DAYS), ZURICH))
"""Local midnight at the end of the range: the last window of the range has just closed."""
LATER = dates.utc_minute(dates.seconds(FIRST_DAY + dt.timedelta(days=DAYS), ZURICH) + 60)
"""A minute on, and no new window closed. Leases and retry backoffs follow the real clock, not
this: :meth:`Setup.rerun` waits for them."""
JOB = "bw"
MEASUREMENT = "bw_3h"
BACKFILL = ("backfill", JOB, "--start", START, "--end", END, "--no-progress")
HOSTS = ("a", "b", "c", "d")
INTERFACES = ("eth0", "eth1")


def window_starts() -> list[int]:
    """Epoch ns of the 24 window starts."""
    return [int((FIRST + dt.timedelta(hours=3 * i)).timestamp()) * S for i in range(WINDOWS)]


def serve_delay(now: int) -> str:
    """A ``[window] delay`` that makes the scenario's windows exactly the closed ones at ``now``
    (epoch ns, the real clock ``rollup serve`` plans with): the last one closed an hour ago, the
    next one closes in two hours. The delay only moves when windows close, not what they hold."""
    seconds = (now - window_starts()[-1]) // S - 3 * 3600 - 3600
    if seconds <= 0:
        raise ValueError(f"the scenario's last window has not been closed for an hour at {now}")
    return f"{seconds}s"


def raw_lines() -> list[str]:
    """From half an hour before the first window (the lookback) to the end of the last."""
    lines = []
    begin = int(FIRST.timestamp()) - 1800
    steps = (DAYS * 86400 + 1800) // 300
    for h, host in enumerate(HOSTS):
        for i, interface in enumerate(INTERFACES):
            value = 1000 * (h + 1)
            for k in range(steps):
                if host == "c" and k == 400:
                    value = 17  # the device restarted
                elif host == "d" and interface == "eth1":
                    value = (value + 9_000_000 * (i + 1) + 13 * k) % 2**32  # wraps every ~2 h
                else:
                    value += 300 * (h + 1) * (i + 1) + k % 11
                fields = f"octets={value}i,temp={30 + h + (k % 17) / 4}"
                lines.append(f"ifc,host={host},if={interface} {fields} {(begin + k * 300) * S}")
    return lines


def job_file(workspace: Workspace, sinks: str = '["out", "search"]', delay: str = "0s") -> None:
    workspace.job(
        JOB,
        f"""
        start = {START}
        group_by = ["host", "if"]

        [source]
        profile = "buffer"
        database = "{workspace.database}"
        measurement = "ifc"

        [window]
        every = "3h"
        timezone = "Europe/Zurich"
        lookback = "30m"
        delay = "{delay}"

        [fields.octets]
        as = "in"
        on_decrease = "auto"
        scale = 8
        aggregates = ["mean", "max", "p95", "increase"]

        [fields.temp]
        kind = "gauge"
        aggregates = ["mean", "min", "max", "stddev"]

        [output]
        measurement = "{MEASUREMENT}"
        sinks = {sinks}

        [schedule]
        retry_backoff = "1s"
        retry_backoff_max = "1s"
        """,
    )


def influx_sink(
    workspace: Workspace, url: str, database: str, *, retries: int = 0, timeout: str = "10s", batch: int = 7
) -> None:
    """``out``: small batches (several writes per span), no gzip (a proxy reads the lines)."""
    workspace.sink(
        "out",
        f"""
        type = "influxdb"
        url = "{url}"
        database = "{database}"
        batch_size = {batch}
        gzip = false
        retries = {retries}
        backoff = 0.05
        timeout = "{timeout}"
        """,
    )


def search_sink(
    workspace: Workspace, search: SearchHelper, url: str, *, retries: int = 0, timeout: str = "10s"
) -> None:
    """``search``: daily indices, several bulk requests per span."""
    workspace.sink(
        "search",
        f"""
        type = "{search.flavor}"
        url = "{url}"
        index = "{search.prefix}-{{job}}-{{yyyy.MM.dd}}"
        batch_size = 11
        retries = {retries}
        backoff = 0.05
        timeout = "{timeout}"
        """,
    )


def settings(
    workspace: Workspace, source_url: str, *, timeout: str = "10s", retries: int = 3, fmt: str = "json"
) -> None:
    """config/rollup.toml with the buffer at ``source_url`` (chunks of 500 rows, short backoff)."""
    (workspace.root / "config" / "rollup.toml").write_text(
        textwrap.dedent(
            f"""
            [sources.buffer]
            url = "{source_url}"
            chunk_size = 500
            format = "{fmt}"
            timeout = "{timeout}"
            retries = {retries}
            backoff = 0.05
            """
        )
    )


@dataclass(frozen=True)
class State:
    """What the sinks and the ledger hold after a run."""

    points: list[dict[str, object]]
    documents: list[tuple[str, str, dict[str, Any]]]
    """(index without the test's prefix, id, source) of every document."""
    ledger: list[tuple[int, str]]
    """(window start, status) of every window the ledger knows."""


def sorted_points(points: list[dict[str, object]]) -> list[dict[str, object]]:
    return sorted(points, key=lambda p: (int(p["time"]), str(p["host"]), str(p["if"])))  # type: ignore[call-overload]


def state(influx: InfluxHelper, search: SearchHelper, ledger: LedgerTarget) -> State:
    """What ``influx`` (its database), ``search`` (its prefix) and ``ledger`` hold."""
    documents = sorted(
        (hit["_index"].removeprefix(search.prefix), hit["_id"], hit["_source"]) for hit in search.documents()
    )
    with ledger.open() as opened:
        rows = [(r.window.start, r.status) for r in opened.records(JOB, 0, 2**62)]
    return State(sorted_points(influx.points(MEASUREMENT)), documents, rows)


def all_done() -> list[tuple[int, str]]:
    return [(start, "done") for start in window_starts()]


def queries(method: str, path: str, body: bytes) -> bool:
    """Queries for points (not the SHOW statements a run starts with to check the job)."""
    return path.startswith("/query") and b"q=SELECT" in body


@dataclass
class Setup:
    """One test's workspace: its own output database, indices and ledger; the source and both
    sinks reached through proxies (``source_proxy`` counts queries, the others writes)."""

    workspace: Workspace
    raw: InfluxHelper
    out_database: str
    search: SearchHelper
    ledger: LedgerTarget
    source_proxy: HttpProxy
    influx_proxy: HttpProxy
    search_proxy: HttpProxy

    def env(self, now: str = NOW) -> dict[str, str]:
        return {**self.ledger.env(), "ROLLUP_NOW": now}

    def rerun(self) -> CliResult:
        """``rollup run`` once the failed windows' retry backoff (1 s, real clock) has passed."""
        time.sleep(1.1)
        return self.workspace.run("run", env=self.env(LATER))

    def state(self, influx_url: str | None = None, search_url: str | None = None) -> State:
        """What the sinks hold (by default on the servers behind the proxies), and the ledger."""
        influx = InfluxHelper(self.raw.server, self.out_database)
        influx.url = influx_url or self.raw.url
        search = SearchHelper("elasticsearch", search_url or self.search.url, self.search.prefix)
        try:
            return state(influx, search, self.ledger)
        finally:
            search.http.close()

    def written_windows(self) -> set[int]:
        """Window starts of the points and documents the sinks accepted since the proxies were armed."""
        starts = set()
        for body in self.influx_proxy.bodies:
            starts.update(int(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines())
        for body in self.search_proxy.bodies:
            for line in body.splitlines()[1::2]:
                start = dt.datetime.fromisoformat(json.loads(line)["window_start"])
                starts.add(int(start.timestamp()) * S)
        return starts

    def close(self) -> None:
        for proxy in (self.source_proxy, self.influx_proxy, self.search_proxy):
            proxy.close()
        self.search.clean()
        self.search.http.close()


_setups = itertools.count()


def make_setup(raw: InfluxHelper, elasticsearch_url: str, root: Path, ledger: LedgerTarget) -> Setup:
    number = next(_setups)
    out = f"{raw.database}_out{number}"
    raw.create_database(out)
    search = SearchHelper("elasticsearch", elasticsearch_url, f"s{number}-{os.getpid()}")
    workspace = Workspace(root, raw.url, raw.database)
    source_proxy = HttpProxy(raw.url, counts=queries)
    influx_proxy = HttpProxy(raw.url)
    search_proxy = HttpProxy(elasticsearch_url)
    settings(workspace, source_proxy.url)
    job_file(workspace)
    influx_sink(workspace, influx_proxy.url, out)
    search_sink(workspace, search, search_proxy.url)
    return Setup(workspace, raw, out, search, ledger, source_proxy, influx_proxy, search_proxy)


def sqlite_target(root: Path) -> LedgerTarget:
    return LedgerTarget("sqlite", f"sqlite:{root / 'ledger.sqlite'}")


@dataclass(frozen=True)
class Baseline:
    """What one uninterrupted backfill writes, how many requests it takes and how long."""

    state: State
    queries: int
    influx_writes: int
    search_writes: int
    seconds: float

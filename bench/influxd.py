"""The influxd a benchmark runs against: queries, loading a dataset once, waiting until it is idle,
and the CPU it spends while a step runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.datasets import Dataset
from bench.report import log
from bench.sampling import TICKS, Run, cpu_ticks
from scripts.servers import RunningServer
from scripts.synth import FIELDS, write

OUT_DB = "bench_out"
"""Where the rollup runs and InfluxDB's server-side rollup write."""
OUT_DB_BASE = "bench_out_base"
"""Where the rollup runs of another version (--base) write."""


class Influxd:
    def __init__(self, server: RunningServer):
        self.server = server
        self.url = server.url
        # Uncompressed, as rollup asks: on a local link gzip only costs influxd CPU.
        self.client = httpx.Client(base_url=self.url, timeout=3600, headers={"Accept-Encoding": "identity"})
        self.query("CREATE DATABASE " + OUT_DB)

    def query(self, q: str, database: str | None = None) -> list[dict[str, Any]]:
        params = {"epoch": "ns"} | ({"db": database} if database else {})
        response = self.client.post("/query", params=params, data={"q": q})
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            raise SystemExit(f"InfluxDB: {result['error']}\n{q}")
        return list(result.get("series", []))

    def load(self, data: Dataset) -> int:
        """Write the dataset (unless a previous run left it in --data-dir); the number of rows."""
        databases = self.query("SHOW DATABASES")[0].get("values", [])
        existing = [data.database] in databases and self.query(
            f'SELECT count("{FIELDS[0]}") FROM "interface"', data.database
        )
        if existing:
            rows = int(existing[0]["values"][0][1])
            log(f"{data.database}: {rows:,} rows already there")
            return rows
        log(f"writing {data.series:,} series × {data.days} day(s) every {data.interval} s into influxd …")
        self.query(f'CREATE DATABASE "{data.database}"')
        began = time.perf_counter()
        rows = write(self.client, data.database, data.lines())
        log(f"  {rows:,} rows in {time.perf_counter() - began:.0f} s")
        return rows

    def count_rows(self, data: Dataset, start_ns: int) -> int:
        found = self.query(
            f'SELECT count("{FIELDS[0]}") FROM "interface" WHERE time >= {start_ns} '
            f"AND time < {data.end * 10**9}",
            data.database,
        )
        return int(found[0]["values"][0][1])

    def settle(self, limit: float = 300.0) -> None:
        """Wait until influxd is idle (its compactions done), so every measurement sees the same files."""
        began = time.monotonic()
        while time.monotonic() - began < limit:
            before = cpu_ticks(self.server.pid)
            time.sleep(3)
            if cpu_ticks(self.server.pid) - before < 15:  # < 5 % of a core
                log(f"influxd idle after {time.monotonic() - began:.0f} s")
                return
        log("influxd still busy, measuring anyway")

    def timed(self, step: Callable[[], Run]) -> Run:
        """Run a step, noting how much CPU influxd spent meanwhile."""
        before = cpu_ticks(self.server.pid)
        run = step()
        run.extra["influxd_cpu_seconds"] = (cpu_ticks(self.server.pid) - before) / TICKS
        return run

    def points(
        self, measurement: str, columns: tuple[str, ...], database: str = OUT_DB
    ) -> dict[tuple[str, str, int], tuple[Any, ...]]:
        """A measurement's (agent_host, ifName, time) → the columns' values."""
        out: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        for series in self.query(f'SELECT {",".join(columns)} FROM "{measurement}" GROUP BY *', database):
            tags = series["tags"]
            for row in series["values"]:
                out[tags["agent_host"], tags["ifName"], int(row[0])] = tuple(row[1:])
        return out

"""rollup backfill against its baselines, on the same data in the same run (issue #7).

Starts a real influxd in a temp dir (scripts/servers.py), writes seeded synthetic SNMP counters
(scripts/synth.py: ``ifHCInOctets`` and ``ifHCOutOctets`` of 50 hosts × 20 interfaces every 60 s,
3 device reboots, one Counter32 wrap), waits for influxd to finish compacting, then times, for the
job "daily mean of the non-negative per-second rate of both fields per (agent_host, ifName)":

- ``rollup backfill`` as a subprocess (wall time, peak RSS, CPU), with ``concurrency`` 1 and 2, and
  with each source response format of ``--formats`` (default: json and msgpack; the targets judge
  the default format, msgpack; the week and scale runs use it);
- InfluxDB's server-side rollup, ``SELECT mean(d) INTO … FROM (SELECT non_negative_derivative(f, 1s)
  AS d … GROUP BY *) GROUP BY time(1d), *``, one query per field and both fields in one query;
- a naive pandas implementation (bench/naive.py, a subprocess: export, groupby, diff, mean);
- the raw export alone (the same chunked JSON query rollup sends, received and discarded): the
  floor for anything that reads the raw data out; and the same export in msgpack;
- the core alone (already-parsed arrays → aggregates, CPU time of one core) and the parsing of a
  recorded export alone (JSON, and msgpack).

Each is run ``--repeat`` times, interleaved, and the median is reported. The results are checked in
the same run: rollup's points read back from InfluxDB must equal the pandas implementation's and
InfluxDB's own (this job's lookback of 10 minutes gives every day its first interval, like the
server-side subquery, whose derivative runs across midnight). The table is printed (also as
Markdown for BENCHMARKS.md) and written as JSON to bench/results/.

    python -m bench.backfill --quick      # ~1 minute smoke run (100 series, 1 day)
    python -m bench.backfill              # the reference: 1,000 series × 2 days = 2.88M rows
    python -m bench.backfill --week       # + peak memory with 1-day vs 7-day windows (10M rows)
    python -m bench.backfill --scale      # + 38,400 series at 2.5-minute polls for a day (22M rows)
    python -m bench.backfill --only-scale --scale-devices 100   # the scale point alone, smaller

The scale point runs, besides the raw export and the daily mean per interface, the job users bill
with: mean, max and p95 per interface and per device (issue #17: ≤ 1.15 × the mean-only run and
≤ 300 MB), and per ifName, whose groups are not contiguous in InfluxDB's order (kept to the end,
beyond ``values_memory`` in a temporary file). ``--scale-repeat N`` takes the median of N rounds.
    python -m bench.backfill --devices 200 --interfaces 10 --days 1 --interval 30   # any N × M
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from rollup.core.batch import Batch, FieldColumn
from rollup.core.pipeline import Rollup
from rollup.influx import InfluxConnection
from rollup.jobs.runner import JobRunner
from rollup.jobs.spec import JobSpec
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import Format, InfluxQLSource
from rollup.sources.influxql import build_query
from scripts.servers import RunningServer, start_influxd
from scripts.synth import FIELDS, interface_series, write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
S = 10**9
DAY = 86400
START = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp())  # a Monday: 7-day windows start there
LOOKBACK = "10m"
LOOKBACK_NS = 600 * S
CHUNK_SIZE = 10_000
OUT_DB = "bench_out"
TICKS = os.sysconf("SC_CLK_TCK")

# Reference figures from issue #7, measured elsewhere (Kapacitor cannot be installed here).
KAPACITOR_SECONDS = 24.0
KAPACITOR_RAW_EXPORT_SECONDS = 5.1
KAPACITOR_RSS_MB = 1400


@dataclass(frozen=True)
class Dataset:
    name: str
    devices: int
    interfaces: int
    interval: int
    days: int

    @property
    def series(self) -> int:
        return self.devices * self.interfaces

    @property
    def database(self) -> str:
        return f"bench_{self.name}"

    @property
    def start(self) -> int:
        return START

    @property
    def end(self) -> int:
        return START + self.days * DAY


QUICK = Dataset("quick", 10, 10, 60, 1)
FULL = Dataset("full", 50, 20, 60, 2)
WEEK = Dataset("week", 50, 20, 60, 7)
SCALE = Dataset("scale", 1600, 24, 150, 1)


def job_toml(
    name: str,
    database: str,
    every: str = "1d",
    aggregates: tuple[str, ...] = ("mean",),
    group_by: tuple[str, ...] = ("agent_host", "ifName"),
) -> str:
    listed = ", ".join(f'"{a}"' for a in aggregates)
    return f"""\
name = "{name}"
group_by = [{", ".join(f'"{tag}"' for tag in group_by)}]

[source]
profile = "buffer"
database = "{database}"
measurement = "interface"

[window]
every = "{every}"
timezone = "UTC"
lookback = "{LOOKBACK}"

[fields.ifHCInOctets]
as = "in"
on_decrease = "drop"
aggregates = [{listed}]

[fields.ifHCOutOctets]
as = "out"
on_decrease = "drop"
aggregates = [{listed}]

[output]
measurement = "{name}"
sinks = ["out"]
timestamp = "start"
"""


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rss_mb: float | None = None
    cpu_seconds: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Measure:
    name: str
    rows: int
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def rss_mb(self) -> float | None:
        values = [r.rss_mb for r in self.runs if r.rss_mb is not None]
        return max(values) if values else None

    @property
    def cpu_seconds(self) -> float | None:
        values = [r.cpu_seconds for r in self.runs if r.cpu_seconds is not None]
        return statistics.median(values) if values else None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "median_seconds": self.seconds,
            "rows_per_second": self.rows / self.seconds,
            "peak_rss_mb": self.rss_mb,
            "median_cpu_seconds": self.cpu_seconds,
            "note": self.note,
            "runs": [r.__dict__ for r in self.runs],
        }


def run_child(command: list[str], env: dict[str, str] | None = None) -> tuple[Run, str]:
    """Run a command to completion: wall time, its peak RSS, its CPU time (wait4), its stdout.

    The peak RSS is the child's VmHWM, sampled every 10 ms: the rusage maximum would also count the
    memory of this (larger) process, whose address space the child runs in until its exec.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, _status_kb(process.pid, "VmHWM:"))
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return Run(seconds, peak_kb / 1024, usage.ru_utime + usage.ru_stime), stdout


class RssSampler:
    """The highest VmRSS of a process while a block runs (sampled every 20 ms)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmRSS:"))

    def __enter__(self) -> RssSampler:
        self.peak_kb = _status_kb(self.pid, "VmRSS:")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _status_kb(pid: int, key: str) -> int:
    """A memory figure (kB) from /proc/PID/status, 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


# -- the bench environment ----------------------------------------------------------------------


class Bench:
    def __init__(self, workdir: Path, influxd: RunningServer, repeat: int):
        self.workdir = workdir
        self.influxd = influxd
        self.url = influxd.url
        self.repeat = repeat
        # Uncompressed, as rollup asks: on a local link gzip only costs influxd CPU.
        self.client = httpx.Client(base_url=self.url, timeout=3600, headers={"Accept-Encoding": "identity"})
        self.query("CREATE DATABASE " + OUT_DB)
        (workdir / "jobs").mkdir()
        (workdir / "sinks").mkdir()
        (workdir / "sinks" / "out.toml").write_text(
            f'type = "influxdb"\nurl = "{self.url}"\ndatabase = "{OUT_DB}"\ntimeout = "300s"\n'
        )

    # -- InfluxDB ------------------------------------------------------------------------------

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
        lines = (
            f"interface,agent_host={host},ifName={port} {FIELDS[0]}={a}i,{FIELDS[1]}={b}i {t}"
            for host, port, times, (ins, outs) in interface_series(
                data.start,
                data.end,
                data.devices,
                data.interfaces,
                data.interval,
                seed=7,
                resets=3,
                wrap32=True,
            )
            for t, a, b in zip(times.tolist(), ins.tolist(), outs.tolist(), strict=True)
        )
        rows = write(self.client, data.database, lines)
        log(f"  {rows:,} rows in {time.perf_counter() - began:.0f} s")
        return rows

    def settle(self, limit: float = 300.0) -> None:
        """Wait until influxd is idle (its compactions done), so every measurement sees the same files."""
        began = time.monotonic()
        while time.monotonic() - began < limit:
            before = cpu_ticks(self.influxd.pid)
            time.sleep(3)
            if cpu_ticks(self.influxd.pid) - before < 15:  # < 5 % of a core
                log(f"influxd idle after {time.monotonic() - began:.0f} s")
                return
        log("influxd still busy, measuring anyway")

    def timed(self, step: Callable[[], Run]) -> Run:
        """Run a step, noting how much CPU influxd spent meanwhile."""
        before = cpu_ticks(self.influxd.pid)
        run = step()
        run.extra["influxd_cpu_seconds"] = (cpu_ticks(self.influxd.pid) - before) / TICKS
        return run

    # -- the contenders --------------------------------------------------------------------------

    def config(self, concurrency: int, fmt: Format = "msgpack") -> Path:
        path = self.workdir / f"rollup-c{concurrency}-{fmt}.toml"
        path.write_text(
            f'jobs_dir = "{self.workdir / "jobs"}"\nsinks_dir = "{self.workdir / "sinks"}"\n'
            f'log_level = "WARNING"\nledger = "sqlite:{self.workdir / "ledger.sqlite"}"\n'
            f'\n[sources.buffer]\nurl = "{self.url}"\ntimeout = "600s"\n'
            f'chunk_size = {CHUNK_SIZE}\nconcurrency = {concurrency}\nformat = "{fmt}"\n'
        )
        return path

    def add_job(
        self,
        name: str,
        database: str,
        every: str = "1d",
        aggregates: tuple[str, ...] = ("mean",),
        group_by: tuple[str, ...] = ("agent_host", "ifName"),
    ) -> JobSpec:
        text = job_toml(name, database, every, aggregates, group_by)
        (self.workdir / "jobs" / f"{name}.toml").write_text(text)
        return JobSpec.model_validate(tomllib.loads(text))

    def backfill(self, job: str, data: Dataset, concurrency: int = 1, fmt: Format = "msgpack") -> Run:
        command = [
            sys.executable, "-m", "rollup", "--config", str(self.config(concurrency, fmt)),
            "backfill", job, "--start", iso(data.start), "--end", iso(data.end), "--no-progress",
            "--force",  # every round computes every window (the ledger holds them as done after the first)
        ]  # fmt: skip
        run, _ = run_child(command)
        return run

    def raw_export(self, data: Dataset, fields: tuple[str, ...] = FIELDS, fmt: Format = "json") -> Run:
        query = SourceQuery(data.database, "interface", fields, data.start * S - LOOKBACK_NS, data.end * S)
        params = {"db": data.database, "epoch": "ns", "chunked": "true", "chunk_size": str(CHUNK_SIZE)}
        began = time.perf_counter()
        size = 0
        with self.client.stream(
            "POST", "/query", params=params, data={"q": build_query(query)}, headers={"Accept": ACCEPT[fmt]}
        ) as response:
            response.raise_for_status()
            for piece in response.iter_raw():
                size += len(piece)
        return Run(time.perf_counter() - began, extra={"bytes": size})

    def raw_export_per_window(self, job: JobSpec, data: Dataset) -> Run:
        """The queries rollup sends (one per span of windows, each with its lookback), in turn."""
        runner = JobRunner(job, source=None)  # type: ignore[arg-type]
        windows = job.grid.windows(data.start * S, data.end * S)
        params = {"db": data.database, "epoch": "ns", "chunked": "true", "chunk_size": str(CHUNK_SIZE)}
        began = time.perf_counter()
        size = 0
        for span in runner.spans(windows):
            statement = build_query(runner.query(span))
            with self.client.stream("POST", "/query", params=params, data={"q": statement}) as response:
                response.raise_for_status()
                for piece in response.iter_raw():
                    size += len(piece)
        return Run(time.perf_counter() - began, extra={"bytes": size})

    def recorded_export(self, data: Dataset, fmt: Format = "json") -> bytes:
        query = SourceQuery(data.database, "interface", FIELDS, data.start * S - LOOKBACK_NS, data.end * S)
        params = {"db": data.database, "epoch": "ns", "chunked": "true", "chunk_size": str(CHUNK_SIZE)}
        response = self.client.post(
            "/query", params=params, data={"q": build_query(query)}, headers={"Accept": ACCEPT[fmt]}
        )
        response.raise_for_status()
        return response.content

    def server_side(self, data: Dataset, per_field: bool) -> Run:
        where = f"time >= {data.start * S} AND time < {data.end * S}"
        source = f'"{data.database}"."autogen"."interface"'
        if per_field:
            statements = [
                f'SELECT mean("d") INTO "{OUT_DB}"."autogen"."server_{name}" FROM '
                f'(SELECT non_negative_derivative("{field}", 1s) AS "d" FROM {source} '
                f"WHERE {where} GROUP BY *) "
                f"WHERE {where} GROUP BY time(1d), *"
                for field, name in zip(FIELDS, ("in", "out"), strict=True)
            ]
        else:
            statements = [
                f'SELECT mean("din") AS "in_mean", mean("dout") AS "out_mean" '
                f'INTO "{OUT_DB}"."autogen"."server_both" FROM '
                f'(SELECT non_negative_derivative("{FIELDS[0]}", 1s) AS "din", '
                f'non_negative_derivative("{FIELDS[1]}", 1s) AS "dout" FROM {source} '
                f"WHERE {where} GROUP BY *) "
                f"WHERE {where} GROUP BY time(1d), *"
            ]
        with RssSampler(self.influxd.pid) as rss:
            began = time.perf_counter()
            for statement in statements:
                self.query(statement, data.database)
            seconds = time.perf_counter() - began
        return Run(seconds, rss.peak_kb / 1024)

    def naive(self, data: Dataset) -> Run:
        output = self.workdir / "naive.json"
        command = [
            sys.executable, "-m", "bench.naive", "--url", self.url, "--database", data.database,
            "--start", str(data.start * S), "--end", str(data.end * S), "--lookback", str(LOOKBACK_NS),
            "--output", str(output),
        ]  # fmt: skip
        run, stdout = run_child(command)
        run.extra = json.loads(stdout.strip().splitlines()[-1])
        return run

    # -- reading results back ----------------------------------------------------------------

    def points(
        self, measurement: str, columns: tuple[str, ...]
    ) -> dict[tuple[str, str, int], tuple[Any, ...]]:
        out: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        for series in self.query(f'SELECT {",".join(columns)} FROM "{measurement}" GROUP BY *', OUT_DB):
            tags = series["tags"]
            for row in series["values"]:
                out[tags["agent_host"], tags["ifName"], int(row[0])] = tuple(row[1:])
        return out

    def clear_outputs(self) -> None:
        for measurement in ("server_in", "server_out", "server_both"):
            self.query(f'DROP MEASUREMENT "{measurement}"', OUT_DB)


def iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- core and parsing alone ---------------------------------------------------------------------


ACCEPT: dict[str, str] = {
    "json": "application/json",
    "msgpack": "application/x-msgpack",
}


def batches_of(data: Dataset, chunk_size: int = CHUNK_SIZE) -> list[Batch]:
    """The dataset as the source hands it over: whole series gathered into batches of chunk_size rows."""
    batches: list[Batch] = []
    keys: list[tuple[tuple[str, str], ...]] = []
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def emit() -> None:
        time_ns = np.concatenate([p[0] for p in parts]) * S
        fields = {
            name: FieldColumn(np.concatenate([p[i + 1] for p in parts])) for i, name in enumerate(FIELDS)
        }
        lengths = np.asarray([len(p[0]) for p in parts], dtype=np.int64)
        batches.append(Batch(list(keys), lengths, time_ns, fields))
        keys.clear()
        parts.clear()

    for host, port, times, (ins, outs) in interface_series(
        data.start, data.end, data.devices, data.interfaces, data.interval, seed=7, resets=3, wrap32=True
    ):
        keys.append((("agent_host", host), ("ifName", port)))
        parts.append((times, ins.astype(np.int64), outs.astype(np.int64)))
        if sum(len(p[0]) for p in parts) >= chunk_size:
            emit()
    if parts:
        emit()
    return batches


def time_core(job: JobSpec, data: Dataset, repeat: int) -> Measure:
    batches = batches_of(data)
    rows = sum(b.rows for b in batches)
    windows = job.grid.windows(data.start * S, data.end * S)
    measure = Measure("core alone (parsed arrays → aggregates, 1 core)", rows)
    for _ in range(max(repeat, 5)):
        cpu, wall = time.process_time(), time.perf_counter()
        rollup = Rollup(job.rollup, windows)
        for batch in batches:
            rollup.feed(batch)
        rollup.finish()
        measure.runs.append(
            Run(time.process_time() - cpu, extra={"wall_seconds": time.perf_counter() - wall})
        )
    return measure


def time_parsing(body: bytes, rows: int, repeat: int, fmt: Format = "json") -> Measure:
    query = SourceQuery("x", "interface", FIELDS, 0, 2**62)
    label = "JSON" if fmt == "json" else fmt
    measure = Measure(f"parsing a recorded export alone ({label} → batches, 1 core)", rows)
    for _ in range(max(repeat, 3)):
        source = InfluxQLSource(
            InfluxConnection(url="http://recorded.invalid"),
            chunk_size=CHUNK_SIZE,
            format=fmt,
            read_ahead=0,
            transport=httpx.MockTransport(lambda request: httpx.Response(200, content=body)),
        )
        cpu = time.process_time()
        count = sum(batch.rows for batch in source.read(query))
        measure.runs.append(Run(time.process_time() - cpu))
        assert count == rows, (count, rows)
    return measure


# -- checks -------------------------------------------------------------------------------------


def compare(
    ours: dict[tuple[str, str, int], tuple[Any, ...]], theirs: dict[tuple[str, str, int], tuple[Any, ...]]
) -> dict[str, Any]:
    """How many (group, window, field) values agree within a relative 1e-9."""
    keys = set(ours) | set(theirs)
    equal = 0
    worst = 0.0
    differing: list[str] = []
    for key in sorted(keys):
        a, b = ours.get(key), theirs.get(key)
        if a is None or b is None:
            differing.append(f"{key}: {'missing in ours' if a is None else 'missing in theirs'}")
            continue
        for x, y in zip(a, b, strict=True):
            if x is None or y is None:
                ok = x is None and y is None
            else:
                diff = abs(x - y) / max(abs(x), abs(y), 1e-300)
                worst = max(worst, diff)
                ok = diff <= 1e-9
            if ok:
                equal += 1
            else:
                differing.append(f"{key}: {x} vs {y}")
    total = sum(len(v) for v in theirs.values())
    return {
        "equal": equal,
        "total": max(total, equal),
        "worst_relative_difference": worst,
        "examples": differing[:5],
    }


# -- the runs ------------------------------------------------------------------------------------


def main_comparison(
    bench: Bench, data: Dataset, repeat: int, concurrency: list[int], formats: list[Format]
) -> dict[str, Any]:
    rows = bench.load(data)
    bench.settle()
    job = bench.add_job("rollup_daily", data.database)
    export_rows = count_rows(bench, data, data.start * S - LOOKBACK_NS)
    raw = Measure("raw export alone (chunked JSON, received)", export_rows)
    raw_other = {
        f: Measure(f"raw export alone (chunked {f}, received)", export_rows) for f in formats if f != "json"
    }
    raw_windows = Measure("raw export, the per-window queries rollup sends", export_rows)
    ours = {(f, c): Measure(ours_name(c, f), export_rows) for c in concurrency for f in formats}
    per_field = Measure("InfluxDB server-side, one query per field", rows)
    single = Measure("InfluxDB server-side, both fields in one query", rows)
    naive = Measure("naive pandas (export, groupby, diff, mean)", export_rows)
    steps: list[tuple[Measure, Callable[[], Run]]] = [
        (raw, lambda: bench.raw_export(data)),
        *[(m, lambda f=f: bench.raw_export(data, fmt=f)) for f, m in raw_other.items()],
        (raw_windows, lambda: bench.raw_export_per_window(job, data)),
        *[(m, lambda c=c, f=f: bench.backfill("rollup_daily", data, c, f)) for (f, c), m in ours.items()],
        (per_field, lambda: bench.server_side(data, per_field=True)),
        (single, lambda: bench.server_side(data, per_field=False)),
        (naive, lambda: bench.naive(data)),
    ]
    log("warming up influxd's caches (one raw export, not counted) …")
    bench.raw_export(data)
    for round_ in range(repeat):
        for measure, step in steps:
            log(f"[{round_ + 1}/{repeat}] {measure.name} …")
            run = bench.timed(step)
            measure.runs.append(run)
            log(f"  {run.seconds:.2f} s" + (f", peak RSS {run.rss_mb:.0f} MB" if run.rss_mb else ""))
    for measure in (raw, *raw_other.values(), raw_windows, *ours.values(), per_field, single, naive):
        measure.note = influxd_note(measure)
    naive.note += "; pandas: fetch {:.1f} s + compute {:.1f} s".format(
        statistics.median(r.extra["fetch_seconds"] for r in naive.runs),
        statistics.median(r.extra["compute_seconds"] for r in naive.runs),
    )
    log("core alone, parsing alone …")
    core = time_core(job, data, repeat)
    core.note = f"wall {statistics.median(r.extra['wall_seconds'] for r in core.runs):.2f} s"
    parsing = [time_parsing(bench.recorded_export(data, f), export_rows, repeat, f) for f in formats]

    ours_points = bench.points("rollup_daily", ("in_mean", "out_mean"))
    server_in = bench.points("server_in", ("mean",))
    server_out = bench.points("server_out", ("mean",))
    server = {key: (value[0], server_out.get(key, (None,))[0]) for key, value in server_in.items()}
    naive_rows = orjson.loads((bench.workdir / "naive.json").read_bytes())["results"]
    naive_points = {(h, i, w): (a, b) for h, i, w, a, b in naive_rows}
    checks = {
        "rollup = pandas": compare(ours_points, naive_points),
        "rollup = InfluxDB": compare(ours_points, server),
    }
    return {
        "dataset": data.__dict__ | {"rows": rows, "rows_read_with_lookback": export_rows},
        "measures": [
            raw,
            *raw_other.values(),
            raw_windows,
            *ours.values(),
            per_field,
            single,
            naive,
            core,
            *parsing,
        ],
        "checks": checks,
    }


DEFAULT_FORMAT: Format = "msgpack"  # rollup's default: its runs are what the targets judge


def ours_name(concurrency: int, fmt: Format = DEFAULT_FORMAT) -> str:
    """A rollup run's row."""
    return f"rollup backfill, concurrency {concurrency}, {fmt}"


def influxd_note(measure: Measure) -> str:
    busy = statistics.median(r.extra["influxd_cpu_seconds"] for r in measure.runs)
    return f"influxd CPU {busy:.1f} s"


def count_rows(bench: Bench, data: Dataset, start_ns: int) -> int:
    found = bench.query(
        f'SELECT count("{FIELDS[0]}") FROM "interface" WHERE time >= {start_ns} AND time < {data.end * S}',
        data.database,
    )
    return int(found[0]["values"][0][1])


def week_comparison(bench: Bench, repeat: int) -> dict[str, Any]:
    data = WEEK
    rows = bench.load(data)
    bench.settle()
    bench.add_job("week_daily", data.database, "1d")
    bench.add_job("week_weekly", data.database, "7d")
    daily = Measure("rollup backfill, 7 windows of 1 day", rows)
    weekly = Measure("rollup backfill, 1 window of 7 days", rows)
    raw = Measure("raw export alone (chunked JSON, received)", rows)
    for round_ in range(repeat):
        for measure, step in (
            (raw, lambda: bench.raw_export(data)),
            (daily, lambda: bench.backfill("week_daily", data)),
            (weekly, lambda: bench.backfill("week_weekly", data)),
        ):
            log(f"[{round_ + 1}/{repeat}] week: {measure.name} …")
            run = bench.timed(step)
            measure.runs.append(run)
            log(f"  {run.seconds:.2f} s" + (f", peak RSS {run.rss_mb:.0f} MB" if run.rss_mb else ""))
    for measure in (raw, daily, weekly):
        measure.note = influxd_note(measure)
    return {"dataset": data.__dict__ | {"rows": rows}, "measures": [raw, daily, weekly]}


PERCENTILE_AGGREGATES = ("mean", "max", "p95")
SCALE_MEAN = "rollup backfill, mean, per interface"
SCALE_JOBS = {
    # measure name: (job, aggregates, group_by)
    SCALE_MEAN: ("scale_daily", ("mean",), ("agent_host", "ifName")),
    "rollup backfill, mean/max/p95, per interface": ("scale_p95_interface", PERCENTILE_AGGREGATES,
                                                     ("agent_host", "ifName")),
    "rollup backfill, mean/max/p95, per device": ("scale_p95_device", PERCENTILE_AGGREGATES, ("agent_host",)),
    "rollup backfill, mean/max/p95, per ifName (groups not contiguous)": (
        "scale_p95_ifname", PERCENTILE_AGGREGATES, ("ifName",)),
}  # fmt: skip
"""The scale point's rollup runs: percentiles per interface and per device (groups whose series come
one after the other: finished early), per ifName (spread over the whole read: kept to the end, past
values_memory in a temporary file), against the mean alone."""


def scale_point(bench: Bench, data: Dataset, repeat: int = 1) -> dict[str, Any]:
    rows = bench.load(data)
    bench.settle(600)
    raw = Measure("raw export alone (chunked JSON, received)", rows)
    runs = {name: Measure(name, rows) for name in SCALE_JOBS}
    steps: list[tuple[Measure, Callable[[], Run]]] = [(raw, lambda: bench.raw_export(data))]
    for name, (job, aggregates, group_by) in SCALE_JOBS.items():
        bench.add_job(job, data.database, "1d", aggregates, group_by)
        steps.append((runs[name], lambda job=job: bench.backfill(job, data)))  # type: ignore[misc]
    for round_ in range(repeat):
        # Each round in another order (no run always follows the same one), each run once influxd
        # is idle again (the previous run's output written and compacted).
        turn = round_ % len(steps)
        for measure, step in steps[turn:] + steps[:turn]:
            bench.settle(120)
            log(f"[{round_ + 1}/{repeat}] scale: {measure.name} …")
            measure.runs.append(bench.timed(step))
            run = measure.runs[-1]
            log(f"  {run.seconds:.1f} s" + (f", peak RSS {run.rss_mb:.0f} MB" if run.rss_mb else ""))
    for measure in (raw, *runs.values()):
        measure.note = influxd_note(measure)
    checks = {"percentile jobs' rows": scale_checks(bench, data)}
    return {"dataset": data.__dict__ | {"rows": rows}, "measures": [raw, *runs.values()], "checks": checks}


def scale_checks(bench: Bench, data: Dataset) -> dict[str, Any]:
    """Each percentile job wrote one row per group with every field, and per interface the same means
    as the mean-only job (the same rows read in the same batches)."""
    means = bench.points("scale_daily", ("in_mean", "out_mean"))
    per_interface = bench.points("scale_p95_interface", ("in_mean", "out_mean"))
    problems = [] if means == per_interface else ["per interface: means differ from the mean-only job"]
    expected = {"scale_p95_interface": data.series, "scale_p95_device": data.devices,
                "scale_p95_ifname": data.interfaces}  # fmt: skip
    for job, groups in expected.items():
        fields = ",".join(
            f"count({f})" for f in ("in_mean", "in_max", "in_p95", "out_mean", "out_max", "out_p95")
        )
        counts = bench.query(f'SELECT {fields} FROM "{job}"', OUT_DB)[0]["values"][0][1:]
        if set(counts) != {groups}:
            problems.append(f"{job}: {counts} values per field, expected {groups}")
    return {"equal": 0 if problems else 1, "total": 1, "examples": problems}


# -- reporting -----------------------------------------------------------------------------------


def table(measures: list[Measure], reference: Measure, ours: Measure) -> list[list[str]]:
    out = [["", "seconds", "rows/s", "peak RSS", "× raw export", "rollup is … faster", "note"]]
    for m in measures:
        rss = f"{m.rss_mb:,.0f} MB" if m.rss_mb is not None else "—"
        if m.name.startswith("InfluxDB"):
            rss += " (influxd)"
        external = m.name.startswith(("core", "parsing"))
        relative = "—" if external else f"{m.seconds / reference.seconds:.2f}"
        faster = "—" if external or m is ours or m is reference else f"{m.seconds / ours.seconds:.2f}×"
        out.append([m.name, f"{m.seconds:.2f}", f"{m.rows / m.seconds:,.0f}", rss, relative, faster, m.note])
    return out


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def paired(measure: Measure, baseline: Measure, cpu: bool = False) -> float:
    """The median, over rounds, of ``measure``'s time over ``baseline``'s in the same round."""
    pairs = zip(measure.runs, baseline.runs, strict=True)
    if cpu:
        return statistics.median((a.cpu_seconds or 0) / (b.cpu_seconds or 1) for a, b in pairs)
    return statistics.median(a.seconds / b.seconds for a, b in pairs)


def scale_table(measures: list[Measure]) -> list[list[str]]:
    """The scale point's runs against the raw export and the mean-only rollup: wall time, and the
    rollup process's own CPU time (steadier than wall time on a busy machine); the ratios are medians
    of the ratios within each round."""
    raw, mean = measures[0], next(m for m in measures if m.name == SCALE_MEAN)
    header = [
        "",
        "seconds",
        "rows/s",
        "peak RSS",
        "× raw export",
        "× mean only",
        "CPU s",
        "CPU × mean only",
        "note",
    ]
    out = [header]
    for m in measures:
        rss = f"{m.rss_mb:,.0f} MB" if m.rss_mb is not None else "—"
        versus_mean = "—" if m is raw else f"{paired(m, mean):.2f}"
        cpu = "—" if m.cpu_seconds is None else f"{m.cpu_seconds:.1f}"
        cpu_versus = "—" if m.cpu_seconds is None else f"{paired(m, mean, cpu=True):.2f}"
        out.append([m.name, f"{m.seconds:.2f}", f"{m.rows / m.seconds:,.0f}", rss,
                    f"{paired(m, raw):.2f}", versus_mean, cpu, cpu_versus, m.note])  # fmt: skip
    return out


def scale_targets(scale: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Issue #17: percentiles per interface and per device at the scale point."""
    m = {x.name: x for x in scale["measures"]}
    mean = m[SCALE_MEAN]
    out = []
    for name, per in (("rollup backfill, mean/max/p95, per interface", "interface"),
                      ("rollup backfill, mean/max/p95, per device", "device")):  # fmt: skip
        run = m[name]
        ratio = paired(run, mean)
        rounds = ", ".join(f"{a.seconds / b.seconds:.2f}" for a, b in zip(run.runs, mean.runs, strict=True))
        out.append(
            (
                f"scale: p95 per {per} ≤ 1.15 × the mean-only run",
                ratio <= 1.15,
                f"{ratio:.2f} × (rounds: {rounds})",
            )
        )
        out.append(
            (f"scale: p95 per {per}, peak RSS ≤ 300 MB", (run.rss_mb or 0) <= 300, f"{run.rss_mb:.0f} MB")
        )
    for name, check in scale["checks"].items():
        out.append((f"scale: {name}", check["equal"] == check["total"], "; ".join(check["examples"]) or "ok"))
    return out


def targets(result: dict[str, Any], week: dict[str, Any] | None) -> list[tuple[str, bool, str]]:
    m = {x.name: x for x in result["measures"]}
    raw = m["raw export alone (chunked JSON, received)"]
    ours = m[ours_name(1)]
    per_field = m["InfluxDB server-side, one query per field"]
    single = m["InfluxDB server-side, both fields in one query"]
    core = m["core alone (parsed arrays → aggregates, 1 core)"]
    windows = m["raw export, the per-window queries rollup sends"]
    kapacitor_here = raw.seconds * KAPACITOR_SECONDS / KAPACITOR_RAW_EXPORT_SECONDS
    out = [
        ("end to end ≤ 1.2 × rollup's own queries, received only", ours.seconds <= 1.2 * windows.seconds,
         f"{ours.seconds / windows.seconds:.2f} ×"),
        ("end to end ≤ 1.2 × raw export", ours.seconds <= 1.2 * raw.seconds,
         f"{ours.seconds / raw.seconds:.2f} ×"),
        ("≥ 1.7 × faster than server-side per field", per_field.seconds >= 1.7 * ours.seconds,
         f"{per_field.seconds / ours.seconds:.2f} ×"),
        ("≥ 3.5 × faster than server-side single query", single.seconds >= 3.5 * ours.seconds,
         f"{single.seconds / ours.seconds:.2f} ×"),
        ("≥ 4 × faster than Kapacitor (external figure, scaled by raw export)",
         kapacitor_here >= 4 * ours.seconds, f"{kapacitor_here / ours.seconds:.2f} ×"),
        ("core ≥ 10 M rows/s on one core", core.rows / core.seconds >= 10e6,
         f"{core.rows / core.seconds / 1e6:.1f} M rows/s"),
        ("peak RSS ≤ 300 MB", (ours.rss_mb or 0) <= 300, f"{ours.rss_mb:.0f} MB"),
    ]  # fmt: skip
    if week is not None:
        w = {x.name: x for x in week["measures"]}
        daily, weekly = w["rollup backfill, 7 windows of 1 day"], w["rollup backfill, 1 window of 7 days"]
        grow = (weekly.rss_mb or 0) / (daily.rss_mb or 1)
        out.append(("peak RSS with 7-day windows ≤ 1.1 × with 1-day", grow <= 1.1, f"{grow:.2f} ×"))
    for name, check in result["checks"].items():
        out.append((name, check["equal"] == check["total"], f"{check['equal']}/{check['total']} values"))
    return out


def machine() -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    influxd = subprocess.run(["influxd", "version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory) / 2**20, 1),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "influxd": influxd,
        "kernel": platform.release(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 series × 1 day, one round (~1 minute)")
    parser.add_argument("--week", action="store_true", help="also: peak memory, 1-day vs 7-day windows")
    parser.add_argument("--scale", action="store_true", help="also: 38,400 series × 1 day at 2.5-min polls")
    parser.add_argument("--repeat", type=int, help="rounds of each measurement (default 3, --quick 1)")
    parser.add_argument(
        "--concurrency", type=int, nargs="*", default=[1, 2], help="rollup runs (default 1 2)"
    )
    parser.add_argument(
        "--formats",
        nargs="*",
        choices=["json", "msgpack"],
        default=["json", "msgpack"],
        help="source response formats of the rollup runs (default json msgpack; msgpack is always run)",
    )
    parser.add_argument("--data-dir", type=Path, help="keep influxd's data here and reuse it next time")
    size = parser.add_argument_group("another size for the main comparison (N series × M points)")
    size.add_argument("--devices", type=int, help="agent_host values (default 50)")
    size.add_argument("--interfaces", type=int, help="ifName values per device (default 20)")
    size.add_argument("--days", type=int, help="days of data, one window each (default 2)")
    size.add_argument("--interval", type=int, help="seconds between polls (default 60)")
    scaled = parser.add_argument_group("the scale point")
    scaled.add_argument(
        "--scale-devices",
        type=int,
        default=SCALE.devices,
        help=f"agent_host values of the scale point (default {SCALE.devices}, 24 interfaces each)",
    )
    scaled.add_argument(
        "--scale-repeat",
        type=int,
        default=1,
        help="rounds of the scale point (default 1; the median is reported)",
    )
    scaled.add_argument(
        "--only-scale", action="store_true", help="run the scale point alone (implies --scale)"
    )
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    concurrency = sorted(set(args.concurrency) | {1})
    data = QUICK if args.quick else FULL
    if any(v is not None for v in (args.devices, args.interfaces, args.days, args.interval)):
        devices = args.devices or data.devices
        interfaces = args.interfaces or data.interfaces
        days = args.days or data.days
        interval = args.interval or data.interval
        data = Dataset(f"d{devices}x{interfaces}x{days}d{interval}s", devices, interfaces, interval, days)
    report: dict[str, Any] = {"started": dt.datetime.now(dt.UTC).isoformat(), "machine": machine()}
    report["command"] = " ".join(["python -m bench.backfill", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="rollup-bench-") as tmp:
        workdir = Path(tmp)
        data_dir = args.data_dir.resolve() if args.data_dir else workdir / "influxd"
        influxd = start_influxd(
            data_dir,
            data_options={
                "cache-snapshot-write-cold-duration": '"5s"',
                "compact-full-write-cold-duration": '"10s"',
            },
        )
        try:
            bench = Bench(workdir, influxd, repeat)
            formats: list[Format] = [*dict.fromkeys([*args.formats, DEFAULT_FORMAT])]
            result = None if args.only_scale else main_comparison(bench, data, repeat, concurrency, formats)
            week = week_comparison(bench, repeat) if args.week and not args.only_scale else None
            scaled_data = SCALE
            if args.scale_devices != SCALE.devices:
                scaled_data = Dataset(f"scale{args.scale_devices}", args.scale_devices, 24, SCALE.interval, 1)
            scale = (
                scale_point(bench, scaled_data, args.scale_repeat) if args.scale or args.only_scale else None
            )
        finally:
            influxd.stop()
    sections = []
    checked = []
    kapacitor_here = None
    if result is not None:
        m = {x.name: x for x in result["measures"]}
        raw, ours = m["raw export alone (chunked JSON, received)"], m[ours_name(1)]
        rows = table(result["measures"], raw, ours)
        sections.append(
            f"{data.series:,} series × {data.days} day(s), {result['dataset']['rows']:,} rows, "
            f"median of {repeat}"
        )
        sections.append(markdown(rows))
        kapacitor_here = raw.seconds * KAPACITOR_SECONDS / KAPACITOR_RAW_EXPORT_SECONDS
        sections.append(
            f"Kapacitor 1.5.7 (external reference, not run here): {KAPACITOR_SECONDS} s where the raw "
            f"export took {KAPACITOR_RAW_EXPORT_SECONDS} s, i.e. ≈ {kapacitor_here:.1f} s on this run's "
            f"scale, RSS ~{KAPACITOR_RSS_MB} MB"
        )
        checked += targets(result, week)
    if week is not None:
        w = week["measures"]
        sections.append(f"7 days, {week['dataset']['rows']:,} rows, median of {repeat}")
        sections.append(markdown(table(w, w[0], w[1])))
    if scale is not None:
        sections.append(
            f"scale point: {scaled_data.series:,} series × 1 day every {scaled_data.interval} s, "
            f"{scale['dataset']['rows']:,} rows, median of {args.scale_repeat}"
        )
        sections.append(markdown(scale_table(scale["measures"])))
        checked += scale_targets(scale)
    sections.append(
        "\n".join(f"{'met   ' if ok else 'MISSED'}  {name}: {value}" for name, ok, value in checked)
    )
    print("\n\n".join(sections))
    report |= {
        "repeat": repeat,
        "main": None if result is None else result | {"measures": [x.as_json() for x in result["measures"]]},
        "week": None if week is None else week | {"measures": [x.as_json() for x in week["measures"]]},
        "scale": None if scale is None else scale | {"measures": [x.as_json() for x in scale["measures"]]},
        "targets": [{"target": n, "met": ok, "value": v} for n, ok, v in checked],
        "kapacitor_reference": {
            "seconds": KAPACITOR_SECONDS, "raw_export_seconds": KAPACITOR_RAW_EXPORT_SECONDS,
            "rss_mb": KAPACITOR_RSS_MB, "scaled_to_this_run_seconds": kapacitor_here,
        },
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = "scale" if result is None else f"{data.name}{'-week' if week else ''}{'-scale' if scale else ''}"
    path = RESULTS / f"{stamp}-{name}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"written to {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

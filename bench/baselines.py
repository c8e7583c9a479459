"""What rollup is compared with, on the same data in the same run.

- the raw export (the same chunked query rollup sends, received and thrown away: the floor for
  anything that reads the raw rows out), in JSON and msgpack, and as the per-window queries rollup
  sends;
- InfluxDB's server-side rollup (``SELECT mean(d) INTO … FROM (SELECT non_negative_derivative …)``),
  one query per field and both fields in one query, influxd's RSS sampled meanwhile;
- a naive pandas implementation (bench/naive.py, a subprocess);
- the core alone (parsed arrays → aggregates) and the parsing of a recorded export alone, CPU time
  of one core.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx

from bench.datasets import CHUNK_SIZE, LOOKBACK_NS, Dataset, S
from bench.influxd import OUT_DB, Influxd
from bench.sampling import Measure, RssSampler, Run, run_child
from rollup.core.pipeline import Rollup
from rollup.influx import InfluxConnection
from rollup.jobs.runner import JobRunner
from rollup.jobs.spec import JobSpec
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import Format, InfluxQLSource
from rollup.sources.influxql import build_query
from scripts.synth import FIELDS

ACCEPT: dict[str, str] = {
    "json": "application/json",
    "msgpack": "application/x-msgpack",
}


def _params(data: Dataset) -> dict[str, str]:
    return {"db": data.database, "epoch": "ns", "chunked": "true", "chunk_size": str(CHUNK_SIZE)}


def raw_export(influxd: Influxd, data: Dataset, fmt: Format = "json") -> Run:
    statement = build_query(data.export_query())
    began = time.perf_counter()
    size = 0
    with influxd.client.stream(
        "POST", "/query", params=_params(data), data={"q": statement}, headers={"Accept": ACCEPT[fmt]}
    ) as response:
        response.raise_for_status()
        for piece in response.iter_raw():
            size += len(piece)
    return Run(time.perf_counter() - began, extra={"bytes": size})


def raw_export_per_window(influxd: Influxd, job: JobSpec, data: Dataset) -> Run:
    """The queries rollup sends (one per span of windows, each with its lookback), in turn."""
    runner = JobRunner(job, source=None)  # type: ignore[arg-type]
    windows = job.grid.windows(data.start * S, data.end * S)
    began = time.perf_counter()
    size = 0
    for span in runner.spans(windows):
        statement = build_query(runner.query(span))
        with influxd.client.stream("POST", "/query", params=_params(data), data={"q": statement}) as response:
            response.raise_for_status()
            for piece in response.iter_raw():
                size += len(piece)
    return Run(time.perf_counter() - began, extra={"bytes": size})


def recorded_export(influxd: Influxd, data: Dataset, fmt: Format = "json") -> bytes:
    response = influxd.client.post(
        "/query",
        params=_params(data),
        data={"q": build_query(data.export_query())},
        headers={"Accept": ACCEPT[fmt]},
    )
    response.raise_for_status()
    return response.content


def server_side(influxd: Influxd, data: Dataset, per_field: bool) -> Run:
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
    with RssSampler(influxd.server.pid) as rss:
        began = time.perf_counter()
        for statement in statements:
            influxd.query(statement, data.database)
        seconds = time.perf_counter() - began
    return Run(seconds, rss.peak_kb / 1024)


def naive(influxd: Influxd, data: Dataset, output: Path) -> Run:
    """bench/naive.py as a subprocess; its results go to ``output``."""
    command = [
        sys.executable, "-m", "bench.naive", "--url", influxd.url, "--database", data.database,
        "--start", str(data.start * S), "--end", str(data.end * S), "--lookback", str(LOOKBACK_NS),
        "--output", str(output),
    ]  # fmt: skip
    run, stdout = run_child(command)
    run.extra = json.loads(stdout.strip().splitlines()[-1])
    return run


def time_core(job: JobSpec, data: Dataset, repeat: int) -> Measure:
    batches = data.batches()
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

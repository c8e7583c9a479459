"""Plug-in aggregates against the built-in ``mean``, in the core, in the same run.

The demo's counters (``scripts/synth.py``: ``ifHCInOctets`` of ``--devices`` × ``--interfaces``
series every 60 s for ``--days`` days) are cut into batches of 10,000 rows as InfluxDB's chunked
answer hands them over (series split across batches, in InfluxQL's series order), then rolled up
by ``Rollup.feed``/``finish`` once per aggregate, in rounds that rotate the order. Each run's CPU
time (one core) gives rows/s; the ratio of a plug-in to the built-in ``mean`` is taken within each
round, and the median over the rounds is reported. Two shapes of job:

* ``interface-daily``: per interface (``agent_host``, ``ifName``), 1-day windows: one slot per
  series and day, the common case;
* ``device-15m``: per device (``agent_host``), 15-minute windows: 24 series per group and 96
  windows a day, so many small (group, window)s per batch.

Aggregates: ``mean`` (built-in), ``plain_mean`` (the mean as a streaming plug-in, vectorized),
``window_mean`` (the mean as a whole-window plug-in: one Python call per group and window),
``busy_hour`` (examples/busy-hour, whole-window, keeps times) and ``p95`` (built-in, keeps values)
for reference. It also checks that ``plain_mean`` and ``window_mean`` give ``mean`` to 1e-12.

Run from the repository root (examples/busy-hour installed, as scripts/install-deps.sh
--for-tests does)::

    python -m bench.plugins [--devices 50] [--interfaces 24] [--days 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rollup.core.batch import Batch, FieldColumn, SeriesOrder
from rollup.core.pipeline import Rollup, WindowResult
from rollup.jobs.loader import Known, job_from
from rollup.jobs.spec import JobSpec
from rollup.plugins import discover
from scripts.synth import interface_series

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
S = 10**9
CHUNK_SIZE = 10_000
START = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp())
AGGREGATES = ("mean", "plain_mean", "window_mean", "busy_hour", "p95")
SHAPES = {
    "interface-daily": (["agent_host", "ifName"], "1d"),
    "device-15m": (["agent_host"], "15m"),
}


def batches(devices: int, interfaces: int, days: int) -> list[Batch]:
    """The counters in InfluxQL's order, cut every CHUNK_SIZE rows like a chunked answer."""
    keys, lengths, times, values = [], [], [], []
    for host, port, stamps, (ins, _) in interface_series(
        START - 600, START + days * 86400, devices, interfaces, 60, seed=7, resets=3, wrap32=True
    ):
        keys.append((("agent_host", host), ("ifName", port)))
        lengths.append(len(stamps))
        times.append(stamps * S)
        values.append(ins)
    series = np.repeat(np.arange(len(keys)), lengths)
    every_time, every_value = np.concatenate(times), np.concatenate(values)
    order = SeriesOrder(("agent_host", "ifName"))
    out = []
    for low in range(0, len(series), CHUNK_SIZE):
        ids, counts = np.unique(series[low : low + CHUNK_SIZE], return_counts=True)
        column = FieldColumn(every_value[low : low + CHUNK_SIZE])
        batch_keys = [keys[i] for i in ids.tolist()]
        out.append(Batch(batch_keys, counts, every_time[low : low + CHUNK_SIZE], {"in": column}, order=order))
    return out


def job(shape: str, aggregate: str) -> JobSpec:
    group_by, every = SHAPES[shape]
    spec = {
        "name": f"{shape}-{aggregate}",
        "group_by": group_by,
        "source": {"profile": "buffer", "database": "telegraf", "measurement": "interface"},
        "window": {"every": every, "lookback": "10m"},
        "fields": {"in": {"aggregates": [aggregate]}},
        "output": {"measurement": "bench", "sinks": ["out"]},
    }
    return job_from(spec, f"job {shape}", Known(aggregates=discover(["traffic_stats"])))


def roll_up(spec: JobSpec, data: list[Batch], days: int) -> tuple[float, list[WindowResult]]:
    """CPU seconds of one rollup of ``data``, and its results."""
    windows = spec.grid.windows(START * S, (START + days * 86400) * S)
    started = time.process_time()
    rollup = Rollup(spec.rollup, windows)
    for batch in data:
        rollup.feed(batch)
    results = rollup.finish()
    return time.process_time() - started, results


def values_of(results: list[WindowResult], name: str) -> dict[tuple[Any, ...], float]:
    return {
        (tuple(sorted(row.tags.items())), row.window.start): row.values[name]
        for result in results
        for row in result.rows
        if name in row.values
    }


def worst_difference(mine: dict[tuple[Any, ...], float], builtin: dict[tuple[Any, ...], float]) -> float:
    assert mine.keys() == builtin.keys(), "the plug-in wrote other rows than the built-in"
    return max(abs(mine[k] - builtin[k]) / abs(builtin[k]) for k in builtin if builtin[k])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--interfaces", type=int, default=24)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (the median is reported)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "examples" / "plugins"))  # traffic_stats, as the settings would name it

    data = batches(args.devices, args.interfaces, args.days)
    rows = sum(batch.rows for batch in data)
    print(f"{rows:,} rows of {args.devices * args.interfaces:,} series, {len(data)} batches", file=sys.stderr)
    report: dict[str, Any] = {"command": "python -m bench.plugins " + " ".join(argv or sys.argv[1:]),
                              "rows": rows, "shapes": {}}  # fmt: skip
    lines = [
        "| job | aggregate | rows/s (median) | × built-in mean (median of rounds) | max rel. diff. to mean |",
        "|---|---|---|---|---|",
    ]
    for shape in SHAPES:
        jobs = {aggregate: job(shape, aggregate) for aggregate in AGGREGATES}
        seconds: dict[str, list[float]] = {aggregate: [] for aggregate in AGGREGATES}
        ratios: dict[str, list[float]] = {aggregate: [] for aggregate in AGGREGATES}
        outputs: dict[str, list[WindowResult]] = {}
        roll_up(jobs["mean"], data, args.days)  # warm-up
        for round_number in range(args.repeat):
            shift = round_number % len(AGGREGATES)
            for aggregate in AGGREGATES[shift:] + AGGREGATES[:shift]:
                spent, outputs[aggregate] = roll_up(jobs[aggregate], data, args.days)
                seconds[aggregate].append(spent)
            for aggregate in AGGREGATES:
                ratios[aggregate].append(seconds["mean"][-1] / seconds[aggregate][-1])
        builtin = values_of(outputs["mean"], "in_mean")
        differences = {
            name: worst_difference(values_of(outputs[name], f"in_{name}"), builtin)
            for name in ("plain_mean", "window_mean")
        }
        report["shapes"][shape] = {
            "group_by": SHAPES[shape][0],
            "every": SHAPES[shape][1],
            "rows_out": len(builtin),
            "cpu_seconds": seconds,
            "ratio_to_mean": ratios,
            "max_relative_difference": differences,
        }
        for aggregate in AGGREGATES:
            speed = rows / statistics.median(seconds[aggregate]) / 1e6
            ratio = statistics.median(ratios[aggregate])
            difference = f"{differences[aggregate]:.1e}" if aggregate in differences else ""
            lines.append(f"| {shape} | {aggregate} | {speed:.2f}M | {ratio:.2f} | {difference} |")
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-plugins.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The backfill benchmark's tables (Markdown, as BENCHMARKS.md shows them), its targets, and the
machine it ran on."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import SCALE_MEAN
from bench.sampling import Measure
from rollup.sources.influxdb import Format

# Reference figures from issue #7, measured elsewhere (Kapacitor cannot be installed here).
KAPACITOR_SECONDS = 24.0
KAPACITOR_RAW_EXPORT_SECONDS = 5.1
KAPACITOR_RSS_MB = 1400

RAW_EXPORT = "raw export alone (chunked JSON, received)"
DEFAULT_FORMAT: Format = "msgpack"  # rollup's default: its runs are what the targets judge


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ours_name(concurrency: int, fmt: Format = DEFAULT_FORMAT) -> str:
    """A rollup run's row."""
    return f"rollup backfill, concurrency {concurrency}, {fmt}"


def base_name(name: str, label: str) -> str:
    """The row of the base's run of the same settings as ``name``."""
    return f"{name}, base {label}"


def influxd_note(measure: Measure) -> str:
    busy = statistics.median(r.extra["influxd_cpu_seconds"] for r in measure.runs)
    return f"influxd CPU {busy:.1f} s"


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
    raw = m[RAW_EXPORT]
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


NO_SLOWDOWN = 1.10
"""This tree's backfill against the base's, median of the paired rounds: above it, a slowdown (the
rounds of one run on this shared machine move by ±20 %, their paired ratios by less)."""


def versus_base(measures: list[Measure], label: str) -> list[tuple[Measure, Measure]]:
    """(this tree, the base) for every rollup run the base ran too."""
    by_name = {m.name: m for m in measures}
    return [(m, by_name[base_name(m.name, label)]) for m in measures if base_name(m.name, label) in by_name]


def base_table(pairs: list[tuple[Measure, Measure]]) -> list[list[str]]:
    out = [["", "this tree s", "base s", "× base (paired)", "rounds", "CPU × base (paired)", "peak RSS",
            "base peak RSS"]]  # fmt: skip
    for ours, theirs in pairs:
        rounds = ", ".join(
            f"{a.seconds / b.seconds:.2f}" for a, b in zip(ours.runs, theirs.runs, strict=True)
        )
        out.append([ours.name, f"{ours.seconds:.2f}", f"{theirs.seconds:.2f}", f"{paired(ours, theirs):.2f}",
                    rounds, f"{paired(ours, theirs, cpu=True):.2f}", f"{ours.rss_mb or 0:,.0f} MB",
                    f"{theirs.rss_mb or 0:,.0f} MB"])  # fmt: skip
    return out


def base_targets(pairs: list[tuple[Measure, Measure]]) -> list[tuple[str, bool, str]]:
    """Issue 12: no slowdown against the base, judged on the defaults (msgpack, concurrency 1)."""
    out = []
    for ours, theirs in pairs:
        if ours.name != ours_name(1):
            continue
        wall, cpu = paired(ours, theirs), paired(ours, theirs, cpu=True)
        out.append((f"no slowdown: {ours.name} ≤ {NO_SLOWDOWN} × the base", wall <= NO_SLOWDOWN,
                    f"{wall:.2f} × wall, {cpu:.2f} × CPU"))  # fmt: skip
    return out

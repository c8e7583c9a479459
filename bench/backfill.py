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
    python -m bench.backfill --base 46914fe --concurrency 1   # + the rollup runs of another version

With ``--base COMMIT`` every rollup run of the main comparison is also made with that commit's code
(``git archive``, its own ledger and output database), right after this tree's run of the same
settings in each round (right before it every other round); a table gives this tree's time over
the base's, as the median of the ratios within each round, and the base's rows are checked too.

This module runs the rounds; the pieces are in bench/datasets.py (the data and the job),
bench/influxd.py (the server), bench/sampling.py (time, RSS, CPU of a process), bench/baselines.py
(what rollup is compared with), bench/checks.py and bench/report.py (tables and targets).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import baselines
from bench.checks import compare, scale_checks
from bench.datasets import (
    CHUNK_SIZE,
    FULL,
    LOOKBACK_NS,
    QUICK,
    SCALE,
    SCALE_JOBS,
    WEEK,
    Dataset,
    S,
    job_toml,
)
from bench.influxd import OUT_DB, OUT_DB_BASE, Influxd
from bench.report import (
    DEFAULT_FORMAT,
    KAPACITOR_RAW_EXPORT_SECONDS,
    KAPACITOR_RSS_MB,
    KAPACITOR_SECONDS,
    RAW_EXPORT,
    base_name,
    base_table,
    base_targets,
    influxd_note,
    log,
    machine,
    markdown,
    ours_name,
    scale_table,
    scale_targets,
    table,
    targets,
    versus_base,
)
from bench.sampling import Measure, Run, run_child
from bench.versions import extract, python_env, resolve
from rollup.jobs.spec import JobSpec
from rollup.sources.influxdb import Format
from scripts.servers import start_influxd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
Step = tuple[Measure, Callable[[], Run]]
"""A contender and how to run it once."""


class Bench:
    """A work directory with the jobs and the sink, and the influxd they read and write; with a
    ``base``, the code of another version too, run with a ledger and an output database of its own."""

    def __init__(self, workdir: Path, influxd: Influxd, base: Path | None = None, base_label: str = ""):
        self.workdir = workdir
        self.influxd = influxd
        self.url = influxd.url
        self.base = base
        self.base_label = base_label
        (workdir / "jobs").mkdir()
        for label, database in (("ours", OUT_DB), ("base", OUT_DB_BASE)):
            if label == "base" and base is None:
                continue
            (workdir / f"sinks-{label}").mkdir()
            (workdir / f"sinks-{label}" / "out.toml").write_text(
                f'type = "influxdb"\nurl = "{self.url}"\ndatabase = "{database}"\ntimeout = "300s"\n'
            )
        if base is not None:
            influxd.query(f"CREATE DATABASE {OUT_DB_BASE}")

    def config(self, concurrency: int, fmt: Format = "msgpack", label: str = "ours") -> Path:
        path = self.workdir / f"rollup-c{concurrency}-{fmt}-{label}.toml"
        path.write_text(
            f'jobs_dir = "{self.workdir / "jobs"}"\nsinks_dir = "{self.workdir / f"sinks-{label}"}"\n'
            f'log_level = "WARNING"\nledger = "sqlite:{self.workdir / f"ledger-{label}.sqlite"}"\n'
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

    def backfill(
        self, job: str, data: Dataset, concurrency: int = 1, fmt: Format = "msgpack", base: bool = False
    ) -> Run:
        """``rollup backfill --force`` of this tree, or of the base (``base``)."""
        label = "base" if base else "ours"
        code = self.base if base and self.base is not None else ROOT
        command = [
            sys.executable, "-m", "rollup", "--config", str(self.config(concurrency, fmt, label)),
            "backfill", job, "--start", iso(data.start), "--end", iso(data.end), "--no-progress",
            "--force",  # every round computes every window (the ledger holds them as done after the first)
        ]  # fmt: skip
        run, _ = run_child(command, python_env(code))
        return run


def iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


# -- the runs ------------------------------------------------------------------------------------


def main_comparison(
    bench: Bench, data: Dataset, repeat: int, concurrency: list[int], formats: list[Format]
) -> dict[str, Any]:
    influxd = bench.influxd
    rows = influxd.load(data)
    influxd.settle()
    job = bench.add_job("rollup_daily", data.database)
    export_rows = influxd.count_rows(data, data.start * S - LOOKBACK_NS)
    raw = Measure(RAW_EXPORT, export_rows)
    raw_other = {
        f: Measure(f"raw export alone (chunked {f}, received)", export_rows) for f in formats if f != "json"
    }
    raw_windows = Measure("raw export, the per-window queries rollup sends", export_rows)
    ours = {(f, c): Measure(ours_name(c, f), export_rows) for c in concurrency for f in formats}
    theirs = {
        key: Measure(base_name(m.name, bench.base_label), export_rows)
        for key, m in ours.items()
        if bench.base
    }
    per_field = Measure("InfluxDB server-side, one query per field", rows)
    single = Measure("InfluxDB server-side, both fields in one query", rows)
    naive = Measure("naive pandas (export, groupby, diff, mean)", export_rows)
    naive_output = bench.workdir / "naive.json"

    def backfills(f: Format, c: int) -> list[Step]:
        """This tree's run and the base's of the same settings, run one right after the other."""
        out: list[Step] = [(ours[f, c], lambda: bench.backfill("rollup_daily", data, c, f))]
        if (f, c) in theirs:
            out.append((theirs[f, c], lambda: bench.backfill("rollup_daily", data, c, f, base=True)))
        return out

    groups: list[list[Step]] = [
        [(raw, lambda: baselines.raw_export(influxd, data))],
        *[[(m, lambda f=f: baselines.raw_export(influxd, data, fmt=f))] for f, m in raw_other.items()],
        [(raw_windows, lambda: baselines.raw_export_per_window(influxd, job, data))],
        *[backfills(f, c) for f, c in ours],
        [(per_field, lambda: baselines.server_side(influxd, data, per_field=True))],
        [(single, lambda: baselines.server_side(influxd, data, per_field=False))],
        [(naive, lambda: baselines.naive(influxd, data, naive_output))],
    ]
    log("warming up influxd's caches (one raw export, not counted) …")
    baselines.raw_export(influxd, data)
    for round_ in range(repeat):
        # A pair (this tree, the base) in the other order every other round.
        for measure, step in (step for group in groups for step in (group[::-1] if round_ % 2 else group)):
            log(f"[{round_ + 1}/{repeat}] {measure.name} …")
            run = influxd.timed(step)
            measure.runs.append(run)
            log(f"  {run.seconds:.2f} s" + (f", peak RSS {run.rss_mb:.0f} MB" if run.rss_mb else ""))
    for measure in (raw, *raw_other.values(), raw_windows, *ours.values(), *theirs.values()):
        measure.note = influxd_note(measure)
    for measure in (per_field, single, naive):
        measure.note = influxd_note(measure)
    naive.note += "; pandas: fetch {:.1f} s + compute {:.1f} s".format(
        statistics.median(r.extra["fetch_seconds"] for r in naive.runs),
        statistics.median(r.extra["compute_seconds"] for r in naive.runs),
    )
    log("core alone, parsing alone …")
    core = baselines.time_core(job, data, repeat)
    core.note = f"wall {statistics.median(r.extra['wall_seconds'] for r in core.runs):.2f} s"
    parsing = [
        baselines.time_parsing(baselines.recorded_export(influxd, data, f), export_rows, repeat, f)
        for f in formats
    ]

    ours_points = influxd.points("rollup_daily", ("in_mean", "out_mean"))
    server_in = influxd.points("server_in", ("mean",))
    server_out = influxd.points("server_out", ("mean",))
    server = {key: (value[0], server_out.get(key, (None,))[0]) for key, value in server_in.items()}
    naive_rows = orjson.loads(naive_output.read_bytes())["results"]
    naive_points = {(h, i, w): (a, b) for h, i, w, a, b in naive_rows}
    checks = {
        "rollup = pandas": compare(ours_points, naive_points),
        "rollup = InfluxDB": compare(ours_points, server),
    }
    if bench.base:
        base_points = influxd.points("rollup_daily", ("in_mean", "out_mean"), OUT_DB_BASE)
        checks["rollup = the base"] = compare(ours_points, base_points)
    return {
        "dataset": data.__dict__ | {"rows": rows, "rows_read_with_lookback": export_rows},
        "measures": [
            raw,
            *raw_other.values(),
            raw_windows,
            *ours.values(),
            *theirs.values(),
            per_field,
            single,
            naive,
            core,
            *parsing,
        ],
        "checks": checks,
    }


def week_comparison(bench: Bench, repeat: int) -> dict[str, Any]:
    data = WEEK
    influxd = bench.influxd
    rows = influxd.load(data)
    influxd.settle()
    bench.add_job("week_daily", data.database, "1d")
    bench.add_job("week_weekly", data.database, "7d")
    daily = Measure("rollup backfill, 7 windows of 1 day", rows)
    weekly = Measure("rollup backfill, 1 window of 7 days", rows)
    raw = Measure(RAW_EXPORT, rows)
    for round_ in range(repeat):
        for measure, step in (
            (raw, lambda: baselines.raw_export(influxd, data)),
            (daily, lambda: bench.backfill("week_daily", data)),
            (weekly, lambda: bench.backfill("week_weekly", data)),
        ):
            log(f"[{round_ + 1}/{repeat}] week: {measure.name} …")
            run = influxd.timed(step)
            measure.runs.append(run)
            log(f"  {run.seconds:.2f} s" + (f", peak RSS {run.rss_mb:.0f} MB" if run.rss_mb else ""))
    for measure in (raw, daily, weekly):
        measure.note = influxd_note(measure)
    return {"dataset": data.__dict__ | {"rows": rows}, "measures": [raw, daily, weekly]}


def scale_point(bench: Bench, data: Dataset, repeat: int = 1) -> dict[str, Any]:
    influxd = bench.influxd
    rows = influxd.load(data)
    influxd.settle(600)
    raw = Measure(RAW_EXPORT, rows)
    runs = {name: Measure(name, rows) for name in SCALE_JOBS}
    steps: list[Step] = [(raw, lambda: baselines.raw_export(influxd, data))]
    for name, (job, aggregates, group_by) in SCALE_JOBS.items():
        bench.add_job(job, data.database, "1d", aggregates, group_by)
        steps.append((runs[name], lambda job=job: bench.backfill(job, data)))  # type: ignore[misc]
    for round_ in range(repeat):
        # Each round in another order (no run always follows the same one), each run once influxd
        # is idle again (the previous run's output written and compacted).
        turn = round_ % len(steps)
        for measure, step in steps[turn:] + steps[:turn]:
            influxd.settle(120)
            log(f"[{round_ + 1}/{repeat}] scale: {measure.name} …")
            measure.runs.append(influxd.timed(step))
            run = measure.runs[-1]
            log(f"  {run.seconds:.1f} s" + (f", peak RSS {run.rss_mb:.0f} MB" if run.rss_mb else ""))
    for measure in (raw, *runs.values()):
        measure.note = influxd_note(measure)
    checks = {"percentile jobs' rows": scale_checks(influxd, data)}
    return {"dataset": data.__dict__ | {"rows": rows}, "measures": [raw, *runs.values()], "checks": checks}


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
    parser.add_argument(
        "--base",
        help="also run `rollup backfill` of this commit's code, paired with this tree's in every round",
    )
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
        base = None
        if args.base:
            report["base"] = resolve(args.base)
            base = extract(report["base"], workdir / "base")
        data_dir = args.data_dir.resolve() if args.data_dir else workdir / "influxd"
        server = start_influxd(
            data_dir,
            data_options={
                "cache-snapshot-write-cold-duration": '"5s"',
                "compact-full-write-cold-duration": '"10s"',
            },
        )
        try:
            bench = Bench(workdir, Influxd(server), base, report.get("base", "")[:7])
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
            server.stop()
    sections = []
    checked = []
    kapacitor_here = None
    if result is not None:
        m = {x.name: x for x in result["measures"]}
        raw, ours = m[RAW_EXPORT], m[ours_name(1)]
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
        if base is not None:
            pairs = versus_base(result["measures"], bench.base_label)
            sections.append(f"this tree against {bench.base_label} (paired rounds)")
            sections.append(markdown(base_table(pairs)))
            checked += base_targets(pairs)
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

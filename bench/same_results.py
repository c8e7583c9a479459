"""Do two versions of rollup compute the same rows? ``rollup preview`` and ``rollup backfill`` of
both, on the same data, compared value for value.

Starts a real influxd and a real Elasticsearch-API server (noida-db) in temp dirs
(scripts/servers.py), writes the demo's data (scripts/synth.py: 50 hosts × 24 interfaces of SNMP
octet counters every 60 s with 3 device reboots and one Counter32 that wraps, and two temperature
sensors per host) for one day with margins, then, for each job below, with the code of ``--base``
(a commit, extracted with ``git archive``) and with the code of this working tree:

- ``python -m rollup preview JOB --format json --coverage`` over the day;
- ``python -m rollup backfill JOB`` over the day, each version into a database (and an index
  pattern) of its own, and the rows read back from InfluxDB (and the documents from the search
  server, for the job that writes there).

Jobs: the examples of jobs/ (per interface with mean/max/p95/increase, to InfluxDB and to
Elasticsearch too; per device in 3-hour windows; temperatures), mean/max/p95/p50/min/count per
device (``agent_host``, whose series come one after the other) and per ``ifName`` (a tag that sorts
last: every group's series are spread over the whole result), and a per-interface job in 3-hour
windows with ``lookback = "0s"``.

Every value must be equal, bit for bit (JSON keeps the shortest repr of each float, so equal text
means equal bits), except where the code changed on purpose, and the comparison says which:

- *float sums*: means, standard deviations, rates, increases, seconds and sums are now added in a
  fixed order, whatever the batches and the series order (issue 11), so where several series or
  batches are summed their last bits may differ from the base's: such a value may differ by a
  relative 1e-12 and is counted apart; nothing else may differ at all;
- *lookback 0s*: each window is now its own span, so the first sample of each window has no prev
  (docs/semantics.md); the base read several windows in one query and gave that first sample the
  previous window's last one. For that job, this tree must equal the base run window by window
  (each window its own span there too); its differences from the base's one-query run are shown
  as intended.

This tree also runs variants the base may not know, each compared with this tree's plain run and
required bit-identical: the source's ``concurrency = 2`` (float sums no longer depend on how the
batches are cut), and a ``values_memory`` small enough that kept values go through a temporary file.

    python -m bench.same_results --base 46914fe
    python -m bench.same_results --base HEAD~3 --devices 10 --interfaces 4   # a quick check
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.versions import extract, python_env, resolve
from rollup.core.windows import WindowGrid, format_instant, load_zone, to_ns
from scripts.servers import start_elasticsearch, start_influxd
from scripts.synth import interface_lines, temperature_lines, write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DAY = dt.date(2026, 11, 2)  # a Monday in the past: its windows are closed
ZONE = "Europe/Zurich"
SUMS = ("_mean", "_stddev", "_rate", "_increase", "_seconds", "_sum")
"""Fields that are float sums (or computed from them)."""
TOLERANCE = 1e-12
LOOKBACK0 = "per-interface-3h-lookback0"

PERCENTILE_FIELDS = """
[fields.ifHCInOctets]
as = "in"
on_decrease = "auto"
max_rate = 1e11
scale = 8
aggregates = ["mean", "max", "p95", "p50", "min", "count"]

[fields.ifHCOutOctets]
as = "out"
on_decrease = "auto"
max_rate = 1e11
scale = 8
aggregates = ["mean", "max", "p95"]
"""


def percentile_job(name: str, group_by: list[str], every: str) -> str:
    return f"""\
name = "{name}"
group_by = {json.dumps(group_by)}

[source]
profile = "buffer"
database = "telegraf"
measurement = "interface"

[window]
every = "{every}"
timezone = "{ZONE}"
max_gap = "10m"
{PERCENTILE_FIELDS}
[output]
measurement = "{name}"
sinks = ["longterm"]
"""


def lookback0_job() -> str:
    return f"""\
name = "{LOOKBACK0}"
group_by = ["agent_host", "ifName"]

[source]
profile = "buffer"
database = "telegraf"
measurement = "interface"

[window]
every = "3h"
timezone = "{ZONE}"
lookback = "0s"

[fields.ifHCInOctets]
as = "in"
on_decrease = "auto"
max_rate = 1e11
aggregates = ["mean", "increase", "max", "count"]

[output]
measurement = "{LOOKBACK0.replace("-", "_")}"
sinks = ["longterm"]
"""


@dataclass(frozen=True)
class Variant:
    name: str
    concurrency: int = 1
    values_memory: str | None = None


PLAIN = Variant("plain")
VARIANTS = (PLAIN, Variant("concurrency 2", concurrency=2), Variant("spilled", values_memory="64KiB"))


def jobs() -> dict[str, str]:
    """Job name → TOML text (without ``values_memory``); not the jobs that read jobs (bench/ladder.py
    checks those against the raw data)."""
    texts = {p.stem: p.read_text() for p in sorted((ROOT / "jobs").glob("*.toml"))}
    out = {name: text for name, text in texts.items() if "job" not in tomllib.loads(text).get("source", {})}
    out["per-device-1d"] = percentile_job("per-device-1d", ["agent_host"], "1d")
    out["per-ifname-1d"] = percentile_job("per-ifname-1d", ["ifName"], "1d")
    out["per-ifname-3h"] = percentile_job("per-ifname-3h", ["ifName"], "3h")
    out[LOOKBACK0] = lookback0_job()
    return out


def with_memory(text: str, values_memory: str | None) -> str:
    if values_memory is None:
        return text
    # A top-level key: before the first [section].
    head, _, rest = text.partition("\n[")
    return f'{head}\nvalues_memory = "{values_memory}"\n\n[{rest}'


@dataclass(frozen=True)
class Servers:
    influx: str
    search: str


@dataclass(frozen=True)
class Workspace:
    """A directory with settings, jobs and sinks for one version (and variant): its own ledger,
    its own output database and index pattern."""

    directory: Path
    code: Path
    database: str
    index_prefix: str

    def run(self, *args: str) -> str:
        command = [sys.executable, "-m", "rollup", *args]
        done = subprocess.run(
            command,
            cwd=self.directory,
            env=python_env(self.code),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"{self.code}: rollup {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def preview(self, job: str, start: str, end: str) -> list[dict[str, Any]]:
        output = self.run("preview", job, "--start", start, "--end", end, "--format", "json", "--coverage")
        rows: list[dict[str, Any]] = json.loads(output)
        return rows

    def backfill(self, job: str, start: str, end: str) -> None:
        self.run("backfill", job, "--start", start, "--end", end, "--no-progress")


def workspace(
    directory: Path, code: Path, servers: Servers, variant: Variant, texts: dict[str, str], label: str
) -> Workspace:
    database = f"rollups_{label}"
    prefix = f"rollup-{label}"
    httpx.post(f"{servers.influx}/query", data={"q": f"CREATE DATABASE {database}"}).raise_for_status()
    (directory / "jobs").mkdir(parents=True)
    (directory / "sinks").mkdir()
    (directory / "config").mkdir()
    (directory / "sinks" / "longterm.toml").write_text(
        f'type = "influxdb"\nurl = "{servers.influx}"\ndatabase = "{database}"\n'
    )
    (directory / "sinks" / "search.toml").write_text(
        f'type = "elasticsearch"\nurl = "{servers.search}"\nindex = "{prefix}-{{job}}-{{yyyy.MM}}"\n'
    )
    (directory / "config" / "rollup.toml").write_text(
        f'log_level = "WARNING"\nledger = "sqlite:{directory / "ledger.sqlite"}"\n\n'
        f'[sources.buffer]\nurl = "{servers.influx}"\ntimeout = "300s"\n'
        f"concurrency = {variant.concurrency}\n"
    )
    for name, text in texts.items():
        (directory / "jobs" / f"{name}.toml").write_text(with_memory(text, variant.values_memory))
    return Workspace(directory, code, database, prefix)


# -- reading what a backfill wrote --------------------------------------------------------------


def influx_rows(url: str, database: str, measurement: str) -> list[dict[str, Any]]:
    """Every point of a measurement: its tags, its time and its fields, as one dict each."""
    response = httpx.post(
        f"{url}/query",
        params={"db": database, "epoch": "ns"},
        data={"q": f'SELECT * FROM "{measurement}" GROUP BY *'},
        timeout=300,
    )
    response.raise_for_status()
    out: list[dict[str, Any]] = []
    for series in response.json()["results"][0].get("series", []):
        for values in series["values"]:
            point = dict(zip(series["columns"], values, strict=True))
            point["time"] = str(point["time"])  # part of the key
            out.append(series.get("tags", {}) | {k: v for k, v in point.items() if v is not None})
    return out


def search_documents(url: str, prefix: str) -> list[dict[str, Any]]:
    """Every document of the indices ``prefix-*``, with its ``_id`` as a string field (the key)."""
    httpx.post(f"{url}/{prefix}-*/_refresh", timeout=60)
    response = httpx.post(
        f"{url}/{prefix}-*/_search", json={"size": 10_000, "query": {"match_all": {}}}, timeout=300
    )
    response.raise_for_status()
    hits = response.json()["hits"]["hits"]
    return [{"_id": hit["_id"]} | hit["_source"] for hit in hits]


# -- comparing ------------------------------------------------------------------------------------


@dataclass
class Comparison:
    total: int = 0
    exact: int = 0
    float_sums: int = 0
    """Not bit-identical, but float sums within a relative 1e-12 (added in another order)."""
    unexplained: list[str] = field(default_factory=list)
    """Values that differ for no intended reason (the first ones)."""
    unexplained_count: int = 0
    sum_examples: list[str] = field(default_factory=list)
    worst_relative: float = 0.0

    @property
    def ok(self) -> bool:
        return self.unexplained_count == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "values": self.total,
            "bit_identical": self.exact,
            "float_sums_within_1e-12": self.float_sums,
            "worst_relative_difference": self.worst_relative,
            "unexplained": self.unexplained_count,
            "unexplained_examples": self.unexplained[:5],
            "float_sum_examples": self.sum_examples[:3],
            "ok": self.ok,
        }


def compare(base: list[dict[str, Any]], ours: list[dict[str, Any]], *, sums_may_differ: bool) -> Comparison:
    """Value by value; ``sums_may_differ``: float sums may differ by a relative 1e-12."""
    out = Comparison()
    theirs_by_key, ours_by_key = {row_key(r): r for r in base}, {row_key(r): r for r in ours}

    def unexplained(text: str, count: int = 1) -> None:
        out.unexplained_count += count
        if len(out.unexplained) < 20:
            out.unexplained.append(text)

    for key in sorted(theirs_by_key.keys() | ours_by_key.keys()):
        a, b = theirs_by_key.get(key), ours_by_key.get(key)
        if a is None or b is None:
            size = len(a or b or {})
            out.total += size
            unexplained(f"{key}: only in {'this tree' if a is None else 'the base'}", size)
            continue
        for name in sorted(set(a) | set(b)):
            out.total += 1
            x, y = a.get(name), b.get(name)
            if x == y and (name in a) == (name in b) and type(x) is type(y):
                out.exact += 1
                continue
            numbers = isinstance(x, float) and isinstance(y, float)
            if numbers and sums_may_differ and name.endswith(SUMS):
                relative = abs(x - y) / max(abs(x), abs(y))
                if relative <= TOLERANCE:
                    out.float_sums += 1
                    out.worst_relative = max(out.worst_relative, relative)
                    if len(out.sum_examples) < 3:
                        out.sum_examples.append(f"{key} {name}: {x!r} vs {y!r}")
                    continue
            unexplained(f"{key} {name}: {x!r} vs {y!r}")
    return out


def row_key(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if isinstance(v, str)}, sort_keys=True)


# -- the data -------------------------------------------------------------------------------------


def load(url: str, devices: int, interfaces: int) -> int:
    zone_start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    start = int((zone_start - dt.timedelta(hours=3)).timestamp())
    end = int((zone_start + dt.timedelta(days=1, hours=1)).timestamp())
    client = httpx.Client(base_url=url, timeout=300)
    client.post("/query", data={"q": "CREATE DATABASE telegraf"}).raise_for_status()

    def lines() -> Iterator[str]:
        yield from interface_lines(start, end, devices, interfaces, 60, seed=7, resets=3, wrap32=True)
        yield from temperature_lines(start, end, devices, 60, seed=7)

    return write(client, "telegraf", lines())


def day_windows(every: str) -> list[tuple[str, str]]:
    """The windows of DAY (local) in ZONE, as --start/--end arguments."""
    zone = load_zone(ZONE)
    first = to_ns(dt.datetime.combine(DAY, dt.time(), tzinfo=zone))
    last = to_ns(dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(), tzinfo=zone))
    windows = WindowGrid(every, ZONE).windows(first, last)
    return [(format_instant(w.start, zone), format_instant(w.end, zone)) for w in windows]


def measurement_of(text: str) -> str:
    return str(tomllib.loads(text)["output"]["measurement"])


def writes_to_search(text: str) -> bool:
    return "search" in tomllib.loads(text)["output"]["sinks"]


# -- main -----------------------------------------------------------------------------------------


@dataclass
class Check:
    """Every comparison of one run of the script."""

    servers: Servers
    base: Workspace
    ours: dict[Variant, Workspace]
    report: list[dict[str, Any]] = field(default_factory=list)

    def record(
        self, job: str, run: str, versus: str, found: Comparison, rows: int, intended: str = ""
    ) -> None:
        entry = {
            "job": job,
            "run": run,
            "versus": versus,
            "rows": rows,
            "intended": intended,
        } | found.as_json()
        if intended:  # differences shown, not judged: another comparison of the same job judges
            entry["ok"] = True
        self.report.append(entry)
        log(
            f"  {run} vs {versus}: {found.exact:,}/{found.total:,} bit-identical, {found.float_sums:,} "
            f"float sums within 1e-12, {found.unexplained_count:,} other differences"
            + (f" ({intended})" if intended else "")
        )

    def job(self, job: str, text: str) -> None:
        began = time.perf_counter()
        log(f"{job}:")
        start, end = str(DAY), str(DAY + dt.timedelta(days=1))
        plain = self.ours[PLAIN]
        mine = plain.preview(job, start, end)
        theirs = self.base.preview(job, start, end)
        versus = "the base"
        if job == LOOKBACK0:
            shown = compare(theirs, mine, sums_may_differ=True)
            intended = "intended: lookback 0s, each window its own span"
            self.record(job, "preview", "the base, one query per day", shown, len(mine), intended)
            versus = "the base, window by window"
            theirs = [r for a, b in day_windows("3h") for r in self.base.preview(job, a, b)]
        self.record(job, "preview", versus, compare(theirs, mine, sums_may_differ=True), len(mine))
        for variant in VARIANTS[1:]:
            other = self.ours[variant].preview(job, start, end)
            found = compare(mine, other, sums_may_differ=False)
            self.record(job, f"preview, {variant.name}", "this tree, plain", found, len(other))
        # Each version backfills into a database and an index pattern of its own.
        if job == LOOKBACK0:
            for a, b in day_windows("3h"):
                self.base.backfill(job, a, b)
        else:
            self.base.backfill(job, start, end)
        plain.backfill(job, start, end)
        measurement = measurement_of(text)
        written = influx_rows(self.servers.influx, plain.database, measurement)
        found = compare(
            influx_rows(self.servers.influx, self.base.database, measurement), written, sums_may_differ=True
        )
        self.record(job, "backfill, InfluxDB", versus, found, len(written))
        if writes_to_search(text):
            documents = search_documents(self.servers.search, plain.index_prefix)
            found = compare(
                search_documents(self.servers.search, self.base.index_prefix), documents, sums_may_differ=True
            )
            self.record(job, "backfill, Elasticsearch", versus, found, len(documents))
        log(f"  ({time.perf_counter() - began:.0f} s)")


def table(report: list[dict[str, Any]]) -> str:
    lines = [
        "| job | run | against | rows | values bit-identical | float sums within 1e-12 | other differences "
        "| ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report:
        ok = "yes" if r["ok"] and not r["intended"] else (r["intended"] if r["ok"] else "NO")
        lines.append(
            f"| {r['job']} | {r['run']} | {r['versus']} | {r['rows']:,} | {r['bit_identical']:,} / "
            f"{r['values']:,} | {r['float_sums_within_1e-12']:,} | {r['unexplained']:,} | {ok} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare with (e.g. the merge base)")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--interfaces", type=int, default=24)
    args = parser.parse_args()
    base_commit = resolve(args.base)
    texts = jobs()
    with tempfile.TemporaryDirectory(prefix="rollup-same-") as tmp:
        workdir = Path(tmp)
        base = extract(base_commit, workdir)
        influxd = start_influxd(workdir / "influxd")
        search = start_elasticsearch(workdir / "search")
        try:
            servers = Servers(influxd.url, search.url)
            rows = load(influxd.url, args.devices, args.interfaces)
            log(f"{rows:,} rows written for {DAY} ({ZONE}) with margins")
            ours = {}
            for v in VARIANTS:
                label = v.name.replace(" ", "_")
                ours[v] = workspace(workdir / label, ROOT, servers, v, texts, label)
            check = Check(servers, workspace(workdir / "base", base, servers, PLAIN, texts, "base"), ours)
            for job, text in texts.items():
                check.job(job, text)
        finally:
            search.stop()
            influxd.stop()
    print(f"base {base_commit[:12]} against this tree, {args.devices} hosts × {args.interfaces} interfaces\n")
    print(table(check.report))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-same-results.json"
    path.write_text(
        json.dumps({"base": base_commit, "devices": args.devices, "interfaces": args.interfaces,
                    "command": " ".join(["python -m bench.same_results", *sys.argv[1:]]),
                    "comparisons": check.report}, indent=2) + "\n"
    )  # fmt: skip
    log(f"written to {path.relative_to(ROOT)}")
    return 0 if all(r["ok"] for r in check.report) else 1


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

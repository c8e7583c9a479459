"""Do two versions of rollup compute the same rows? ``rollup preview`` of both on the same data.

Starts a real influxd in a temp dir (tests/servers.py), writes the demo's data (scripts/synth.py:
50 hosts × 24 interfaces of SNMP octet counters every 60 s with 3 device reboots and one Counter32
that wraps, and two temperature sensors per host) for one day with margins, then runs ``python -m
rollup preview --format json`` of each job below with the code of ``--base`` (a commit, extracted
with ``git archive``) and with the code of this working tree, and compares every value of every row
exactly (JSON keeps the shortest repr of each float, so equal text means equal bits).

Jobs: the demo's own (``jobs/*.toml``: per interface with mean/max/p95/increase, per device in
3-hour windows, temperatures), and mean/max/p95/p50/min/count per device (``agent_host``, whose
series come one after the other) and per ``ifName`` (a tag that sorts last: every group's series
are spread over the whole result). This tree also runs variants the base may not know: the source's
``concurrency = 2``, and a ``values_memory`` small enough that kept values go through a temporary
file. Every variant must equal the base's plain run, value for value; with ``concurrency = 2`` the
batches hold other rows, so float sums (``mean``, ``stddev``, ``rate``, ``increase``, ``seconds``)
may differ in their last bits (they are added in another order) and only need to agree within a
relative 1e-12 there.

    python -m bench.same_results --base 46914fe
    python -m bench.same_results --base HEAD~3 --devices 10 --interfaces 4   # a quick check
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.servers import start_influxd

from scripts.synth import interface_lines, temperature_lines, write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DAY = dt.date(2026, 11, 2)  # a Monday; previews need no closed window, so any past day does
ZONE = "Europe/Zurich"

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


@dataclass(frozen=True)
class Variant:
    name: str
    concurrency: int = 1
    values_memory: str | None = None


PLAIN = Variant("plain")
VARIANTS = (PLAIN, Variant("concurrency 2", concurrency=2), Variant("spilled", values_memory="64KiB"))


def jobs() -> dict[str, str]:
    """Job name → TOML text (without ``values_memory``)."""
    # The demo's jobs that write to InfluxDB only (the others need a search server).
    out = {
        p.stem: p.read_text() for p in sorted((ROOT / "jobs").glob("*.toml")) if not p.stem.endswith("-es")
    }
    out["per-device-1d"] = percentile_job("per-device-1d", ["agent_host"], "1d")
    out["per-ifname-1d"] = percentile_job("per-ifname-1d", ["ifName"], "1d")
    out["per-ifname-3h"] = percentile_job("per-ifname-3h", ["ifName"], "3h")
    return out


def with_memory(text: str, values_memory: str | None) -> str:
    if values_memory is None:
        return text
    # A top-level key: before the first [section].
    head, _, rest = text.partition("\n[")
    return f'{head}\nvalues_memory = "{values_memory}"\n\n[{rest}'


def workspace(directory: Path, url: str, variant: Variant, texts: dict[str, str]) -> Path:
    (directory / "jobs").mkdir(parents=True)
    (directory / "sinks").mkdir()
    (directory / "config").mkdir()
    (directory / "sinks" / "longterm.toml").write_text(
        f'type = "influxdb"\nurl = "{url}"\ndatabase = "unused"\n'
    )
    (directory / "config" / "rollup.toml").write_text(
        f'log_level = "WARNING"\n\n[sources.buffer]\nurl = "{url}"\ntimeout = "300s"\n'
        f"concurrency = {variant.concurrency}\n"
    )
    for name, text in texts.items():
        (directory / "jobs" / f"{name}.toml").write_text(with_memory(text, variant.values_memory))
    return directory


def preview(code: Path, directory: Path, job: str) -> list[dict[str, Any]]:
    end = DAY + dt.timedelta(days=1)
    command = [sys.executable, "-m", "rollup", "preview", job, "--start", str(DAY), "--end", str(end)]
    command += ["--format", "json", "--coverage"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLUP_")} | {"PYTHONPATH": str(code)}
    done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{code}: rollup preview {job} failed:\n{done.stderr[-3000:]}")
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


@dataclass
class Comparison:
    exact: int = 0
    close: int = 0
    """Not exactly equal, but within a relative 1e-12 (float sums added in another order)."""
    total: int = 0
    order_dependent_only: bool = True
    """Every value not exactly equal is a float sum."""
    differing: list[str] = field(default_factory=list)


SUMS = ("_mean", "_stddev", "_rate", "_increase", "_seconds", "_sum")


def compare(base: list[dict[str, Any]], ours: list[dict[str, Any]]) -> Comparison:
    out = Comparison()
    theirs_by_key, ours_by_key = {row_key(r): r for r in base}, {row_key(r): r for r in ours}
    for key in sorted(theirs_by_key.keys() | ours_by_key.keys()):
        a, b = theirs_by_key.get(key), ours_by_key.get(key)
        if a is None or b is None:
            out.differing.append(f"{key}: only in {'ours' if a is None else 'the base'}")
            out.total += len(a or b or {})
            out.order_dependent_only = False
            continue
        for name in sorted(set(a) | set(b)):
            out.total += 1
            x, y = a.get(name), b.get(name)
            if x == y and (name in a) == (name in b):
                out.exact += 1
                continue
            out.differing.append(f"{key} {name}: {x!r} vs {y!r}")
            numbers = isinstance(x, float) and isinstance(y, float)
            if numbers and abs(x - y) <= 1e-12 * max(abs(x), abs(y)):
                out.close += 1
                out.order_dependent_only &= name.endswith(SUMS)
            else:
                out.order_dependent_only = False
    return out


def row_key(row: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in row.items() if isinstance(v, str)}, sort_keys=True)


def extract(commit: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    tar = into / "base.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as opened:
        opened.extractall(into / "base", filter="data")
    return into / "base"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare with (e.g. the merge base)")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--interfaces", type=int, default=24)
    args = parser.parse_args()
    base_commit = subprocess.run(
        ["git", "rev-parse", args.base], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    texts = jobs()
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rollup-same-") as tmp:
        workdir = Path(tmp)
        base = extract(base_commit, workdir)
        influxd = start_influxd(workdir / "influxd")
        try:
            rows = load(influxd.url, args.devices, args.interfaces)
            log(f"{rows:,} rows written for {DAY} ({ZONE}) with margins")
            spaces = {
                v: workspace(workdir / v.name.replace(" ", "-"), influxd.url, v, texts) for v in VARIANTS
            }
            for job in texts:
                began = time.perf_counter()
                theirs = preview(base, spaces[PLAIN], job)
                log(f"{job}: base {len(theirs)} rows ({time.perf_counter() - began:.1f} s)")
                for variant in VARIANTS:
                    began = time.perf_counter()
                    ours = preview(ROOT, spaces[variant], job)
                    found = compare(theirs, ours)
                    ok = found.exact == found.total or (
                        variant.concurrency > 1 and found.order_dependent_only
                    )
                    log(
                        f"  {variant.name}: {found.exact:,}/{found.total:,} exactly equal, {found.close:,} "
                        f"within 1e-12 ({time.perf_counter() - began:.1f} s)"
                    )
                    report.append(
                        {"job": job, "variant": variant.name, "rows": len(ours), "exact": found.exact,
                         "within_1e-12": found.close, "total": found.total, "ok": ok,
                         "differing": found.differing[:5]}
                    )  # fmt: skip
        finally:
            influxd.stop()
    lines = [
        "| job | variant | rows | values exactly equal | float sums within 1e-12 | ok |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['job']} | {r['variant']} | {r['rows']:,} | {r['exact']:,} / {r['total']:,} "
        f"| {r['within_1e-12']:,} | {'yes' if r['ok'] else 'NO'} |"
        for r in report
    ]
    print(f"base {base_commit[:12]} against this tree, {args.devices} hosts × {args.interfaces} interfaces\n")
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-same-results.json"
    path.write_text(
        json.dumps({"base": base_commit, "devices": args.devices, "interfaces": args.interfaces,
                    "command": " ".join(["python -m bench.same_results", *sys.argv[1:]]),
                    "comparisons": report}, indent=2) + "\n"
    )  # fmt: skip
    log(f"written to {path.relative_to(ROOT)}")
    return 0 if all(r["ok"] for r in report) else 1


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())

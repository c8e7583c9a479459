"""Planning bounded in memory and time (issue 11, item 2): what ``status``, ``backfill`` and ``run``
of a 5-second job cost before and while they work, over 1 day to 10 years of windows.

Starts a real influxd in a temp dir (scripts/servers.py) holding one point of the job's
measurement, long before every range (the measurement, field and tags exist; every window is
empty), and for each job — ``every = "5s"`` in UTC and in Europe/Zurich (whose 5-second windows
go through the DST-aware enumeration), ``start`` 1 day, 30 days, 1 year and 10 years before a
reference instant T (a minute ago), ``[schedule] buffer_retention = "3653d"`` — runs, as real
subprocesses (``python -m rollup``), with the code of this tree and of ``--base`` in turn:

- ``status JOB --json --now T``: to the end; peak RSS; the owed count it prints is checked;
- ``backfill JOB --start T-range --end T --dry-run --now T``: its output read until ``--lines``
  lines; the time to the first line and the peak RSS until then;
- ``backfill JOB --start T-range --end T`` (writing): the time until the first window was claimed
  and until it was recorded done (watched in the ledger), stopped ``--after-first`` seconds later;
  the peak RSS until then;
- ``run JOB``: the time until the first window was claimed and recorded done, the whole pass
  (``max_windows_per_pass = 1000``) and its peak RSS.

Then again (UTC) with a ledger already holding a year of done windows (filled through the
ledger's own API by bench/fill_ledger.py, with the base's code when there is a base so that both
versions read the same rows), for the ranges of a year and more: the planner pages through them.

Peak RSS is the child's VmHWM, sampled every 10 ms until it exits or is stopped. Every child is
stopped once its RSS passes ``--cap-mb`` or its time ``--cap-seconds``: such a figure is shown as
"> X (stopped)". The table is printed and everything is written to
``bench/results/<time>-planning.json``.

    python -m bench.planning --base 46914fe
    python -m bench.planning --ranges 1d 30d --zones UTC --no-full-ledger   # a quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.report import log, machine, markdown
from bench.sampling import status_kb
from bench.versions import extract, python_env, resolve
from scripts.servers import start_influxd
from scripts.synth import write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
S = 10**9
DAY_NS = 86400 * S
STEP = 5 * S
RANGES = {"1d": 1, "30d": 30, "1y": 365, "10y": 3652}
RETENTION = "3653d"
FULL_DAYS = 365
"""Done windows in the full ledger: the year before T."""
JOB = "planning"
DATABASE = "planning"
COMMANDS = ("status", "dry-run", "backfill", "run")
FIRST_TARGET_SECONDS = 2.0
RSS_TARGET_MB = 150.0


@dataclass(frozen=True)
class Scenario:
    zone: str
    range_name: str
    full_ledger: bool = False

    @property
    def days(self) -> int:
        return RANGES[self.range_name]

    @property
    def windows(self) -> int:
        return self.days * DAY_NS // STEP

    @property
    def label(self) -> str:
        return f"{self.zone}, {self.range_name}" + (", ledger: a year done" if self.full_ledger else "")


@dataclass(frozen=True)
class Version:
    name: str
    code: Path


@dataclass
class Watched:
    """What one child did until it exited or was stopped."""

    seconds: float
    peak_mb: float
    exit_code: int | None
    """None: stopped."""
    stopped: str | None = None
    """Why it was stopped: "lines" (enough output), "after first" (enough work), "memory", "time"."""
    first_line: float | None = None
    lines: list[str] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    started: float | None = None
    """The first window claimed (seen in the ledger)."""
    done: float | None = None
    """The first window recorded done."""


@dataclass
class Outcome:
    command: str
    scenario: Scenario
    version: str
    watched: Watched
    check: str
    ok: bool

    def as_json(self) -> dict[str, Any]:
        watched = asdict(self.watched) | {"lines": len(self.watched.lines)}
        watched.pop("stdout")
        return {
            "command": self.command,
            "zone": self.scenario.zone,
            "range": self.scenario.range_name,
            "windows": self.scenario.windows,
            "full_ledger": self.scenario.full_ledger,
            "version": self.version,
            "check": self.check,
            "ok": self.ok,
        } | watched


# -- watching a child -----------------------------------------------------------------------------


class FirstWindow:
    """Watches the ledger for one window: when it is claimed, when it is recorded done."""

    def __init__(self, ledger: Path, start: int):
        self.ledger = ledger
        self.start = start
        self.status: str | None = None
        self._connection: sqlite3.Connection | None = None

    def poll(self) -> str | None:
        """The window's status now (None: no row yet, or the ledger not there yet)."""
        try:
            if self._connection is None:
                if not self.ledger.exists():
                    return None
                self._connection = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True, timeout=0.05)
            found = self._connection.execute(
                "SELECT status FROM rollup_windows WHERE job = ? AND window_start = ?", (JOB, self.start)
            ).fetchone()
        except sqlite3.Error:
            return None
        self.status = None if found is None else str(found[0])
        return self.status

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def watch(
    command: list[str],
    env: dict[str, str],
    *,
    cap_seconds: float,
    cap_mb: float,
    max_lines: int | None = None,
    first: FirstWindow | None = None,
    after_first: float | None = None,
) -> Watched:
    """Run ``command`` until it exits, or stop it (SIGKILL): after ``max_lines`` lines of output,
    ``after_first`` seconds after ``first`` was recorded done, or past a cap."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        began = time.perf_counter()
        process = subprocess.Popen(
            command,
            env=env,
            cwd=tempfile.gettempdir(),
            stdout=subprocess.PIPE if max_lines is not None else out,
            stderr=err,
        )
        lines: list[str] = []
        first_line: list[float] = []
        enough = threading.Event()

        def read() -> None:
            assert process.stdout is not None
            for raw in process.stdout:
                if not first_line:
                    first_line.append(time.perf_counter() - began)
                if max_lines is not None and len(lines) < max_lines:
                    lines.append(raw.decode(errors="replace").rstrip("\n"))
                    if len(lines) == max_lines:
                        enough.set()

        reader = threading.Thread(target=read, daemon=True)
        if max_lines is not None:
            reader.start()
        peak_kb = 0
        stopped: str | None = None
        started = done = None
        status = 0
        while True:
            pid, status, _ = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, status_kb(process.pid, "VmHWM:"))
            elapsed = time.perf_counter() - began
            if first is not None and done is None:
                seen = first.poll()
                if seen is not None and started is None:
                    started = elapsed
                if seen == "done":
                    done = elapsed
            if enough.is_set():
                stopped = "lines"
            elif after_first is not None and done is not None and elapsed - done >= after_first:
                stopped = "after first"
            elif status_kb(process.pid, "VmRSS:") > cap_mb * 1024:
                stopped = "memory"
            elif elapsed > cap_seconds:
                stopped = "time"
            if stopped is not None:
                peak_kb = max(peak_kb, status_kb(process.pid, "VmHWM:"))
                os.kill(process.pid, signal.SIGKILL)
                os.wait4(process.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - began
        if max_lines is not None:
            reader.join(timeout=10)
        err.seek(0)
        out.seek(0)
        if first is not None:
            first.close()
        return Watched(
            seconds=seconds,
            peak_mb=peak_kb / 1024,
            exit_code=None if stopped else os.waitstatus_to_exitcode(status),
            stopped=stopped,
            first_line=first_line[0] if first_line else None,
            lines=lines,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace")[-2000:],
            started=started,
            done=done,
        )


# -- the workspace ------------------------------------------------------------------------------


def iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // S, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_toml(zone: str, start: int) -> str:
    return f"""\
name = "{JOB}"
start = {iso(start)}
group_by = ["agent_host", "ifName"]

[source]
profile = "buffer"
database = "{DATABASE}"
measurement = "interface"

[window]
every = "5s"
timezone = "{zone}"

[fields.ifHCInOctets]
as = "in"
aggregates = ["mean"]

[output]
measurement = "{JOB}"
sinks = ["out"]

[schedule]
buffer_retention = "{RETENTION}"
max_windows_per_pass = 1000
"""


def workspace(directory: Path, url: str, zone: str, start: int, ledger: Path) -> Path:
    """A settings file, the job and the sink; returns the settings file."""
    (directory / "jobs").mkdir()
    (directory / "sinks").mkdir()
    (directory / "jobs" / f"{JOB}.toml").write_text(job_toml(zone, start))
    (directory / "sinks" / "out.toml").write_text(
        f'type = "influxdb"\nurl = "{url}"\ndatabase = "planning_out"\n'
    )
    config = directory / "rollup.toml"
    config.write_text(
        f'jobs_dir = "{directory / "jobs"}"\nsinks_dir = "{directory / "sinks"}"\nlog_level = "WARNING"\n'
        f'ledger = "sqlite:{ledger}"\n\n[sources.buffer]\nurl = "{url}"\ntimeout = "60s"\n'
    )
    return config


# -- the measurements ---------------------------------------------------------------------------


@dataclass
class Planning:
    workdir: Path
    url: str
    reference: int
    """T: the ranges end here; status and dry runs plan as if the clock read T."""
    cap_seconds: float
    cap_mb: float
    max_lines: int
    after_first: float
    full_ledgers: dict[str, Path] = field(default_factory=dict)
    """Per version, a ledger holding a year of done windows (before T)."""
    _count: int = 0

    def measure(self, command: str, scenario: Scenario, version: Version) -> Outcome:
        self._count += 1
        directory = self.workdir / f"w{self._count}"
        start = self.reference - scenario.days * DAY_NS
        ledger = directory / "ledger.sqlite"
        directory.mkdir()
        if scenario.full_ledger:
            if command in ("backfill", "run"):  # they write: a copy of their own
                shutil.copyfile(self.full_ledgers[version.name], ledger)
            else:
                ledger = self.full_ledgers[version.name]
        config = workspace(directory, self.url, scenario.zone, start, ledger)
        rollup = [sys.executable, "-m", "rollup", "--config", str(config)]
        env = python_env(version.code)
        caps: dict[str, Any] = {"cap_seconds": self.cap_seconds, "cap_mb": self.cap_mb}
        done_before = self._done_windows(scenario)
        expected_owed = scenario.windows - done_before
        now = ["--now", iso(self.reference)]
        span = ["--start", iso(start), "--end", iso(self.reference)]
        if command == "status":
            watched = watch([*rollup, "status", JOB, "--json", *now], env, **caps)
            check, ok = _status_check(watched, expected_owed)
        elif command == "dry-run":
            argv = [*rollup, "backfill", JOB, *span, "--dry-run", *now]
            watched = watch(argv, env, max_lines=self.max_lines, **caps)
            label = "done, skipped" if done_before == scenario.windows else "run"
            check, ok = _listing_check(watched, min(self.max_lines, scenario.windows), label)
        else:
            first = self._first_due(scenario, start)
            probe = FirstWindow(ledger, first)
            if command == "backfill":
                argv = [*rollup, "backfill", JOB, *span, "--no-progress"]
                watched = watch(argv, env, first=probe, after_first=self.after_first, **caps)
            else:
                watched = watch([*rollup, "run", JOB], env, first=probe, **caps)
            check, ok = _work_check(watched, first, done_before == scenario.windows and command == "backfill")
        shutil.rmtree(directory)
        return Outcome(command, scenario, version.name, watched, check, ok)

    def _done_windows(self, scenario: Scenario) -> int:
        return min(FULL_DAYS, scenario.days) * DAY_NS // STEP if scenario.full_ledger else 0

    def _first_due(self, scenario: Scenario, start: int) -> int:
        """The oldest window a pass or a backfill runs first."""
        if scenario.full_ledger and scenario.days <= FULL_DAYS:
            return self.reference  # everything before T is done
        return start

    def fill(self, version: Version, others: list[Version]) -> None:
        """A ledger with the year before T done, filled with ``version``'s code; a copy for each
        of ``others``, opened once with their code (a newer schema migrates it)."""
        path = self.workdir / f"full-{version.name.replace(' ', '-')}.sqlite"
        start = self.reference - FULL_DAYS * DAY_NS
        log(f"filling a ledger with {FULL_DAYS * DAY_NS // STEP:,} done windows ({version.name}'s code) …")
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "fill_ledger.py"), "--ledger", f"sqlite:{path}",
             "--job", JOB, "--start", str(start), "--end", str(self.reference), "--step", str(STEP)],
            env=python_env(version.code), cwd=self.workdir, check=True,
        )  # fmt: skip
        self.full_ledgers[version.name] = path
        for other in others:
            copy = self.workdir / f"full-{other.name.replace(' ', '-')}.sqlite"
            shutil.copyfile(path, copy)
            opener = "from pydantic import SecretStr; from rollup.ledger import open_ledger; "
            opener += f"open_ledger(SecretStr('sqlite:{copy}')).close()"
            subprocess.run([sys.executable, "-c", opener], env=python_env(other.code), check=True)
            self.full_ledgers[other.name] = copy


def _status_check(watched: Watched, expected: int) -> tuple[str, bool]:
    if watched.exit_code != 0:
        return _failure(watched), False
    owed = json.loads(watched.stdout)[0]["owed"]
    return f"owed {owed:,} (expected {expected:,})", owed == expected


def _listing_check(watched: Watched, expected_lines: int, label: str) -> tuple[str, bool]:
    if watched.stopped not in (None, "lines"):
        return _failure(watched), False
    windows = [line for line in watched.lines if "→" in line]
    labelled = sum(1 for line in windows if line.rstrip().endswith(f"  {label}"))
    text = f"{len(windows):,} window lines read, {labelled:,} '{label}'"
    return text, len(windows) >= expected_lines and labelled == len(windows)


def _work_check(watched: Watched, first: int, nothing_due: bool) -> tuple[str, bool]:
    if nothing_due:
        ok = watched.exit_code == 0 and watched.started is None
        return ("nothing due, exit 0" if ok else _failure(watched)), ok
    if watched.done is None:
        return _failure(watched) if watched.stopped != "after first" else "no window done", False
    if watched.exit_code not in (0, None):
        return _failure(watched), False
    return f"first window ({iso(first)}) done", True


def _failure(watched: Watched) -> str:
    if watched.stopped in ("memory", "time"):
        return f"stopped ({watched.stopped})"
    last = watched.stderr.strip().splitlines()[-1:] or ["no output"]
    return f"exit {watched.exit_code}: {last[0][:160]}"


# -- the table ----------------------------------------------------------------------------------


def seconds_cell(value: float | None, watched: Watched, cap: float) -> str:
    if value is not None:
        return f"{value:.2f} s"
    if watched.stopped == "time":
        return f"> {cap:.0f} s (stopped)"
    if watched.stopped == "memory":
        return f"— (stopped at {watched.seconds:.0f} s)"
    return "—"


def rss_cell(watched: Watched, cap_mb: float) -> str:
    if watched.stopped == "memory":
        return f"> {cap_mb:,.0f} MB (stopped)"
    return f"{watched.peak_mb:,.0f} MB"


def first_of(outcome: Outcome) -> float | None:
    """The time to what the user waits for first: the output (status, dry run), the first window
    claimed (backfill, run), or the end of a backfill that had nothing to do."""
    watched = outcome.watched
    if outcome.command == "status":
        return watched.seconds if watched.exit_code == 0 else None
    if outcome.command == "dry-run":
        return watched.first_line
    if watched.started is None and watched.exit_code == 0:
        return watched.seconds
    return watched.started


FIRST_HEADER = {
    "status": "to the table",
    "dry-run": "to the first line",
    "backfill": "to the first window claimed / done",
    "run": "to the first window claimed / done; the pass",
}


def rows(outcomes: list[Outcome], cap_seconds: float, cap_mb: float, versions: list[str]) -> list[list[str]]:
    header = ["command", "scenario", "windows"]
    for name in versions:
        header += [f"{name}: time", f"{name}: peak RSS"]
    header.append("check (this tree)")
    out = [header]
    by_key: dict[tuple[str, Scenario], dict[str, Outcome]] = {}
    for outcome in outcomes:
        by_key.setdefault((outcome.command, outcome.scenario), {})[outcome.version] = outcome
    for (command, scenario), found in by_key.items():
        row = [f"{command} ({FIRST_HEADER[command]})", scenario.label, f"{scenario.windows:,}"]
        for name in versions:
            outcome = found.get(name)
            if outcome is None:
                row += ["—", "—"]
                continue
            watched = outcome.watched
            cell = seconds_cell(first_of(outcome), watched, cap_seconds)
            if command in ("backfill", "run") and watched.started is None and watched.exit_code == 0:
                cell = f"nothing due: {watched.seconds:.2f} s"
            elif command in ("backfill", "run") and watched.done is not None:
                cell += f" / {watched.done:.2f} s"
            if command == "run" and watched.exit_code is not None:
                cell += f"; {watched.seconds:.1f} s"
            row += [cell, rss_cell(watched, cap_mb)]
        ours = found.get("this tree")
        row.append("—" if ours is None else ("" if ours.ok else "FAILED: ") + ours.check)
        out.append(row)
    return out


def targets(outcomes: list[Outcome]) -> list[tuple[str, bool, str]]:
    ours = [o for o in outcomes if o.version == "this tree"]
    worst_rss = max(ours, key=lambda o: o.watched.peak_mb if o.watched.stopped != "memory" else 1e12)
    firsts = [(first_of(o), o) for o in ours if o.command != "status"]
    late = [(f, o) for f, o in firsts if f is None or f > FIRST_TARGET_SECONDS]
    slowest = max(firsts, key=lambda p: float("inf") if p[0] is None else p[0])
    return [
        (
            f"peak RSS ≤ {RSS_TARGET_MB:.0f} MB whatever the range",
            worst_rss.watched.stopped != "memory" and worst_rss.watched.peak_mb <= RSS_TARGET_MB,
            f"largest {worst_rss.watched.peak_mb:.0f} MB ({worst_rss.command}, {worst_rss.scenario.label})",
        ),
        (
            f"first line / first window within {FIRST_TARGET_SECONDS:.0f} s",
            not late,
            f"slowest {slowest[0] if slowest[0] is None else round(slowest[0], 2)} s "
            f"({slowest[1].command}, {slowest[1].scenario.label})" + (f"; {len(late)} late" if late else ""),
        ),
        ("every check of this tree", all(o.ok for o in ours), f"{sum(o.ok for o in ours)}/{len(ours)}"),
    ]


# -- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="also run this commit's code, in the same run (e.g. 46914fe)")
    parser.add_argument("--ranges", nargs="*", choices=list(RANGES), default=list(RANGES))
    parser.add_argument("--zones", nargs="*", default=["UTC", "Europe/Zurich"])
    parser.add_argument("--commands", nargs="*", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--no-full-ledger", action="store_true", help="skip the ledger holding a year done")
    parser.add_argument("--lines", type=int, default=1000, help="dry-run lines read (default 1000)")
    parser.add_argument(
        "--after-first", type=float, default=3.0, help="a backfill runs on this long after its first window"
    )
    parser.add_argument("--cap-seconds", type=float, default=60.0, help="stop a child after this long")
    parser.add_argument("--cap-mb", type=float, default=1000.0, help="stop a child past this RSS")
    args = parser.parse_args()

    report: dict[str, Any] = {"started": dt.datetime.now(dt.UTC).isoformat(), "machine": machine()}
    report["command"] = " ".join(["python -m bench.planning", *sys.argv[1:]])
    versions = [Version("this tree", ROOT)]
    with tempfile.TemporaryDirectory(prefix="rollup-planning-") as tmp:
        workdir = Path(tmp)
        if args.base:
            commit = resolve(args.base)
            report["base"] = commit
            versions.insert(0, Version(commit[:7], extract(commit, workdir)))
        reference = (time.time_ns() // (60 * S) - 1) * 60 * S
        report["reference"] = iso(reference)
        scenarios = [Scenario(zone, name) for zone in args.zones for name in args.ranges]
        if not args.no_full_ledger:
            scenarios += [Scenario("UTC", n, True) for n in args.ranges if RANGES[n] >= FULL_DAYS]
        server = start_influxd(workdir / "influxd")
        outcomes: list[Outcome] = []
        try:
            client = httpx.Client(base_url=server.url, timeout=60)
            client.post("/query", data={"q": f"CREATE DATABASE {DATABASE}"}).raise_for_status()
            long_ago = (reference - (max(RANGES.values()) + 30) * DAY_NS) // S
            write(client, DATABASE, iter([f"interface,agent_host=h,ifName=x ifHCInOctets=1i {long_ago}"]))
            planning = Planning(
                workdir, server.url, reference, args.cap_seconds, args.cap_mb, args.lines, args.after_first
            )
            if any(s.full_ledger for s in scenarios):
                planning.fill(versions[0], versions[1:])
            for scenario in scenarios:
                for command in args.commands:
                    for version in versions:
                        outcome = planning.measure(command, scenario, version)
                        outcomes.append(outcome)
                        log(f"{command:8} {scenario.label:40} {version.name:9} "
                            f"{first_of(outcome) or 0:7.2f} s {outcome.watched.peak_mb:6.0f} MB  "
                            f"{outcome.watched.stopped or ''} {outcome.check}")  # fmt: skip
        finally:
            server.stop()
    names = [v.name for v in versions]
    table = rows(outcomes, args.cap_seconds, args.cap_mb, names)
    checked = targets(outcomes)
    print(f"T = {report['reference']}; caps: {args.cap_seconds:.0f} s, {args.cap_mb:,.0f} MB per process\n")
    print(markdown(table))
    print("\n" + "\n".join(f"{'met   ' if ok else 'MISSED'}  {name}: {value}" for name, ok, value in checked))
    report |= {
        "caps": {"seconds": args.cap_seconds, "mb": args.cap_mb},
        "outcomes": [o.as_json() for o in outcomes],
        "table": table,
        "targets": [{"target": n, "met": ok, "value": v} for n, ok, v in checked],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-planning.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    log(f"written to {path.relative_to(ROOT)}")
    return 0 if all(ok for _, ok, _ in checked) else 1


if __name__ == "__main__":
    sys.exit(main())

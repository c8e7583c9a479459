"""The ``rollup`` command.

Exit codes (documented in README, relied on by cron and Kubernetes):

* 0 — every window asked for succeeded (or there was nothing to do);
* 1 — at least one window failed (it stays owed and is retried);
* 2 — bad configuration or usage: nothing was started;
* 130 — interrupted (Ctrl-C / SIGINT); ``serve`` exits 0 on SIGTERM or SIGINT once the windows in
  flight are finished or released, and 128 + the signal number on a second one.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window
from rollup.errors import ConfigError, RollupError
from rollup.jobs.clock import Clock
from rollup.jobs.instants import parse_instant
from rollup.jobs.passes import PassReport, run_pass
from rollup.jobs.planner import RangePlan, plan_range, require_owed_range
from rollup.jobs.runner import JobRunner, WindowOutcome
from rollup.jobs.spec import JobSpec
from rollup.jobs.status import JobStatus, job_status
from rollup.jobs.tracked import Skipped, TrackedRunner
from rollup.jobs.workspace import Workspace
from rollup.logs import setup_logging
from rollup.secrets import redact
from rollup.settings import load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


class _State:
    def __init__(self, config: Path | None, log_format: str | None, log_level: str | None):
        self.config = config
        self.log_format = log_format
        self.log_level = log_level

    def workspace(self) -> Workspace:
        settings = load_settings(self.config)
        setup_logging(
            self.log_format or settings.log_format,  # type: ignore[arg-type]
            self.log_level or settings.log_level,
        )
        return Workspace(settings)


def _fail(message: str, code: int) -> None:
    stderr.print(f"[bold red]error:[/] {escape(redact(message))}", highlight=False, markup=True)
    sys.exit(code)


def _guarded(action: Callable[[], int]) -> None:
    """Run ``action``: configuration errors exit 2, Ctrl-C exits 130, otherwise its own code."""
    try:
        code = action()
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    except RollupError as exc:
        _fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    else:
        sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ROLLUP_CONFIG",
    help="Settings file (default: config/rollup.toml when present). Env: ROLLUP_CONFIG.",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log lines as text or JSON objects.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Log level.")
@click.version_option(package_name="rollup")
@click.pass_context
def main(ctx: click.Context, config: Path | None, log_format: str | None, log_level: str | None) -> None:
    """Roll raw InfluxDB counters up into per-window aggregates for InfluxDB, Elasticsearch, OpenSearch.

    Jobs live in jobs/*.toml, sink profiles in sinks/*.toml, source profiles and settings in
    config/rollup.toml. Exit codes: 0 all windows succeeded, 1 some failed, 2 bad configuration
    or usage (nothing started), 130 interrupted.
    """
    ctx.obj = _State(config, log_format, log_level)


# -- jobs -------------------------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """List and validate job files."""


@jobs.command("list")
@click.pass_obj
def jobs_list(state: _State) -> None:
    """Show every job: window, time zone, source, fields and sinks."""

    def action() -> int:
        workspace = state.workspace()
        table = Table("job", "enabled", "window", "timezone", "source", "fields", "sinks")
        for job in workspace.jobs:
            table.add_row(
                job.name,
                "yes" if job.enabled else "no",
                job.window.every.text + (f" +{job.window.offset}" if job.window.offset.nanos else ""),
                job.window.timezone,
                f"{job.source.profile}:{job.source.database}.{job.source.measurement}",
                ", ".join(job.fields),
                ", ".join(job.output.sinks),
            )
        stdout.print(table)
        return EXIT_OK

    _guarded(action)


@jobs.command("validate")
@click.pass_obj
def jobs_validate(state: _State) -> None:
    """Check every job file (and the profiles it names); exit 2 if any is invalid."""

    def action() -> int:
        workspace = state.workspace()
        files = workspace.scan()
        bad = 0
        for entry in files:
            if entry.errors:
                bad += 1
                for error in entry.errors:
                    stderr.print(f"[red]invalid[/] {escape(redact(error))}", highlight=False)
            else:
                stdout.print(f"[green]ok[/] {entry.path} (job {entry.job.name if entry.job else '?'})")
        if not files:
            stderr.print(f"no job files in {workspace.settings.jobs_dir}")
        stdout.print(f"{len(files) - bad} valid, {bad} invalid")
        return EXIT_CONFIG if bad else EXIT_OK

    _guarded(action)


# -- time ranges ------------------------------------------------------------------------------


def _bounds(job: JobSpec, start: str, end: str, now: int) -> tuple[int, int]:
    try:
        first = parse_instant(start, job.window.timezone, now)
        last = parse_instant(end, job.window.timezone, now)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if last <= first:
        raise ConfigError(f"--end ({end}) must be after --start ({start})")
    return first, last


def _range(job: JobSpec, start: str, end: str) -> list[Window]:
    return job.grid.windows(*_bounds(job, start, end, time.time_ns()))


def _clock(now: str | None) -> Clock:
    if now is None:
        return Clock()
    try:
        return Clock(parse_instant(now, "UTC", time.time_ns()))
    except ValueError as exc:
        raise ConfigError(f"--now: {exc}") from None


_start_option = click.option(
    "--start",
    required=True,
    help="First instant: 2026-11-01 (local midnight), 2026-11-01T06:00Z, now-2d, yesterday.",
)
_end_option = click.option("--end", required=True, help="End instant (exclusive), same forms as --start.")
_now_option = click.option(
    "--now",
    envvar="ROLLUP_NOW",
    metavar="TIME",
    help="Act as if the clock read TIME (2026-11-03T00:15Z; a date or time without zone is UTC), "
    "for dry runs and tests. Env: ROLLUP_NOW.",
)


# -- preview ----------------------------------------------------------------------------------


@main.command()
@click.argument("job_name", metavar="JOB")
@_start_option
@_end_option
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout."
)
@click.option(
    "--coverage/--no-coverage", default=False, help="Also show samples, seconds, resets, gaps, invalid."
)
@click.pass_obj
def preview(
    state: _State, job_name: str, start: str, end: str, fmt: str, output: Path | None, coverage: bool
) -> None:
    """Compute a job over a time range and show the result; nothing is written to any sink.

    Windows need not be closed: preview is for trying a job before enabling it.
    """

    def action() -> int:
        workspace = state.workspace()
        job = workspace.job(job_name)
        windows = _range(job, start, end)
        runner = JobRunner(job, workspace.source_for(job))
        rows: list[OutputRow] = []
        for span in runner.spans(windows):
            for result in runner.compute(span):
                rows.extend(result.rows)
        columns = _value_columns(job, rows, coverage)
        if fmt == "table" and output is None:
            _print_table(job, rows, columns)
        else:
            text = _render(job, rows, columns, "csv" if fmt == "table" else fmt)
            if output is None:
                sys.stdout.write(text)
            else:
                output.write_text(text, encoding="utf-8")
                stderr.print(f"wrote {len(rows)} rows to {output}")
        return EXIT_OK

    _guarded(action)


_COVERAGE = ("_samples", "_invalid", "_seconds", "_resets", "_gaps")


def _value_columns(job: JobSpec, rows: Sequence[OutputRow], coverage: bool) -> list[str]:
    names: list[str] = []
    for row in rows:
        for name in row.values:
            if name not in names and (coverage or not name.endswith(_COVERAGE)):
                names.append(name)
    return names


def _tag_columns(rows: Sequence[OutputRow]) -> list[str]:
    return sorted({key for row in rows for key in row.tags})


def _print_table(job: JobSpec, rows: Sequence[OutputRow], columns: list[str]) -> None:
    tags = _tag_columns(rows)
    table = Table("window", *tags, *columns, title=f"{job.name}: {len(rows)} rows")
    for row in rows:
        values = [_number(row.values.get(c)) for c in columns]
        table.add_row(job.local_time(row.window.start), *(row.tags.get(t, "") for t in tags), *values)
    stdout.print(table)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _render(job: JobSpec, rows: Sequence[OutputRow], columns: list[str], fmt: str) -> str:
    tags = _tag_columns(rows)
    records: list[dict[str, Any]] = []
    for row in rows:
        record: dict[str, Any] = {
            "window_start": job.local_time(row.window.start),
            "window_end": job.local_time(row.window.end),
        }
        record.update({t: row.tags.get(t, "") for t in tags})
        record.update({c: row.values.get(c) for c in columns})
        records.append(record)
    if fmt == "json":
        return orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["window_start", "window_end", *tags, *columns])
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


# -- backfill ---------------------------------------------------------------------------------


@main.command()
@click.argument("job_name", metavar="JOB")
@_start_option
@_end_option
@click.option("--force", is_flag=True, help="Also re-run windows the ledger holds as done.")
@click.option("--dry-run", is_flag=True, help="List the windows that would run (and which are done).")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
@_now_option
@click.pass_obj
def backfill(
    state: _State,
    job_name: str,
    start: str,
    end: str,
    force: bool,
    dry_run: bool,
    progress: bool | None,
    now: str | None,
) -> None:
    """Compute and write every closed window of a job in a time range, through the ledger.

    Windows the ledger holds as done are skipped unless --force, so a second call continues
    where an interrupted one stopped. Windows not closed yet (end + delay in the future), older
    than the buffer retention, or being run by another process are skipped too.
    """

    def action() -> int:
        workspace = state.workspace()
        job = workspace.job(job_name)
        clock = _clock(now)
        first, last = _bounds(job, start, end, clock.now())
        policy = workspace.policy_for(job)
        with ExitStack() as stack:
            ledger = stack.enter_context(workspace.ledger())
            edges = job.grid.boundaries(first, last)
            snapshot = ledger.snapshot(job.name, int(edges[0]), int(edges[-1]))
            plan = plan_range(job.grid, policy, snapshot, clock.now(), first, last, force)
            _explain_skips(plan)
            if dry_run:
                _print_range_plan(job, plan)
                return EXIT_OK
            runner = JobRunner(job, workspace.source_for(job), workspace.sinks_for(job))
            stack.callback(runner.close)
            tracked = TrackedRunner(runner, ledger, clock, workspace.settings.ledger_lease.nanos)
            show = sys.stderr.isatty() if progress is None else progress
            outcomes = _run_with_progress(job, tracked.run(plan.due), len(plan.due), show)
            return _summarize(job, outcomes)

    _guarded(action)


def _explain_skips(plan: RangePlan) -> None:
    if plan.not_closed:
        stderr.print(f"skipping {plan.not_closed} window(s) not closed yet")
    if plan.too_old:
        stderr.print(
            f"skipping {len(plan.too_old)} window(s) older than the buffer retention: their raw data is gone"
        )
    if plan.running:
        stderr.print(f"skipping {len(plan.running)} window(s) another process is running")
    if plan.done:
        stderr.print(f"skipping {len(plan.done)} window(s) already done (--force re-runs them)")


_DUE_LABELS = {
    "missing": "run",
    "failed": "run (failed before)",
    "expired": "run (its last run was cut short)",
    "recompute": "run (recompute)",
    "forced": "run (done before; --force)",
}


def _print_range_plan(job: JobSpec, plan: RangePlan) -> None:
    rows = [(d.window, _DUE_LABELS[d.reason]) for d in plan.due]
    rows += [(w, "done, skipped") for w in plan.done]
    rows += [(w, "running elsewhere, skipped") for w in plan.running]
    rows += [(w, "older than the buffer retention, skipped") for w in plan.too_old]
    for window, label in sorted(rows, key=lambda row: row[0].start):
        stdout.print(
            f"{job.local_time(window.start)}  →  {job.local_time(window.end)}  {label}",
            markup=False,
            highlight=False,
        )
    stdout.print(f"{len(plan.due)} window(s) would run, {len(plan.done)} already done")


def _run_with_progress(
    job: JobSpec, items: Iterable[WindowOutcome | Skipped], total: int, show: bool
) -> list[WindowOutcome]:
    outcomes: list[WindowOutcome] = []
    started = time.monotonic()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("windows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr, disable=not show, transient=False) as bar:
        task = bar.add_task(job.name, total=total, rate="")
        points = 0
        for item in items:
            if isinstance(item, Skipped):
                bar.update(task, advance=1)
                stderr.print(
                    f"skipped {job.local_time(item.window.start)}: another process claimed it", markup=False
                )
                continue
            outcomes.append(item)
            points += item.points
            elapsed = max(time.monotonic() - started, 1e-9)
            bar.update(task, advance=1, rate=f"{points / elapsed:,.0f} points/s")
            _log_outcome(job, item, show)
    return outcomes


def _log_outcome(job: JobSpec, outcome: WindowOutcome, quiet: bool) -> None:
    logger = logging.getLogger("rollup.backfill")
    context = {
        "job": job.name,
        "window": job.local_time(outcome.window.start),
        "points": outcome.points,
        "rows": outcome.rows,
        "duration": round(outcome.seconds, 3),
    }
    if outcome.error is not None:
        logger.error("window failed: %s", outcome.error, extra={**context, "event": "window_failed"})
    elif not quiet:
        logger.info("window done", extra={**context, "event": "window_done"})


def _summarize(job: JobSpec, outcomes: Sequence[WindowOutcome]) -> int:
    failed = [o for o in outcomes if not o.ok]
    points = sum(o.points for o in outcomes)
    rows = sum(o.rows for o in outcomes)
    stderr.print(
        f"{job.name}: {len(outcomes) - len(failed)} window(s) done, {len(failed)} failed; "
        f"{points:,} points read, {rows:,} rows written"
    )
    for outcome in failed[:5]:
        reason = escape(redact(outcome.error or ""))  # "field [host] of type [long]" is not markup
        stderr.print(f"  [red]failed[/] {job.local_time(outcome.window.start)}: {reason}")
    return EXIT_FAILED if failed else EXIT_OK


# -- run --------------------------------------------------------------------------------------


@main.command("run")
@click.argument("job_names", nargs=-1, metavar="[JOB]...")
@_now_option
@click.pass_obj
def run_command(state: _State, job_names: tuple[str, ...], now: str | None) -> None:
    """Run every window owed by every enabled job (or by the named jobs) once, then exit.

    Owed: closed windows since the job's start (or the buffer retention) not done yet, failed
    windows whose retry backoff has passed, windows whose claim expired, and the last
    [schedule] recompute windows; oldest first, at most [schedule] max_windows_per_pass per job.
    For a cron job or a Kubernetes CronJob: exit 0 if every window run succeeded (or nothing
    was owed), 1 if any failed (it stays owed), 2 if the configuration is invalid.
    """

    def action() -> int:
        workspace = state.workspace()
        jobs = [workspace.job(n) for n in job_names] or [j for j in workspace.jobs if j.enabled]
        clock = _clock(now)
        policies = {job.name: workspace.policy_for(job) for job in jobs}
        for job in jobs:
            require_owed_range(job, policies[job.name])
        logger = logging.getLogger("rollup.run")
        failures = 0
        with ExitStack() as stack:
            runners = {}
            for job in jobs:
                runners[job.name] = JobRunner(job, workspace.source_for(job), workspace.sinks_for(job))
                stack.callback(runners[job.name].close)
            ledger = stack.enter_context(workspace.ledger())
            for job in jobs:
                try:
                    report = run_pass(
                        job,
                        policies[job.name],
                        runners[job.name],
                        ledger,
                        clock,
                        workspace.settings.ledger_lease.nanos,
                    )
                except RollupError as exc:
                    failures += 1
                    logger.error("pass failed: %s", exc, extra={"job": job.name, "event": "pass_failed"})
                    continue
                except Exception:  # one job's bug must not stop the others
                    failures += 1
                    logger.exception("pass failed", extra={"job": job.name, "event": "pass_failed"})
                    continue
                failures += len(report.failed)
                _log_pass(job, report, logger)
        return EXIT_FAILED if failures else EXIT_OK

    _guarded(action)


def _log_pass(job: JobSpec, report: PassReport, logger: logging.Logger) -> None:
    for outcome in report.failed:
        logger.error(
            "window failed: %s",
            outcome.error,
            extra={"job": job.name, "window": job.local_time(outcome.window.start), "event": "window_failed"},
        )
    logger.info(
        "pass: %s",
        report.summary(),
        extra={"job": job.name, "event": "pass_done", "points": report.points, "rows": report.rows},
    )


# -- serve ------------------------------------------------------------------------------------


@main.command()
@click.pass_obj
def serve(state: _State) -> None:
    """Run every enabled job as its windows close, until stopped; serve health and metrics.

    Each job's pass runs as one of its windows closes (end + delay, in the job's time zone) and
    at least every [serve] sweep, catching up whatever is owed (windows missed while the service
    was down, failed windows after their backoff). HTTP on [serve] host:port (127.0.0.1:9108):
    /healthz, /readyz, /metrics. SIGHUP reloads job files and sink profiles (kept if invalid);
    SIGTERM or SIGINT finishes the windows in flight and exits 0, a second one exits at once.
    Exit 2 if the configuration is invalid or the port cannot be bound.
    """

    def action() -> int:
        from rollup.service.app import Service  # APScheduler and prometheus-client load only here

        return Service(state.workspace().settings).run()

    _guarded(action)


# -- status -----------------------------------------------------------------------------------


@main.command()
@click.argument("job_names", nargs=-1, metavar="[JOB]...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job, in a list.")
@_now_option
@click.pass_obj
def status(state: _State, job_names: tuple[str, ...], as_json: bool, now: str | None) -> None:
    """Show, per job, how many windows are done, failed, owed and unrecoverable.

    owed: closed windows not done yet (failed ones included); unrecoverable: windows that fell
    out of the buffer retention without ever being done.
    """

    def action() -> int:
        workspace = state.workspace()
        jobs = [workspace.job(n) for n in job_names] or workspace.jobs
        clock = _clock(now)
        with workspace.ledger() as ledger:
            found = [job_status(job, workspace.policy_for(job), ledger, clock.now()) for job in jobs]
        if as_json:
            sys.stdout.write(orjson.dumps([s.as_json() for s in found], option=orjson.OPT_INDENT_2).decode())
            sys.stdout.write("\n")
        else:
            _print_status(found)
        return EXIT_OK

    _guarded(action)


def _print_status(found: Sequence[JobStatus]) -> None:
    table = Table(title="windows per job")
    table.add_column("job", overflow="fold")
    for name in ("done", "running", "failed", "owed", "unrecoverable"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    table.add_column("oldest owed", overflow="fold")
    table.add_column("last error", overflow="fold")
    for entry in found:
        failure = entry.last_failure
        last_error = Text()
        if failure is not None:
            text = redact(failure.error or "")
            last_error = Text(f"{_short(entry.job, failure.window.start)}: {text[:200]}")
        table.add_row(
            entry.job.name + ("" if entry.job.enabled else " (disabled)"),
            str(entry.done),
            str(entry.running),
            str(entry.failed) + (f" ({entry.waiting} waiting)" if entry.waiting else ""),
            "?" if entry.owed is None else str(entry.owed),
            str(entry.unrecoverable),
            "" if entry.oldest_owed is None else _short(entry.job, entry.oldest_owed.start),
            last_error,
        )
    if sys.stdout.isatty():
        stdout.print(table)
    else:  # piped or logged: never fold a line
        wide = Measurement.get(stdout, stdout.options.update_width(1000), table).maximum
        Console(width=max(80, wide)).print(table)
    if any(entry.owed is None for entry in found):
        stdout.print("?: the job sets neither start nor a buffer retention, so what it owes is unknown")


def _short(job: JobSpec, ns: int) -> str:
    """``2026-11-02 00:00`` in the job's time zone (tables; JSON has the full ISO form)."""
    return job.local_time(ns)[:16].replace("T", " ")

"""The ``rollup`` command.

Exit codes (documented in README, relied on by cron and Kubernetes):

* 0 — every window asked for succeeded (or there was nothing to do);
* 1 — at least one window failed (it stays owed and is retried);
* 2 — bad configuration or usage: nothing was started;
* 130 — interrupted (Ctrl-C / SIGINT).
"""

from __future__ import annotations

import csv
import io
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window, format_instant, load_zone
from rollup.errors import ConfigError, RollupError
from rollup.jobs.instants import parse_instant
from rollup.jobs.runner import JobRunner, WindowOutcome
from rollup.jobs.spec import JobSpec
from rollup.jobs.workspace import Workspace
from rollup.logs import setup_logging
from rollup.redact import redact
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
    """Roll raw InfluxDB counters up into per-window aggregates, written to InfluxDB or Elasticsearch.

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
                job.window.every + (f" +{job.window.offset}" if job.window.offset != "0s" else ""),
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


def _range(job: JobSpec, start: str, end: str) -> list[Window]:
    now = time.time_ns()
    try:
        first = parse_instant(start, job.window.timezone, now)
        last = parse_instant(end, job.window.timezone, now)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if last <= first:
        raise ConfigError(f"--end ({end}) must be after --start ({start})")
    return job.grid.windows(first, last)


def _local(job: JobSpec, ns: int) -> str:
    return format_instant(ns, load_zone(job.window.timezone))


_start_option = click.option(
    "--start",
    required=True,
    help="First instant: 2026-11-01 (local midnight), 2026-11-01T06:00Z, now-2d, yesterday.",
)
_end_option = click.option("--end", required=True, help="End instant (exclusive), same forms as --start.")


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
        table.add_row(_local(job, row.window.start), *(row.tags.get(t, "") for t in tags), *values)
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
            "window_start": _local(job, row.window.start),
            "window_end": _local(job, row.window.end),
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
@click.option("--dry-run", is_flag=True, help="List the windows that would run, run nothing.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
@click.pass_obj
def backfill(
    state: _State, job_name: str, start: str, end: str, dry_run: bool, progress: bool | None
) -> None:
    """Compute and write every closed window of a job in a time range.

    Windows that are not closed yet (end + delay still in the future) are skipped.
    """

    def action() -> int:
        workspace = state.workspace()
        job = workspace.job(job_name)
        windows = _range(job, start, end)
        now = time.time_ns()
        closed = [w for w in windows if w.end + job.window.delay_ns <= now]
        if len(closed) < len(windows):
            stderr.print(f"skipping {len(windows) - len(closed)} window(s) not closed yet")
        if dry_run:
            for window in closed:
                stdout.print(f"{_local(job, window.start)}  →  {_local(job, window.end)}")
            stdout.print(f"{len(closed)} window(s) would run")
            return EXIT_OK
        runner = JobRunner(job, workspace.source_for(job), workspace.sinks_for(job))
        show = sys.stderr.isatty() if progress is None else progress
        outcomes = _run_with_progress(job, runner, closed, show)
        return _summarize(job, outcomes)

    _guarded(action)


def _run_with_progress(
    job: JobSpec, runner: JobRunner, windows: Sequence[Window], show: bool
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
        task = bar.add_task(job.name, total=len(windows), rate="")
        points = 0
        for outcome in runner.run(windows):
            outcomes.append(outcome)
            points += outcome.points
            elapsed = max(time.monotonic() - started, 1e-9)
            bar.update(task, advance=1, rate=f"{points / elapsed:,.0f} points/s")
            _log_outcome(job, outcome, show)
    return outcomes


def _log_outcome(job: JobSpec, outcome: WindowOutcome, quiet: bool) -> None:
    logger = logging.getLogger("rollup.backfill")
    context = {
        "job": job.name,
        "window": _local(job, outcome.window.start),
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
        stderr.print(f"  [red]failed[/] {_local(job, outcome.window.start)}: {reason}")
    return EXIT_FAILED if failed else EXIT_OK

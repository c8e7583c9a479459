"""``rollup status``: what each job has done and owes, or the windows of one job."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
import orjson
from rich.table import Table
from rich.text import Text

from rollup.app.status import JobStatus, WindowRows, statuses, window_rows
from rollup.cli.base import EXIT_OK, State, clock, guarded, main, now_option
from rollup.cli.render import short_time
from rollup.core.windows import format_instant, load_zone
from rollup.errors import ConfigError
from rollup.ledger.base import Status
from rollup.secrets import redact


@main.command("status")
@click.argument("job_names", nargs=-1, metavar="[JOB]...")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.option(
    "--windows", "show_windows", is_flag=True, help="The job's windows (newest first), one per row."
)
@click.option("--failed", is_flag=True, help="With --windows: only failed and unrecoverable windows.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="With --windows: at most N."
)
@now_option
@click.pass_obj
def status_command(
    state: State,
    job_names: tuple[str, ...],
    as_json: bool,
    show_windows: bool,
    failed: bool,
    limit: int,
    now: str | None,
) -> None:
    """Show, per job, how many windows are done, empty, running, failed, owed and unrecoverable, and
    the oldest owed window; or, with --windows JOB, each window's state, attempts, last error,
    points, rows and duration.

    owed: closed windows not done yet (failed ones included); unrecoverable: windows that fell
    out of the buffer retention without ever being done; empty: done, but the source had no point.
    A job that reads another job shows, next to owed, the windows waiting for that job.
    """

    def action() -> int:
        workspace = state.workspace()
        if show_windows:
            if len(job_names) != 1:
                raise ConfigError(
                    "--windows shows the windows of one job: name it (rollup status JOB --windows)"
                )
            wanted: Sequence[Status] | None = ("failed", "unrecoverable") if failed else None
            rows = window_rows(workspace, workspace.job(job_names[0]), wanted, limit)
            _print_windows(state, rows, as_json)
            return EXIT_OK
        jobs = [workspace.job(n) for n in job_names] or workspace.jobs
        found = statuses(workspace, jobs, clock(now, writes=False).now())
        if as_json:
            sys.stdout.write(orjson.dumps([s.as_json() for s in found], option=orjson.OPT_INDENT_2).decode())
            sys.stdout.write("\n")
        else:
            _print_status(state, found)
        if not job_names:
            for problem in workspace.problems:
                state.out.error(problem, event="job_file_invalid")
        return EXIT_OK

    guarded(state, action)


def _print_status(state: State, found: Sequence[JobStatus]) -> None:
    table = Table(title="windows per job")
    table.add_column("job", overflow="fold")
    for name in ("done", "running", "failed", "owed", "unrecoverable", "empty"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    table.add_column("oldest owed", overflow="fold")
    table.add_column("last error", overflow="fold")
    for entry in found:
        failure = entry.last_failure
        last_error = Text()
        if failure is not None:
            nature = {True: " (transient)", False: " (needs a fix)", None: ""}[failure.transient]
            text = redact(failure.error or "")[:200]
            last_error = Text(f"{short_time(entry.job, failure.window.start)}{nature}: {text}")
        owed = "?" if entry.owed is None else ("≤" if entry.origin_pending else "") + str(entry.owed)
        if entry.waiting_upstream:
            owed += f" (+{entry.waiting_upstream} waiting for {entry.job.upstream})"
        table.add_row(
            entry.job.name + ("" if entry.job.enabled else " (disabled)"),
            str(entry.done),
            str(entry.running),
            str(entry.failed) + (f" ({entry.waiting} waiting)" if entry.waiting else ""),
            owed,
            str(entry.unrecoverable),
            str(entry.empty),
            "" if entry.oldest_owed is None else short_time(entry.job, entry.oldest_owed.start),
            last_error,
        )
    state.out.table(table)
    if any(entry.owed is None for entry in found):
        state.out.line("?: the job sets neither start nor a buffer retention, so what it owes is unknown")
    if any(entry.origin_pending for entry in found):
        state.out.line(
            "≤: the job has no start and has not run yet: its first pass begins with its oldest point "
            "(a job reading a job: where that job begins)"
        )


def _print_windows(state: State, rows: WindowRows, as_json: bool) -> None:
    job = rows.job
    zone = load_zone(job.window.timezone)
    if as_json:
        records = [
            {
                "window_start": format_instant(r.window.start, zone),
                "window_end": format_instant(r.window.end, zone),
                "status": "empty" if r.status == "done" and r.points == 0 else r.status,
                "attempts": r.attempts,
                "error": None if r.error is None else redact(r.error),
                "transient": r.transient,
                "points": r.points,
                "rows": r.rows,
                "duration": r.duration,
                "finished": None if r.finished is None else format_instant(r.finished, zone),
                "owner": r.owner,
            }
            for r in rows.records
        ]
        sys.stdout.write(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(title=f"{job.name}: windows ({job.window.timezone}), newest first")
    for name in ("window", "status", "attempts", "points", "rows", "seconds", "last error"):
        table.add_column(
            name, justify="right" if name in ("attempts", "points", "rows", "seconds") else "left"
        )
    for r in rows.records:
        status = "empty" if r.status == "done" and r.points == 0 else r.status
        table.add_row(
            short_time(job, r.window.start),
            status,
            str(r.attempts),
            f"{r.points:,}",
            f"{r.rows:,}",
            "" if r.duration is None else f"{r.duration:.2f}",
            Text(redact(r.error or "")[:200]),
        )
    state.out.table(table)

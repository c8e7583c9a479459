"""``rollup backfill``: every closed window of a range, through the ledger, with a progress bar."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import ExitStack

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from rollup.app.backfill import BackfillReport, BackfillRequest, backfill, check_retention, range_plan
from rollup.app.execution import Skipped
from rollup.app.session import Session
from rollup.cli.base import (
    EXIT_FAILED,
    EXIT_OK,
    State,
    bounds,
    clock,
    end_option,
    guarded,
    main,
    now_option,
    start_option,
)
from rollup.cli.render import Out, short_time
from rollup.jobs.planner import Plan, Tally
from rollup.jobs.runner import WindowOutcome
from rollup.jobs.spec import JobSpec

log = logging.getLogger("rollup.backfill")

_DUE_LABELS = {
    "missing": "run",
    "failed": "run (failed before)",
    "expired": "run (its last run was cut short)",
    "recompute": "run (recompute)",
    "forced": "run (done before; --force)",
    "upstream": "run (the job it reads re-ran a window of it)",
}
_OTHER_LABELS = {
    "done": "done, skipped",
    "running": "running elsewhere, skipped",
    "too_old": "older than the buffer retention, refused (--ignore-retention runs it)",
    "not_closed": "not closed yet, skipped",
    "waiting": "run (failed before)",
    "waiting_upstream": "waits for the job it reads (not all its windows are done), skipped",
}


@main.command("backfill")
@click.argument("job_name", metavar="JOB")
@start_option
@end_option
@click.option("--force", is_flag=True, help="Also re-run windows the ledger holds as done.")
@click.option("--dry-run", is_flag=True, help="List the windows of the range and what would happen to each.")
@click.option(
    "--ignore-retention",
    is_flag=True,
    help="Also run windows older than the buffer retention setting (their raw data may be partly gone).",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)
@now_option
@click.pass_obj
def backfill_command(
    state: State,
    job_name: str,
    start: str,
    end: str,
    force: bool,
    dry_run: bool,
    ignore_retention: bool,
    progress: bool | None,
    now: str | None,
) -> None:
    """Compute and write every closed window of a job in a time range, through the ledger.

    Windows the ledger holds as done are skipped unless --force, so a second call continues
    where an interrupted one stopped. Windows not closed yet are skipped. Windows older than the
    buffer retention setting are refused (exit 2) unless --ignore-retention. Windows a live process
    holds are waited for (run here if it fails or dies); those of a process that died are taken
    over at once.
    """

    def action() -> int:
        workspace = state.workspace()
        job = workspace.job(job_name)
        timing = clock(now, writes=not dry_run)
        first, last = bounds(job, start, end, timing)
        request = BackfillRequest(job, first, last, force, ignore_retention)
        with ExitStack() as stack:
            ledger = stack.enter_context(workspace.ledger())
            session = Session(workspace, ledger, timing)
            if dry_run:
                current = range_plan(session, request)
                tally = current.tally()
                check_retention(session, request, tally)
                _print_plan(state, job, current, tally)
                return EXIT_OK
            show = sys.stderr.isatty() if progress is None else progress
            bar = ProgressBar(state.out, job, show)
            stack.enter_context(bar)
            report = backfill(session, request, bar.outcome, bar.points, bar.start)
        return _summarize(state, report)

    guarded(state, action)


def _print_plan(state: State, job: JobSpec, current: Plan, tally: Tally) -> None:
    for entry in current.entries():
        label = _DUE_LABELS[entry.reason] if entry.reason else _OTHER_LABELS[entry.verdict]
        state.out.line(
            f"{job.local_time(entry.window.start)}  →  {job.local_time(entry.window.end)}  {label}"
        )
    _explain(state.out, job, tally)
    state.out.line(f"{tally.due + tally.recompute} window(s) would run, {tally.done} already done")


def _explain(out: Out, job: JobSpec, tally: Tally) -> None:
    if tally.not_closed:
        out.say(f"skipping {tally.not_closed} window(s) not closed yet", event="not_closed", job=job.name)
    if tally.done:
        out.say(
            f"skipping {tally.done} window(s) already done (--force re-runs them)",
            event="already_done",
            job=job.name,
        )
    if tally.waiting_upstream:
        out.say(
            f"skipping {tally.waiting_upstream} window(s) waiting for job {job.upstream}",
            event="waiting_upstream",
            job=job.name,
        )


class ProgressBar:
    """The progress bar: windows done out of those due, and points read as they arrive."""

    def __init__(self, out: Out, job: JobSpec, show: bool):
        self._out = out
        self._job = job
        self._show = show
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("windows"),
            TextColumn("{task.fields[read]}"),
            TimeElapsedColumn(),
        )
        self._progress = Progress(*columns, console=out.stderr, disable=not show, transient=False)
        self._task: TaskID | None = None
        self._points = 0
        self._started = time.monotonic()

    def __enter__(self) -> ProgressBar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def start(self, tally: Tally) -> None:
        _explain(self._out, self._job, tally)
        self._task = self._progress.add_task(self._job.name, total=tally.due + tally.recompute, read="")

    def points(self, count: int) -> None:
        """Points read: the bar moves with them, before the window they belong to is done."""
        self._points += count
        if self._task is not None:
            rate = self._points / max(time.monotonic() - self._started, 1e-9)
            self._progress.update(self._task, read=f"{self.read()} ({rate:,.0f}/s)")

    def read(self) -> str:
        return f"{self._points:,} points"

    def refresh(self) -> None:
        self._progress.refresh()

    def outcome(self, item: WindowOutcome | Skipped) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=1)
        job = self._job
        if isinstance(item, Skipped):
            self._out.say(
                f"skipped {job.local_time(item.window.start)}: another process claimed it",
                event="window_skipped",
                job=job.name,
                window=job.local_time(item.window.start),
            )
            return
        context = {
            "job": job.name,
            "window": job.local_time(item.window.start),
            "points": item.points,
            "rows": item.rows,
            "duration": round(item.seconds, 3),
        }
        if item.error is not None:
            log.error("window failed: %s", item.error, extra={**context, "event": "window_failed"})
        elif not self._show:
            log.info("window done", extra={**context, "event": "window_done"})


def _summarize(state: State, report: BackfillReport) -> int:
    job = report.job
    done = f"{report.done} window(s) done" + (f" ({report.empty} empty)" if report.empty else "")
    state.out.say(
        f"{job.name}: {done}, {report.failed} failed; "
        f"{report.points:,} points read, {report.rows:,} rows written",
        event="backfill_done",
        job=job.name,
        points=report.points,
        rows=report.rows,
    )
    for outcome in report.failures:
        state.out.say(
            f"  failed {job.local_time(outcome.window.start)}: {outcome.error}", event="window_failed"
        )
    if report.reclaimed:
        state.out.say(
            f"took over {report.reclaimed} window(s) claimed by a process that died", event="claims_reclaimed"
        )
    if report.left:
        owners = sorted({record.owner or "?" for record in report.held}) or ["another process"]
        state.out.say(
            f"{len(report.left)} window(s) are held by another process ({', '.join(owners)}), from "
            f"{short_time(job, report.left[0].start)}: not run here and not done yet; run the backfill "
            "again once it is done or its lease ended",
            event="windows_held",
            level=logging.WARNING,
        )
    if report.tally.waiting_upstream:
        state.out.say(
            f"{report.tally.waiting_upstream} window(s) wait for job {job.upstream}: not all of its windows "
            f"they cover are done yet; backfill it first (rollup backfill {job.upstream} …), or let its "
            "passes run",
            event="waiting_upstream",
            level=logging.WARNING,
        )
    if report.unreachable:
        state.out.say(
            f"stopped: the source does not answer ({report.unreachable}); the windows left are still owed",
            event="source_unreachable",
            level=logging.ERROR,
        )
    return EXIT_OK if report.complete else EXIT_FAILED

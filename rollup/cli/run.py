"""``rollup run``: one pass of every enabled job, for cron and Kubernetes CronJobs."""

from __future__ import annotations

import logging
from functools import partial

import click

from rollup.app.passes import log_outcome, log_pass, run_pass
from rollup.app.session import Session
from rollup.cli.base import EXIT_FAILED, EXIT_OK, State, clock, guarded, main, now_option
from rollup.errors import ConfigError, RollupError
from rollup.jobs.planner import require_owed_range

log = logging.getLogger("rollup.run")


@main.command("run")
@click.argument("job_names", nargs=-1, metavar="[JOB]...")
@now_option
@click.pass_obj
def run_command(state: State, job_names: tuple[str, ...], now: str | None) -> None:
    """Run every window owed by every enabled job (or by the named jobs) once, then exit.

    Owed: closed windows since the job's start (or the buffer retention; a job without start
    begins with its oldest point in the buffer) not done yet, failed windows whose retry backoff
    has passed, windows whose claim expired, and the last [schedule] recompute windows; oldest
    first, at most [schedule] max_windows_per_pass per job. A job that reads another job runs
    after it. A job file that is broken is reported and the other jobs run.

    For a cron job or a Kubernetes CronJob: exit 0 if every window run succeeded (or nothing
    was owed), 1 if any failed (it stays owed) or a job file is broken, 2 if the configuration
    is invalid (nothing runs).
    """

    def action() -> int:
        workspace = state.workspace()
        named = [workspace.job(n) for n in job_names] or [j for j in workspace.jobs if j.enabled]
        jobs = workspace.in_ladder_order(named)
        problems = [] if job_names else workspace.problems
        if problems and not jobs:
            raise ConfigError("\n".join(problems))
        timing = clock(now, writes=True)
        for job in jobs:
            require_owed_range(job, workspace.policy_for(job))
        failures = 0
        with workspace.ledger() as ledger:
            session = Session(workspace, ledger, timing)
            for job in jobs:
                try:
                    report = run_pass(session, job, partial(log_outcome, job, done=False))
                except RollupError as exc:
                    failures += 1
                    log.error("pass failed: %s", exc, extra={"job": job.name, "event": "pass_failed"})
                    continue
                except Exception:  # one job's bug must not stop the others
                    failures += 1
                    log.exception("pass failed", extra={"job": job.name, "event": "pass_failed"})
                    continue
                failures += len(report.failed) + (report.unreachable is not None)
                log_pass(job, report)
        for problem in problems:
            state.out.error(problem, event="job_file_invalid")
        return EXIT_FAILED if failures or problems else EXIT_OK

    guarded(state, action)

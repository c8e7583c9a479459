"""``rollup jobs list|validate|show``."""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Iterator

import click
import orjson
from rich.table import Table

from rollup.app.validate import validate
from rollup.cli.base import EXIT_CONFIG, EXIT_OK, State, clock, guarded, main, now_option
from rollup.cli.render import short_time
from rollup.core.windows import Window
from rollup.jobs.spec import JobSourceSpec, JobSpec
from rollup.sources.influxql import build_query


@main.group()
def jobs() -> None:
    """List, validate and show job files."""


def _window(job: JobSpec) -> str:
    return job.window.every.text + (f" +{job.window.offset}" if job.window.offset.nanos else "")


def _source(job: JobSpec) -> str:
    source = job.source
    if isinstance(source, JobSourceSpec):
        return f"job {source.job}" + (f" (sink {source.sink})" if source.sink else "")
    return f"{source.profile}:{source.database}.{source.measurement}"


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job, in a list.")
@click.pass_obj
def jobs_list(state: State, as_json: bool) -> None:
    """Show every job: window, time zone, source, fields, sinks and description."""

    def action() -> int:
        workspace = state.workspace()
        found = workspace.jobs
        if as_json:
            records = [
                {
                    "job": job.name,
                    "description": job.description,
                    "enabled": job.enabled,
                    "window": job.window.every.text,
                    "offset": job.window.offset.text,
                    "timezone": job.window.timezone,
                    "source": _source(job),
                    "fields": list(job.fields),
                    "group_by": job.group_by,
                    "sinks": list(job.output.sinks),
                }
                for job in found
            ]
            sys.stdout.write(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            table = Table("job", "enabled", "window", "timezone", "source", "fields", "sinks", "description")
            for job in found:
                table.add_row(
                    job.name,
                    "yes" if job.enabled else "no",
                    _window(job),
                    job.window.timezone,
                    _source(job),
                    ", ".join(job.fields),
                    ", ".join(job.output.sinks),
                    job.description,
                )
            state.out.table(table)
        for problem in workspace.problems:
            state.out.error(problem, event="job_file_invalid")
        return EXIT_OK

    guarded(state, action)


@jobs.command("validate")
@click.option(
    "--online",
    is_flag=True,
    help="Also check each job against its source (measurement, fields, tags) and sinks.",
)
@click.pass_obj
def jobs_validate(state: State, online: bool) -> None:
    """Check every job file (and the profiles it names); exit 2 if any is invalid."""

    def action() -> int:
        report = validate(state.workspace(), online)
        for entry in report.files:
            if entry.ok:
                name = entry.job.name if entry.job else "?"
                state.out.line(f"ok {entry.path} (job {name})")
            for error in entry.errors:
                state.out.say(f"invalid {error}", event="job_file_invalid", level=logging.ERROR)
        for problem in report.profiles:
            state.out.say(f"invalid {problem}", event="sink_profile_invalid", level=logging.ERROR)
        if not report.files:
            state.out.say(f"no job files in {report.directory}", event="no_job_files")
        state.out.line(f"{len(report.files) - report.invalid} valid, {report.invalid} invalid")
        return EXIT_CONFIG if report.invalid else EXIT_OK

    guarded(state, action)


@jobs.command("show")
@click.argument("job_name", metavar="JOB")
@click.option(
    "--windows", "count", type=int, default=3, show_default=True, help="How many next windows to show."
)
@now_option
@click.pass_obj
def jobs_show(state: State, job_name: str, count: int, now: str | None) -> None:
    """Show a job as rollup reads it: its settings, the InfluxQL it sends for a window, and its next
    windows with the instant each one closes (in the job's time zone)."""

    def action() -> int:
        workspace = state.workspace()
        job = workspace.job(job_name)
        instant = clock(now, writes=False).now().plan
        state.out.line(f"job {job.name}: {job.description}" if job.description else f"job {job.name}")
        spec = job.model_dump(mode="json", by_alias=True, exclude_none=True)
        state.out.line(orjson.dumps(spec, option=orjson.OPT_INDENT_2).decode())
        current = job.grid.window_at(instant)
        runner = workspace.runner_for(job)
        try:
            query = build_query(runner.query([current]))
        finally:
            runner.close()
        state.out.line(f"query for the window starting {short_time(job, current.start)}:")
        state.out.line(f"  {query}")
        state.out.line(f"next windows ({job.window.timezone}):")
        windows = itertools.islice(_following(job, current.start), count)
        for window in windows:
            closes = window.end + job.window.delay_ns
            state.out.line(
                f"  {short_time(job, window.start)} → {short_time(job, window.end)}"
                f"  closes {short_time(job, closes)}"
            )
        return EXIT_OK

    guarded(state, action)


def _following(job: JobSpec, start: int) -> Iterator[Window]:
    window = job.grid.window_at(start)
    while True:
        yield window
        window = job.grid.window_at(window.end)

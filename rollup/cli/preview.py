"""``rollup preview``: a job's rows over a range, computed and shown, nothing written."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import orjson
from rich.table import Table

from rollup.app.frames import to_frame
from rollup.app.preview import PreviewReport, PreviewRequest, preview, tag_columns, value_columns
from rollup.cli.base import EXIT_OK, State, bounds, clock, end_option, guarded, main, start_option
from rollup.cli.render import number
from rollup.core.pipeline import OutputRow
from rollup.errors import ConfigError
from rollup.jobs.spec import JobSpec


def _conditions(values: Sequence[str]) -> dict[str, str]:
    conditions: dict[str, str] = {}
    for value in values:
        tag, sep, wanted = value.partition("=")
        if not sep or not tag:
            raise ConfigError(f"--where {value!r}: expected TAG=VALUE")
        conditions[tag] = wanted
    return conditions


@main.command("preview")
@click.argument("job_name", metavar="JOB")
@start_option
@end_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
    help="parquet: needs --output and pyarrow (pip install 'rollup[parquet]').",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file instead of stdout."
)
@click.option(
    "--coverage/--no-coverage", default=False, help="Also show samples, seconds, resets, gaps, invalid."
)
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="TAG=VALUE",
    help="Only the groups whose group_by tag has this value (repeatable).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows.")
@click.pass_obj
def preview_command(
    state: State,
    job_name: str,
    start: str,
    end: str,
    fmt: str,
    output: Path | None,
    coverage: bool,
    where: tuple[str, ...],
    limit: int | None,
) -> None:
    """Compute a job over a time range and show the result; nothing is written to any sink.

    Windows need not be closed: preview is for trying a job before enabling it.
    """

    def action() -> int:
        if fmt == "parquet" and output is None:
            raise ConfigError("--format parquet writes a file: give it with --output")
        workspace = state.workspace()
        job = workspace.job(job_name)
        first, last = bounds(job, start, end, clock(None, writes=False))
        report = preview(workspace, PreviewRequest(job, first, last, _conditions(where), limit))
        columns = value_columns(report.rows, coverage)
        if fmt == "table" and output is None:
            _print_table(state, report, columns)
        elif fmt == "parquet":
            assert output is not None
            to_frame(job, report.rows, coverage, parquet=True).to_parquet(output, index=False)
            state.out.say(f"wrote {len(report.rows)} rows to {output}", event="preview_written")
        else:
            text = render(job, report.rows, columns, "csv" if fmt == "table" else fmt)
            if output is None:
                sys.stdout.write(text)
            else:
                output.write_text(text, encoding="utf-8")
                state.out.say(f"wrote {len(report.rows)} rows to {output}", event="preview_written")
        if report.truncated:
            state.out.say(f"stopped at {limit} rows (--limit)", event="preview_truncated")
        return EXIT_OK

    guarded(state, action)


def _print_table(state: State, report: PreviewReport, columns: list[str]) -> None:
    job = report.job
    tags = tag_columns(report.rows)
    title = f"{job.name}: {len(report.rows)} rows, windows in {job.window.timezone}"
    table = Table("window", *tags, *columns, title=title)
    for row in report.rows:
        values = [number(row.values.get(c)) for c in columns]
        table.add_row(job.local_time(row.window.start), *(row.tags.get(t, "") for t in tags), *values)
    state.out.table(table)


def render(job: JobSpec, rows: Sequence[OutputRow], columns: list[str], fmt: str) -> str:
    tags = tag_columns(rows)
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

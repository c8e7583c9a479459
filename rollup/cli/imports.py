"""``rollup import kapacitor|cq|flux``: parse the arguments, call :mod:`rollup.migrate`, print.

Exit codes: 0 imported (with ``--check``: no difference, or differences without ``--exact``); 1
``--check --exact`` found differences, or the live InfluxDB failed; 2 bad input — a refused
script, query or task (one line each: file, line, node, reason), a bad option, a file that would
be overwritten — and then nothing is written.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from rollup.app.instants import parse_instant
from rollup.errors import ConfigError, RollupError
from rollup.secrets import redact

if TYPE_CHECKING:
    from rollup.influx import InfluxConnection
    from rollup.migrate import ImportedJob, ImportResult, Input, Refusal
    from rollup.migrate.plan import Language

EXIT_OK, EXIT_DIFFERENT, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
Inputs = Callable[[], "tuple[list[Input], list[Refusal]]"]


@dataclass(frozen=True)
class _Common:
    """The options every ``rollup import`` command takes."""

    exact: bool
    timezone: str | None
    source_profile: str
    output_dir: Path | None
    sinks_dir: Path | None
    force: bool
    skip_refused: bool


@dataclass(frozen=True)
class _Check:
    option: str
    url: str
    start: str
    end: str
    now: str | None


def _common(command: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(command)
    def gather(**kwargs: Any) -> None:
        common = _Common(**{f.name: kwargs.pop(f.name) for f in fields(_Common)})
        command(common=common, **kwargs)

    directory = click.Path(file_okay=False, path_type=Path)
    options = [
        click.option(
            "--exact", is_flag=True, help="Reproduce the original's numbers (lookback, drop, stamps)."
        ),
        click.option("--timezone", metavar="ZONE", help="Recommended mode: windows in this IANA time zone."),
        click.option("--source-profile", default="buffer", show_default=True, help="[sources.NAME] to read."),
        click.option("--output-dir", type=directory, help="Write one file per job into it (e.g. jobs/)."),
        click.option(
            "--sinks-dir", type=directory, help="Sink profiles go here (default: sinks/ beside it)."
        ),
        click.option("--force", is_flag=True, help="Overwrite files that exist with other content."),
        click.option("--skip-refused", is_flag=True, help="Import what can be, list the refusals, exit 0."),
    ]
    for option in reversed(options):
        gather = option(gather)
    return gather


@click.group("import")
def import_group() -> None:
    """Translate Kapacitor tasks, continuous queries or Flux tasks into jobs (docs/migrating.md).

    Prints the job files and the sink profiles they need, or writes them with --output-dir.
    Anything that cannot be translated is refused with its file, line, node and reason (exit 2).
    """


@import_group.command("kapacitor")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_common
def import_kapacitor(files: tuple[Path, ...], common: _Common) -> None:
    """TICKscript files: batch or stream tasks ending in influxDBOut() or httpPost()."""
    from rollup.migrate import read_files

    _run("kapacitor", lambda: read_files(files), common)


@import_group.command("flux")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_common
def import_flux(files: tuple[Path, ...], common: _Common) -> None:
    """Flux task files: from |> range |> filter |> derivative |> aggregateWindow |> to."""
    from rollup.migrate import read_files

    _run("flux", lambda: read_files(files), common)


@import_group.command("cq")
@click.argument("statements", nargs=-1, metavar="[STATEMENT|FILE]...")
@click.option(
    "--from", "from_url", metavar="URL", help="Read SHOW CONTINUOUS QUERIES from this InfluxDB 1.x."
)
@click.option("--database", help="With --from: only this database's continuous queries.")
@click.option("--url", metavar="URL", help="The InfluxDB that --check queries (default: --from).")
@click.option("--username", help="InfluxDB user (the password comes from --password-env).")
@click.option("--password-env", metavar="VAR", help="Environment variable holding the password.")
@click.option("--token-env", metavar="VAR", help="Environment variable holding a token (v1 API of 2.x).")
@click.option(
    "--check", is_flag=True, help="Run each CQ's SELECT and its job over --start..--end; show differences."
)
@click.option(
    "--start", metavar="T", help="--check: first instant (2026-11-01 is midnight in the job's zone)."
)
@click.option("--end", metavar="T", help="--check: end instant (exclusive).")
@click.option(
    "--now", envvar="ROLLUP_NOW", metavar="T", help="Resolve now-2d, today … as of T. Env: ROLLUP_NOW."
)
@_common
def import_cq(
    statements: tuple[str, ...],
    from_url: str | None,
    database: str | None,
    url: str | None,
    username: str | None,
    password_env: str | None,
    token_env: str | None,
    check: bool,
    start: str | None,
    end: str | None,
    now: str | None,
    common: _Common,
) -> None:
    """Continuous queries: statements, files of statements (- for stdin), or --from a live InfluxDB."""

    def connect(option: str, target: str) -> InfluxConnection:
        return _connection(option, target, username, password_env, token_env)

    def inputs() -> tuple[list[Input], list[Refusal]]:
        from rollup.migrate import continuous_queries, statement_arguments

        found, refused = statement_arguments(statements)
        if from_url is not None:
            found += continuous_queries(connect("--from", from_url), database)
        if not found and not refused:
            raise ConfigError("no continuous query to import: give statements, files or --from URL")
        return found, refused

    checking = None
    if check:
        target = url or from_url
        if target is None or start is None or end is None:
            _fail("--check needs --start, --end and an InfluxDB to query (--url or --from)")
            return
        checking = _Check("--url" if url else "--from", target, start, end, now)
    _run("cq", inputs, common, checking, connect)


def _run(
    language: Language,
    inputs: Inputs,
    common: _Common,
    checking: _Check | None = None,
    connect: Callable[[str, str], InfluxConnection] | None = None,
) -> None:
    try:
        result = _import(language, inputs, common)
        code = EXIT_BAD_INPUT if result is None else EXIT_OK
        if result is not None and checking is not None and connect is not None:
            code = _check(result, checking, connect(checking.option, checking.url), common.exact)
    except ConfigError as exc:
        _fail(str(exc))
    except RollupError as exc:
        _fail(str(exc), EXIT_DIFFERENT)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code)


def _import(language: Language, inputs: Inputs, common: _Common) -> ImportResult | None:
    """Translate, report, print or write; None if something was refused (and nothing written)."""
    from rollup.migrate import Options, import_inputs, render, write_files

    if common.exact and common.timezone:
        raise ConfigError("--timezone changes the windows, so it cannot go with --exact")
    found, refused = inputs()
    options = Options(common.exact, common.timezone, common.source_profile, f"rollup import {language}")
    result = import_inputs(language, found, options)
    result.refusals[:0] = refused
    for refusal in result.refusals:
        click.echo(f"refused: {refusal}", err=True)
    if result.refusals and not common.skip_refused:
        click.echo(f"{len(result.refusals)} input(s) refused: nothing written", err=True)
        return None
    for job in result.jobs:
        click.echo(
            f"job {job.name} ({job.origin}): {len(job.notes)} difference(s) from the original", err=True
        )
        if common.exact:
            for note in job.notes:
                click.echo(f"  - {note}", err=True)
    if common.output_dir is None:
        sys.stdout.write(render(result, Path("jobs"), Path("sinks")))
        return result
    sinks_dir = common.sinks_dir or common.output_dir.parent / "sinks"
    for written in write_files(result, common.output_dir, sinks_dir, common.force):
        click.echo(f"{'unchanged' if written.unchanged else 'wrote'} {written.path}", err=True)
    return result


def _check(result: ImportResult, checking: _Check, connection: InfluxConnection, exact: bool) -> int:
    """Each CQ next to its job(s); exit 1 on a difference with --exact (without, some are expected)."""
    from rollup.migrate import check_jobs

    now = time.time_ns() if checking.now is None else _instant(checking.now, "UTC", time.time_ns(), "--now")
    by_query: dict[tuple[str, object], list[ImportedJob]] = {}
    for job in result.jobs:
        by_query.setdefault((job.origin, job.check), []).append(job)
    differences = 0
    for jobs in by_query.values():
        zone = jobs[0].spec.window.timezone
        start = _instant(checking.start, zone, now, "--start")
        end = _instant(checking.end, zone, now, "--end")
        if end <= start:
            raise ConfigError(f"--end ({checking.end}) must be after --start ({checking.start})")
        report = check_jobs(jobs, connection, start, end)
        found = f"{len(report.differences)} difference(s)" if report.differences else "no difference"
        click.echo(
            f"check {', '.join(job.name for job in jobs)} ({jobs[0].origin}): {len(report.windows)} "
            f"window(s), {report.original_rows} row(s) from the CQ, {report.job_rows} from the job: {found}"
        )
        for difference in report.differences:
            click.echo(f"  {difference.describe(jobs[0].spec)}")
        if report.uncompared:
            click.echo(f"  not compared (the job has no such value): {', '.join(report.uncompared)}")
        differences += len(report.differences)
    return EXIT_DIFFERENT if differences and exact else EXIT_OK


def _instant(text: str, zone: str, now: int, what: str) -> int:
    try:
        return parse_instant(text, zone, now)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def _connection(
    option: str, url: str, username: str | None, password_env: str | None, token_env: str | None
) -> InfluxConnection:
    """The connection of ``--from`` or ``--url``; an error names the option, never the URL (it may
    hold a password by mistake)."""
    from rollup.influx import InfluxConnection

    try:
        return InfluxConnection(url=url, username=username, password_env=password_env, token_env=token_env)
    except ValidationError as exc:
        reasons = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
        raise ConfigError(f"{option}: {reasons}") from None


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"error: {redact(message)}", err=True)
    sys.exit(code)

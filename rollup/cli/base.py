"""The command group, its global options, and how a command's outcome becomes an exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import click

from rollup.app.clock import Clock, clock_for
from rollup.app.instants import parse_instant
from rollup.app.workspace import Workspace
from rollup.cli.render import Out
from rollup.errors import ConfigError, RollupError
from rollup.jobs.spec import JobSpec
from rollup.logs import setup_logging
from rollup.settings import load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


class State:
    """What the global options say, and the workspace they lead to (loaded on first use)."""

    def __init__(self, config: Path | None, log_format: str | None, log_level: str | None):
        self.config = config
        self.log_format = log_format
        self.log_level = log_level
        self.out = Out(json_logs=log_format == "json")
        self._workspace: Workspace | None = None

    def workspace(self) -> Workspace:
        if self._workspace is None:
            settings = load_settings(self.config)
            fmt: Literal["text", "json"] = self.log_format or settings.log_format  # type: ignore[assignment]
            setup_logging(fmt, self.log_level or settings.log_level)
            self.out = Out(json_logs=fmt == "json")
            self._workspace = Workspace(settings)
        return self._workspace


def guarded(state: State, action: Callable[[], int]) -> None:
    """Run ``action``: configuration errors exit 2, other rollup errors 1, Ctrl-C 130."""
    try:
        code = action()
    except ConfigError as exc:
        state.out.error(str(exc))
        sys.exit(EXIT_CONFIG)
    except RollupError as exc:
        state.out.error(str(exc))
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        state.out.say("interrupted: the windows in flight were released (owed again)", event="interrupted")
        logging.shutdown()
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ROLLUP_CONFIG",
    help="Settings file (default: config/rollup.toml when present). Env: ROLLUP_CONFIG.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="Log lines as text, or JSON objects (then every message on stderr is one).",
)
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Log level.")
@click.version_option(package_name="rollup")
@click.pass_context
def main(ctx: click.Context, config: Path | None, log_format: str | None, log_level: str | None) -> None:
    """Roll raw InfluxDB counters up into per-window aggregates for InfluxDB, Elasticsearch, OpenSearch.

    Jobs live in jobs/*.toml, sink profiles in sinks/*.toml, source profiles and settings in
    config/rollup.toml. Exit codes: 0 all windows succeeded, 1 some failed or were left undone (or
    a job file is broken while the others ran), 2 bad configuration or usage (nothing started),
    130 interrupted.
    """
    ctx.obj = State(config, log_format, log_level)


# -- options and arguments shared by commands ----------------------------------------------------

start_option = click.option(
    "--start",
    required=True,
    help="First instant: 2026-11-01 (local midnight in the job's time zone), 2026-11-01T06:00Z, "
    "now-2d, yesterday.",
)
end_option = click.option("--end", required=True, help="End instant (exclusive), same forms as --start.")
now_option = click.option(
    "--now",
    envvar="ROLLUP_NOW",
    metavar="TIME",
    help="Plan as if the clock read TIME (2026-11-03T00:15Z; a date or time without zone is UTC): "
    "which windows are closed and within the retention. Leases and retries keep the real clock; "
    "a command that writes refuses a TIME later than the real clock. Env: ROLLUP_NOW.",
)


def clock(now: str | None, *, writes: bool) -> Clock:
    return clock_for(now, writes=writes)


def bounds(job: JobSpec, start: str, end: str, clock: Clock) -> tuple[int, int]:
    """``--start`` and ``--end`` in the job's time zone; ConfigError (usage) if invalid."""
    reference = clock.now().plan
    try:
        first = parse_instant(start, job.window.timezone, reference)
        last = parse_instant(end, job.window.timezone, reference)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if last <= first:
        raise ConfigError(f"--end ({end}) must be after --start ({start})")
    return first, last

"""How the command shows things: tables on a terminal, the same tables at their full width when
piped (never a cut value), messages on stderr as text — or, with ``--log-format json``, as JSON
log records like everything else on stderr."""

from __future__ import annotations

import logging
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from rollup.jobs.spec import JobSpec
from rollup.secrets import redact

log = logging.getLogger("rollup.cli")


class Out:
    def __init__(self, json_logs: bool = False):
        self.json_logs = json_logs
        self.stdout = Console(soft_wrap=True)
        self.stderr = Console(stderr=True, soft_wrap=True, highlight=False)

    def error(self, message: str, **fields: Any) -> None:
        """One line on stderr: ``error: …`` (masked)."""
        text = redact(message)
        if self.json_logs:
            log.error(text, extra={"event": "error", **fields})
        else:
            self.stderr.print(f"[bold red]error:[/] {escape(text)}", markup=True)

    def say(self, message: str, *, event: str, level: int = logging.INFO, **fields: Any) -> None:
        """A message for the operator on stderr (a summary, what was skipped and why)."""
        text = redact(message)
        if self.json_logs:
            log.log(level, text, extra={"event": event, **fields})
        else:
            self.stderr.print(text, markup=False)

    def table(self, table: Table) -> None:
        """On a terminal as wide as it is; elsewhere as wide as the table needs."""
        if sys.stdout.isatty():
            self.stdout.print(table)
            return
        wide = Measurement.get(self.stdout, self.stdout.options.update_width(10_000), table).maximum
        Console(width=max(80, wide), soft_wrap=True).print(table)

    def line(self, text: str) -> None:
        """A line of output on stdout, as it is."""
        self.stdout.print(text, markup=False, highlight=False)


def number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


def short_time(job: JobSpec, ns: int) -> str:
    """``2026-11-02 00:00+01:00``: a time in the job's zone, to the minute, with its offset."""
    full = job.local_time(ns)  # 2026-11-02T00:00:00+01:00
    return f"{full[:10]} {full[11:16]}{full[19:]}"

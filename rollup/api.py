"""rollup as a Python library: load a job, preview it as a pandas DataFrame, backfill it.

::

    import rollup

    job = rollup.load_job("jobs/interface-daily.toml")        # settings: config/rollup.toml
    frame = rollup.preview(job, "2026-11-01", "2026-11-08")   # a DataFrame; nothing is written
    report = rollup.backfill(job, "2026-11-01", "2026-11-08") # writes, through the ledger

The same use cases as the CLI (:mod:`rollup.app`), with the same settings, job files and errors:
a :class:`~rollup.errors.ConfigError` for a bad job, setting or instant (nothing was started), a
:class:`~rollup.errors.RollupError` for a failure while running. Instants are what ``--start``
and ``--end`` take (``"2026-11-01"``, ``"now-2d"``, ``"yesterday"``), or ``datetime`` / ``date``
objects (a naive one, like a date, is in the job's time zone).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollup.app.backfill import BackfillReport, BackfillRequest
from rollup.app.backfill import backfill as run_backfill
from rollup.app.clock import Clock, clock_for
from rollup.app.frames import to_frame
from rollup.app.instants import parse_instant
from rollup.app.preview import PreviewRequest
from rollup.app.preview import preview as run_preview
from rollup.app.session import Session
from rollup.app.workspace import Workspace
from rollup.core.windows import load_zone, to_ns
from rollup.errors import ConfigError
from rollup.jobs.loader import job_from
from rollup.jobs.loader import load_job as load_job_file
from rollup.jobs.spec import JobSpec
from rollup.settings import load_settings

if TYPE_CHECKING:
    import pandas as pd

Instant = str | dt.datetime | dt.date
"""``"2026-11-01"``, ``"2026-11-01T06:00Z"``, ``"now-2d"``, a ``datetime`` or a ``date``."""


@dataclass(frozen=True)
class Job:
    """A job with the settings it runs with (its source and sink profiles, its ledger)."""

    spec: JobSpec
    workspace: Workspace

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"Job({self.name!r})"


def load_job(
    job: str | os.PathLike[str] | Mapping[str, Any], *, config: str | os.PathLike[str] | None = None
) -> Job:
    """A job from a file (``"jobs/bw.toml"``), by name from the settings' ``jobs_dir``
    (``"bw"``), or from a dict holding what a job file holds (with its ``name``).

    ``config``: the settings file (default: ``$ROLLUP_CONFIG``, else config/rollup.toml if
    present). ConfigError names the file (or the dict's job), the key and the reason."""
    workspace = Workspace(load_settings(None if config is None else Path(config)))
    if isinstance(job, Mapping):
        name = job.get("name")
        if not isinstance(name, str):
            raise ConfigError('a job given as a dict needs its name (name = "…")')
        return Job(job_from(dict(job), f"job {name}", workspace.known), workspace)
    path = Path(job)
    if path.suffix == ".toml" or path.exists():
        spec = load_job_file(path, workspace.known)
        blocked = workspace.blocked_by(spec)
        if blocked:
            raise ConfigError("; ".join(workspace.broken_sinks[sink] for sink in blocked))
        return Job(spec, workspace)
    return Job(workspace.job(str(job)), workspace)


def preview(
    job: Job,
    start: Instant,
    end: Instant,
    *,
    where: Mapping[str, str] | None = None,
    limit: int | None = None,
    coverage: bool = False,
) -> pd.DataFrame:
    """The job's rows over ``[start, end)`` as a DataFrame; nothing is written, windows need not
    be closed. The same rows as ``rollup preview --format csv``: ``window_start`` and
    ``window_end`` tz-aware in the job's time zone, the group tags, the output fields (counts as
    nullable integers); ``coverage`` adds samples, seconds, resets, gaps and invalid; ``where``
    keeps the groups whose tags have these values."""
    first, last = _range(job, start, end, Clock())
    report = run_preview(job.workspace, PreviewRequest(job.spec, first, last, where, limit))
    return to_frame(job.spec, report.rows, coverage)


def backfill(
    job: Job,
    start: Instant,
    end: Instant,
    *,
    force: bool = False,
    ignore_retention: bool = False,
    now: Instant | None = None,
) -> BackfillReport:
    """Compute and write every closed window of ``[start, end)`` through the ledger, like
    ``rollup backfill``: windows done are skipped unless ``force``; ``now`` plans as if the clock
    read it (not later than the real clock). Check :attr:`BackfillReport.complete`: a window that
    failed is in :attr:`BackfillReport.failures` and stays owed."""
    clock = clock_for(None if now is None else _text(now), writes=True, option="now")
    first, last = _range(job, start, end, clock)
    request = BackfillRequest(job.spec, first, last, force, ignore_retention)
    with job.workspace.ledger() as ledger:
        return run_backfill(Session(job.workspace, ledger, clock), request)


def _range(job: Job, start: Instant, end: Instant, clock: Clock) -> tuple[int, int]:
    reference = clock.now().plan
    first = _instant(job.spec, start, reference, "start")
    last = _instant(job.spec, end, reference, "end")
    if last <= first:
        raise ConfigError(f"end ({end}) must be after start ({start})")
    return first, last


def _instant(job: JobSpec, value: Instant, reference: int, what: str) -> int:
    zone = job.window.timezone
    if isinstance(value, dt.datetime):
        return to_ns(value if value.tzinfo is not None else value.replace(tzinfo=load_zone(zone)))
    if isinstance(value, dt.date):
        return to_ns(dt.datetime.combine(value, dt.time(), tzinfo=load_zone(zone)))
    try:
        return parse_instant(value, zone, reference)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from exc


def _text(value: Instant) -> str:
    """An instant as ``now`` is parsed (a naive one is UTC, as ``--now``)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value

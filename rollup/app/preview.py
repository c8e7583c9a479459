"""Preview: compute a job over a time range and return its rows; nothing is written, the ledger is
not read. Windows need not be closed: preview is for trying a job before enabling it.

``where`` keeps some groups only (``{"agent_host": "sw001"}``): it is added to the source query,
so it can only name the job's group tags — a condition on another tag would change what the
groups aggregate.

A window a plug-in aggregate fails on raises :class:`~rollup.errors.RollupError` naming the
plug-in, the job, the field and the window. The rows are shown as a table (:func:`tag_columns`,
:func:`value_columns`): the CLI renders it, :mod:`rollup.app.frames` makes a DataFrame of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rollup.app.workspace import Workspace
from rollup.core.pipeline import OutputRow
from rollup.errors import ConfigError, RollupError
from rollup.jobs.runner import plugin_error
from rollup.jobs.spec import JobSpec


@dataclass(frozen=True)
class PreviewRequest:
    job: JobSpec
    start: int
    end: int
    where: Mapping[str, str] | None = None
    limit: int | None = None


@dataclass(frozen=True)
class PreviewReport:
    job: JobSpec
    rows: list[OutputRow]
    """Window by window, groups in tag order; at most the request's limit."""
    truncated: bool = False
    """More rows would have followed (``limit``)."""


COVERAGE = ("_samples", "_invalid", "_seconds", "_resets", "_gaps")


def value_columns(rows: Sequence[OutputRow], coverage: bool) -> list[str]:
    """The output fields of ``rows`` in the order they first appear; coverage only if asked."""
    names: dict[str, None] = {}
    for row in rows:
        for name in row.values:
            if coverage or not name.endswith(COVERAGE):
                names.setdefault(name)
    return list(names)


def tag_columns(rows: Sequence[OutputRow]) -> list[str]:
    """The group tags of ``rows``, sorted."""
    return sorted({key for row in rows for key in row.tags})


def filtered(job: JobSpec, where: Mapping[str, str] | None) -> JobSpec:
    """The job reading only the groups whose tags have the given values."""
    if not where:
        return job
    groups = set(job.group_by) if job.group_by is not None else None
    foreign = sorted(tag for tag in where if groups is not None and tag not in groups)
    if foreign:
        raise ConfigError(
            f"--where {', '.join(foreign)}: not a group_by tag of job {job.name} "
            f"({', '.join(job.group_by or ())}): filtering on it would change the aggregates"
        )
    conditions = {**job.source.where, **where}
    kind = type(job.source)
    source = kind.model_validate({**job.source.model_dump(by_alias=True), "where": conditions})
    return job.model_copy(update={"source": source})


def preview(workspace: Workspace, request: PreviewRequest) -> PreviewReport:
    job = filtered(request.job, request.where)
    windows = job.grid.windows(request.start, request.end)
    runner = workspace.runner_for(job)
    rows: list[OutputRow] = []
    limit = request.limit
    try:
        runner.check_schema()
        for span in runner.spans(windows):
            for result in runner.compute(span):
                if result.failures:
                    raise RollupError(plugin_error(job, result.failures), transient=False)
                rows.extend(result.rows)
            if limit is not None and len(rows) > limit:
                return PreviewReport(request.job, rows[:limit], truncated=True)
    finally:
        runner.close()
    return PreviewReport(request.job, rows)

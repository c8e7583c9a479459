"""rollup: batch rollups of time-series counters from an InfluxDB buffer to long-term storage.

As a Python library (docs/python.md)::

    import rollup

    job = rollup.load_job("jobs/interface-daily.toml")
    frame = rollup.preview(job, "2026-11-01", "2026-11-08")   # a pandas DataFrame
    report = rollup.backfill(job, "2026-11-01", "2026-11-08")  # a BackfillReport

The names below are imported on first use (:mod:`rollup.api`): ``import rollup`` stays cheap,
and importing a part of rollup (``rollup.core``) does not load the rest. Plug-in aggregates are
written with :mod:`rollup.plugins`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rollup.api import Job, backfill, load_job, preview
    from rollup.app.backfill import BackfillReport
    from rollup.errors import ConfigError, RollupError

_EXPORTS = {
    "BackfillReport": "rollup.app.backfill",
    "ConfigError": "rollup.errors",
    "Job": "rollup.api",
    "RollupError": "rollup.errors",
    "backfill": "rollup.api",
    "load_job": "rollup.api",
    "preview": "rollup.api",
}

__all__ = ["BackfillReport", "ConfigError", "Job", "RollupError", "backfill", "load_job", "preview"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rollup' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

"""Readiness: can the service do its work right now? The ledger opens, every source profile its
jobs read answers ``/ping`` (for a job reading a job: the InfluxDB that job's rows are read
from), every sink profile they write to answers, and every job file loads (a broken one is named,
with its error).

All checks run at once, each within ``PROBE_TIMEOUT`` seconds; the answer names each component
and, when it failed, why (credentials masked).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

from rollup.app.workspace import Workspace
from rollup.errors import ConfigError, RollupError
from rollup.jobs.spec import JobSpec
from rollup.secrets import redact
from rollup.service.jobset import JobSet
from rollup.sinks.profiles import build_sink

PROBE_TIMEOUT = 5.0

Check = Callable[[], None]


def readiness_checks(current: JobSet) -> dict[str, Check]:
    """One check per component the jobs of ``current`` need, by name."""
    checks: dict[str, Check] = {"ledger": lambda: _ledger_check(current.workspace)}
    if current.problems:
        checks["job files"] = _problems(current.problems)
    for spec in current.jobs.values():
        checks.setdefault(spec.source.label, _source_check(current.workspace, spec))
        for name in spec.output.sinks:
            checks.setdefault(f"sink {name}", _sink_check(current.workspace, spec, name))
    return checks


def _problems(problems: list[str]) -> Check:
    def check() -> None:
        raise ConfigError("; ".join(problems))

    return check


def _ledger_check(workspace: Workspace) -> None:
    with workspace.ledger() as ledger:
        ledger.schema_version()


def _source_check(workspace: Workspace, spec: JobSpec) -> Check:
    def check() -> None:
        source = workspace.source_for(spec)
        try:
            source.check()
        finally:
            source.close()

    return check


def _sink_check(workspace: Workspace, spec: JobSpec, name: str) -> Check:
    def check() -> None:
        sink = build_sink(name, workspace.sink_profiles[name], workspace.target_for(spec))
        try:
            sink.check()
        finally:
            sink.close()

    return check


def run_checks(checks: dict[str, Check], timeout: float = PROBE_TIMEOUT) -> dict[str, str]:
    """``ok`` or the reason, per check."""
    results: dict[str, str] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(checks)), thread_name_prefix="probe")
    try:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        concurrent.futures.wait(futures.values(), timeout=timeout)
        for name, future in futures.items():
            if not future.done():
                results[name] = f"no answer within {timeout:g}s"
            elif isinstance(future.exception(), RollupError):
                results[name] = redact(str(future.exception()))
            elif future.exception() is not None:
                results[name] = redact(f"{type(future.exception()).__name__}: {future.exception()}")
            else:
                results[name] = "ok"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results

"""What the use cases that write windows share within one process: the workspace, an open ledger,
the clock, who this process is in the ledger, when to stop, and which sources stopped answering."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from rollup.app.clock import Clock
from rollup.app.execution import Breaker, Claims, new_owner
from rollup.app.workspace import Workspace
from rollup.jobs.runner import JobRunner, OnPoints
from rollup.jobs.spec import JobSpec
from rollup.ledger.base import Ledger
from rollup.sinks.base import Sink

SinkWrapper = Callable[[Sink], Sink]


@dataclass
class Session:
    workspace: Workspace
    ledger: Ledger
    clock: Clock = field(default_factory=Clock)
    owner: str = field(default_factory=new_owner)
    stop: threading.Event = field(default_factory=threading.Event)
    """Set: claim no further span (the one in flight finishes)."""
    wrap_sink: SinkWrapper | None = None
    """Wraps each sink a run builds (``serve`` counts sink errors)."""
    _breakers: dict[str, Breaker] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claims(self, job: JobSpec) -> Claims:
        return Claims(
            self.ledger, job.name, self.owner, self.workspace.settings.ledger_lease.nanos, self.clock
        )

    def breaker(self, job: JobSpec) -> Breaker:
        """The breaker of the job's source (a source profile, or the job it reads): shared by every
        job reading it in this session."""
        with self._lock:
            return self._breakers.setdefault(job.source.label, Breaker(job.source.label))

    def runner(self, job: JobSpec, on_points: OnPoints | None = None) -> JobRunner:
        """A runner writing to the job's sinks; the caller closes it."""
        sinks = self.workspace.sinks_for(job)
        if self.wrap_sink is not None:
            sinks = [self.wrap_sink(sink) for sink in sinks]
        return self.workspace.runner_for(job, sinks, on_points)

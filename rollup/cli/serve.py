"""``rollup serve``."""

from __future__ import annotations

import click

from rollup.cli.base import State, guarded, main


@main.command("serve")
@click.pass_obj
def serve_command(state: State) -> None:
    """Run every enabled job as its windows close, until stopped; serve health and metrics.

    Each job's pass runs as one of its windows closes (end + delay, in the job's time zone) and
    at least every [serve] sweep, catching up whatever is owed (windows missed while the service
    was down, failed windows after their backoff). HTTP on [serve] host:port (127.0.0.1:9108):
    /healthz, /readyz, /metrics. A broken job file is reported (log, /readyz, metric) while the
    other jobs run. SIGHUP reloads job files and sink profiles (a job whose file became invalid
    keeps running as it was); SIGTERM or SIGINT finishes the windows in flight and exits 0, a
    second one exits at once. Exit 2 if the settings are invalid, no job file is valid, or the
    port cannot be bound.
    """

    def action() -> int:
        from rollup.service.app import Service  # APScheduler and prometheus-client load only here

        return Service(state.workspace()).run()

    guarded(state, action)

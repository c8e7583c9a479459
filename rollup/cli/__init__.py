"""The ``rollup`` command: parses arguments, calls the application layer (:mod:`rollup.app`),
renders its reports. Exit codes (documented in README, relied on by cron and Kubernetes):

* 0 — every window asked for succeeded (or there was nothing to do);
* 1 — at least one window failed or was left undone (it stays owed), or a job file is broken
  while the others ran;
* 2 — bad configuration or usage: nothing was started;
* 130 — interrupted (Ctrl-C / SIGINT): the windows in flight are released, owed again at once;
  ``serve`` exits 0 on SIGTERM or SIGINT once the windows in flight are finished or released, and
  128 + the signal number on a second one.
"""

from rollup.cli import backfill, jobs, preview, run, serve, status  # noqa: F401  (register commands)
from rollup.cli.base import main
from rollup.cli.imports import import_group

main.add_command(import_group)

__all__ = ["main"]

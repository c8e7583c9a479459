"""The application layer: one function per use case, each taking typed inputs and returning a
typed report. ``rollup.cli`` and ``rollup.service`` call these and nothing below them wires
adapters together.

* :func:`rollup.app.passes.run_pass` — one pass of one job (``rollup run``, ``rollup serve``);
* :func:`rollup.app.backfill.backfill` — a range of windows through the ledger;
* :func:`rollup.app.preview.preview` — compute without writing;
* :func:`rollup.app.status.statuses` and :func:`rollup.app.status.window_rows` — what is done
  and owed;
* :func:`rollup.app.validate.validate` — job files, and (online) against their source and sinks.

:class:`rollup.app.workspace.Workspace` is the only place where settings become adapters;
:class:`rollup.app.session.Session` is what the use cases that write share within a process.
"""

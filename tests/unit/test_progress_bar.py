"""The backfill's progress bar moves while a window is read, not only when one is done."""

from __future__ import annotations

import io

from rich.console import Console

from rollup.cli.backfill import ProgressBar
from rollup.cli.render import Out
from rollup.jobs.planner import Tally
from rollup.jobs.spec import JobSpec

JOB = JobSpec.model_validate(
    {
        "name": "bw",
        "source": {"profile": "buffer", "database": "raw", "measurement": "ifc"},
        "window": {"every": "1d"},
        "fields": {"octets": {}},
        "output": {"measurement": "bw_daily", "sinks": ["out"]},
    }
)


def test_points_read_show_in_the_bar_before_the_first_window_is_done() -> None:
    screen = io.StringIO()
    out = Out()
    out.stderr = Console(file=screen, force_terminal=True, width=160)
    with ProgressBar(out, JOB, show=True) as bar:
        bar.start(Tally(due=8))
        bar.points(10_000)
        bar.points(15_000)
        assert bar.read() == "25,000 points"
        bar.refresh()
    shown = screen.getvalue()
    assert "0/8" in shown
    assert "25,000 points" in shown

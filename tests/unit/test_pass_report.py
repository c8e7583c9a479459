"""The one-line summary a pass logs (``rollup run`` and ``rollup serve`` alike)."""

from __future__ import annotations

from rollup.core.windows import Window
from rollup.jobs.passes import PassReport
from rollup.jobs.planner import Due, Plan
from rollup.jobs.runner import WindowOutcome

HOUR = 3_600_000_000_000


def window(i: int) -> Window:
    return Window(i * HOUR, (i + 1) * HOUR)


def test_a_pass_capped_by_max_windows_per_pass_says_how_many_are_still_owed() -> None:
    plan = Plan(due=[Due(window(i), "missing", None) for i in range(2)], owed=5, waiting=1)
    report = PassReport(
        "bw",
        plan,
        [WindowOutcome(window(0), 100, 4, 0.1), WindowOutcome(window(1), 50, 0, 0.1, error="boom")],
        skipped=1,
    )
    assert report.summary() == (
        "1 window(s) done, 1 failed, 1 skipped (another process claimed them), "
        "3 still owed (max_windows_per_pass), 1 failed window(s) waiting to retry"
    )
    assert (report.points, report.rows, report.left) == (150, 4, 3)


def test_recomputed_windows_do_not_count_against_what_is_still_owed() -> None:
    due = [Due(window(0), "missing", None), Due(window(1), "recompute", None)]
    report = PassReport("bw", Plan(due=due, owed=1), [WindowOutcome(w.window, 1, 1, 0.1) for w in due])
    assert report.left == 0
    assert report.summary() == "2 window(s) done, 0 failed"

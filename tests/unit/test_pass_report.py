"""The one-line summary a pass logs (``rollup run`` and ``rollup serve`` alike)."""

from __future__ import annotations

from rollup.app.passes import PassReport
from rollup.core.windows import Window
from rollup.jobs.planner import Tally
from rollup.jobs.runner import WindowOutcome

HOUR = 3_600_000_000_000


def window(i: int) -> Window:
    return Window(i * HOUR, (i + 1) * HOUR)


def test_a_pass_capped_by_max_windows_per_pass_says_how_many_are_still_owed() -> None:
    report = PassReport(
        "bw",
        planned=2,
        tally=Tally(due=5, waiting=1),
        outcomes=[WindowOutcome(window(0), 100, 4, 0.1), WindowOutcome(window(1), 50, 0, 0.1, error="boom")],
        skipped=1,
    )
    assert report.summary() == (
        "1 window(s) done, 1 failed, 1 skipped (another process claimed them), "
        "3 still owed (max_windows_per_pass), 1 failed window(s) waiting to retry"
    )
    assert (report.points, report.rows, report.left) == (150, 4, 3)


def test_recomputed_windows_do_not_count_against_what_is_still_owed() -> None:
    outcomes = [WindowOutcome(window(0), 1, 1, 0.1), WindowOutcome(window(1), 1, 1, 0.1)]
    report = PassReport("bw", planned=1, tally=Tally(due=1), outcomes=outcomes)
    assert report.left == 0
    assert report.summary() == "2 window(s) done, 0 failed"


def test_empty_windows_are_summarized_in_the_pass_line_not_one_warning_each() -> None:
    outcomes = [WindowOutcome(window(0), 0, 0, 0.1), WindowOutcome(window(1), 0, 0, 0.1)]
    report = PassReport("bw", planned=2, tally=Tally(due=2), outcomes=outcomes)
    assert report.summary() == "2 window(s) done (2 empty: no point in the source), 0 failed"


def test_a_pass_stopped_by_a_source_that_does_not_answer_says_so() -> None:
    failed = WindowOutcome(window(0), 0, 0, 0.1, error="refused", transient=True, cause="source")
    report = PassReport("bw", planned=5, tally=Tally(due=5), outcomes=[failed], unreachable="refused")
    assert report.summary() == "0 window(s) done, 1 failed, stopped: the source does not answer (refused)"

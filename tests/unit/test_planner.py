"""The planner, table-driven with a fixed ``now``: which windows a pass owes and why.

Instants are ISO 8601 with the local offset, so DST cases show which side of a change they are on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pytest

from rollup.core.windows import Window, WindowGrid, to_ns
from rollup.jobs.planner import DoneCounter, Lost, Plan, Policy, RowReader, plan
from rollup.ledger.base import Record, Seen, Snapshot, Status

S = 1_000_000_000
M = 60 * S
H = 3600 * S
D = 86400 * S


def ns(iso: str) -> int:
    return to_ns(dt.datetime.fromisoformat(iso))


@dataclass(frozen=True)
class Row:
    """A ledger row: window start, status and what drives retries and leases."""

    start: str
    status: Status
    failures: int = 0
    finished: str | None = None
    lease_until: str | None = None
    attempts: int = 1
    end: str | None = None  # default: the grid's window end


def rows_of(snapshot: Snapshot) -> RowReader:
    """The ledger as the planner reads it: every page gets the whole snapshot (it picks its rows)."""
    return lambda start, end: snapshot


def snapshot(grid: WindowGrid, rows: list[Row]) -> Snapshot:
    done: list[tuple[int, int, int]] = []
    pending: dict[int, Record] = {}
    for row in sorted(rows, key=lambda r: ns(r.start)):
        start = ns(row.start)
        end = ns(row.end) if row.end else grid.window_at(start).end
        if row.status == "done":
            done.append((start, end, row.attempts))
            continue
        pending[start] = Record(
            window=Window(start, end),
            status=row.status,
            attempts=row.attempts,
            failures=row.failures,
            error="boom" if row.status == "failed" else None,
            points=0,
            rows=0,
            started=None,
            finished=ns(row.finished) if row.finished else None,
            duration=None,
            owner="other" if row.status == "running" else None,
            lease_until=ns(row.lease_until) if row.lease_until else None,
        )
    table = np.asarray(done, dtype=np.int64).reshape(-1, 3)
    return Snapshot(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy(), pending)


class Case(NamedTuple):
    rule: str
    every: str
    zone: str
    policy: dict[str, object]  # start/retention as ISO / durations in ns
    now: str
    rows: list[Row]
    due: list[tuple[str, str]]  # (window start, reason), oldest first
    extra: dict[str, object] = {}  # noqa: RUF012 - a NamedTuple default, never mutated


def policy(values: dict[str, object]) -> Policy:
    start = values.get("start")
    return Policy(
        start=ns(start) if isinstance(start, str) else None,
        retention=values.get("retention"),  # type: ignore[arg-type]
        delay=values.get("delay", 0),  # type: ignore[arg-type]
        recompute=values.get("recompute", 0),  # type: ignore[arg-type]
        max_windows=values.get("max_windows", 1000),  # type: ignore[arg-type]
        backoff=values.get("backoff", M),  # type: ignore[arg-type]
        backoff_max=values.get("backoff_max", H),  # type: ignore[arg-type]
    )


UTC_DAY1 = "2026-11-02T00:00+00:00"

CASES = [
    Case("closed_windows_since_start_are_owed", "1h", "UTC", {"start": UTC_DAY1}, "2026-11-02T03:30+00:00",
         [], [("2026-11-02T00:00+00:00", "missing"), ("2026-11-02T01:00+00:00", "missing"),
              ("2026-11-02T02:00+00:00", "missing")]),
    Case("a_window_closes_exactly_at_end_plus_delay", "1h", "UTC", {"start": UTC_DAY1, "delay": 15 * M},
         "2026-11-02T02:15+00:00", [],
         [("2026-11-02T00:00+00:00", "missing"), ("2026-11-02T01:00+00:00", "missing")]),
    Case("a_window_is_not_closed_one_nanosecond_before_end_plus_delay", "1h", "UTC",
         {"start": UTC_DAY1, "delay": 15 * M}, "2026-11-02T02:14:59.999999+00:00", [],
         [("2026-11-02T00:00+00:00", "missing")]),
    Case("done_windows_are_not_owed", "1h", "UTC", {"start": UTC_DAY1}, "2026-11-02T03:00+00:00",
         [Row("2026-11-02T00:00+00:00", "done"), Row("2026-11-02T02:00+00:00", "done")],
         [("2026-11-02T01:00+00:00", "missing")]),
    Case("retention_cut_is_later_than_start", "1d", "UTC",
         {"start": "2026-10-01T00:00+00:00", "retention": 3 * D}, "2026-11-05T12:00+00:00", [],
         [("2026-11-03T00:00+00:00", "missing"), ("2026-11-04T00:00+00:00", "missing")]),
    Case("start_is_later_than_retention_cut", "1d", "UTC",
         {"start": "2026-11-04T00:00+00:00", "retention": 30 * D}, "2026-11-05T12:00+00:00", [],
         [("2026-11-04T00:00+00:00", "missing")]),
    Case("no_start_means_the_whole_retention", "1d", "UTC", {"retention": 2 * D}, "2026-11-05T00:00+00:00",
         [], [("2026-11-03T00:00+00:00", "missing"), ("2026-11-04T00:00+00:00", "missing")]),
    Case("a_failed_window_waits_for_its_backoff", "1h", "UTC", {"start": UTC_DAY1, "backoff": 10 * M},
         "2026-11-02T02:09+00:00",
         [Row("2026-11-02T00:00+00:00", "failed", failures=1, finished="2026-11-02T02:00+00:00"),
          Row("2026-11-02T01:00+00:00", "done")],
         [], {"waiting": 1, "owed": 0, "next_retry": "2026-11-02T02:10+00:00"}),
    Case("a_failed_window_is_retried_once_its_backoff_passed", "1h", "UTC",
         {"start": UTC_DAY1, "backoff": 10 * M}, "2026-11-02T02:10+00:00",
         [Row("2026-11-02T00:00+00:00", "failed", failures=1, finished="2026-11-02T02:00+00:00"),
          Row("2026-11-02T01:00+00:00", "done")],
         [("2026-11-02T00:00+00:00", "failed")], {"waiting": 0}),
    Case("backoff_doubles_with_each_failure", "1h", "UTC", {"start": UTC_DAY1, "backoff": 10 * M},
         "2026-11-02T02:39+00:00",
         [Row("2026-11-02T00:00+00:00", "failed", failures=3, finished="2026-11-02T02:00+00:00"),
          Row("2026-11-02T01:00+00:00", "done")],
         [], {"next_retry": "2026-11-02T02:40+00:00"}),
    Case("backoff_is_capped", "1h", "UTC", {"start": UTC_DAY1, "backoff": 10 * M, "backoff_max": 30 * M},
         "2026-11-02T02:30+00:00",
         [Row("2026-11-02T00:00+00:00", "failed", failures=40, finished="2026-11-02T02:00+00:00"),
          Row("2026-11-02T01:00+00:00", "done")],
         [("2026-11-02T00:00+00:00", "failed")]),
    Case("a_window_running_under_a_live_lease_is_left_alone", "1h", "UTC", {"start": UTC_DAY1},
         "2026-11-02T02:00+00:00",
         [Row("2026-11-02T00:00+00:00", "running", lease_until="2026-11-02T02:00+00:00")],
         [("2026-11-02T01:00+00:00", "missing")], {"running": 1}),
    Case("a_window_whose_lease_expired_is_owed_again", "1h", "UTC", {"start": UTC_DAY1},
         "2026-11-02T02:00:00.000001+00:00",
         [Row("2026-11-02T00:00+00:00", "running", lease_until="2026-11-02T02:00+00:00", attempts=3)],
         [("2026-11-02T00:00+00:00", "expired"), ("2026-11-02T01:00+00:00", "missing")]),
    Case("the_last_windows_are_recomputed_even_when_done", "1h", "UTC", {"start": UTC_DAY1, "recompute": 2},
         "2026-11-02T03:10+00:00",
         [Row("2026-11-02T00:00+00:00", "done"), Row("2026-11-02T01:00+00:00", "done"),
          Row("2026-11-02T02:00+00:00", "done", attempts=4)],
         [("2026-11-02T01:00+00:00", "recompute"), ("2026-11-02T02:00+00:00", "recompute")], {"owed": 0}),
    Case("recompute_counts_closed_windows_not_done_ones_twice", "1h", "UTC",
         {"start": UTC_DAY1, "recompute": 2}, "2026-11-02T03:10+00:00",
         [Row("2026-11-02T00:00+00:00", "done"), Row("2026-11-02T01:00+00:00", "done")],
         [("2026-11-02T01:00+00:00", "recompute"), ("2026-11-02T02:00+00:00", "missing")], {"owed": 1}),
    Case("a_pass_takes_the_oldest_windows_up_to_the_cap", "1h", "UTC",
         {"start": UTC_DAY1, "max_windows": 2, "recompute": 1}, "2026-11-02T05:00+00:00",
         [Row("2026-11-02T01:00+00:00", "done"), Row("2026-11-02T04:00+00:00", "done")],
         [("2026-11-02T00:00+00:00", "missing"), ("2026-11-02T02:00+00:00", "missing")], {"owed": 3}),
    Case("an_unrecoverable_row_back_inside_the_range_is_owed_again", "1h", "UTC", {"start": UTC_DAY1},
         "2026-11-02T01:00+00:00", [Row("2026-11-02T00:00+00:00", "unrecoverable", attempts=2)],
         [("2026-11-02T00:00+00:00", "missing")]),
    Case("a_done_row_of_another_window_size_is_not_this_window", "1h", "UTC", {"start": UTC_DAY1},
         "2026-11-02T01:00+00:00",
         [Row("2026-11-02T00:00+00:00", "done", end="2026-11-03T00:00+00:00")],
         [("2026-11-02T00:00+00:00", "missing")]),
    Case("zurich_spring_forward_day_of_23h_closes_at_its_real_end", "1d", "Europe/Zurich",
         {"start": "2026-03-28T00:00+01:00", "delay": 15 * M}, "2026-03-30T00:15+02:00", [],
         [("2026-03-28T00:00+01:00", "missing"), ("2026-03-29T00:00+01:00", "missing")],
         {"lengths": [24 * H, 23 * H]}),
    Case("zurich_spring_forward_day_is_not_closed_an_instant_before", "1d", "Europe/Zurich",
         {"start": "2026-03-29T00:00+01:00", "delay": 15 * M}, "2026-03-30T00:14:59+02:00", [], []),
    Case("zurich_fall_back_day_of_25h_closes_at_its_real_end", "1d", "Europe/Zurich",
         {"start": "2026-10-25T00:00+02:00"}, "2026-10-26T00:00+01:00", [],
         [("2026-10-25T00:00+02:00", "missing")], {"lengths": [25 * H]}),
    Case("zurich_3h_window_across_fall_back_lasts_4h", "3h", "Europe/Zurich",
         {"start": "2026-10-25T00:00+02:00"}, "2026-10-25T03:00+01:00", [],
         [("2026-10-25T00:00+02:00", "missing")], {"lengths": [4 * H]}),
    Case("leap_day_is_a_window_of_its_own", "1d", "UTC", {"start": "2028-02-28T00:00+00:00"},
         "2028-03-02T00:00+00:00", [],
         [("2028-02-28T00:00+00:00", "missing"), ("2028-02-29T00:00+00:00", "missing"),
          ("2028-03-01T00:00+00:00", "missing")]),
    Case("february_of_a_leap_year_is_a_29_day_month", "1mo", "UTC", {"start": "2028-01-01T00:00+00:00"},
         "2028-03-01T00:00+00:00", [],
         [("2028-01-01T00:00+00:00", "missing"), ("2028-02-01T00:00+00:00", "missing")],
         {"lengths": [31 * D, 29 * D]}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.rule for c in CASES])
def test_plan_table(case: Case) -> None:
    grid = WindowGrid(case.every, case.zone)
    current = plan(grid, policy(case.policy), rows_of(snapshot(grid, case.rows)), ns(case.now))
    assert [(d.window.start, d.reason) for d in current.due] == [(ns(s), r) for s, r in case.due]
    for key, value in case.extra.items():
        if key == "lengths":
            assert [d.window.end - d.window.start for d in current.due] == value
        elif key == "next_retry":
            assert current.next_retry == ns(str(value))
        else:
            assert getattr(current, key) == value, key


def test_due_windows_carry_the_row_the_plan_saw_for_the_claim() -> None:
    grid = WindowGrid("1h")
    rows = [
        Row("2026-11-02T00:00+00:00", "failed", failures=1, finished=UTC_DAY1, attempts=2),
        Row("2026-11-02T01:00+00:00", "done", attempts=5),
        Row("2026-11-02T02:00+00:00", "done", end="2026-11-03T00:00+00:00", attempts=7),
    ]
    current = plan(grid, policy({"start": UTC_DAY1, "recompute": 3}), rows_of(snapshot(grid, rows)),
                   ns("2026-11-02T04:00+00:00"))  # fmt: skip
    assert [d.seen for d in current.due] == [Seen("failed", 2), Seen("done", 5), Seen("done", 7), None]


def test_the_oldest_owed_window_counts_failed_windows_waiting_for_their_retry() -> None:
    grid = WindowGrid("1h")
    rows = [Row("2026-11-02T00:00+00:00", "failed", failures=1, finished="2026-11-02T03:00+00:00")]
    current = plan(
        grid, policy({"start": UTC_DAY1}), rows_of(snapshot(grid, rows)), ns("2026-11-02T03:00+00:00")
    )
    assert current.oldest_owed == Window(ns("2026-11-02T00:00+00:00"), ns("2026-11-02T01:00+00:00"))
    assert (current.owed, current.waiting) == (2, 1)


# -- windows lost to the buffer retention -----------------------------------------------------


def test_windows_falling_out_of_the_retention_undone_are_reported_once() -> None:
    grid = WindowGrid("1d")
    rules = policy({"retention": 3 * D})
    rows = [Row("2026-11-02T00:00+00:00", "done"), Row("2026-11-03T00:00+00:00", "failed", failures=4,
            finished="2026-11-04T00:00+00:00")]  # fmt: skip
    first = plan(grid, rules, rows_of(snapshot(grid, rows)), ns("2026-11-05T00:00+00:00"))
    assert first.new_horizon == ns("2026-11-02T00:00+00:00")
    assert first.lost() is None  # a first pass without start loses nothing: it owes the retention
    later = plan(grid, rules, rows_of(snapshot(grid, rows)), ns("2026-11-07T12:00+00:00"),
                 horizon=first.new_horizon)  # fmt: skip
    assert later.new_horizon == ns("2026-11-04T12:00+00:00")
    # 02 done; 03 failed and 04 (starts before the cut 04T12) never done: both lost.
    assert later.lost() == Lost(2, ns("2026-11-03T00:00+00:00"), ns("2026-11-05T00:00+00:00"),
                              ns("2026-11-02T00:00+00:00"))  # fmt: skip
    again = plan(grid, rules, rows_of(snapshot(grid, rows)), ns("2026-11-07T13:00+00:00"),
                 horizon=later.new_horizon)  # fmt: skip
    assert again.lost() is None  # nothing new fell behind the horizon
    assert [d.window.start for d in later.due] == [ns("2026-11-05T00:00+00:00"), ns("2026-11-06T00:00+00:00")]


def test_a_start_before_the_retention_reports_the_windows_between_as_lost_on_the_first_pass() -> None:
    grid = WindowGrid("1d")
    rules = policy({"start": "2026-10-01T00:00+00:00", "retention": 7 * D})
    current = plan(grid, rules, rows_of(Snapshot.empty()), ns("2026-11-10T00:00+00:00"))
    assert current.new_horizon == ns("2026-11-03T00:00+00:00")
    lost = current.lost()
    assert lost is not None
    assert lost.count == 33  # 1 Oct … 2 Nov
    assert (lost.first, lost.last) == (
        ns("2026-10-01T00:00+00:00"),
        ns("2026-11-03T00:00+00:00"),
    )


def test_the_horizon_never_moves_back() -> None:
    grid = WindowGrid("1d")
    current = plan(grid, policy({"retention": 3 * D}), rows_of(Snapshot.empty()),
                   ns("2026-11-10T00:00+00:00"), horizon=ns("2026-11-09T00:00+00:00"))  # fmt: skip
    assert (current.new_horizon, current.lost()) == (None, None)


def test_a_policy_with_neither_start_nor_retention_has_no_cut() -> None:
    with pytest.raises(ValueError, match="no start and no retention"):
        policy({}).cut(0)


# -- explicit ranges (backfill) ---------------------------------------------------------------


@dataclass
class RangeCase:
    rows: list[Row] = field(default_factory=list)
    force: bool = False


def range_plan(rows: list[Row], force: bool = False, retention: int | None = None) -> dict[str, list[str]]:
    grid = WindowGrid("1h")
    rules = Policy(start=None, retention=retention, delay=0)
    span = (ns("2026-11-02T00:30+00:00"), ns("2026-11-02T06:00+00:00"))
    now = ns("2026-11-02T04:30+00:00")
    result: Plan = plan(grid, rules, rows_of(snapshot(grid, rows)), now, span=span, force=force)
    entries = list(result.entries())

    def hours(verdict: str) -> list[str]:
        return [hour(e.window) for e in entries if e.verdict == verdict]

    def hour(window: Window) -> str:
        return dt.datetime.fromtimestamp(window.start / S, dt.UTC).strftime("%H")

    return {
        "due": [f"{hour(d.window)}:{d.reason}" for d in result.due],
        "done": hours("done"),
        "running": hours("running"),
        "too_old": hours("too_old"),
        "not_closed": [str(result.tally().not_closed)],
    }


def test_a_range_owes_every_closed_window_overlapping_it_that_is_not_done() -> None:
    rows = [
        Row("2026-11-02T01:00+00:00", "done"),
        Row("2026-11-02T02:00+00:00", "failed", failures=9, finished="2026-11-02T04:29+00:00"),
        Row("2026-11-02T03:00+00:00", "running", lease_until="2026-11-02T05:00+00:00"),
    ]
    assert range_plan(rows) == {
        "due": ["00:missing", "02:failed"],  # the backoff does not hold back an explicit range
        "done": ["01"],
        "running": ["03"],
        "too_old": [],
        "not_closed": ["2"],  # 04:00 and 05:00 end after now
    }


def test_force_reruns_done_windows_of_a_range() -> None:
    assert range_plan([Row("2026-11-02T01:00+00:00", "done")], force=True)["due"] == [
        "00:missing", "01:forced", "02:missing", "03:missing"
    ]  # fmt: skip


def test_a_range_leaves_out_windows_older_than_the_retention() -> None:
    result = range_plan([], retention=3 * H)
    assert result["too_old"] == ["00", "01"]
    assert result["due"] == ["02:missing", "03:missing"]


def test_planning_days_of_5s_windows_is_fast() -> None:
    grid = WindowGrid("5s", "Europe/Zurich")
    start = ns("2026-11-01T00:00+01:00")
    now = start + 3 * D
    bounds = grid.boundaries(start, now)
    done = bounds[:-1][::2]  # every other window done: 25,920 of 51,840
    snap = Snapshot(done, done + 5 * S, np.ones(len(done), dtype=np.int64), {})
    rules = Policy(start=start, retention=None, delay=0, max_windows=100_000)
    began = time.perf_counter()
    current = plan(grid, rules, rows_of(snap), now)
    elapsed = time.perf_counter() - began
    assert current.owed == 25_920
    assert current.due[0].window.start == start + 5 * S
    assert elapsed < 2.0, f"planning took {elapsed:.2f}s"


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("span", [None, ("2026-11-02T00:00+00:00", "2026-11-02T10:00+00:00")])
def test_due_windows_are_exactly_the_due_entries_of_the_scope(
    force: bool, span: tuple[str, str] | None
) -> None:
    """due_windows skips what cannot be due without building entries: it must find the same
    windows, reasons and rows as a walk over every entry, whatever the rows say."""
    grid = WindowGrid("1h")
    rows = [
        Row("2026-11-02T00:00+00:00", "done", attempts=3),
        Row("2026-11-02T01:00+00:00", "failed", failures=1, finished="2026-11-02T07:55+00:00"),
        Row("2026-11-02T02:00+00:00", "failed", failures=1, finished="2026-11-02T01:00+00:00", attempts=2),
        Row("2026-11-02T03:00+00:00", "running", lease_until="2026-11-02T09:00+00:00"),
        Row("2026-11-02T04:00+00:00", "running", lease_until="2026-11-02T05:00+00:00", attempts=4),
        Row("2026-11-02T05:00+00:00", "done", end="2026-11-03T00:00+00:00", attempts=6),
        Row("2026-11-02T06:00+00:00", "unrecoverable", attempts=2),
        Row("2026-11-02T07:00+00:00", "done", attempts=2),
    ]
    rules = policy({"start": "2026-11-01T22:00+00:00", "recompute": 1, "backoff": 10 * M})
    current = plan(
        grid,
        rules,
        rows_of(snapshot(grid, rows)),
        ns("2026-11-02T08:00+00:00"),
        span=None if span is None else (ns(span[0]), ns(span[1])),
        force=force,
    )
    walked = [(e.window, e.reason, e.seen) for e in current.entries() if e.verdict == "due"]
    assert [(d.window, d.reason, d.seen) for d in current.due_windows()] == walked
    assert len(walked) >= 5  # missing, failed, expired, stale, unrecoverable (and more)


def counter_of(snapshot: Snapshot) -> DoneCounter:
    """The ledger's count of done windows on a grid, from the rows (as the SQL backends count)."""

    def count(start: int, end: int, width: int) -> int:
        starts, ends = snapshot.done_starts, snapshot.done_ends
        on_grid = (
            (starts >= start) & (starts < end) & (ends - starts == width) & ((starts - start) % width == 0)
        )
        return int(on_grid.sum())

    return count


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("recompute", [0, 2])
@pytest.mark.parametrize("span", [None, ("2026-11-01T00:00+00:00", "2026-11-05T00:00+00:00")])
def test_pages_counted_done_are_not_read_and_plan_the_same(
    force: bool, recompute: int, span: tuple[str, str] | None
) -> None:
    """A page the ledger counts as all done is not read; tally and due windows are those of a plan
    that reads every row, whatever stands between: a failed window, a running one, a done row of
    another window size, one off the grid, a window never run, a retention cut."""
    grid = WindowGrid("1h")
    first = ns("2026-11-01T00:00+00:00")
    hours = [first + h * H for h in range(4 * 24)]  # four days, each done
    rows = {h: Row(dt.datetime.fromtimestamp(h / S, dt.UTC).isoformat(), "done") for h in hours}

    def at(hour: int, **changes: object) -> None:
        rows[hours[hour]] = dataclasses.replace(rows[hours[hour]], **changes)  # type: ignore[arg-type]

    at(57, status="failed", failures=1, finished="2026-11-03T10:00+00:00")
    at(61, status="running", lease_until="2026-11-05T09:00+00:00")
    at(65, end="2026-11-03T19:00+00:00")  # a done row of another window size
    at(69, end="2026-11-03T21:30+00:00")
    off_grid = Row("2026-11-03T21:30+00:00", "done", end="2026-11-03T22:30+00:00")
    del rows[hours[94]]  # never ran
    ledger = snapshot(grid, [*rows.values(), off_grid])
    rules = policy({"start": "2026-11-01T00:00+00:00", "recompute": recompute, "retention": 90 * H})
    reads: list[int] = []

    def read(start: int, end: int) -> Snapshot:
        reads.append(start)
        return ledger

    now = ns("2026-11-05T01:00+00:00")
    scope = None if span is None else (ns(span[0]), ns(span[1]))
    reading = dataclasses.replace(plan(grid, rules, rows_of(ledger), now, span=scope, force=force), page=1)
    counting = dataclasses.replace(
        plan(grid, rules, read, now, span=scope, force=force, count_done=counter_of(ledger)), page=1
    )
    assert counting.tally() == reading.tally()
    assert [(d.window, d.reason, d.seen) for d in counting.due_windows()] == [
        (d.window, d.reason, d.seen) for d in reading.due_windows()
    ]
    pages = len(list(reading._pages()))
    reads.clear()
    counting.tally()
    # Not read: the pages all done (the first two days; for a range only the second, the first
    # holding windows older than the retention), unless --force makes every window due.
    skipped = 0 if force else 1 if span else 2
    assert len(reads) == pages - skipped

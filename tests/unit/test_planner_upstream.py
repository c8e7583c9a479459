"""The planner of a job that reads another job: a window is owed once every upstream window it
covers is done (or can no longer be), and again when one of them is re-run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np

from rollup.core.windows import Window, WindowGrid, to_ns
from rollup.jobs.planner import PAGE_WINDOWS, Dependency, Policy, RowReader, plan
from rollup.ledger.base import Record, Snapshot, Status

S = 1_000_000_000
D = 86400 * S
ZURICH = "Europe/Zurich"
DAILY = WindowGrid("1d", ZURICH)
MONTHLY = WindowGrid("1mo", ZURICH)
NOW = "2026-12-01T12:00+01:00"
"""November 2026 is closed; its days too."""
RAN = "2026-12-01T01:00+01:00"
"""When the windows in these tests last ran, unless a test says otherwise."""


def ns(iso: str) -> int:
    return to_ns(dt.datetime.fromisoformat(iso))


def day(n: int, month: int = 11) -> str:
    """Local midnight of a day of 2026 in Zurich."""
    return dt.datetime(2026, month, n, tzinfo=ZoneInfo(ZURICH)).isoformat()


@dataclass(frozen=True)
class Row:
    start: str
    status: Status = "done"
    started: str = RAN
    finished: str = RAN
    lease_until: str | None = None


class Ledger:
    """One job's rows, read as the ledger returns them (with the times of done rows)."""

    def __init__(self, grid: WindowGrid, rows: Sequence[Row]):
        self.grid = grid
        self.rows = {ns(r.start): r for r in rows}
        self.reads: list[tuple[int, int]] = []

    def reader(self) -> RowReader:
        def read(start: int, end: int) -> Snapshot:
            self.reads.append((start, end))
            done, pending = [], {}
            for first in sorted(s for s in self.rows if start <= s < end):
                row = self.rows[first]
                window = self.grid.window_at(first)
                if row.status == "done":
                    done.append((first, window.end, 1, ns(row.started), ns(row.finished)))
                    continue
                pending[first] = Record(
                    window, row.status, 1, 1 if row.status == "failed" else 0, None, 0, 0,
                    ns(row.started), None if row.status == "running" else ns(row.finished), None,
                    "other" if row.status == "running" else None,
                    ns(row.lease_until) if row.lease_until else None,
                )  # fmt: skip
            table = np.asarray(done, dtype=np.int64).reshape(-1, 5)
            columns = [table[:, i].copy() for i in range(5)]
            return Snapshot(columns[0], columns[1], columns[2], pending, columns[3], columns[4])

        return read


def all_days(month: int = 11, **changes: Row) -> list[Row]:
    days = 30 if month == 11 else 31
    return [changes.get(f"d{n}", Row(day(n, month))) for n in range(1, days + 1)]


def monthly_plan(
    monthly: Sequence[Row],
    daily: Sequence[Row],
    *,
    now: str = NOW,
    cut: str | None = "2026-11-01T00:00+01:00",
    span: tuple[str, str] | None = None,
    force: bool = False,
) -> dict[str, tuple[str, str | None]]:
    """Verdict and reason of each monthly window from October 2026, by local month (the daily
    job's cut is November 1st unless ``cut`` says otherwise: October's days can no longer be done)."""
    upstream = Dependency(DAILY, Ledger(DAILY, daily).reader(), None if cut is None else ns(cut))
    policy = Policy(start=ns("2026-10-01T00:00+02:00"), retention=None, delay=0)
    current = plan(
        MONTHLY,
        policy,
        Ledger(MONTHLY, monthly).reader(),
        ns(now),
        span=None if span is None else (ns(span[0]), ns(span[1])),
        force=force,
        upstream=upstream,
    )
    return {
        dt.datetime.fromtimestamp(e.window.start / S, ZoneInfo(ZURICH)).strftime("%Y-%m"): (
            e.verdict,
            e.reason,
        )
        for e in current.entries()
    }


def test_a_month_is_due_once_every_day_of_it_is_done() -> None:
    found = monthly_plan([], all_days())
    assert found["2026-11"] == ("due", "missing")


def test_a_month_with_a_day_not_done_waits_for_the_job_it_reads() -> None:
    for missing in ("failed", "running", None):
        days = [r for r in all_days() if r.start != day(17)]
        if missing is not None:
            days.append(Row(day(17), missing, lease_until="2027-01-01T00:00+01:00"))
        assert monthly_plan([], days)["2026-11"] == ("waiting_upstream", None), missing


def test_days_the_job_it_reads_can_no_longer_do_hold_nothing_back() -> None:
    """October's days are older than the daily job's cut (its buffer retention, or its start):
    never done, they never will be, and October is merged from what there is."""
    found = monthly_plan([], all_days())
    assert found["2026-10"] == ("due", "missing")
    assert monthly_plan([], all_days(), cut="2026-10-15T00:00+02:00")["2026-10"] == ("waiting_upstream", None)


def test_a_done_month_is_due_again_when_a_day_of_it_finished_after_the_month_began() -> None:
    monthly = [Row(day(1, 10)), Row(day(1))]
    rerun = Row(day(17), started="2026-12-01T09:00+01:00", finished="2026-12-01T09:05+01:00")
    found = monthly_plan(monthly, all_days(d17=rerun))
    assert found["2026-11"] == ("due", "upstream")
    assert found["2026-10"] == ("done", None)


def test_a_day_that_finished_before_the_month_began_changes_nothing() -> None:
    monthly = [Row(day(1), started="2026-12-01T02:00+01:00", finished="2026-12-01T02:00+01:00")]
    found = monthly_plan(monthly, all_days(d17=Row(day(17), finished="2026-12-01T01:59+01:00")))
    assert found["2026-11"] == ("done", None)


def test_a_done_month_waits_while_a_day_of_it_runs_again() -> None:
    rerun = Row(day(17), "running", lease_until="2026-12-01T13:00+01:00")
    assert monthly_plan([Row(day(1))], all_days(d17=rerun))["2026-11"] == ("waiting_upstream", None)


def test_a_month_running_while_a_day_of_it_runs_again_stays_running() -> None:
    month = Row(day(1), "running", lease_until="2026-12-01T13:00+01:00")
    rerun = Row(day(17), "running", lease_until="2026-12-01T13:00+01:00")
    assert monthly_plan([month], all_days(d17=rerun))["2026-11"] == ("running", None)


def test_a_forced_backfill_does_not_run_a_month_whose_days_are_not_done() -> None:
    span = ("2026-10-01T00:00+02:00", "2026-12-01T00:00+01:00")
    days = [r for r in all_days() if r.start != day(30)]
    found = monthly_plan([Row(day(1, 10)), Row(day(1))], days, span=span, force=True)
    assert found == {"2026-10": ("due", "forced"), "2026-11": ("waiting_upstream", None)}


def test_the_tally_counts_waiting_months_apart_from_owed_ones() -> None:
    upstream = Dependency(DAILY, Ledger(DAILY, all_days(d3=Row(day(3), "failed"))).reader(), ns(day(1)))
    policy = Policy(start=ns("2026-01-01T00:00+01:00"), retention=None, delay=0)
    current = plan(MONTHLY, policy, Ledger(MONTHLY, []).reader(), ns(NOW), upstream=upstream)
    tally = current.tally()
    assert (tally.due, tally.waiting_upstream, tally.owed) == (
        10,
        1,
        10,
    )  # January to October; November waits
    assert [d.window.start for d in current.due][-1] == ns(day(1, 10))


def test_a_day_from_3_hour_windows_covers_the_eight_of_a_23_hour_day() -> None:
    three_hours = WindowGrid("3h", ZURICH)
    spring = Window(ns("2026-03-29T00:00+01:00"), ns("2026-03-30T00:00+02:00"))
    covered = three_hours.windows(spring.start, spring.end)
    assert len(covered) == 8
    assert covered[0].end - covered[0].start == 2 * 3600 * S
    policy = Policy(start=spring.start, retention=None, delay=0)
    now = spring.end + D
    for missing in [None, *range(8)]:
        starts = [w.start for i, w in enumerate(covered) if i != missing]
        rows = [Row(dt.datetime.fromtimestamp(start / S, dt.UTC).isoformat()) for start in starts]
        upstream = Dependency(three_hours, Ledger(three_hours, rows).reader(), None)
        (entry, *_) = plan(DAILY, policy, Ledger(DAILY, []).reader(), now, upstream=upstream).entries()
        assert entry.verdict == ("due" if missing is None else "waiting_upstream"), missing


def test_pages_read_about_a_page_of_upstream_windows_at_a_time() -> None:
    """Ten years of days from 5-minute windows: each read of the upstream's rows spans about
    PAGE_WINDOWS of its windows, never all of them."""
    five = WindowGrid("5m", "UTC")
    upstream_ledger = Ledger(five, [])
    policy = Policy(start=ns("2016-01-01T00:00+00:00"), retention=None, delay=0)
    upstream = Dependency(five, upstream_ledger.reader(), None)
    days = WindowGrid("1d")
    now = ns("2026-01-01T00:00+00:00")
    tally = plan(days, policy, Ledger(days, []).reader(), now, upstream=upstream).tally()
    assert tally.waiting_upstream == 3653
    widest = max(end - start for start, end in upstream_ledger.reads)
    assert widest <= (PAGE_WINDOWS + 288) * 5 * 60 * S
    assert len(upstream_ledger.reads) > 10


def test_the_tally_counts_a_month_due_again_for_its_days_as_recomputed_not_owed() -> None:
    rerun = Row(day(17), started="2026-12-01T09:00+01:00", finished="2026-12-01T09:05+01:00")
    upstream = Dependency(DAILY, Ledger(DAILY, all_days(d17=rerun)).reader(), ns(day(1)))
    policy = Policy(start=ns(day(1, 10)), retention=None, delay=0)
    monthly = Ledger(MONTHLY, [Row(day(1, 10)), Row(day(1))]).reader()
    current = plan(MONTHLY, policy, monthly, ns(NOW), upstream=upstream)
    tally = current.tally()
    assert (tally.recompute, tally.done, tally.due, tally.owed) == (1, 1, 0, 0)
    assert [(d.window.start, d.reason) for d in current.due] == [(ns(day(1)), "upstream")]


def test_due_windows_are_exactly_the_due_entries_when_reading_a_job() -> None:
    """due_windows skips what cannot be due without building entries (waiting for upstream, done
    and not stale): it must find the same windows and reasons as a walk over every entry."""
    hourly = WindowGrid("1h", ZURICH)
    later = "2026-12-01T03:00+01:00"  # after RAN: an upstream re-run the daily window has not seen
    hours: list[Row] = []
    for n in range(1, 7):
        for hour in range(24):
            start = dt.datetime(2026, 11, n, hour, tzinfo=ZoneInfo(ZURICH)).isoformat()
            if n == 3 and hour == 5:
                continue  # day 3 waits for this hour
            hours.append(Row(start, finished=later if n == 2 and hour == 7 else RAN))
    daily = [
        Row(day(2)),  # stale: hour 7 ran again after it
        Row(day(4)),  # done, and nothing newer upstream
        Row(day(5), status="failed"),
        Row(day(6), status="running", lease_until="2026-12-01T13:00+01:00"),
    ]
    for force in (False, True):
        upstream = Dependency(hourly, Ledger(hourly, hours).reader(), None)
        current = plan(
            DAILY,
            Policy(start=ns(day(1)), retention=None, delay=0),
            Ledger(DAILY, daily).reader(),
            ns(day(7)),
            force=force,
            upstream=upstream,
        )
        walked = [(e.window, e.reason) for e in current.entries() if e.verdict == "due"]
        assert [(d.window, d.reason) for d in current.due_windows()] == walked
        reasons = dict(walked)
        assert reasons[DAILY.window_at(ns(day(1)))] == "missing"
        assert DAILY.window_at(ns(day(3))) not in reasons  # waiting for the job it reads
        assert DAILY.window_at(ns(day(6))) not in reasons  # running
        if not force:
            assert reasons[DAILY.window_at(ns(day(2)))] == "upstream"
            assert DAILY.window_at(ns(day(4))) not in reasons

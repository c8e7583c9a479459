"""One test suite, run against every ledger backend: SQLite (a file) and a real PostgreSQL."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from pydantic import SecretStr

from rollup.core.windows import Window
from rollup.errors import LedgerError
from rollup.ledger import open_ledger
from rollup.ledger.base import Finished, LatestDone, Ledger, Seen
from rollup.ledger.sql import SCHEMA_VERSION, SqlLedger
from scripts.servers import RunningServer, free_port
from tests.conftest import LedgerTarget, new_postgres_database

pytestmark = pytest.mark.integration

S = 1_000_000_000
T0 = 1_800_000_000 * S
LEASE = 60 * S
JOB = "bw"


def windows(count: int, size: int = 10 * S, first: int = T0) -> list[Window]:
    return [Window(first + i * size, first + (i + 1) * size) for i in range(count)]


@pytest.fixture
def ledger(ledger_target: LedgerTarget) -> Iterator[Ledger]:
    with ledger_target.open() as opened:
        yield opened


def fresh(ws: list[Window]) -> list[tuple[Window, Seen | None]]:
    return [(w, None) for w in ws]


def done(ledger: Ledger, ws: list[Window], owner: str = "a", now: int = T0, points: int = 5) -> None:
    assert ledger.claim(JOB, fresh(ws), owner, now, LEASE) == ws
    ledger.finish(JOB, [Finished(w, None, points, 2, 0.5) for w in ws], owner, now + S)


def test_a_new_ledger_is_created_at_the_current_schema_version(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        done(ledger, windows(2))
    with ledger_target.open() as again:  # opening again migrates nothing and keeps the rows
        assert again.schema_version() == SCHEMA_VERSION
        assert len(again.snapshot(JOB, 0, 2**62).done_starts) == 2


def test_a_ledger_with_a_newer_schema_is_refused(ledger_target: LedgerTarget) -> None:
    with ledger_target.open() as ledger:
        assert isinstance(ledger, SqlLedger)
        with ledger._transaction() as tx:
            tx.count("UPDATE rollup_schema SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(LedgerError, match=rf"schema version {SCHEMA_VERSION + 1} is newer than this rollup"):
        ledger_target.open()


def test_new_windows_are_claimed_once(ledger: Ledger) -> None:
    ws = windows(3)
    assert ledger.claim(JOB, fresh(ws), "a", T0, LEASE) == ws
    assert ledger.claim(JOB, fresh(ws), "b", T0, LEASE) == []
    records = ledger.records(JOB, 0, 2**62)
    assert [(r.window, r.status, r.attempts, r.owner) for r in records] == [
        (w, "running", 1, "a") for w in ws
    ]
    assert all(r.started == T0 and r.lease_until == T0 + LEASE for r in records)


def test_a_claim_succeeds_only_while_the_row_is_as_the_planner_saw_it(ledger: Ledger) -> None:
    (w,) = windows(1)
    ledger.claim(JOB, fresh([w]), "a", T0, LEASE)
    ledger.finish(JOB, [Finished(w, "sink down", 0, 0, 0.1)], "a", T0 + S)
    seen = Seen("failed", 1)
    assert ledger.claim(JOB, [(w, seen)], "b", T0 + 2 * S, LEASE) == [w]
    assert ledger.claim(JOB, [(w, seen)], "c", T0 + 2 * S, LEASE) == []  # b's claim changed it
    (record,) = ledger.records(JOB, 0, 2**62)
    assert (record.status, record.attempts, record.owner) == ("running", 2, "b")


def test_a_running_window_is_claimable_again_only_after_its_lease_expired(ledger: Ledger) -> None:
    (w,) = windows(1)
    ledger.claim(JOB, fresh([w]), "dead", T0, LEASE)
    running = Seen("running", 1)
    assert ledger.claim(JOB, [(w, running)], "b", T0 + LEASE, LEASE) == []
    assert ledger.claim(JOB, [(w, running)], "b", T0 + LEASE + 1, LEASE) == [w]


def test_renewing_extends_the_lease_of_the_owner_only(ledger: Ledger) -> None:
    ws = windows(3)
    ledger.claim(JOB, fresh(ws), "a", T0, LEASE)
    assert ledger.renew(JOB, ws, "someone-else", T0 + 30 * S, LEASE) == 0
    assert ledger.renew(JOB, ws[1:], "a", T0 + 30 * S, LEASE) == 2
    leases = [r.lease_until for r in ledger.records(JOB, 0, 2**62)]
    assert leases == [T0 + LEASE, T0 + 30 * S + LEASE, T0 + 30 * S + LEASE]
    late = T0 + LEASE + 1  # the first window's lease expired, the others' did not
    assert ledger.claim(JOB, [(w, Seen("running", 1)) for w in ws], "b", late, LEASE) == ws[:1]


def test_release_ends_the_owners_claims_at_once_so_another_process_takes_them_without_waiting(
    ledger: Ledger,
) -> None:
    ws = windows(3)
    ledger.claim(JOB, fresh(ws), "stopping", T0, LEASE)
    ledger.claim("other-job", fresh(ws[:1]), "stopping", T0, LEASE)
    ledger.claim(JOB, fresh(windows(1, first=T0 + 100 * S)), "someone-else", T0, LEASE)
    ledger.finish(JOB, [Finished(ws[0], None, 5, 2, 0.5)], "stopping", T0 + S)

    assert ledger.release("stopping") == [(JOB, ws[1]), (JOB, ws[2]), ("other-job", ws[0])]
    assert ledger.release("stopping") == []
    # Its lease is over, long before LEASE: no backoff, no failure recorded.
    running = Seen("running", 1)
    assert ledger.claim(JOB, [(w, running) for w in ws[1:]], "b", T0 + 2 * S, LEASE) == ws[1:]
    records = ledger.records(JOB, 0, 2**62)
    assert [(r.status, r.failures, r.owner) for r in records] == [
        ("done", 0, None), ("running", 0, "b"), ("running", 0, "b"), ("running", 0, "someone-else")
    ]  # fmt: skip
    # The stopped process's late heartbeat or result no longer touches them.
    assert ledger.renew(JOB, ws, "stopping", T0 + 3 * S, LEASE) == 0
    assert ledger.finish(JOB, [Finished(ws[1], None, 1, 1, 0.1)], "stopping", T0 + 3 * S) == []


def test_finish_records_done_and_failed_with_counts_errors_and_times(ledger: Ledger) -> None:
    ok, bad = windows(2)
    ledger.claim(JOB, fresh([ok, bad]), "a", T0, LEASE)
    recorded = ledger.finish(
        JOB, [Finished(ok, None, 1000, 7, 1.5), Finished(bad, "HTTP 503", 0, 0, 0.25)], "a", T0 + 2 * S
    )
    assert recorded == [ok, bad]
    first, second = ledger.records(JOB, 0, 2**62)
    assert (first.status, first.points, first.rows, first.duration, first.error) == (
        "done",
        1000,
        7,
        1.5,
        None,
    )
    assert (first.started, first.finished, first.owner, first.lease_until) == (T0, T0 + 2 * S, None, None)
    assert (second.status, second.failures, second.error) == ("failed", 1, "HTTP 503")


def test_failures_count_up_until_a_success_which_keeps_the_last_error(ledger: Ledger) -> None:
    (w,) = windows(1)
    seen: Seen | None = None
    for attempt in range(1, 4):
        ledger.claim(JOB, [(w, seen)], "a", T0 + attempt * S, LEASE)
        error = None if attempt == 3 else f"error {attempt}"
        ledger.finish(JOB, [Finished(w, error, 1, 1, 0.1)], "a", T0 + attempt * S)
        (record,) = ledger.records(JOB, 0, 2**62)
        seen = record.seen
        assert record.failures == (0 if attempt == 3 else attempt)
    assert (record.status, record.attempts, record.error) == ("done", 3, "error 2")


def test_a_finish_after_the_claim_was_taken_over_records_nothing(ledger: Ledger) -> None:
    (w,) = windows(1)
    ledger.claim(JOB, fresh([w]), "slow", T0, LEASE)
    assert ledger.claim(JOB, [(w, Seen("running", 1))], "fast", T0 + LEASE + 1, LEASE) == [w]
    assert ledger.finish(JOB, [Finished(w, "late failure", 0, 0, 9.0)], "slow", T0 + LEASE + 2) == []
    (record,) = ledger.records(JOB, 0, 2**62)
    assert (record.status, record.owner, record.error) == ("running", "fast", None)


def test_snapshot_gives_done_windows_as_arrays_and_the_others_as_records(ledger: Ledger) -> None:
    ws = windows(6)
    done(ledger, [ws[0], ws[2], ws[4]])
    ledger.claim(JOB, fresh([ws[1]]), "a", T0, LEASE)
    ledger.claim(JOB, fresh([ws[5]]), "a", T0, LEASE)
    ledger.finish(JOB, [Finished(ws[5], "boom", 0, 0, 0.0)], "a", T0)
    done(ledger, windows(1, first=T0 + 10**6 * S))  # outside the range asked for
    other = "other-job"
    ledger.claim(other, fresh(ws), "a", T0, LEASE)

    snapshot = ledger.snapshot(JOB, ws[0].start, ws[-1].end)
    assert snapshot.done_starts.tolist() == [ws[0].start, ws[2].start, ws[4].start]
    assert snapshot.done_ends.tolist() == [ws[0].end, ws[2].end, ws[4].end]
    assert snapshot.done_attempts.tolist() == [1, 1, 1]
    assert {s: r.status for s, r in snapshot.pending.items()} == {
        ws[1].start: "running",
        ws[5].start: "failed",
    }


def test_count_done_counts_done_windows_of_the_grid_only(ledger: Ledger) -> None:
    """The planner skips reading a page when this count equals its windows: a row of another size,
    off the grid, not done, of another job or outside the range must not count."""
    ws = windows(8)
    done(ledger, ws[:5])
    ledger.claim(JOB, fresh([ws[5]]), "a", T0, LEASE)  # running
    done(ledger, [Window(ws[6].start, ws[6].start + 20 * S)])  # another window size
    done(ledger, [Window(ws[7].start + 5 * S, ws[7].end + 5 * S)])  # off the grid
    done(ledger, windows(1, first=ws[-1].end))  # after the range
    ledger.claim("other-job", fresh(ws), "a", T0, LEASE)
    ledger.finish("other-job", [Finished(w, None, 1, 1, 0.1) for w in ws], "a", T0 + S)

    assert ledger.count_done(JOB, ws[0].start, ws[-1].start + 1, 10 * S) == 5
    assert ledger.count_done(JOB, ws[0].start, ws[4].start + 1, 10 * S) == 5  # all five done
    assert ledger.count_done(JOB, ws[1].start, ws[3].start + 1, 10 * S) == 3
    assert ledger.count_done(JOB, ws[0].start, ws[-1].start + 1, 20 * S) == 1  # ws[6]'s 20 s row
    assert ledger.count_done(JOB, ws[1].start, ws[-1].start + 1, 20 * S) == 0  # another phase
    assert ledger.count_done(JOB, ws[7].start + 5 * S, ws[7].start + 6 * S, 10 * S) == 1
    assert ledger.count_done("other-job", ws[0].start, ws[-1].start + 1, 10 * S) == 8


def test_horizon_moves_once_per_pass_counts_lost_windows_and_marks_their_rows(ledger: Ledger) -> None:
    ws = windows(4)
    done(ledger, ws[:1])
    ledger.claim(JOB, fresh(ws[1:3]), "a", T0, LEASE)
    ledger.finish(JOB, [Finished(ws[1], "boom", 0, 0, 0.0)], "a", T0)  # ws[2] stays running
    assert ledger.job_state(JOB).horizon is None
    assert ledger.advance_horizon(JOB, None, ws[0].start, 0, ws[0].start)
    assert not ledger.advance_horizon(JOB, None, ws[1].start, 0, ws[1].start)  # someone was first
    assert not ledger.advance_horizon(JOB, ws[2].start, ws[3].start, 1, ws[2].start)  # stale
    assert ledger.advance_horizon(JOB, ws[0].start, ws[3].start, 2, ws[0].start)
    state = ledger.job_state(JOB)
    assert (state.horizon, state.unrecoverable) == (ws[3].start, 2)
    statuses = [r.status for r in ledger.records(JOB, 0, 2**62)]
    assert statuses == ["done", "unrecoverable", "unrecoverable"]


def test_summary_counts_statuses_and_shows_the_latest_failure(ledger: Ledger) -> None:
    ws = windows(5)
    done(ledger, ws[:2])
    ledger.claim(JOB, fresh(ws[2:]), "a", T0, LEASE)
    ledger.finish(JOB, [Finished(ws[2], "first", 0, 0, 0.0)], "a", T0 + S)
    ledger.finish(JOB, [Finished(ws[3], "second", 0, 0, 0.0)], "a", T0 + 2 * S)
    summary = ledger.summary(JOB, T0 + 2 * S)
    assert summary.counts == {"done": 2, "failed": 2, "running": 1, "unrecoverable": 0}
    assert summary.last_failure is not None
    assert (summary.last_failure.window, summary.last_failure.error) == (ws[3], "second")
    # Once its lease has ended (its process died, or released it) a window is owed, not running.
    assert ledger.summary(JOB, T0 + LEASE + S).counts["running"] == 0
    assert ledger.summary("nothing-yet", T0).counts == {
        "done": 0,
        "failed": 0,
        "running": 0,
        "unrecoverable": 0,
    }


def test_latest_done_gives_the_newest_done_windows_end_and_when_a_window_was_last_recorded_done(
    ledger: Ledger,
) -> None:
    assert ledger.latest_done(JOB) is None
    ws = windows(4)
    ledger.claim(JOB, fresh(ws), "a", T0, LEASE)
    ledger.finish(JOB, [Finished(ws[1], None, 1, 1, 0.1)], "a", T0 + 5 * S)
    ledger.finish(JOB, [Finished(ws[0], None, 1, 1, 0.1)], "a", T0 + 9 * S)  # an older window, later
    ledger.finish(JOB, [Finished(ws[2], "boom", 0, 0, 0.1)], "a", T0 + 12 * S)  # failed; ws[3] running
    later = windows(1, first=T0 + 10**6 * S)
    assert ledger.claim("other", fresh(later), "a", T0, LEASE) == later
    ledger.finish("other", [Finished(later[0], None, 1, 1, 0.1)], "a", T0 + 30 * S)

    assert ledger.latest_done(JOB) == LatestDone(newest_end=ws[1].end, last_finished=T0 + 9 * S)
    assert ledger.latest_done("other") == LatestDone(newest_end=later[0].end, last_finished=T0 + 30 * S)
    # Run again (recompute), a done window is not done until it is recorded done again.
    assert ledger.claim(JOB, [(ws[1], Seen("done", 1))], "a", T0 + 40 * S, LEASE) == [ws[1]]
    assert ledger.latest_done(JOB) == LatestDone(newest_end=ws[0].end, last_finished=T0 + 9 * S)


def _claim_worker(
    target: LedgerTarget, owner: str, seed: int, go: Barrier, results: Queue[tuple[str, list[int]]]
) -> None:
    ws = windows(300)
    random.Random(seed).shuffle(ws)
    claimed: list[int] = []
    with target.open() as ledger:
        go.wait(timeout=60)  # every process has its connection: now they all claim at once
        for index in range(0, len(ws), 15):
            batch = sorted(ws[index : index + 15], key=lambda w: w.start)
            claimed += [w.start for w in ledger.claim(JOB, fresh(batch), owner, T0, LEASE)]
            time.sleep(0.005)  # a runner works on its span between two claims
    results.put((owner, claimed))


def test_processes_claiming_the_same_windows_at_once_each_get_a_disjoint_share(
    ledger_target: LedgerTarget,
) -> None:
    ledger_target.open().close()  # create the schema first; the race is about claims
    context = multiprocessing.get_context("spawn")
    results: Queue[tuple[str, list[int]]] = context.Queue()
    go = context.Barrier(4)
    workers = [
        context.Process(target=_claim_worker, args=(ledger_target, f"p{i}", i, go, results)) for i in range(4)
    ]
    for worker in workers:
        worker.start()
    found: dict[str, list[int]] = dict(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    claims = Counter(start for starts in found.values() for start in starts)
    assert sorted(claims) == [w.start for w in windows(300)]
    assert set(claims.values()) == {1}
    assert len([starts for starts in found.values() if starts]) >= 2  # they really did race
    with ledger_target.open() as ledger:
        owners = {r.window.start: r.owner for r in ledger.records(JOB, 0, 2**62)}
    assert all(owners[start] == owner for owner, starts in found.items() for start in starts)


def _open_worker(target: LedgerTarget, go: Barrier, results: Queue[object]) -> None:
    go.wait(timeout=60)
    try:
        with target.open() as ledger:
            results.put(ledger.schema_version())
    except LedgerError as exc:
        results.put(str(exc))


def test_processes_opening_a_new_ledger_at_once_all_get_the_same_schema(ledger_target: LedgerTarget) -> None:
    context = multiprocessing.get_context("spawn")
    results: Queue[object] = context.Queue()
    go = context.Barrier(4)
    workers = [context.Process(target=_open_worker, args=(ledger_target, go, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    versions = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert versions == [SCHEMA_VERSION] * 4


# -- backend specifics ------------------------------------------------------------------------


def test_sqlite_ledger_creates_its_directory_and_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state" / "deeper" / "ledger.sqlite"
    with open_ledger(SecretStr(f"sqlite:{path}")) as ledger:
        assert ledger.location == f"sqlite:{path}"
        assert isinstance(ledger, SqlLedger)
        with ledger._transaction() as tx:
            assert tx.rows("PRAGMA journal_mode") == [("wal",)]
    assert path.is_file()


def test_sqlite_ledger_in_an_unwritable_place_is_a_ledger_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(LedgerError, match=rf"cannot open the ledger sqlite:{blocker}/ledger.sqlite"):
        open_ledger(SecretStr(f"sqlite:{blocker}/ledger.sqlite"))


def test_postgres_errors_name_the_database_but_never_the_password(postgres: RunningServer) -> None:
    url = new_postgres_database(postgres)
    wrong = "not-the-password-1234"
    with pytest.raises(LedgerError) as raised:
        open_ledger(SecretStr(url), SecretStr(wrong))
    message = str(raised.value)
    assert f"cannot open the ledger {url}:" in message
    assert "password authentication failed" in message
    assert wrong not in message
    assert postgres.password not in message
    with_password = url.replace("rollup@", f"rollup:{postgres.password}@")
    with open_ledger(SecretStr(with_password)) as ledger:
        assert ledger.location == url


def test_an_unreachable_postgres_is_a_ledger_error_naming_where() -> None:
    url = f"postgresql://rollup@127.0.0.1:{free_port()}/ledger"
    with pytest.raises(LedgerError, match=rf"cannot open the ledger {url}: .*(refused|failed)"):
        open_ledger(SecretStr(url), SecretStr("whatever-secret"))

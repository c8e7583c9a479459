"""Window ledger speed: SQLite against a real PostgreSQL, on one day of 5-second windows.

    python -m bench.ledger [--windows 17280] [--batch 100] [--repeat 3]

For each backend, on a fresh ledger: claim every window (in claims of ``--batch`` windows, as a
pass claims a span at a time), record each batch done, then read the rows back the ways the
planner and ``rollup status`` do (snapshot, summary, full records). The best of ``--repeat``
runs is printed as a table and written to ``bench/results/<time>-ledger.json``. PostgreSQL is
Debian's, started on 127.0.0.1 in a temp dir (``scripts/servers.py``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import psycopg
from pydantic import SecretStr

from rollup.core.windows import Window
from rollup.ledger import open_ledger
from rollup.ledger.base import Finished, Ledger
from scripts.servers import start_postgres

RESULTS = Path(__file__).parent / "results"
JOB = "bench"
T0 = 1_700_000_000_000_000_000
STEP = 5_000_000_000
LEASE = 60_000_000_000
T = TypeVar("T")
STEPS = ("claim", "finish", "snapshot", "summary", "records")


def one_run(ledger: Ledger, windows: list[Window], batch: int) -> dict[str, float]:
    times = dict.fromkeys(STEPS, 0.0)

    def timed(step: str, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        result = call()
        times[step] += time.perf_counter() - started
        return result

    for i in range(0, len(windows), batch):
        wanted = [(w, None) for w in windows[i : i + batch]]
        claimed = timed("claim", partial(ledger.claim, JOB, wanted, "bench", T0, LEASE))
        assert len(claimed) == len(wanted), "a claim was refused"
        done = [Finished(w, None, 100, 1, 0.01) for w in claimed]
        timed("finish", partial(ledger.finish, JOB, done, "bench", T0))
    end = windows[-1].end
    timed("snapshot", lambda: ledger.snapshot(JOB, T0, end))
    summary = timed("summary", lambda: ledger.summary(JOB, end))
    assert summary.counts["done"] == len(windows), summary
    timed("records", lambda: ledger.records(JOB, T0, end))
    return times


def create_database(url: str, password: str, name: str) -> str:
    with psycopg.connect(f"{url}/postgres", password=password, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{url}/{name}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--windows", type=int, default=17_280, help="windows to claim and finish")
    parser.add_argument("--batch", type=int, default=100, help="windows per claim")
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend; the best is shown")
    args = parser.parse_args()
    windows = [Window(T0 + i * STEP, T0 + (i + 1) * STEP) for i in range(args.windows)]

    best: dict[str, dict[str, float]] = {}
    server = start_postgres()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.repeat):
                database = create_database(server.url, server.password, f"bench{run}")
                targets = {
                    "sqlite": (f"sqlite://{tmp}/ledger{run}.sqlite", None),
                    "postgresql": (database, server.password),
                }
                for backend, (url, password) in targets.items():
                    ledger = open_ledger(SecretStr(url), None if password is None else SecretStr(password))
                    try:
                        times = one_run(ledger, windows, args.batch)
                    finally:
                        ledger.close()
                    total = sum(times.values())
                    if backend not in best or total < sum(best[backend].values()):
                        best[backend] = times
    finally:
        server.stop()

    print(f"{args.windows:,} windows, claims of {args.batch}, best of {args.repeat} (seconds)\n")
    print("| backend | " + " | ".join(STEPS) + " | total | windows/s |")
    print("|---" * (len(STEPS) + 3) + "|")
    for backend, times in best.items():
        total = sum(times.values())
        cells = " | ".join(f"{times[s]:.3f}" for s in STEPS)
        print(f"| {backend} | {cells} | {total:.3f} | {args.windows / total:,.0f} |")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-ledger.json"
    path.write_text(json.dumps({"args": vars(args), "best_seconds": best}, indent=2) + "\n")
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

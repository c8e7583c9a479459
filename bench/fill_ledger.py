"""Record a range of windows done in a ledger, through the ledger's own API (claim, then finish).

bench/planning.py runs it as a script with the code of the version whose ledger it fills
(``PYTHONPATH``), so the file has that version's schema; it imports nothing but ``rollup``::

    python -P bench/fill_ledger.py --ledger sqlite:/tmp/l.sqlite --job planning \\
        --start NS --end NS --step NS
"""

from __future__ import annotations

import argparse
import time

from pydantic import SecretStr

from rollup.core.windows import Window
from rollup.ledger import open_ledger
from rollup.ledger.base import Finished

BATCH = 20_000
LEASE_NS = 600 * 10**9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ledger", required=True, help="ledger URL (sqlite:PATH)")
    parser.add_argument("--job", required=True)
    parser.add_argument("--start", type=int, required=True, help="first window start, epoch ns")
    parser.add_argument("--end", type=int, required=True, help="windows start before this, epoch ns")
    parser.add_argument("--step", type=int, required=True, help="window length, ns")
    args = parser.parse_args()
    ledger = open_ledger(SecretStr(args.ledger))
    began = time.perf_counter()
    recorded = 0
    try:
        for first in range(args.start, args.end, BATCH * args.step):
            last = min(first + BATCH * args.step, args.end)
            windows = [Window(s, s + args.step) for s in range(first, last, args.step)]
            now = time.time_ns()
            claimed = ledger.claim(args.job, [(w, None) for w in windows], "fill", now, LEASE_NS)
            done = ledger.finish(args.job, [Finished(w, None, 0, 0, 0.0) for w in claimed], "fill", now)
            if len(done) != len(windows):
                raise SystemExit(f"{len(windows) - len(done)} window(s) from {first} not recorded")
            recorded += len(done)
    finally:
        ledger.close()
    print(f"{recorded} windows recorded done in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

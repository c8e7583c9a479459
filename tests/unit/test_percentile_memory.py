"""The memory percentiles take, measured: peak RSS of a subprocess that rolls up N interfaces.

The child feeds the core batches of 10,000 rows as the InfluxDB source hands them over (series in
InfluxQL's order, the order declared), a day of 5-minute samples per interface, 24 interfaces per
device, and reports its own peak RSS (VmHWM). The same run without ``p95`` is the baseline: what every
group costs anyway (its accumulators, its output row). What ``p95`` adds on top must not grow with
the number of groups read when groups come one after the other, while keeping every value (groups
that do not) costs at least their 8 bytes each.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POINTS = 288  # a day every 5 minutes

CHILD = """
import sys
import numpy as np
from rollup.core.batch import Batch, FieldColumn, SeriesOrder
from rollup.core.pipeline import Rollup
from rollup.core.spec import FieldRule, RollupSpec
from rollup.core.windows import Window

series, points, group_by, aggregates = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
S, T0 = 10**9, 1_799_020_800 * 10**9
rule = FieldRule("in", "in", aggregates=tuple(aggregates.split(",")))
rollup = Rollup(RollupSpec((rule,), group_by=tuple(group_by.split(",")), values_memory=2**30),
                [Window(T0, T0 + 86400 * S)])
order = SeriesOrder(("agent_host", "ifName"))
times = T0 + np.arange(points, dtype=np.int64) * (86400 // points) * S
rng = np.random.default_rng(1)
keys, counters = [], []

def emit():
    rollup.feed(Batch(list(keys), np.full(len(keys), points), np.tile(times, len(keys)),
                      {"in": FieldColumn(np.concatenate(counters))}, order=order))
    keys.clear()
    counters.clear()

for number in range(series):
    host, port = divmod(number, 24)
    keys.append((("agent_host", f"sw{host:05d}"), ("ifName", f"xe-0/0/{port:02d}")))
    counters.append(np.cumsum(rng.integers(0, 10**6, points)))
    if len(keys) * points >= 10_000:
        emit()
if keys:
    emit()
assert sum(len(result.rows) for result in rollup.finish()) == len(rollup._groups)
# VmHWM, not ru_maxrss: that one also counts the parent's pages the child held until its exec.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]) // 1024)
"""


def peak_rss_mb(series: int, group_by: str, aggregates: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(series), str(POINTS), group_by, aggregates],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def p95_cost_mb(series: int, group_by: str) -> int:
    """Peak RSS with p95 minus without, for the same data and groups."""
    return peak_rss_mb(series, group_by, "mean,max,p95") - peak_rss_mb(series, group_by, "mean,max")


@pytest.mark.parametrize("group_by", ["agent_host,ifName", "agent_host"])
def test_p95_memory_stays_flat_from_1000_to_20000_series_when_groups_come_one_after_the_other(
    group_by: str,
) -> None:
    values_mb = (20_000 - 1_000) * POINTS * 8 / 2**20  # what keeping the values read in between takes
    growth = p95_cost_mb(20_000, group_by) - p95_cost_mb(1_000, group_by)
    assert growth < 0.1 * values_mb, (
        f"p95 costs {growth} MB more at 20,000 series ({values_mb:.0f} MB of values)"
    )


def test_keeping_every_value_to_the_end_costs_at_least_its_8_bytes_each() -> None:
    """Per ifName (not one after the other: it sorts after agent_host), every value stays until the
    end: the measurement sees it, so the flat one above means something."""
    values_mb = 20_000 * POINTS * 8 / 2**20
    assert p95_cost_mb(20_000, "ifName") > values_mb

"""The backfill benchmark's datasets and its job: seeded synthetic SNMP counters (scripts/synth.py).

A dataset is ``ifHCInOctets`` and ``ifHCOutOctets`` (integers) of N hosts × M interfaces every
``interval`` seconds for ``days`` days from a Monday, with 3 device reboots and one Counter32 that
wraps; the job is the daily mean of the non-negative per-second rate of both fields per
(agent_host, ifName), ``lookback = "10m"``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rollup.core.batch import Batch, FieldColumn
from rollup.sources.base import SourceQuery
from scripts.synth import FIELDS, interface_series

S = 10**9
DAY = 86400
START = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp())  # a Monday: 7-day windows start there
LOOKBACK = "10m"
LOOKBACK_NS = 600 * S
CHUNK_SIZE = 10_000


@dataclass(frozen=True)
class Dataset:
    name: str
    devices: int
    interfaces: int
    interval: int
    days: int

    @property
    def series(self) -> int:
        return self.devices * self.interfaces

    @property
    def database(self) -> str:
        return f"bench_{self.name}"

    @property
    def start(self) -> int:
        return START

    @property
    def end(self) -> int:
        return START + self.days * DAY

    def export_query(self) -> SourceQuery:
        """Both fields over the whole range with the job's lookback: what rollup reads."""
        return SourceQuery(self.database, "interface", FIELDS, self.start * S - LOOKBACK_NS, self.end * S)

    def lines(self) -> Iterator[str]:
        """The dataset in line protocol."""
        return (
            f"interface,agent_host={host},ifName={port} {FIELDS[0]}={a}i,{FIELDS[1]}={b}i {t}"
            for host, port, times, (ins, outs) in self._series()
            for t, a, b in zip(times.tolist(), ins.tolist(), outs.tolist(), strict=True)
        )

    def batches(self, chunk_size: int = CHUNK_SIZE) -> list[Batch]:
        """The dataset as the source hands it over: whole series gathered into batches of
        ``chunk_size`` rows."""
        batches: list[Batch] = []
        keys: list[tuple[tuple[str, str], ...]] = []
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        def emit() -> None:
            time_ns = np.concatenate([p[0] for p in parts]) * S
            fields = {
                name: FieldColumn(np.concatenate([p[i + 1] for p in parts])) for i, name in enumerate(FIELDS)
            }
            lengths = np.asarray([len(p[0]) for p in parts], dtype=np.int64)
            batches.append(Batch(list(keys), lengths, time_ns, fields))
            keys.clear()
            parts.clear()

        for host, port, times, (ins, outs) in self._series():
            keys.append((("agent_host", host), ("ifName", port)))
            parts.append((times, ins.astype(np.int64), outs.astype(np.int64)))
            if sum(len(p[0]) for p in parts) >= chunk_size:
                emit()
        if parts:
            emit()
        return batches

    def _series(self) -> Iterator[tuple[str, str, np.ndarray, list[np.ndarray]]]:
        return interface_series(
            self.start, self.end, self.devices, self.interfaces, self.interval, seed=7, resets=3, wrap32=True
        )


QUICK = Dataset("quick", 10, 10, 60, 1)
FULL = Dataset("full", 50, 20, 60, 2)
WEEK = Dataset("week", 50, 20, 60, 7)
SCALE = Dataset("scale", 1600, 24, 150, 1)


def job_toml(
    name: str,
    database: str,
    every: str = "1d",
    aggregates: tuple[str, ...] = ("mean",),
    group_by: tuple[str, ...] = ("agent_host", "ifName"),
) -> str:
    listed = ", ".join(f'"{a}"' for a in aggregates)
    return f"""\
name = "{name}"
group_by = [{", ".join(f'"{tag}"' for tag in group_by)}]

[source]
profile = "buffer"
database = "{database}"
measurement = "interface"

[window]
every = "{every}"
timezone = "UTC"
lookback = "{LOOKBACK}"

[fields.ifHCInOctets]
as = "in"
on_decrease = "drop"
aggregates = [{listed}]

[fields.ifHCOutOctets]
as = "out"
on_decrease = "drop"
aggregates = [{listed}]

[output]
measurement = "{name}"
sinks = ["out"]
timestamp = "start"
"""


PERCENTILE_AGGREGATES = ("mean", "max", "p95")
SCALE_MEAN = "rollup backfill, mean, per interface"
SCALE_JOBS = {
    # measure name: (job, aggregates, group_by)
    SCALE_MEAN: ("scale_daily", ("mean",), ("agent_host", "ifName")),
    "rollup backfill, mean/max/p95, per interface": ("scale_p95_interface", PERCENTILE_AGGREGATES,
                                                     ("agent_host", "ifName")),
    "rollup backfill, mean/max/p95, per device": ("scale_p95_device", PERCENTILE_AGGREGATES, ("agent_host",)),
    "rollup backfill, mean/max/p95, per ifName (groups not contiguous)": (
        "scale_p95_ifname", PERCENTILE_AGGREGATES, ("ifName",)),
}  # fmt: skip
"""The scale point's rollup runs: percentiles per interface and per device (groups whose series come
one after the other: finished early), per ifName (spread over the whole read: kept to the end, past
values_memory in a temporary file), against the mean alone."""

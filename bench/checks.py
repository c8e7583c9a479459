"""The results checked in the same run: rollup's rows read back from InfluxDB against pandas' and
InfluxDB's own, and the scale point's percentile jobs against the mean-only job."""

from __future__ import annotations

from typing import Any

from bench.datasets import Dataset
from bench.influxd import OUT_DB, Influxd

Points = dict[tuple[str, str, int], tuple[Any, ...]]


def compare(ours: Points, theirs: Points) -> dict[str, Any]:
    """How many (group, window, field) values agree within a relative 1e-9."""
    keys = set(ours) | set(theirs)
    equal = 0
    worst = 0.0
    differing: list[str] = []
    for key in sorted(keys):
        a, b = ours.get(key), theirs.get(key)
        if a is None or b is None:
            differing.append(f"{key}: {'missing in ours' if a is None else 'missing in theirs'}")
            continue
        for x, y in zip(a, b, strict=True):
            if x is None or y is None:
                ok = x is None and y is None
            else:
                diff = abs(x - y) / max(abs(x), abs(y), 1e-300)
                worst = max(worst, diff)
                ok = diff <= 1e-9
            if ok:
                equal += 1
            else:
                differing.append(f"{key}: {x} vs {y}")
    total = sum(len(v) for v in theirs.values())
    return {
        "equal": equal,
        "total": max(total, equal),
        "worst_relative_difference": worst,
        "examples": differing[:5],
    }


def scale_checks(influxd: Influxd, data: Dataset) -> dict[str, Any]:
    """Each percentile job wrote one row per group with every field, and per interface the same means
    as the mean-only job (the same rows read in the same batches)."""
    means = influxd.points("scale_daily", ("in_mean", "out_mean"))
    per_interface = influxd.points("scale_p95_interface", ("in_mean", "out_mean"))
    problems = [] if means == per_interface else ["per interface: means differ from the mean-only job"]
    expected = {"scale_p95_interface": data.series, "scale_p95_device": data.devices,
                "scale_p95_ifname": data.interfaces}  # fmt: skip
    for job, groups in expected.items():
        fields = ",".join(
            f"count({f})" for f in ("in_mean", "in_max", "in_p95", "out_mean", "out_max", "out_p95")
        )
        counts = influxd.query(f'SELECT {fields} FROM "{job}"', OUT_DB)[0]["values"][0][1:]
        if set(counts) != {groups}:
            problems.append(f"{job}: {counts} values per field, expected {groups}")
    return {"equal": 0 if problems else 1, "total": 1, "examples": problems}

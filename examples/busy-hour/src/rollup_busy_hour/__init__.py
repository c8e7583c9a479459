"""The busy hour of a window: the highest mean of the rates (or gauge values) over one hour.

Telecom capacity planning sizes links for the *busy hour* of a day, not for the day's mean. For
each (group, window) the values are cut into buckets of ``bucket`` (default one hour) from the
window's start on, each bucket's mean is taken, and the highest one is the busy hour:

* ``<field>_busy_hour_mean``: that mean;
* ``<field>_busy_hour_start``: when its bucket starts (epoch seconds).

A bucket needs ``min_samples`` values (default 1) to count. The last bucket of a window that is not
a whole number of buckets long (a 23-hour DST day with 2-hour buckets) is shorter.

    [fields.ifHCInOctets]
    aggregates = ["mean", { name = "busy_hour", bucket = "1h", min_samples = 10 }]
"""

from __future__ import annotations

import numpy as np

from rollup.plugins import Result, Values, WindowAggregate, duration_ns

__all__ = ["BusyHour"]


class BusyHour(WindowAggregate):
    name = "busy_hour"
    parts = ("mean", "start")
    needs = ("times",)  # the series are not needed: no 8 bytes per value kept for them

    def __init__(self, bucket: str = "1h", min_samples: int = 1):
        self.bucket_ns = duration_ns(bucket)
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be a whole number of at least 1 (got {min_samples!r})")
        self.min_samples = min_samples

    def compute(self, window: Values) -> Result:
        buckets = (window.times - window.window_start) // self.bucket_ns
        counts = np.bincount(buckets)
        sums = np.bincount(buckets, weights=window.values)
        full = counts >= self.min_samples
        if not full.any():
            return None  # no bucket has enough values: no busy hour in this window
        means = np.where(full, sums / np.maximum(counts, 1), -np.inf)
        busiest = int(np.argmax(means))  # the first of equal means
        start = window.window_start + busiest * self.bucket_ns
        return {"mean": float(means[busiest]), "start": start / 1e9}

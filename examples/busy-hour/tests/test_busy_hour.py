"""Tests of the plug-in alone: ``compute`` is a function of numpy arrays."""

from __future__ import annotations

import numpy as np
import pytest
from rollup_busy_hour import BusyHour

from rollup.plugins import Values, evaluate

HOUR = 3600 * 10**9
DAY_START = 1_800_000_000 * 10**9


def day(values_per_hour: list[list[float]]) -> Values:
    """A window of 24 hours whose hour h holds ``values_per_hour[h]``, evenly spread."""
    values, times = [], []
    for hour, hourly in enumerate(values_per_hour):
        for k, value in enumerate(hourly):
            values.append(value)
            times.append(DAY_START + hour * HOUR + k * HOUR // len(hourly))
    return Values(np.array(values), np.array(times, dtype=np.int64), None, DAY_START, DAY_START + 24 * HOUR)


def test_the_busy_hour_is_the_hour_with_the_highest_mean() -> None:
    hours = [[1.0, 1.0]] * 24
    hours[9] = [5.0, 7.0]  # mean 6
    hours[17] = [11.0, 0.0]  # the highest value, but a mean of 5.5
    assert BusyHour().compute(day(hours)) == {"mean": 6.0, "start": (DAY_START + 9 * HOUR) / 1e9}


def test_buckets_of_another_length_start_at_the_window_start() -> None:
    hours = [[1.0]] * 24
    hours[10] = [4.0]
    hours[11] = [2.0]
    answer = BusyHour(bucket="2h").compute(day(hours))
    assert answer == {"mean": 3.0, "start": (DAY_START + 10 * HOUR) / 1e9}


def test_hours_with_too_few_values_do_not_count() -> None:
    hours = [[1.0, 1.0]] * 24
    hours[3] = [100.0]
    assert BusyHour(min_samples=2).compute(day(hours)) == {"mean": 1.0, "start": DAY_START / 1e9}
    assert BusyHour(min_samples=3).compute(day(hours)) is None


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"bucket": "0h"}, "it must be longer than zero"),
        ({"bucket": "1mo"}, "a calendar month has no fixed length"),
        ({"min_samples": 0}, "min_samples must be a whole number of at least 1"),
    ],
)
def test_bad_parameters_are_refused_when_the_job_loads(parameters: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BusyHour(**parameters)  # type: ignore[arg-type]


def test_as_rollup_runs_it_with_its_output_names() -> None:
    """``evaluate`` runs the plug-in as the core does: names as written, the same checks."""
    hours = [[1.0]] * 24
    hours[20] = [9.0]
    window = day(hours)
    written = evaluate(
        BusyHour(), window.values, times=window.times, window=(DAY_START, DAY_START + 24 * HOUR)
    )
    assert written == {"busy_hour_mean": 9.0, "busy_hour_start": (DAY_START + 20 * HOUR) / 1e9}

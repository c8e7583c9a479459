"""Aggregate functions of InfluxQL, TICKscript and Flux in rollup's terms, and what differs.

InfluxQL and Kapacitor share one implementation of these functions (Kapacitor runs InfluxQL's
reducers), so one table serves both; Flux names a few differently (``quantile``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rollup.core.durations import NS_PER_SECOND
from rollup.core.windows import DAY_NS, WEEK_NS
from rollup.migrate.plan import Language

SAME_NAME = frozenset({"mean", "max", "min", "sum", "count", "last", "stddev"})
_NO_EQUIVALENT = {
    "first": "rollup keeps the last value of a window, not the first",
    "mode": "rollup has no mode aggregate",
    "distinct": "rollup has no distinct aggregate",
    "integral": "rollup has no integral aggregate (for a counter, `increase` is Σdv)",
    "top": "rollup keeps one value per group and window, not the top N points",
    "bottom": "rollup keeps one value per group and window, not the bottom N points",
    "sample": "rollup has no sample aggregate",
    "elapsed": "rollup has no elapsed aggregate",
    "difference": "rollup has no difference aggregate",
    "non_negative_difference": "rollup has no difference aggregate",
    "moving_average": "rollup has no moving average",
    "movingaverage": "rollup has no moving average",
    "cumulative_sum": "rollup has no cumulative sum",
    "cumulativesum": "rollup has no cumulative sum",
    "holt_winters": "rollup does not forecast",
    "holtwinters": "rollup does not forecast",
    "unique": "rollup has no unique aggregate",
}


SIGNED_DERIVATIVE = (
    "keeps negative rates, and a job's rates never go negative (a decrease is a counter reset or "
    "wrap): if the field is a counter, make the original's derivative non-negative, {hint}"
)


class UnsupportedFunctionError(ValueError):
    """A function with no rollup equivalent; the message says why."""


@dataclass(frozen=True, slots=True)
class Mapped:
    aggregates: tuple[str, ...]
    difference: str | None = None
    extra: bool = False
    """The aggregates stand in for one value of the original (spread → max and min)."""


def map_aggregate(name: str, language: Language, percentile: float | None = None) -> Mapped:
    """The rollup aggregate(s) for the original's function ``name`` (``percentile``: its N)."""
    key = name.lower()
    origin = "Flux" if language == "flux" else "InfluxQL" if language == "cq" else "Kapacitor"
    if key in SAME_NAME:
        return Mapped((key,))
    if key == "median":
        if language == "flux":
            why = "Flux's median() estimates it (t-digest)"
        else:
            why = f"{origin}'s median() averages the two middle values when their count is even"
        return Mapped(("p50",), f"median(): {why}; rollup's p50 is the nearest rank (the lower middle value)")
    if key in ("percentile", "quantile"):
        if percentile is None or not 0 < percentile <= 100:
            raise UnsupportedFunctionError("the percentile must be above 0 and at most 100")
        aggregate = "p" + (f"{percentile:g}" if percentile != int(percentile) else str(int(percentile)))
        if language == "flux":
            why = 'Flux\'s quantile() estimates it (t-digest) unless method: "exact_selector"'
        else:
            why = f"{origin}'s percentile() takes the value of rank round(n·N/100)"
        return Mapped(
            (aggregate,),
            f"{aggregate}: {why}; rollup's pNN is the nearest rank, ceil(n·N/100): with few values "
            "they can pick neighbouring values",
        )
    if key == "spread":
        return Mapped(
            ("max", "min"),
            "spread() (max − min) is not a rollup aggregate: the job writes the max and the min of "
            "the window instead; subtract them where you read them",
            extra=True,
        )
    if key in _NO_EQUIVALENT:
        raise UnsupportedFunctionError(_NO_EQUIVALENT[key])
    raise UnsupportedFunctionError("not an aggregate rollup knows")


def alignment_difference(every_ns: int, anchor: Language) -> str | None:
    """Whether windows of ``every_ns`` start where the original's do.

    InfluxQL and Flux align windows to the Unix epoch, Kapacitor (Go's ``Truncate``) to 0001-01-01;
    rollup aligns days and fixed sizes to the epoch, weeks to Mondays.
    """
    if every_ns <= 0:
        return None
    origin_anchor = 0 if anchor in ("cq", "flux") else -719_162 * DAY_NS
    ours = 4 * DAY_NS if every_ns % WEEK_NS == 0 else 0  # 1970-01-05, a Monday
    if DAY_NS % every_ns == 0 or (origin_anchor - ours) % every_ns == 0:
        return None
    shift = (origin_anchor - ours) % every_ns
    return (
        f"the original's windows of this size start {shift // NS_PER_SECOND / 86400:g} day(s) after "
        "rollup's (its weeks and multi-day windows are counted from another day): the windows differ"
    )


def percentile_from(value: float) -> float:
    """A Flux quantile ``q`` (0..1) as a percentile (0..100), without float noise (0.95 → 95)."""
    return float(round(value * 100, 9)) if not math.isnan(value) else value

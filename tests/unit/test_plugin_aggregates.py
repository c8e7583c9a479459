"""Plug-in aggregates in the core: what a plug-in is given, what it may return, and that a plug-in
that misbehaves fails only the (group, window)s it misbehaves on."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from rollup.core.batch import Batch, FieldColumn, SeriesOrder
from rollup.core.pipeline import Rollup, WindowResult
from rollup.core.plugins import (
    Chunks,
    PluginUse,
    Result,
    Results,
    State,
    StreamingAggregate,
    Values,
    WindowAggregate,
)
from rollup.core.spec import FieldRule, RollupSpec, output_schema
from rollup.core.windows import Window
from tests.unit.builders import HOUR, MIN, T0, hours, make_batch, run

ORDER = SeriesOrder(("host", "port"))


class PlainMean(StreamingAggregate):
    """The built-in mean, written as a user would: sums and counts per chunk."""

    name = "plain_mean"
    needs = ()

    def update(self, chunks: Chunks) -> State:
        return np.add.reduceat(chunks.values, chunks.starts), chunks.counts.astype(np.float64)

    def merge(self, old: State, new: State) -> State:
        return old[0] + new[0], old[1] + new[1]

    def result(self, state: State) -> Results:
        return state[0] / state[1]


class Recorder(WindowAggregate):
    """Remembers every window it is given; answers how many values it got and the largest."""

    name = "recorder"
    parts = ("n", "top")

    def __init__(self) -> None:
        self.seen: list[Values] = []

    def compute(self, window: Values) -> Result:
        self.seen.append(window)
        return {"n": len(window), "top": float(window.values.max())}


class Scripted(WindowAggregate):
    """Answers ``answer(window)``: raises, returns NaN or the wrong shape on the windows chosen."""

    name = "scripted"
    needs = ("times",)

    def __init__(self, answer: Callable[[Values], object]):
        self.answer = answer

    def compute(self, window: Values) -> Result:
        return self.answer(window)  # type: ignore[return-value]


def counters(hosts: int, ports: int, seconds: int, step: int = 60, seed: int = 7) -> list[Batch]:
    """One batch per series: host ``h<i>``, port ``p<j>``, a counter every ``step`` s from 10
    minutes before T0 on, in InfluxQL's series order."""
    rng = np.random.default_rng(seed)
    times = T0 - 10 * MIN + np.arange(0, seconds + 600, step, dtype=np.int64) * 10**9
    batches = []
    for host in range(hosts):
        for port in range(ports):
            values = np.cumsum(rng.integers(0, 10**7, len(times)))
            key = (("host", f"h{host}"), ("port", f"p{port}"))
            column = FieldColumn(values.astype(np.int64))
            batches.append(Batch([key], np.array([len(times)]), times, {"in": column}, order=ORDER))
    return batches


def rollup_of(
    uses: Sequence[PluginUse],
    batches: Sequence[Batch],
    windows: Sequence[Window],
    aggregates: tuple[str, ...] = ("mean", "max", "count"),
    group_by: tuple[str, ...] | None = ("host",),
    values_memory: int = 2**26,
) -> tuple[list[WindowResult], Rollup]:
    rule = FieldRule("in", "in", aggregates=aggregates, plugins=tuple(uses))
    rollup = Rollup(RollupSpec((rule,), group_by=group_by, values_memory=values_memory), windows)
    for batch in batches:
        rollup.feed(batch)
    return rollup.finish(), rollup


def rebatched(batches: Sequence[Batch], size: int) -> list[Batch]:
    """The same rows cut into batches of ``size`` rows (series split across batches)."""
    keys = [key for batch in batches for key in batch.keys]
    lengths = np.concatenate([batch.run_lengths for batch in batches])
    times = np.concatenate([batch.time for batch in batches])
    values = np.concatenate([batch.fields["in"].values for batch in batches])
    series = np.repeat(np.arange(len(keys)), lengths)
    out = []
    for low in range(0, len(times), size):
        part = series[low : low + size]
        ids, counts = np.unique(part, return_counts=True)
        column = FieldColumn(values[low : low + size])
        batch_keys = [keys[i] for i in ids.tolist()]
        out.append(Batch(batch_keys, counts, times[low : low + size], {"in": column}, order=ORDER))
    return out


# -- what a plug-in computes ------------------------------------------------------------------


@pytest.mark.parametrize("batch_rows", [7, 1000, 100_000])
def test_a_streaming_mean_plugin_gives_the_builtin_mean_to_1e_12_however_the_rows_are_batched(
    batch_rows: int,
) -> None:
    batches = rebatched(counters(3, 4, 6 * 3600), batch_rows)
    results, _ = rollup_of([PluginUse("plain_mean", PlainMean())], batches, hours(0, 6))
    rows = [row for result in results for row in result.rows]
    assert len(rows) == 3 * 6
    for row in rows:
        assert row.values["in_plain_mean"] == pytest.approx(row.values["in_mean"], rel=1e-12, abs=0)


def test_a_whole_window_plugin_gets_every_value_of_its_group_and_window_by_time_then_series() -> None:
    recorder = Recorder()
    batches = rebatched(counters(2, 3, 2 * 3600, step=30), 500)
    results, _ = rollup_of([PluginUse("recorder", recorder)], batches, hours(0, 2))

    rows = [row for result in results for row in result.rows]
    assert len(recorder.seen) == len(rows) == 4
    for row in rows:
        assert row.values["in_recorder_n"] == row.values["in_count"]
        assert row.values["in_recorder_top"] == row.values["in_max"]
    for window in recorder.seen:
        assert window.window_end - window.window_start == HOUR
        assert ((window.times >= window.window_start) & (window.times < window.window_end)).all()
        order = np.lexsort((window.series, window.times))
        assert (order == np.arange(len(window))).all()  # by time, then series
        assert sorted(set(window.series.tolist())) == [0, 1, 2]  # three ports, numbered densely
        assert window.values.flags.c_contiguous
        assert window.values.dtype == np.float64


def test_series_are_numbered_in_the_order_of_their_tags_whatever_order_they_come_in() -> None:
    """Port p1 arrives first but is series 1 of its window: p0 < p1 in tag order."""
    recorder = Recorder()
    batches = counters(1, 2, 3600)
    batches = [batches[1], batches[0]]  # p1, then p0: no longer the declared order
    batches = [Batch(b.keys, b.run_lengths, b.time, b.fields) for b in batches]
    rollup_of([PluginUse("recorder", recorder)], batches, hours(0))
    (window,) = recorder.seen
    p0 = batches[1].fields["in"].values
    first_rate = (int(p0[10]) - int(p0[9])) / 60  # p0's first rate in the window: stamped at T0
    at_first = window.times == window.times.min()
    assert window.series[at_first].tolist() == [0, 1]
    assert window.values[at_first][0] == pytest.approx(first_rate)


def test_plugin_outputs_are_written_after_the_builtins_and_are_doubles_in_the_schema() -> None:
    uses = (PluginUse("plain_mean", PlainMean()), PluginUse("recorder", Recorder()))
    rule = FieldRule("ifHCInOctets", "in", aggregates=("max",), plugins=uses)
    schema = output_schema(RollupSpec((rule,)))
    assert list(schema)[-3:] == ["in_plain_mean", "in_recorder_n", "in_recorder_top"]
    assert {schema[name] for name in list(schema)[-3:]} == {"double"}


def test_a_plugin_whose_output_would_clash_with_another_output_is_refused() -> None:
    class Samples(PlainMean):
        name = "samples"

    class Busy(WindowAggregate):
        parts = ("mean",)

    with pytest.raises(ValueError, match="in_samples would be written twice"):
        FieldRule("in", "in", plugins=(PluginUse("samples", Samples()),))
    with pytest.raises(ValueError, match="in_busy_mean would be written twice"):
        FieldRule("in", "in", plugins=(PluginUse("busy", Busy()), PluginUse("busy_mean", PlainMean())))


def test_values_a_whole_window_plugin_keeps_spill_past_values_memory_with_the_same_results() -> None:
    """Grouped by port, which does not lead the series order: every value is kept to the end."""
    batches = counters(6, 4, 3 * 3600)
    plenty, in_memory = rollup_of(
        [PluginUse("recorder", Recorder())], batches, hours(0, 3), group_by=("port",)
    )
    tight, spilled = rollup_of(
        [PluginUse("recorder", Recorder())], batches, hours(0, 3), group_by=("port",), values_memory=20_000
    )
    assert in_memory.spilled_bytes == 0
    # rows of value, time and series (24 bytes), past the budget; the last ones stay in memory
    assert 20_000 < spilled.spilled_bytes < 24 * 6 * 4 * 180
    assert spilled.spilled_bytes % 24 == 0
    assert [r.rows for r in tight] == [r.rows for r in plenty]


def test_a_streaming_plugin_keeps_nothing_per_value() -> None:
    _, rollup = rollup_of(
        [PluginUse("plain_mean", PlainMean())],
        counters(6, 4, 3600),
        hours(0),
        group_by=("port",),
        values_memory=1,
    )
    assert rollup.spilled_bytes == 0


def test_a_plugin_reading_times_it_did_not_declare_fails_its_windows_saying_what_to_declare() -> None:
    class Undeclared(WindowAggregate):
        name = "undeclared"
        needs = ()

        def compute(self, window: Values) -> Result:
            return float(window.times.max())

    results, _ = rollup_of([PluginUse("undeclared", Undeclared())], counters(1, 1, 3600), hours(0))
    (failure,) = results[0].failures
    assert "add 'times' to its needs" in failure.reason


class Histogram(StreamingAggregate):
    """How many rates fall in each decade (1e3, 1e4 … 1e7): a state entry is a row of 5 counts."""

    name = "histogram"
    parts = ("below_1e5", "from_1e5")
    needs = ()
    EDGES = np.array([1e3, 1e4, 1e5, 1e6, 1e7, 1e8])

    def update(self, chunks: Chunks) -> State:
        bins = np.clip(np.searchsorted(self.EDGES, chunks.values, side="right") - 1, 0, 4)
        chunk = np.repeat(np.arange(chunks.chunks), chunks.counts)
        counts = np.zeros((chunks.chunks, 5), dtype=np.int64)
        np.add.at(counts, (chunk, bins), 1)
        return (counts,)

    def merge(self, old: State, new: State) -> State:
        return (old[0] + new[0],)

    def result(self, state: State) -> Results:
        return {"below_1e5": state[0][:, :2].sum(axis=1), "from_1e5": state[0][:, 2:].sum(axis=1)}


def test_a_streaming_state_entry_may_be_a_row_of_numbers() -> None:
    batches = rebatched(counters(2, 2, 2 * 3600), 33)
    results, _ = rollup_of([PluginUse("histogram", Histogram())], batches, hours(0, 2))
    for row in (row for result in results for row in result.rows):
        counted = row.values["in_histogram_below_1e5"] + row.values["in_histogram_from_1e5"]
        assert counted == row.values["in_count"]
        assert row.values["in_histogram_from_1e5"] > 0


# -- isolation --------------------------------------------------------------------------------

SECOND_HOUR = T0 + HOUR


def misbehaving(kind: str, marker: float) -> Callable[[Values], object]:
    """A plug-in answer that misbehaves in the second hour, for the group whose first value there
    is ``marker``; elsewhere the mean."""

    def answer(window: Values) -> object:
        if window.window_start != SECOND_HOUR or window.values[0] != marker:
            return float(window.values.mean())
        if kind == "raises":
            raise ZeroDivisionError("no busy hour")
        if kind == "nan":
            return float("nan")
        if kind == "array":
            return window.values[:3]
        return {"mean": 1.0}

    return answer


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("raises", "compute raised ZeroDivisionError: no busy hour"),
        ("nan", "compute returned nan"),
        ("array", "compute returned an array of shape (3,) (float64) where a number was expected"),
        ("parts", "compute returned a dict where a number was expected"),
    ],
)
def test_a_misbehaving_whole_window_plugin_fails_only_its_window_naming_plugin_field_and_group(
    kind: str, reason: str
) -> None:
    batches = counters(2, 1, 3 * 3600)
    # h1's first rate in the second hour marks the window the plug-in misbehaves on
    values = batches[1].fields["in"].values
    position = int(np.searchsorted(batches[1].time, SECOND_HOUR))
    marker = (int(values[position]) - int(values[position - 1])) / 60
    scripted = Scripted(misbehaving(kind, marker))

    results, _ = rollup_of([PluginUse("scripted", scripted)], batches, hours(0, 3))

    assert [len(r.rows) for r in results] == [2, 0, 2]  # the second hour: nothing, h0 neither
    assert [len(r.failures) for r in results] == [0, 1, 0]
    (failure,) = results[1].failures
    assert (failure.plugin, failure.field, failure.group, failure.window) == (
        "scripted",
        "in",
        {"host": "h1"},
        Window(SECOND_HOUR, SECOND_HOUR + HOUR),
    )
    assert failure.reason == reason
    assert results[1].points == 2 * 60  # the points read are still counted


class FlakyStream(PlainMean):
    """A streaming mean that misbehaves on the chunks of one window, in one of its methods."""

    name = "flaky"

    def __init__(self, method: str, window_start: int):
        self.method = method
        self.window_start = window_start

    def update(self, chunks: Chunks) -> State:
        if self.method == "update" and (chunks.window_starts == self.window_start).any():
            raise RuntimeError("cannot update")
        if self.method == "state" and (chunks.window_starts == self.window_start).any():
            return (np.add.reduceat(chunks.values, chunks.starts),)
        sums, counts = super().update(chunks)
        return sums, counts, chunks.window_starts.astype(np.float64)

    def merge(self, old: State, new: State) -> State:
        if self.method == "merge" and (new[2] == self.window_start).any():
            raise RuntimeError("cannot merge")
        return old[0] + new[0], old[1] + new[1], new[2]

    def result(self, state: State) -> Results:
        mean = state[0] / state[1]
        if self.method == "result":
            return np.where(state[2] == self.window_start, np.inf, mean)
        return mean


@pytest.mark.parametrize(
    ("method", "reason"),
    [
        ("update", "update raised RuntimeError: cannot update"),
        ("state", "update returned a state of 1 arrays, before of 3"),
        ("merge", "merge raised RuntimeError: cannot merge"),
        ("result", "result returned inf"),
    ],
)
def test_a_misbehaving_streaming_plugin_fails_only_the_window_it_misbehaves_on(
    method: str, reason: str
) -> None:
    """Batches of 50 rows: the failing window's slots share their update and merge calls with
    slots of other windows, which must not fail with them."""
    batches = rebatched(counters(2, 2, 3 * 3600), 50)
    plugin = FlakyStream(method, SECOND_HOUR)
    results, _ = rollup_of([PluginUse("flaky", plugin)], batches, hours(0, 3))

    assert [len(r.rows) for r in results] == [2, 0, 2]
    failures = results[1].failures
    assert [(f.plugin, f.group) for f in failures] == [("flaky", {"host": "h0"}), ("flaky", {"host": "h1"})]
    if method != "state":  # the first state sets how many arrays a state has: it may be the bad one
        assert {f.reason for f in failures} == {reason}
    for result in (results[0], results[2]):
        for row in result.rows:
            assert row.values["in_flaky"] == pytest.approx(row.values["in_mean"], rel=1e-12)


def test_a_failing_plugin_fails_its_window_whatever_the_other_fields_and_aggregates_say() -> None:
    def boom(window: Values) -> object:
        raise ValueError("boom")

    rule_in = FieldRule("in", "in", plugins=(PluginUse("scripted", Scripted(boom)),))
    rule_out = FieldRule("out", "out")
    batch = make_batch(
        [({"host": "a"}, float(t), {"in": t * 10, "out": t * 20}) for t in range(-600, 2 * 3600, 60)]
    )
    results = run(RollupSpec((rule_in, rule_out)), hours(0, 2), [batch])
    assert [len(r.rows) for r in results] == [0, 0]
    assert [f.field for r in results for f in r.failures] == ["in", "in"]


def test_a_plugin_cannot_change_the_values_other_aggregates_use() -> None:
    class Sorter(WindowAggregate):
        name = "sorter"
        needs = ()

        def compute(self, window: Values) -> Result:
            window.values.sort()
            return float(window.values[-1])

    results, _ = rollup_of([PluginUse("sorter", Sorter())], counters(1, 1, 3600), hours(0), ("p95",))
    (failure,) = results[0].failures
    assert failure.reason.startswith("compute raised ValueError: ")
    assert failure.reason.endswith("is read-only")

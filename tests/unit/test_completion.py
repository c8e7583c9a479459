"""Groups finished as soon as the source's declared order shows their last series was read
(rollup/core/completion.py): the same results as keeping every value to the end, or an error
(and a second read) when a source breaks the order it declared."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollup.core.batch import Batch, SeriesKey, SeriesOrder
from rollup.core.completion import Completion, SeriesOrderError
from rollup.core.pipeline import Rollup, WindowResult
from rollup.core.spec import FieldRule, RollupSpec
from rollup.core.windows import Window
from rollup.jobs.runner import JobRunner
from rollup.jobs.spec import JobSpec
from rollup.sources.base import SourceQuery

from .builders import T0, Row, flatten, hours, make_batch

WINDOWS = hours(0, 2)
KEYS = ("agent_host", "ifName")
ORDER = SeriesOrder(KEYS)


def spec(group_by: tuple[str, ...] | None, values_memory: int = 2**30) -> RollupSpec:
    rule = FieldRule("g", "g", kind="gauge", aggregates=("mean", "max", "p95", "p50", "count"))
    return RollupSpec((rule,), group_by=group_by, values_memory=values_memory)


def interface(host: str, port: str, seed: int) -> list[Row]:
    """A gauge every 5 minutes over both windows, values that differ from interface to interface."""
    rng = random.Random(seed)
    tags = {"agent_host": host, "ifName": port}
    return [(tags, t, {"g": float(rng.randrange(1000))}) for t in range(0, 7200, 300)]


def estate(hosts: int = 4, ports: int = 3) -> list[list[Row]]:
    """Every interface's rows, in InfluxQL's order (by host, then interface)."""
    return [interface(f"sw{h}", f"xe{p}", h * 10 + p) for h in range(hosts) for p in range(ports)]


def batches(series: Sequence[list[Row]], per_batch: int, stream: int = 0, **declared: object) -> list[Batch]:
    """The series' rows cut into batches of ``per_batch`` rows (cutting series too), in order."""
    rows = [row for one in series for row in one]
    out = [make_batch(rows[i : i + per_batch]) for i in range(0, len(rows), per_batch)]
    order = declared.get("order", ORDER)
    return [dataclasses.replace(b, stream=stream, order=order) for b in out]  # type: ignore[arg-type]


def run(
    rollup_spec: RollupSpec,
    fed: Sequence[Batch],
    finish_early: bool = True,
    windows: Sequence[Window] = WINDOWS,
) -> tuple[list[WindowResult], Rollup]:
    rollup = Rollup(rollup_spec, windows, finish_early=finish_early)
    for batch in fed:
        rollup.feed(batch)
    return rollup.finish(), rollup


def same_as_at_the_end(rollup_spec: RollupSpec, fed: Sequence[Batch]) -> Rollup:
    """Run early and late; assert equal rows; the early rollup."""
    early, rollup = run(rollup_spec, fed)
    late, _ = run(rollup_spec, fed, finish_early=False)
    assert flatten(early) == flatten(late)
    return rollup


def test_a_blocks_groups_are_finished_when_its_stream_moves_on_to_the_next_block() -> None:
    completion = Completion(("agent_host",))
    keys: list[SeriesKey] = [
        (("agent_host", h), ("ifName", p)) for h, p in (("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"))
    ]
    one_row_each, times = np.ones(2, dtype=np.int64), np.full(2, T0)
    first = Batch(keys[:2], one_row_each, times, order=ORDER)
    second = Batch(keys[2:], one_row_each, times, order=ORDER)
    # Series 0 … 3; groups: host a = 0, host b = 1.
    assert completion.observe(first, np.array([0, 1]), np.array([0, 0])).tolist() == []
    assert completion.observe(second, np.array([2, 3]), np.array([0, 1])).tolist() == [0]
    assert completion.finished_groups == 1


@pytest.mark.parametrize(
    "group_by", [None, ("agent_host", "ifName"), ("ifName", "agent_host"), ("agent_host",)]
)
@pytest.mark.parametrize("per_batch", [1, 7, 50, 10_000])
def test_groups_finished_early_give_the_results_of_keeping_every_value_to_the_end(
    group_by: tuple[str, ...] | None, per_batch: int
) -> None:
    series = estate()
    rollup = same_as_at_the_end(spec(group_by), batches(series, per_batch))
    # Every group but the last is finished before the end (of the read, or of the batch).
    groups = 4 if group_by == ("agent_host",) else 12
    assert rollup.groups_finished_early == groups - 1


def test_groups_finished_early_survive_a_memory_budget_that_spills_everything() -> None:
    series = estate()
    rollup = same_as_at_the_end(spec(("agent_host",), values_memory=256), batches(series, 10))
    assert rollup.spilled_bytes > 0
    assert rollup.groups_finished_early == 3


def test_nothing_is_finished_early_when_a_tag_outside_the_groups_sorts_first() -> None:
    """Per ifName, whose values come again under every host: only the end finishes a group."""
    rollup = same_as_at_the_end(spec(("ifName",)), batches(estate(), 5))
    assert rollup.groups_finished_early == 0


def test_nothing_is_finished_early_without_a_declared_order() -> None:
    rollup = same_as_at_the_end(spec(("agent_host",)), batches(estate(), 5, order=None))
    assert rollup.groups_finished_early == 0


def test_a_tag_the_order_does_not_name_stops_finishing_groups_early() -> None:
    series = estate()
    series[5] = [({**tags, "aaa": "x"}, t, fields) for tags, t, fields in series[5]]
    rollup = same_as_at_the_end(spec(("agent_host",)), batches(series, 6))
    assert rollup.groups_finished_early == 1  # host sw0, before the series with the unknown tag


def interleave(*streams: list[Batch]) -> list[Batch]:
    out: list[Batch] = []
    for i in range(max(map(len, streams))):
        out += [stream[i] for stream in streams if i < len(stream)]
    return out


def test_several_streams_split_on_a_leading_tag_each_finish_their_own_blocks() -> None:
    series = estate(hosts=6)
    order = SeriesOrder(KEYS, split_on="agent_host")
    fed = interleave(batches(series[:9], 8, 0, order=order), batches(series[9:], 8, 1, order=order))
    rollup = same_as_at_the_end(spec(("agent_host",)), fed)
    assert rollup.groups_finished_early == 4  # the last host of each stream waits for the end


def test_streams_split_on_a_tag_that_does_not_lead_finish_nothing_early() -> None:
    series = estate(hosts=6)
    order = SeriesOrder(KEYS, split_on="ifName")
    even, odd = (
        [s for s in series if s[0][0]["ifName"] != "xe1"],
        [s for s in series if s[0][0]["ifName"] == "xe1"],
    )
    fed = interleave(batches(even, 8, 0, order=order), batches(odd, 8, 1, order=order))
    rollup = same_as_at_the_end(spec(("agent_host",)), fed)
    assert rollup.groups_finished_early == 0


def test_a_series_of_a_finished_group_is_refused() -> None:
    series = estate()
    series.append(interface("sw0", "xe9", 99))  # host sw0 again, after sw1 … sw3: not the declared order
    with pytest.raises(SeriesOrderError, match="agent_host=sw0,ifName=xe9 came after its group was finished"):
        run(spec(("agent_host",)), batches(series, 10))
    # Read again without finishing groups early, it is exact.
    rows = flatten(run(spec(("agent_host",)), batches(series, 10), finish_early=False)[0])
    assert [r[1]["agent_host"] for r in rows if r[0] == 0] == ["sw0", "sw1", "sw2", "sw3"]


def test_a_block_that_comes_back_within_one_batch_is_exact_since_the_batch_is_rolled_up_first() -> None:
    series = estate()
    series.insert(4, interface("sw0", "xe9", 99))  # sw0, sw1 …, then sw0 again, all in one batch
    rollup = same_as_at_the_end(spec(("agent_host",)), batches(series, 10_000))
    assert rollup.groups_finished_early == 3  # sw0, sw1, sw2 at the end of the batch; sw3 at the end


# -- any input, any declared order -------------------------------------------------------------


@st.composite
def reads(draw: st.DrawFn) -> tuple[list[list[Row]], list[int], bool]:
    """Series of a few hosts, interfaces and zones, some tags missing, in the declared order or not,
    cut into batches anywhere."""
    chosen = draw(
        st.lists(
            st.tuples(st.sampled_from("abc"), st.sampled_from("12"), st.sampled_from(["", "z1", "z2"])),
            min_size=1,
            max_size=8,
            unique=True,
        )
    )
    series: list[list[Row]] = []
    for i, (host, port, zone) in enumerate(chosen):
        tags = {"agent_host": host, "ifName": port} | ({"zone": zone} if zone else {})
        series.append([(tags, t, {"g": float(draw(st.integers(0, 20)))}) for t in range(i * 7, 7200, 900)])
    ordered = draw(st.booleans())
    if ordered:
        series.sort(key=lambda s: tuple(s[0][0].get(k, "") for k in ("agent_host", "ifName", "zone")))
    cuts = sorted(draw(st.sets(st.integers(1, 64), max_size=16)))
    return series, cuts, ordered


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    read=reads(),
    group_by=st.sampled_from([None, ("agent_host",), ("agent_host", "ifName"), ("zone",), ("ifName",)]),
    budget=st.sampled_from([64, 2**30]),
)
def test_property_finishing_early_is_exact_or_refuses_a_read_that_breaks_its_declared_order(
    read: tuple[list[list[Row]], list[int], bool], group_by: tuple[str, ...] | None, budget: int
) -> None:
    series, cuts, ordered = read
    rows = [row for one in series for row in one]
    bounds = [0, *[c for c in cuts if c < len(rows)], len(rows)]
    order = SeriesOrder(("agent_host", "ifName", "zone"))
    fed = [
        dataclasses.replace(make_batch(rows[a:b]), order=order)
        for a, b in itertools.pairwise(bounds)
        if a < b
    ]
    late, _ = run(spec(group_by, budget), fed, finish_early=False)
    try:
        early, _ = run(spec(group_by, budget), fed)
    except SeriesOrderError:
        assert not ordered, "a read in the declared order was refused"
        return
    assert flatten(early) == flatten(late)


# -- the runner reads again --------------------------------------------------------------------


class ListSource:
    """Hands over prepared batches (the order they break is the point of the test)."""

    def __init__(self, prepared: list[Batch]):
        self.prepared = prepared
        self.reads = 0

    def read(self, query: SourceQuery) -> Iterator[Batch]:
        self.reads += 1
        yield from self.prepared

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_runner_reads_a_span_again_when_the_source_breaks_its_declared_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = JobSpec.model_validate(
        {
            "name": "j",
            "group_by": ["agent_host"],
            "source": {"profile": "p", "database": "d", "measurement": "interface"},
            "window": {"every": "2h", "lookback": "0s"},
            "fields": {"g": {"kind": "gauge", "aggregates": ["mean", "max", "p95", "p50", "count"]}},
            "output": {"measurement": "o", "sinks": ["s"]},
        }
    )
    series = estate()
    series.append(interface("sw0", "xe9", 99))
    source = ListSource(batches(series, 10))
    windows = job.grid.windows(WINDOWS[0].start, WINDOWS[-1].end)
    with caplog.at_level(logging.WARNING, logger="rollup.jobs.runner"):
        results = JobRunner(job, source).compute(windows)
    assert source.reads == 2
    assert "reading the span again" in caplog.text
    expected, _ = run(job.rollup, batches(series, 10), finish_early=False, windows=windows)
    assert [(r.tags, r.values) for result in results for r in result.rows] == [
        (r.tags, r.values) for result in expected for r in result.rows
    ]

"""A source that is down, stalls, answers an error inside HTTP 200, or whose answer is cut off:
its windows fail with a message naming the source and the reason, nothing is written for them,
none is marked done on a partial read, and once the source is back `rollup run` writes exactly
what an uninterrupted backfill writes.

A source that does not answer (refused, stalled, cut off: a transient failure) is tried for two
spans in a row, then the run stops trying it and leaves the rest owed, saying so once; an error
that needs a fix (a query InfluxDB refuses) fails every window.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollup.errors import SourceError
from rollup.influx import InfluxConnection
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import Format, InfluxQLSource
from scripts.servers import free_port
from tests.conftest import InfluxHelper
from tests.integration import scenario
from tests.integration.faults import Replay, TcpProxy, record

pytestmark = pytest.mark.integration

FIRST_DAY_WINDOWS = scenario.window_starts()[:8]
TRIED = 2 * 8
"""Windows a run tries before it stops trying a source that does not answer: two spans of a day."""
STOPPED = "stopped: the source does not answer"


@pytest.fixture
def setup(scenario_raw: InfluxHelper, elasticsearch_url: str, tmp_path: Path) -> Iterator[scenario.Setup]:
    made = scenario.make_setup(
        scenario_raw, elasticsearch_url, tmp_path / "ws", scenario.sqlite_target(tmp_path)
    )
    yield made
    made.close()


@pytest.fixture
def tcp(scenario_raw: InfluxHelper) -> Iterator[TcpProxy]:
    host, port = scenario_raw.url.removeprefix("http://").split(":")
    proxy = TcpProxy((host, int(port)))
    yield proxy
    proxy.close()


def statuses(setup: scenario.Setup) -> dict[str, int]:
    found: dict[str, int] = {}
    for _, status in setup.state().ledger:
        found[status] = found.get(status, 0) + 1
    return found


def finish_and_compare(setup: scenario.Setup, baseline: scenario.Baseline) -> None:
    """The source is back: one pass writes what is owed, and everything equals the baseline."""
    scenario.settings(setup.workspace, setup.source_proxy.url)
    resumed = setup.rerun()
    assert resumed.code == 0, resumed.stderr
    assert setup.state() == baseline.state


def test_a_source_that_refuses_connections_fails_every_window_and_writes_nothing(
    setup: scenario.Setup, scenario_baseline: scenario.Baseline
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    scenario.settings(setup.workspace, down, retries=1)
    result = setup.workspace.run(*scenario.BACKFILL, env=setup.env())

    assert result.code == 1
    assert f"bw: 0 window(s) done, {TRIED} failed" in result.stderr
    assert result.stderr.count(STOPPED) == 1
    assert (
        f"cannot connect to InfluxDB at {down}: [Errno 111] Connection refused (tried 2 times)"
        in result.stderr
    )
    assert re.search(
        r"InfluxDB source: attempt 1 failed \(.*Connection refused\); retrying in 0\.\d+s", result.stderr
    )
    assert setup.written_windows() == set()
    assert statuses(setup) == {"failed": TRIED}  # the day after was never claimed: still owed
    finish_and_compare(setup, scenario_baseline)


def test_a_source_going_down_mid_run_fails_the_rest_and_the_next_run_writes_it(
    setup: scenario.Setup, scenario_baseline: scenario.Baseline
) -> None:
    """A load balancer answering 503 once InfluxDB behind it went away, from the second span on."""
    scenario.settings(setup.workspace, setup.source_proxy.url, retries=1)
    setup.source_proxy.arm(hold_at=2)
    backfill = setup.workspace.start(*scenario.BACKFILL, env=setup.env())
    assert setup.source_proxy.held.wait(60), backfill.output()
    setup.source_proxy.fail_status = 503
    setup.source_proxy.release()
    result = backfill.wait()

    assert result.code == 1
    assert "bw: 8 window(s) done, 16 failed" in result.stderr
    refused = "answered HTTP 503: the test made this server fail (tried 2 times)"
    assert f"InfluxDB at {setup.source_proxy.url} {refused}" in result.stderr
    assert setup.written_windows() == set(FIRST_DAY_WINDOWS)
    assert statuses(setup) == {"done": 8, "failed": 16}
    setup.source_proxy.fail_status = None
    finish_and_compare(setup, scenario_baseline)


@pytest.mark.parametrize("stall_after", [0, 3000], ids=["no-answer", "answer-stops-midway"])
def test_a_stalled_source_times_out_and_never_hangs(
    setup: scenario.Setup, tcp: TcpProxy, stall_after: int, scenario_baseline: scenario.Baseline
) -> None:
    """No answer: each attempt waits for the timeout, then the next one is sent after a backoff.
    An answer that stops midway: the read times out and is not retried (the runner may already
    hold part of it); its windows fail, none is done."""
    tcp.stall_after = stall_after
    scenario.settings(setup.workspace, tcp.url, timeout="500ms", retries=2)
    started = time.monotonic()
    result = setup.workspace.run(*scenario.BACKFILL, env=setup.env(), timeout=60)
    elapsed = time.monotonic() - started

    assert result.code == 1
    assert f"bw: 0 window(s) done, {TRIED} failed" in result.stderr
    assert result.stderr.count(STOPPED) == 1
    if stall_after == 0:
        assert f"InfluxDB at {tcp.url} did not answer within 500ms (tried 3 times)" in result.stderr
        assert len(re.findall(r"InfluxDB source: attempt [12] failed", result.stderr)) == 2 * 2  # per span
        assert elapsed >= 2 * 3 * 0.5
    else:
        assert f"InfluxDB at {tcp.url} sent nothing for 500ms in the middle of a result" in result.stderr
        assert "retrying" not in result.stderr
        assert elapsed >= 2 * 0.5
    assert elapsed < 2 * (3 * 0.5 + 0.3) + 8, "the process outlived its timeouts"
    assert setup.written_windows() == set()
    assert statuses(setup) == {"failed": TRIED}
    finish_and_compare(setup, scenario_baseline)


def test_an_error_inside_http_200_fails_the_windows_with_influxdbs_message(
    setup: scenario.Setup, scenario_baseline: scenario.Baseline
) -> None:
    """A database that does not exist yet: influxd answers 200 with the error in the result."""
    late = InfluxHelper(setup.raw.server, f"{setup.out_database}_late")
    setup.workspace.database = late.database
    scenario.job_file(setup.workspace)
    result = setup.workspace.run(*scenario.BACKFILL, env=setup.env())

    assert result.code == 1
    assert f"could not run the query: database not found: {late.database}" in result.stderr
    assert setup.written_windows() == set()
    assert statuses(setup) == {"failed": 24}

    late.create_database(late.database)
    late.write(scenario.raw_lines())
    finish_and_compare(setup, scenario_baseline)


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_an_answer_cut_midway_fails_its_windows_instead_of_writing_short_ones(
    setup: scenario.Setup, tcp: TcpProxy, fmt: Format, scenario_baseline: scenario.Baseline
) -> None:
    tcp.cut_after = 20_000  # each span's answer is ~60 kB
    scenario.settings(setup.workspace, tcp.url, fmt=fmt)
    result = setup.workspace.run(*scenario.BACKFILL, env=setup.env())

    assert result.code == 1
    assert f"the result stream from InfluxDB at {tcp.url} broke off" in result.stderr
    assert result.stderr.count(STOPPED) == 1
    assert setup.written_windows() == set()
    assert statuses(setup) == {"failed": TRIED}
    finish_and_compare(setup, scenario_baseline)


ACCEPT = {"json": "application/json", "msgpack": "application/x-msgpack"}


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_a_real_answer_cut_at_any_byte_is_an_error_never_a_shorter_result(
    scenario_raw: InfluxHelper, fmt: Format
) -> None:
    """influxd's chunked answer to a day of the scenario, replayed cut at every chunk boundary (and
    a byte either side), at a hundred other points and in the closing empty chunk: every read of
    a cut answer fails with a SourceError; the whole answer reads whole."""
    first, last = scenario.window_starts()[0], scenario.window_starts()[8]
    query = SourceQuery(scenario_raw.database, "ifc", ("octets", "temp"), first, last)
    statement = f'SELECT "octets","temp" FROM "ifc" WHERE time >= {first} AND time < {last} GROUP BY *'
    response = record(
        scenario_raw.url,
        f"/query?db={scenario_raw.database}&epoch=ns&chunked=true&chunk_size=500",
        {"q": statement},
        {"Accept": ACCEPT[fmt]},
    )
    header_end = response.index(b"\r\n\r\n") + 4
    assert b"Transfer-Encoding: chunked" in response[:header_end]
    replay = Replay(response)
    source = InfluxQLSource(
        InfluxConnection(url=replay.url, timeout="5s"), format=fmt, chunk_size=500, attempts=1
    )
    try:
        whole = sum(batch.rows for batch in source.read(query))
        assert whole == 8 * 288  # eight series, a day of 5-minute points
        chunks = [header_end + m.start() for m in re.finditer(rb"\r\n[0-9a-f]+\r\n", response[header_end:])]
        cuts = {c + d for c in chunks for d in (-1, 0, 2, 3)}
        cuts |= set(range(header_end, len(response), len(response) // 100))
        cuts |= set(range(len(response) - 8, len(response)))  # inside the last, empty chunk
        for cut in sorted(c for c in cuts if header_end <= c < len(response)):
            replay.cut = cut
            with pytest.raises(SourceError):
                list(source.read(query))
    finally:
        source.close()
        replay.close()

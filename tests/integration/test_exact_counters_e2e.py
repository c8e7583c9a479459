"""Integer counters are subtracted exactly whatever else the batch holds, and a preview gives the same
bits however the source cuts its answer (chunk size, format) or interleaves concurrent queries.

Two series of one measurement, 1-minute points, integer field ``v`` (issue 11, §1): host ``b`` from
2^63 - 1 - 14,400,000 up by exactly 60,000 a minute, host ``c`` from -10,000,000 up by 1,000 a
minute. Through float64, ``b``'s values near 2^63 are 2048 apart: a negative counter in the same
batch used to turn the whole batch into floats and ``b``'s rates into noise.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import textwrap
from pathlib import Path

import pytest

from tests.conftest import InfluxHelper
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

S = 1_000_000_000
START = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp())
NOW = {"ROLLUP_NOW": "2026-11-03T00:00Z"}
B0 = 2**63 - 1 - 14_400_000
C0 = -10_000_000
MINUTES = 240

# (chunk size, concurrency, format): InfluxDB cuts its answer every chunk_size rows, and with
# concurrency 2 the hosts are read by two queries whose batches interleave as they come.
SOURCES = [
    (10_000, 1, "msgpack"),  # the defaults
    (1, 1, "msgpack"),
    (7, 1, "msgpack"),
    (59, 1, "json"),
    (100, 1, "json"),
    (7, 2, "msgpack"),
    (50, 2, "json"),
    (10_000, 2, "msgpack"),
]


@pytest.fixture
def workspace(tmp_path: Path, influx: InfluxHelper) -> Workspace:
    influx.write(
        [f"ctr,host=b v={B0 + 60_000 * i}i {(START + 60 * i) * S}" for i in range(MINUTES)]
        + [f"ctr,host=c v={C0 + 1_000 * i}i {(START + 60 * i) * S}" for i in range(MINUTES)]
    )
    made = Workspace(tmp_path, influx.url, influx.database)
    made.job(
        "ctr",
        f"""
        [source]
        profile = "buffer"
        database = "{influx.database}"
        measurement = "ctr"

        [window]
        every = "1h"
        lookback = "0s"

        [fields.v]
        aggregates = ["mean", "increase"]

        [output]
        measurement = "ctr_hourly"
        sinks = ["out"]
        """,
    )
    return made


def preview(workspace: Workspace, influx_url: str, chunk_size: int, concurrency: int, fmt: str) -> str:
    (workspace.root / "config" / "rollup.toml").write_text(
        textwrap.dedent(
            f"""
            [sources.buffer]
            url = "{influx_url}"
            chunk_size = {chunk_size}
            concurrency = {concurrency}
            format = "{fmt}"
            """
        )
    )
    result = workspace.run(
        "preview",
        "ctr",
        "--start",
        "2026-11-02T00:00Z",
        "--end",
        "2026-11-02T04:00Z",
        "--format",
        "csv",
        env=NOW,
    )
    assert result.code == 0, result.stderr
    return result.stdout


def test_a_counter_near_2_pow_63_stays_exact_next_to_a_negative_one_whatever_the_chunking(
    workspace: Workspace, influx: InfluxHelper
) -> None:
    outputs = {source: preview(workspace, influx.url, *source) for source in SOURCES}

    rows = list(csv.DictReader(io.StringIO(outputs[SOURCES[0]])))
    b = [(row["window_start"], row["v_mean"], row["v_increase"]) for row in rows if row["host"] == "b"]
    assert b == [
        # lookback = "0s": the first sample of each window has no prev (docs/semantics.md), so
        # each hour has 59 intervals of 60,000
        ("2026-11-02T00:00:00+00:00", "1000.0", "3540000.0"),
        ("2026-11-02T01:00:00+00:00", "1000.0", "3540000.0"),
        ("2026-11-02T02:00:00+00:00", "1000.0", "3540000.0"),
        ("2026-11-02T03:00:00+00:00", "1000.0", "3540000.0"),
    ]
    c = [float(row["v_increase"]) for row in rows if row["host"] == "c"]
    assert c == [59_000.0] * 4
    # Every way of reading gives the same text, digit for digit.
    assert {source: text for source, text in outputs.items() if text != outputs[SOURCES[0]]} == {}

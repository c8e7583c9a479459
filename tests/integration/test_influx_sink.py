"""The InfluxDB sink against a real influxd (1.6.7): what is written is what is read back."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
import pytest

from rollup.core.batch import Batch, FieldColumn
from rollup.core.pipeline import OutputRow, Rollup
from rollup.core.spec import FieldRule, RollupSpec, output_schema
from rollup.core.windows import Window
from rollup.errors import SinkError
from rollup.sinks.base import OutputTarget
from rollup.sinks.influxdb import InfluxSink, InfluxSinkProfile
from scripts.servers import RunningServer, free_port, start_influxd
from tests.conftest import InfluxHelper

pytestmark = pytest.mark.integration

DAY = 86_400 * 10**9
T0 = 1_700_006_400 * 10**9  # 2023-11-15T00:00:00Z
Schema = dict[str, Literal["long", "double"]]
SCHEMA: Schema = {
    "bytes_mean": "double",
    "bytes_max": "double",
    "bytes_count": "long",
    "bytes_samples": "long",
    "bytes_seconds": "double",
}


def target(measurement: str = "iface_daily", schema: Schema | None = None) -> OutputTarget:
    return OutputTarget("iface", measurement, "1d", "UTC", None, schema or SCHEMA)


def profile(url: str, database: str, **changes: object) -> InfluxSinkProfile:
    settings: dict[str, object] = {"type": "influxdb", "url": url, "database": database, "backoff": 0.01}
    settings.update(changes)
    return InfluxSinkProfile.model_validate(settings)


@pytest.fixture
def out(influx: InfluxHelper) -> str:
    return f"{influx.database}_out"


@pytest.fixture
def sink(influx: InfluxHelper, out: str) -> Iterator[InfluxSink]:
    made = InfluxSink("archive", profile(influx.url, out), target())
    yield made
    made.close()


def sample_rows(count: int = 4, day: int = 0) -> list[OutputRow]:
    window = Window(T0 + day * DAY, T0 + (day + 1) * DAY)
    tricky = [0.1 + 0.2, 1e-300, 1.7976931348623157e308, 123456789.00000001, 5.0]
    return [
        OutputRow(
            {"host": f"router-{i}", "site": "zrh" if i % 2 else "gva", "role": "" if i == 0 else "edge"},
            window,
            window.start,
            {
                "bytes_mean": tricky[i % len(tricky)],
                "bytes_max": float(i),
                "bytes_count": 2**63 - 1 - i,
                "bytes_samples": i,
                "bytes_seconds": 86_400.0 - i / 3,
            },
        )
        for i in range(count)
    ]


def expected(rows: list[OutputRow]) -> list[dict[str, object]]:
    points = [{"time": row.time, **{k: v for k, v in row.tags.items() if v}, **row.values} for row in rows]
    return sorted(points, key=_order)


def _order(point: dict[str, object]) -> tuple[object, ...]:
    return (point["time"], sorted((k, str(v)) for k, v in point.items()))


def read_back(influx: InfluxHelper, measurement: str = "iface_daily") -> list[dict[str, object]]:
    return sorted(influx.points(measurement, database=f"{influx.database}_out"), key=_order)


def field_types(influx: InfluxHelper, measurement: str = "iface_daily") -> dict[str, str]:
    [series] = influx.query(f'SHOW FIELD KEYS FROM "{measurement}"', database=f"{influx.database}_out")
    return {str(name): str(kind) for name, kind in series["values"]}  # type: ignore[attr-defined]


def test_rows_read_back_exactly(influx: InfluxHelper, sink: InfluxSink) -> None:
    rows = sample_rows(5)
    assert sink.write(rows) == 5
    points = read_back(influx)
    assert points == expected(rows)
    for point in points:  # == above would also accept 5 for 5.0: check the exact floats too
        match = next(r for r in rows if r.tags["host"] == point["host"])
        assert float(point["bytes_mean"]).hex() == float(match.values["bytes_mean"]).hex()  # type: ignore[arg-type]
    assert field_types(influx) == {
        "bytes_count": "integer",
        "bytes_max": "float",
        "bytes_mean": "float",
        "bytes_samples": "integer",
        "bytes_seconds": "float",
    }
    assert all(type(p["bytes_count"]) is int and type(p["bytes_samples"]) is int for p in points)


def test_whole_floats_stay_floats(influx: InfluxHelper, sink: InfluxSink) -> None:
    """A double field that happens to be whole first must not fix the field's type as integer."""
    first = OutputRow({"host": "a"}, Window(T0, T0 + DAY), T0, {"bytes_mean": 2.0, "bytes_samples": 1})
    later = OutputRow({"host": "a"}, Window(T0 + DAY, T0 + 2 * DAY), T0 + DAY, {"bytes_mean": 2.5})
    sink.write([first])
    sink.write([later])
    assert field_types(influx)["bytes_mean"] == "float"
    assert [p["bytes_mean"] for p in read_back(influx)] == [2.0, 2.5]


def test_pipeline_output_is_written(influx: InfluxHelper, out: str) -> None:
    spec = RollupSpec(
        fields=(FieldRule("ifHCInOctets", "in", aggregates=("mean", "max", "count", "p95", "stddev")),),
        group_by=("host",),
    )
    windows = [Window(T0, T0 + DAY), Window(T0 + DAY, T0 + 2 * DAY)]
    times = np.arange(T0 - 300 * 10**9, T0 + 2 * DAY, 300 * 10**9, dtype=np.int64)
    counters = np.cumsum(np.full(len(times), 7_500_000, dtype=np.uint64)) + np.uint64(2**63)
    rollup = Rollup(spec, windows)
    rollup.feed(
        Batch(
            keys=[(("host", "r1"), ("ifName", "ge-0/0/0")), (("host", "r2"), ("ifName", "ge 0,1=x"))],
            run_lengths=np.asarray([len(times), len(times)]),
            time=np.concatenate([times, times]),
            fields={"ifHCInOctets": FieldColumn(np.concatenate([counters, counters // np.uint64(2)]))},
        )
    )
    rows = [row for result in rollup.finish() for row in result.rows]
    assert len(rows) == 4
    written = InfluxSink("archive", profile(influx.url, out), target("in_daily", output_schema(spec)))
    assert written.write(rows) == 4
    written.close()
    assert read_back(influx, "in_daily") == expected(rows)
    types = field_types(influx, "in_daily")
    assert types["in_count"] == types["in_samples"] == types["in_resets"] == "integer"
    assert types["in_mean"] == types["in_p95"] == types["in_seconds"] == "float"


def test_tag_escaping_round_trips(influx: InfluxHelper, sink: InfluxSink) -> None:
    values = [
        'say "hi"',
        "it's",
        r"C:\Program Files\x",
        "a\\,b",
        "a\\ b",
        "a\\=b",
        "a\\\\b",
        "\\lead",
        "commas, spaces = equals",
        "zürich ☃ 日本語 😀",
        "tab\there",
        "cr\rhere",
        " leading and trailing ",
        "=",
        ",",
        "#hash",
    ]
    rng = random.Random(7)
    alphabet = " ,=\"'\\\t\rabcxyzé☃😀#"
    while len(values) < 300:
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        if value.endswith("\\"):
            continue
        values.append(value)
    window = Window(T0, T0 + DAY)
    rows = [
        OutputRow(
            {"host": value, "key with, = specials": f"{i}", 'quote"key': "q"},
            window,
            window.start,
            {"bytes_samples": i},
        )
        for i, value in enumerate(values)
    ]
    assert sink.write(rows) == len(rows)
    assert read_back(influx) == expected(rows)


def test_measurement_and_field_names_with_specials(influx: InfluxHelper, out: str) -> None:
    schema: Schema = {"in bytes,x=y_mean": "double", 'in"q_count': "long"}
    with_specials = InfluxSink("archive", profile(influx.url, out), target("daily if,stats", schema))
    row = OutputRow({"host": "a"}, Window(T0, T0 + DAY), T0, {"in bytes,x=y_mean": 1.5, 'in"q_count': 3})
    with_specials.write([row])
    with_specials.close()
    assert read_back(influx, "daily if,stats") == expected([row])


def test_unwritable_tag_is_refused_and_nothing_is_written(influx: InfluxHelper, sink: InfluxSink) -> None:
    """A newline would split the line: InfluxDB would store a point of another measurement."""
    rows = sample_rows(3)
    bad = OutputRow({"host": "a\nbogus x=1"}, rows[0].window, rows[0].time, {"bytes_samples": 1})
    with pytest.raises(SinkError, match=r"row \{'host': 'a\\nbogus x=1'\}.*newline"):
        sink.write([*rows, bad])
    assert influx.query("SHOW MEASUREMENTS", database=f"{influx.database}_out") == []


def test_writing_twice_overwrites(influx: InfluxHelper, sink: InfluxSink) -> None:
    rows = sample_rows(6) + sample_rows(6, day=1)
    sink.write(rows)
    sink.write(rows)
    assert read_back(influx) == expected(rows)
    rerun = [
        OutputRow(r.tags, r.window, r.time, {**r.values, "bytes_max": r.values["bytes_max"] + 0.5})
        for r in rows
    ]
    sink.write(rerun)
    assert read_back(influx) == expected(rerun)
    [count] = influx.query(
        'SELECT count("bytes_samples") FROM "iface_daily"', database=f"{influx.database}_out"
    )
    assert count["values"][0][1] == 12  # type: ignore[index]


@pytest.mark.parametrize("gzip", [True, False])
def test_batches_smaller_than_the_rows(influx: InfluxHelper, out: str, gzip: bool) -> None:
    small = InfluxSink("archive", profile(influx.url, out, batch_size=3, gzip=gzip), target())
    rows = sample_rows(10)
    assert small.write(rows) == 10
    small.close()
    assert read_back(influx) == expected(rows)


def test_retention_policy(influx: InfluxHelper, out: str) -> None:
    # INF: influxd (on the real clock) would drop the 2023 points of a finite policy once they are older
    influx.query(f'CREATE RETENTION POLICY "long" ON "{out}" DURATION INF REPLICATION 1', database=out)
    with_rp = InfluxSink("archive", profile(influx.url, out, retention_policy="long"), target())
    rows = sample_rows(2)
    with_rp.write(rows)
    with_rp.close()
    assert read_back(influx, 'long"."iface_daily') == expected(rows)  # FROM "long"."iface_daily"
    assert read_back(influx) == []


def test_missing_database_is_reported(influx: InfluxHelper) -> None:
    nowhere = InfluxSink("archive", profile(influx.url, "no_such_db"), target())
    with pytest.raises(SinkError, match=r"HTTP 404: database not found: \"no_such_db\""):
        nowhere.write(sample_rows(1))
    nowhere.close()


def test_server_back_within_the_retries(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An influxd restarted during the backoff gets the write: an outage costs no window."""
    port = free_port()
    server = start_influxd(tmp_path / "influxd", port=port)
    httpx.post(f"{server.url}/query", data={"q": "CREATE DATABASE rollups"}).raise_for_status()
    server.stop()
    restarted: list[RunningServer] = []

    def restart() -> None:
        time.sleep(0.5)
        restarted.append(start_influxd(tmp_path / "influxd", port=port))

    thread = threading.Thread(target=restart)
    thread.start()
    flaky = InfluxSink("archive", profile(server.url, "rollups", retries=8, backoff=0.2), target())
    rows = sample_rows(3)
    try:
        assert flaky.write(rows) == 3
    finally:
        flaky.close()
        thread.join()
    [running] = restarted
    try:
        points = sorted(InfluxHelper(running, "rollups").points("iface_daily"), key=_order)
    finally:
        running.stop()
    assert points == expected(rows)
    assert any("attempt 1 failed (ConnectError" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """An influxd with authentication on, an admin ``admin`` and a database ``rollups``."""
    server = start_influxd(Path(tmp_path_factory.mktemp("influxd-auth")), auth=True)
    try:
        create = "CREATE USER admin WITH PASSWORD 'Adm1n pa55' WITH ALL PRIVILEGES"
        httpx.post(f"{server.url}/query", data={"q": create}).raise_for_status()
        httpx.post(
            f"{server.url}/query", data={"q": "CREATE DATABASE rollups"}, auth=("admin", "Adm1n pa55")
        ).raise_for_status()
        yield server
    finally:
        server.stop()


def test_basic_auth_credentials(secured: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLUP_TEST_PASSWORD", "Adm1n pa55")
    authed = InfluxSink(
        "archive",
        profile(secured.url, "rollups", username="admin", password_env="ROLLUP_TEST_PASSWORD"),
        target(),
    )
    rows = sample_rows(3)
    authed.write(rows)
    authed.check()
    authed.close()
    response = httpx.post(
        f"{secured.url}/query",
        params={"db": "rollups", "epoch": "ns"},
        data={"q": 'SELECT count("bytes_samples") FROM "iface_daily"'},
        auth=("admin", "Adm1n pa55"),
    )
    assert response.json()["results"][0]["series"][0]["values"][0][1] == 3


def test_wrong_password_is_a_clear_error(
    secured: RunningServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrong = "Wr0ng-pa55word"
    secret_file = tmp_path / "password"
    secret_file.write_text(wrong + "\n")
    refused = InfluxSink(
        "archive",
        profile(secured.url, "rollups", username="admin", password_file=secret_file),
        target(),
    )
    started = time.monotonic()
    with pytest.raises(SinkError) as caught:
        refused.write(sample_rows(1))
    refused.close()
    assert time.monotonic() - started < 2, "a 401 is not retried"
    message = str(caught.value)
    assert "HTTP 401: authorization failed" in message
    assert "password_env/password_file" in message
    assert wrong not in message
    assert wrong not in repr(caught.value)


def test_no_credentials_on_a_secured_server(secured: RunningServer) -> None:
    anonymous = InfluxSink("archive", profile(secured.url, "rollups"), target())
    with pytest.raises(SinkError, match="HTTP 401"):
        anonymous.write(sample_rows(1))
    anonymous.close()

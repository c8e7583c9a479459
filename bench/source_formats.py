"""How fast InfluxQLSource reads a result as JSON and msgpack, against a real influxd.

Writes ``--rows`` points (``--series`` series of two integer counters and one float gauge) into a
fresh influxd started in a temp dir, then reads them back ``--repeat`` times in each format (after
one warm-up read) and prints the best rows/s of each of: InfluxQLSource reading from influxd (end
to end), InfluxQLSource parsing a recorded copy of the response (no influxd involved), and influxd
merely sending the response (received, not parsed: the ceiling for end to end).

Run from the repository root::

    python -m bench.source_formats [--rows 200000] [--series 200] [--chunk-size 10000] [--compress]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from rollup.influx import InfluxConnection
from rollup.sources.base import SourceQuery
from rollup.sources.influxdb import Format, InfluxQLSource
from rollup.sources.influxql import build_query
from scripts.servers import start_influxd

START = 1_700_000_000 * 10**9
STEP = 60 * 10**9
FIELDS = ("in_octets", "out_octets", "temperature")
ACCEPT = {"json": "application/json", "msgpack": "application/x-msgpack"}
FORMATS: tuple[Format, ...] = ("json", "msgpack")


def write_points(url: str, database: str, rows: int, series: int) -> None:
    httpx.post(f"{url}/query", data={"q": f'CREATE DATABASE "{database}"'}, timeout=60).raise_for_status()
    per_series = rows // series
    lines: list[str] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for s in range(series):
            for i in range(per_series):
                lines.append(
                    f"ifstats,device=dev{s // 8},ifname=eth{s % 8} "
                    f"in_octets={i * 1_000_003 + s}i,out_octets={i * 77_777 + s}i,"
                    f"temperature={20 + (i % 50) / 7:.3f} {START + i * STEP}"
                )
                if len(lines) >= 10_000:
                    _post(client, database, lines)
        if lines:
            _post(client, database, lines)


def _post(client: httpx.Client, database: str, lines: list[str]) -> None:
    response = client.post("/write", params={"db": database}, content="\n".join(lines).encode())
    if response.status_code != 204:
        raise RuntimeError(f"write failed: {response.status_code} {response.text}")
    lines.clear()


def time_source(
    connection: InfluxConnection,
    query: SourceQuery,
    fmt: Format,
    chunk_size: int,
    compress: bool,
    transport: httpx.BaseTransport | None = None,
) -> float:
    """Rows/s read through InfluxQLSource (from influxd, or from ``transport``)."""
    source = InfluxQLSource(
        connection, format=fmt, chunk_size=chunk_size, compress=compress, transport=transport
    )
    try:
        started = time.perf_counter()
        rows = sum(batch.rows for batch in source.read(query))
        elapsed = time.perf_counter() - started
    finally:
        source.close()
    return rows / elapsed


@dataclass(frozen=True)
class Recorded:
    body: bytes
    encoding: str | None

    def transport(self) -> httpx.MockTransport:
        """Replays the response, so parsing can be timed without influxd."""
        headers = {"Content-Encoding": self.encoding} if self.encoding else {}
        return httpx.MockTransport(lambda request: httpx.Response(200, content=self.body, headers=headers))


def fetch(
    url: str, query: SourceQuery, fmt: Format, chunk_size: int, compress: bool
) -> tuple[float, Recorded]:
    """Seconds to receive the response without parsing it, and the response as received."""
    headers = {
        "Accept": ACCEPT[fmt],
        "Accept-Encoding": "gzip" if compress else "identity",
    }
    params = {"db": query.database, "epoch": "ns", "chunked": "true", "chunk_size": str(chunk_size)}
    started = time.perf_counter()
    with httpx.stream(
        "POST",
        f"{url}/query",
        params=params,
        data={"q": build_query(query)},
        headers=headers,
        timeout=300,
    ) as response:
        body = b"".join(response.iter_raw())
        encoding = response.headers.get("Content-Encoding")
    return time.perf_counter() - started, Recorded(body, encoding)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compress", action="store_true", help="ask influxd for gzipped responses")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rollup-bench-") as tmp:
        server = start_influxd(Path(tmp) / "influxd")
        try:
            write_points(server.url, "bench", args.rows, args.series)
            rows = (args.rows // args.series) * args.series
            query = SourceQuery("bench", "ifstats", FIELDS, START, START + rows * STEP)
            connection = InfluxConnection(url=server.url, timeout="300s")
            print(
                f"{rows} rows in {args.series} series, chunk_size={args.chunk_size}, "
                f"{'gzip' if args.compress else 'uncompressed'}, best of {args.repeat}"
            )
            for fmt in FORMATS:  # warm influxd's caches first
                fetch(server.url, query, fmt, args.chunk_size, args.compress)
            for fmt in FORMATS:
                fetched = [
                    fetch(server.url, query, fmt, args.chunk_size, args.compress) for _ in range(args.repeat)
                ]
                seconds, recorded = min(fetched, key=lambda f: f[0])
                end_to_end = max(
                    time_source(connection, query, fmt, args.chunk_size, args.compress)
                    for _ in range(args.repeat)
                )
                parsing = max(
                    time_source(connection, query, fmt, args.chunk_size, args.compress, recorded.transport())
                    for _ in range(args.repeat)
                )
                print(
                    f"{fmt:>7}: end to end {end_to_end:>10,.0f} rows/s | "
                    f"parsing a recorded response {parsing:>10,.0f} rows/s | "
                    f"influxd sending alone {rows / seconds:>10,.0f} rows/s, "
                    f"{len(recorded.body) / rows:.0f} bytes/row"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()

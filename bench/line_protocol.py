"""Line-protocol serialization speed: rollup's serializer against ``influxdb_client.Point``.

    python -m bench.line_protocol [--rows 40000] [--fields 30] [--repeat 3]

Both serialize the same rows (6 tags, ``--fields`` fields, a third of them integers) and the best
of ``--repeat`` runs is printed, plus the cost of gzip on the body at a few levels.
"""

from __future__ import annotations

import argparse
import gzip
import random
import time
from collections.abc import Callable
from typing import Literal

from influxdb_client import Point

from rollup.core.pipeline import OutputRow
from rollup.core.windows import Window
from rollup.sinks.line_protocol import LineProtocol


def make_rows(count: int, fields: int) -> tuple[list[OutputRow], dict[str, Literal["long", "double"]]]:
    rng = random.Random(1)
    schema: dict[str, Literal["long", "double"]] = {
        f"field{i}_{'count' if i % 3 == 0 else 'mean'}": "long" if i % 3 == 0 else "double"
        for i in range(fields)
    }
    window = Window(1_700_000_000_000_000_000, 1_700_086_400_000_000_000)
    rows = []
    for n in range(count):
        tags = {
            "host": f"router-{n % 1600:04d}.example.net",
            "ifName": f"GigabitEthernet0/{n % 48}",
            "ifAlias": f"uplink to site {n % 97}, rack {n % 7}",
            "site": f"site{n % 97}",
            "role": "core",
            "vendor": "cisco",
        }
        values: dict[str, float] = {
            name: rng.randrange(10**6) if kind == "long" else rng.random() * 10 ** rng.randrange(12)
            for name, kind in schema.items()
        }
        rows.append(OutputRow(tags, window, window.start + n, values))
    return rows, schema


def with_point(rows: list[OutputRow], measurement: str) -> list[str]:
    return [
        Point.from_dict(
            {"measurement": measurement, "tags": row.tags, "fields": row.values, "time": row.time}
        ).to_line_protocol()
        for row in rows
    ]


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--fields", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows, schema = make_rows(args.rows, args.fields)
    serializer = LineProtocol("interface_daily", schema)
    ours = best(args.repeat, lambda: serializer.lines(rows))
    theirs = best(args.repeat, lambda: with_point(rows, "interface_daily"))
    body = "\n".join(serializer.lines(rows)).encode()
    print(f"{args.rows} rows x {args.fields} fields, {len(body) / 1e6:.1f} MB of line protocol")
    print(f"  rollup LineProtocol       {ours:7.3f} s  {args.rows / ours:>10,.0f} rows/s")
    print(f"  influxdb_client.Point     {theirs:7.3f} s  {args.rows / theirs:>10,.0f} rows/s")
    for level in (1, 6, 9):
        seconds = best(args.repeat, lambda level=level: gzip.compress(body, compresslevel=level))
        size = len(gzip.compress(body, compresslevel=level))
        print(f"  gzip level {level}              {seconds:7.3f} s  {size / 1e6:6.1f} MB")


if __name__ == "__main__":
    main()

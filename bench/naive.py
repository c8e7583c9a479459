"""The naive pandas baseline: export the raw points, then groupby + diff + mean.

What a careful analyst would write: one chunked query for the whole range (plus the lookback),
every row into one DataFrame, per-series ``diff()`` of time and counters, the non-negative rates
(a decrease drops its interval, as ``on_decrease = "drop"``), the interval kept only when its first
sample is at most ``--lookback`` before the start of the window of its second sample (which is what
rollup's per-window queries see), and the mean per (agent_host, ifName, UTC day).

Run by ``bench/backfill.py`` as a subprocess, so its time and peak memory are its own::

    python -m bench.naive --url URL --database DB --start NS --end NS --lookback NS --output FILE
"""

from __future__ import annotations

import argparse
import sys
import time

import httpx
import numpy as np
import orjson
import pandas as pd

FIELDS = ("ifHCInOctets", "ifHCOutOctets")
OUTPUTS = ("in_mean", "out_mean")
DAY_NS = 86400 * 10**9


def fetch(url: str, database: str, start: int, end: int) -> pd.DataFrame:
    query = (
        f'SELECT "{FIELDS[0]}","{FIELDS[1]}" FROM "{database}".."interface" '
        f"WHERE time >= {start} AND time < {end} GROUP BY *"
    )
    frames = []
    with httpx.stream(
        "POST",
        f"{url}/query",
        params={"db": database, "epoch": "ns", "chunked": "true", "chunk_size": "10000"},
        data={"q": query},
        headers={"Accept-Encoding": "identity"},  # as rollup asks: gzip would cost influxd CPU
        timeout=600,
    ) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.strip():
                continue
            for result in orjson.loads(line)["results"]:
                if "error" in result:
                    raise SystemExit(f"InfluxDB: {result['error']}")
                for series in result.get("series", []):
                    frame = pd.DataFrame(series["values"], columns=series["columns"])
                    for key, value in (series.get("tags") or {}).items():
                        frame[key] = value
                    frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def rollup(df: pd.DataFrame, lookback: int) -> pd.DataFrame:
    df = df.sort_values(["agent_host", "ifName", "time"], kind="stable")
    by_series = df.groupby(["agent_host", "ifName"], sort=False)
    dt = by_series["time"].diff()
    window = df["time"] - df["time"] % DAY_NS
    # The interval counts when its first sample is no more than the lookback before its window.
    reachable = (df["time"] - dt) >= (window - lookback)
    out = pd.DataFrame({"agent_host": df["agent_host"], "ifName": df["ifName"], "window": window})
    for field, name in zip(FIELDS, OUTPUTS, strict=True):
        rate = by_series[field].diff() / (dt / 1e9)
        out[name] = rate.where((rate >= 0) & reachable)
    return out.groupby(["agent_host", "ifName", "window"])[list(OUTPUTS)].mean().reset_index()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--start", type=int, required=True, help="first window start, epoch ns")
    parser.add_argument("--end", type=int, required=True, help="last window end, epoch ns")
    parser.add_argument("--lookback", type=int, required=True, help="ns")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    began = time.perf_counter()
    df = fetch(args.url, args.database, args.start - args.lookback, args.end)
    fetched = time.perf_counter()
    result = rollup(df, args.lookback)
    result = result[(result["window"] >= args.start) & (result["window"] < args.end)]
    done = time.perf_counter()
    rows = [
        [host, name, int(window), *(None if np.isnan(v) else float(v) for v in values)]
        for host, name, window, *values in result.itertuples(index=False)
    ]
    with open(args.output, "wb") as out:
        out.write(orjson.dumps({"rows": len(df), "results": rows}))
    print(orjson.dumps({"fetch_seconds": fetched - began, "compute_seconds": done - fetched}).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Synthetic SNMP-like interface counters (and device temperatures) written into an InfluxDB.

Seeded and reproducible. Every interface of every device is polled every ``--interval`` seconds
at its own phase, with Counter64 octet counters growing at a per-interface rate that follows the
time of day. ``--resets N`` reboots N devices once (all their counters restart from 0);
``--wrap32`` makes one interface a Counter32 that wraps past 2^32 once.

    python -m scripts.synth --url http://127.0.0.1:8086 --database telegraf \\
        --start 2026-11-20T00:00Z --end 2026-11-21T00:00Z --devices 50 --interfaces 24
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import sys
import time
from collections.abc import Iterator

import httpx
import numpy as np

TWO_32 = 2**32
FIELDS = ("ifHCInOctets", "ifHCOutOctets")


def _instant(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def interface_series(
    start: int,
    end: int,
    devices: int,
    interfaces: int,
    interval: int,
    seed: int,
    resets: int,
    wrap32: bool,
) -> Iterator[tuple[str, str, np.ndarray, list[np.ndarray]]]:
    """(agent_host, ifName, times in seconds, [ifHCInOctets, ifHCOutOctets] as uint64) per series."""
    rng = np.random.default_rng(seed)
    # Device 0 never reboots so that its Counter32 interface (with --wrap32) wraps exactly once.
    candidates = np.arange(1, devices)
    rebooting = set(rng.choice(candidates, size=min(resets, len(candidates)), replace=False).tolist())
    reboot_at = {d: int(rng.integers(start + 3600, end - 3600)) for d in sorted(rebooting)}
    for device in range(devices):
        host = f"sw{device:03d}"
        for port in range(interfaces):
            phase = int(rng.integers(0, interval))
            times = np.arange(start + phase, end, interval, dtype=np.int64)
            keep = rng.random(len(times)) > 0.002  # an occasional missed poll
            times = times[keep]
            hour = (times % 86400) / 3600.0
            daily = 1.0 + 0.6 * np.sin((hour - 8.0) / 24.0 * 2 * np.pi)
            columns = []
            counter32 = wrap32 and device == 0 and port == 0
            for _ in FIELDS:
                base = float(rng.lognormal(np.log(2e5), 1.5))
                if counter32:  # grows by about 0.8 × 2^32 over the whole range: one wrap, mid-way
                    base = 0.8 * TWO_32 / (end - start)
                steps = np.diff(times, prepend=times[0] - interval).astype(np.float64)
                grow = (base * daily * steps * rng.uniform(0.8, 1.2, len(times))).astype(np.uint64)
                origin = np.uint64(int(0.6 * TWO_32)) if counter32 else np.uint64(rng.integers(0, 2**40))
                values = origin + np.cumsum(grow, dtype=np.uint64)
                if device in reboot_at:
                    after = times >= reboot_at[device]
                    if after.any():
                        first = int(np.argmax(after))
                        values[after] = (
                            np.cumsum(grow[after], dtype=np.uint64) - grow[first] + np.uint64(1000)
                        )
                if counter32:
                    values = values % np.uint64(TWO_32)
                columns.append(values)
            yield host, f"xe-0/0/{port}", times, columns


def interface_lines(
    start: int,
    end: int,
    devices: int,
    interfaces: int,
    interval: int,
    seed: int,
    resets: int,
    wrap32: bool,
) -> Iterator[str]:
    """Line protocol for ``interface`` points, series by series, times in seconds."""
    for host, port, times, (ins, outs) in interface_series(
        start, end, devices, interfaces, interval, seed, resets, wrap32
    ):
        tags = f"interface,agent_host={host},ifName={port}"
        for stamp, a, b in zip(times.tolist(), ins.tolist(), outs.tolist(), strict=True):
            yield f"{tags} {FIELDS[0]}={a}i,{FIELDS[1]}={b}i {stamp}"


def temperature_lines(start: int, end: int, devices: int, interval: int, seed: int) -> Iterator[str]:
    rng = np.random.default_rng(seed + 1)
    for device in range(devices):
        for sensor, mean in (("cpu", 55.0), ("inlet", 24.0)):
            times = np.arange(start + int(rng.integers(0, interval)), end, interval, dtype=np.int64)
            hour = (times % 86400) / 3600.0
            values = mean + 4 * np.sin((hour - 9) / 24 * 2 * np.pi) + rng.normal(0, 0.5, len(times))
            tags = f"sensors,agent_host=sw{device:03d},sensor={sensor}"
            for stamp, value in zip(times.tolist(), values.tolist(), strict=True):
                yield f"{tags} temperature={value:.2f} {stamp}"


def write(client: httpx.Client, database: str, lines: Iterator[str], batch: int = 50_000) -> int:
    written = 0
    chunk: list[str] = []

    def flush() -> None:
        body = gzip.compress("\n".join(chunk).encode(), compresslevel=1)
        response = client.post(
            "/write",
            params={"db": database, "precision": "s"},
            content=body,
            headers={"Content-Encoding": "gzip"},
        )
        if response.status_code != 204:
            raise SystemExit(f"write failed: HTTP {response.status_code}: {response.text[:300]}")

    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch:
            flush()
            written += len(chunk)
            chunk = []
    if chunk:
        flush()
        written += len(chunk)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--database", default="telegraf")
    parser.add_argument("--start", required=True, help="ISO time, e.g. 2026-11-20T00:00Z")
    parser.add_argument("--end", required=True)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--interfaces", type=int, default=24)
    parser.add_argument("--interval", type=int, default=60, help="seconds between polls")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resets", type=int, default=3, help="devices that reboot once")
    parser.add_argument("--wrap32", action="store_true", help="one interface is a Counter32 that wraps")
    parser.add_argument("--temperature", action="store_true", help="also write sensors.temperature gauges")
    args = parser.parse_args(argv)
    start, end = _instant(args.start), _instant(args.end)
    began = time.monotonic()
    with httpx.Client(base_url=args.url, timeout=120) as client:
        client.post("/query", data={"q": f'CREATE DATABASE "{args.database}"'}).raise_for_status()
        lines = interface_lines(
            start, end, args.devices, args.interfaces, args.interval, args.seed, args.resets, args.wrap32
        )
        count = write(client, args.database, lines)
        if args.temperature:
            count += write(
                client, args.database, temperature_lines(start, end, args.devices, args.interval, args.seed)
            )
    print(f"wrote {count:,} points in {time.monotonic() - began:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

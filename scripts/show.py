"""Print the result of an InfluxQL query as a table (used by the demo)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.table import Table


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"
    return "" if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--query", required=True)
    parser.add_argument(
        "--timezone",
        default="UTC",
        help="Show times in this IANA zone (the job's, so a local day reads as one)",
    )
    args = parser.parse_args()
    zone = ZoneInfo(args.timezone)
    response = httpx.post(
        f"{args.url}/query", params={"db": args.database, "epoch": "s"}, data={"q": args.query}, timeout=60
    )
    response.raise_for_status()
    result = response.json()["results"][0]
    if "error" in result:
        raise SystemExit(result["error"])
    series = result.get("series", [])
    if not series:
        raise SystemExit("no rows")
    tag_names = sorted({key for s in series for key in (s.get("tags") or {})})
    columns = series[0]["columns"]
    table = Table(*tag_names, f"time ({args.timezone})", *columns[1:])
    for s in series:
        tags = s.get("tags") or {}
        for values in s["values"]:
            stamp = dt.datetime.fromtimestamp(values[0], zone).strftime("%Y-%m-%d %H:%M%z")
            table.add_row(*(tags.get(t, "") for t in tag_names), stamp, *(_cell(v) for v in values[1:]))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


if __name__ == "__main__":
    main()

"""Print documents of an Elasticsearch or OpenSearch index as a table, newest first (used by the demo)."""

from __future__ import annotations

import argparse
import sys

import httpx
from rich.console import Console
from rich.table import Table


def _cell(value: object, scale: float) -> str:
    if isinstance(value, float):
        value = value / scale
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.2f}"
    return "" if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--index", required=True, help="index name or pattern, e.g. rollup-*")
    parser.add_argument("--fields", required=True, help="comma-separated document fields to show")
    parser.add_argument("--size", type=int, default=6)
    parser.add_argument("--scale", type=float, default=1.0, help="divide float values by this")
    args = parser.parse_args()
    fields = args.fields.split(",")
    with httpx.Client(base_url=args.url, timeout=30) as client:
        client.post(f"/{args.index}/_refresh").raise_for_status()
        query = {"size": args.size, "sort": [{"@timestamp": "desc"}], "track_total_hits": True}
        response = client.post(f"/{args.index}/_search", json=query)
        response.raise_for_status()
        hits = response.json()["hits"]
        indices = sorted(client.get(f"/{args.index}").raise_for_status().json())
    table = Table("_index", *fields)
    for hit in hits["hits"]:
        source = hit["_source"]
        table.add_row(hit["_index"], *(_cell(source.get(name), args.scale) for name in fields))
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(
        f"{hits['total']['value']} documents in {', '.join(indices)}; newest first (sorted by @timestamp):"
    )
    console.print(table)


if __name__ == "__main__":
    main()

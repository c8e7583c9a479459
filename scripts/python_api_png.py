"""Run the notebook cells of docs/python.md against a real influxd and save their plot.

It starts influxd in a temp dir, writes the week the cells read (2026-11-23 to 2026-11-30 in
Europe/Zurich, plus an hour before) of the demo's counters (scripts/synth.py, 4 devices × 4
interfaces), copies this repository's config/, jobs/ and sinks/ into a temp working directory,
and there runs every ```python cell of the section "A week of daily rows" in one namespace, as a
notebook would, printing what they print. The plot they save is copied to ``--output``.

    .venv/bin/python -m scripts.python_api_png --output docs/python-week.png
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import matplotlib

from scripts import synth
from scripts.servers import start_influxd

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "python.md"
SECTION = "## A week of daily rows"
START, END = "2026-11-22T22:00Z", "2026-11-30T00:00Z"  # the local week, and an hour before it
CELL = re.compile(r"```python\n(.*?)```", re.DOTALL)


def cells(text: str) -> list[str]:
    """The python cells of the notebook section of docs/python.md."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return CELL.findall(section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "python-week.png")
    args = parser.parse_args(argv)
    matplotlib.use("Agg")
    with tempfile.TemporaryDirectory(prefix="rollup-python-doc-") as temp:
        root = Path(temp)
        server = start_influxd(root / "influxd")
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                client.post("/query", data={"q": 'CREATE DATABASE "telegraf"'}).raise_for_status()
                start, end = synth._instant(START), synth._instant(END)
                lines = synth.interface_lines(start, end, 4, 4, 60, seed=1, resets=1, wrap32=False)
                synth.write(client, "telegraf", lines)
            work = root / "work"
            for name in ("config", "jobs", "sinks"):
                shutil.copytree(REPO / name, work / name)
            os.environ["ROLLUP_INFLUX_URL"] = server.url
            namespace: dict[str, object] = {"__name__": "__notebook__"}
            with contextlib.chdir(work):
                for number, cell in enumerate(cells(DOC.read_text()), 1):
                    print(f"--- cell {number}", file=sys.stderr)
                    exec(compile(cell, f"{DOC.name} cell {number}", "exec"), namespace)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(work / "week.png", args.output)
        finally:
            server.stop()
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

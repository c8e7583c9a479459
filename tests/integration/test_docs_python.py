"""docs/python.md stays true: its notebook cells run against a real influxd holding the week they
read (scripts/python_api_png.py), print the outputs the page shows, and save the plot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def blocks(markdown: str) -> list[tuple[str, str]]:
    """The fenced blocks of ``markdown``: (language, text)."""
    found: list[tuple[str, str]] = []
    language: str | None = None
    lines: list[str] = []
    for line in markdown.splitlines(keepends=True):
        if line.startswith("```"):
            if language is None:
                language, lines = line[3:].strip(), []
            else:
                found.append((language, "".join(lines)))
                language = None
        elif language is not None:
            lines.append(line)
    return found


def test_the_notebook_cells_of_docs_python_md_run_and_print_what_the_page_shows(tmp_path: Path) -> None:
    plot = tmp_path / "week.png"
    result = subprocess.run(
        [sys.executable, "-m", "scripts.python_api_png", "--output", str(plot)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("--- cell") == 3
    section = (REPO / "docs" / "python.md").read_text().split("## A week of daily rows")[1].split("\n## ")[0]
    shown = [text for language, text in blocks(section) if not language]
    assert len(shown) == 2
    for block in shown:
        assert block in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

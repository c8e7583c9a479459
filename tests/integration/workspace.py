"""A throw-away rollup workspace (config, sinks, jobs) pointing at the test influxd, and the CLI
run as a real subprocess in it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


class Workspace:
    def __init__(self, root: Path, influx_url: str, database: str):
        self.root = root
        self.database = database
        self.out_database = f"{database}_out"
        for name in ("config", "sinks", "jobs"):
            (root / name).mkdir(parents=True, exist_ok=True)
        (root / "config" / "rollup.toml").write_text(
            textwrap.dedent(
                f"""
                [sources.buffer]
                url = "{influx_url}"
                chunk_size = 7
                """
            )
        )
        (root / "sinks" / "out.toml").write_text(
            textwrap.dedent(
                f"""
                type = "influxdb"
                url = "{influx_url}"
                database = "{self.out_database}"
                """
            )
        )

    def job(self, name: str, body: str) -> Path:
        path = self.root / "jobs" / f"{name}.toml"
        path.write_text(textwrap.dedent(body))
        return path

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ROLLUP_")}
        environment["PYTHONPATH"] = str(REPO)
        environment.update(env or {})
        completed = subprocess.run(
            [sys.executable, "-m", "rollup", *args],
            cwd=self.root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

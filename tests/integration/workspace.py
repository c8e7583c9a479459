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

    def sink(self, name: str, body: str) -> Path:
        path = self.root / "sinks" / f"{name}.toml"
        path.write_text(textwrap.dedent(body))
        return path

    def _environment(self, env: dict[str, str] | None) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ROLLUP_")}
        environment["PYTHONPATH"] = str(REPO)
        environment.update(env or {})
        return environment

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        completed = subprocess.run(
            [sys.executable, "-m", "rollup", *args],
            cwd=self.root,
            env=self._environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> Background:
        """``python -m rollup ARGS`` in the background, its output in a file of the workspace."""
        log = self.root / f"cli-{len(list(self.root.glob('cli-*.log')))}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "rollup", *args],
                cwd=self.root,
                env=self._environment(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        return Background(process, log)


@dataclass
class Background:
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float = 120) -> CliResult:
        """Its exit code and output (stdout and stderr together)."""
        code = self.process.wait(timeout)
        return CliResult(code, self.output(), self.output())

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last write to the ledger."""
        self.process.kill()
        self.process.wait(30)

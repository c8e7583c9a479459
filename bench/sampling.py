"""Measuring a process: wall time, peak RSS and CPU time of a child, the RSS of a running server.

A child's peak RSS is its ``VmHWM`` (``/proc/PID/status``), sampled until it exits: the rusage
maximum would also count the memory of the (larger) benchmark process, whose address space the
child runs in until its exec.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    seconds: float
    rss_mb: float | None = None
    cpu_seconds: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Measure:
    """The rounds of one contender; the median is what a table shows."""

    name: str
    rows: int
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def rss_mb(self) -> float | None:
        values = [r.rss_mb for r in self.runs if r.rss_mb is not None]
        return max(values) if values else None

    @property
    def cpu_seconds(self) -> float | None:
        values = [r.cpu_seconds for r in self.runs if r.cpu_seconds is not None]
        return statistics.median(values) if values else None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "median_seconds": self.seconds,
            "rows_per_second": self.rows / self.seconds,
            "peak_rss_mb": self.rss_mb,
            "median_cpu_seconds": self.cpu_seconds,
            "note": self.note,
            "runs": [r.__dict__ for r in self.runs],
        }


def run_child(command: list[str], env: dict[str, str] | None = None) -> tuple[Run, str]:
    """Run a command to completion: wall time, its peak RSS, its CPU time (wait4), its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        peak_kb = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            peak_kb = max(peak_kb, status_kb(process.pid, "VmHWM:"))
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return Run(seconds, peak_kb / 1024, usage.ru_utime + usage.ru_stime), stdout


class RssSampler:
    """The highest VmRSS of a process while a block runs (sampled every 20 ms)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, status_kb(self.pid, "VmRSS:"))

    def __enter__(self) -> RssSampler:
        self.peak_kb = status_kb(self.pid, "VmRSS:")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def status_kb(pid: int, key: str) -> int:
    """A memory figure (kB) from /proc/PID/status, 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime

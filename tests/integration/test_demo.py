"""``KEEP=1 scripts/demo.sh``, as a newcomer runs it: it leaves its servers running and ends with
one ``export`` line; pasted into a new shell in any directory, ``rollup status`` sees the demo's
windows (not an empty ledger of its own). The demo writes yesterday's data, by the real clock."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Windows of yesterday's local day (Europe/Zurich) that each demo job backfills.
DEMO_WINDOWS = {"interface-daily": 1, "device-traffic-3h": 8, "sensors-3h": 8}


def stop(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def test_keep_1_demo_ends_with_an_export_line_after_which_rollup_status_sees_its_windows(
    tmp_path: Path,
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLUP_")}
    demo = subprocess.run(
        ["scripts/demo.sh"],
        cwd=REPO,
        env={**clean, "KEEP": "1", "DEMO_DIR": str(tmp_path / "demo")},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    kept = re.search(r"stop them with: kill ([\d ]+)\)", demo.stdout)
    pids = [int(pid) for pid in kept.group(1).split()] if kept else []
    try:
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert pids, demo.stdout[-3000:]
        (export,) = [line for line in demo.stdout.splitlines() if line.startswith("export ")]
        for name in ("PATH", "ROLLUP_INFLUX_URL", "ROLLUP_LEDGER", "ROLLUP_CONFIG", "ROLLUP_JOBS_DIR"):
            assert f" {name}=" in export

        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        status = subprocess.run(
            ["bash", "-c", f"{export}\nrollup status --json"],
            cwd=elsewhere,
            env=clean,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        done = {job["job"]: job["done"] for job in json.loads(status.stdout)}
        assert {name: done.get(name) for name in DEMO_WINDOWS} == DEMO_WINDOWS
        assert not (elsewhere / "state").exists()  # no stray ledger of its own
    finally:
        stop(pids)

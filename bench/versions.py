"""Another version of rollup next to this tree, to run as a baseline in the same benchmark run.

``extract`` writes a commit's files (``git archive``) to a directory; ``python_env`` is the
environment of a child process that runs that code: ``PYTHONPATH`` names it and
``PYTHONSAFEPATH`` keeps the working directory (perhaps this tree) off ``sys.path``, so
``python -m rollup`` imports the version asked for and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def resolve(commit: str) -> str:
    """The full hash of ``commit`` (a hash, a tag, ``HEAD~3`` …)."""
    done = subprocess.run(
        ["git", "rev-parse", "--verify", f"{commit}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"unknown commit {commit!r}: {done.stderr.strip()}")
    return done.stdout.strip()


def extract(commit: str, into: Path) -> Path:
    """The files of ``commit`` under ``into/<short hash>``."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / commit[:12]
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    tar = into / f"{commit[:12]}.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as opened:
        opened.extractall(target, filter="data")
    tar.unlink()
    return target


def python_env(code: Path, **extra: str) -> dict[str, str]:
    """The environment of a child running the rollup in ``code`` (no ROLLUP_ setting inherited)."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("ROLLUP_", "PYTHONPATH"))}
    return kept | {"PYTHONPATH": str(code), "PYTHONSAFEPATH": "1"} | extra

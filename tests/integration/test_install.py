"""rollup installed as docs/deployment.md says, into fresh virtualenvs: a wheel built in the
repository with every dependency, installed with its extras without a package index; and
``pip install '.[extras]'`` from the repository's root. Needs the package index (or pip's cache)
for the dependencies."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENT = (REPO / "docs" / "deployment.md").read_text()
BUILD_WITH_DEPENDENCIES = "pip wheel -w dist '.[postgres,elasticsearch]'"
INSTALL_WITHOUT_INDEX = "pip install --no-index --find-links dist 'rollup[postgres,elasticsearch]'"


def run(command: list[str], cwd: Path) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fresh_virtualenv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    return path / "bin"


def systemd_install() -> list[str]:
    """The pip line of the systemd section's commands, with its extras."""
    block = DEPLOYMENT[DEPLOYMENT.index("\n## systemd\n") :]
    found = re.search(r"^/opt/rollup/bin/(pip install '\.\[[a-z,]+\]')", block, re.M)
    assert found is not None
    return shlex.split(found.group(1))


def test_a_wheel_built_in_the_repository_installs_with_its_extras_without_an_index(tmp_path: Path) -> None:
    assert BUILD_WITH_DEPENDENCIES in DEPLOYMENT.replace("\n", " ")
    assert INSTALL_WITHOUT_INDEX in " ".join(DEPLOYMENT.split())
    dist = tmp_path / "dist"
    build = shlex.split(BUILD_WITH_DEPENDENCIES.replace("-w dist", f"-w {dist}"))
    run([sys.executable, "-m", *build, "-q", "--disable-pip-version-check"], REPO)
    (wheel,) = dist.glob("rollup-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        (info,) = {top for top in tops if top.endswith(".dist-info")}
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert tops == {"rollup", info}  # the package only: not tests/, scripts/, bench/
    assert "rollup = rollup.cli:main" in entry_points

    bin_dir = fresh_virtualenv(tmp_path / "opt-rollup")
    install = shlex.split(INSTALL_WITHOUT_INDEX.replace("--find-links dist", f"--find-links {dist}"))
    run([str(bin_dir / "python"), "-m", *install, "-q", "--disable-pip-version-check"], tmp_path)
    assert "Usage: rollup [OPTIONS] COMMAND [ARGS]..." in run([str(bin_dir / "rollup"), "--help"], tmp_path)
    run([str(bin_dir / "python"), "-c", "import psycopg, elasticsearch"], tmp_path)  # the extras

    # The systemd section's command from the repository's root, in the same virtualenv: pip builds rollup
    # from the source tree and resolves the extras (their dependencies are there already).
    run([str(bin_dir / "python"), "-m", *systemd_install(), "-q", "--disable-pip-version-check"], REPO)
    assert "Usage: rollup" in run([str(bin_dir / "rollup"), "--help"], tmp_path)

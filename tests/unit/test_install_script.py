"""What a fresh machine meets first: scripts/install-deps.sh refuses a Python older than 3.11 with
a message that says what to do, and the demo needs the `demo` extra only, never tests/."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo.sh"


def test_install_deps_refuses_a_python_older_than_3_11_saying_how_to_pick_another(tmp_path: Path) -> None:
    old_python = tmp_path / "python3.10"
    old_python.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "Python 3.10.12"; exit 0; fi\n'
        'exec python3 -c "import sys; sys.exit(1)"\n'
    )
    old_python.chmod(0o755)
    result = subprocess.run(
        ["scripts/install-deps.sh"],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(old_python)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"rollup needs Python 3.11 or newer, and {old_python} is Python 3.10.12." in result.stderr
    assert "PYTHON=python3.11 scripts/install-deps.sh" in result.stderr
    assert result.stdout == ""  # it stopped before installing anything


def demo_modules() -> list[Path]:
    """The Python modules scripts/demo.sh runs or imports (``python -m scripts.X``, ``from scripts.X``)."""
    text = DEMO.read_text()
    names = set(re.findall(r"-m (scripts\.\w+)", text)) | set(re.findall(r"from (scripts\.\w+) import", text))
    return sorted(REPO / (name.replace(".", "/") + ".py") for name in names)


def top_level_imports(path: Path) -> set[str]:
    """Modules imported at the top of ``path`` (imports inside functions run only when called)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def requirement_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9_.-]+", requirement)
    assert name is not None, requirement
    return name.group(0).lower().replace("_", "-")


def test_the_demo_needs_the_demo_extra_only_and_never_imports_tests() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    allowed = {
        requirement_name(r) for r in [*project["dependencies"], *project["optional-dependencies"]["demo"]]
    }
    assert "noida-db" in allowed  # scripts/demo.sh --elasticsearch runs it
    distributions = importlib.metadata.packages_distributions()
    modules = demo_modules()
    assert {m.name for m in modules} >= {"servers.py", "synth.py", "show.py", "show_documents.py"}
    for module in modules:
        imported = top_level_imports(module) - set(sys.stdlib_module_names) - {"__future__"}
        assert "tests" not in imported, module
        for name in imported - {"scripts", "rollup"}:
            needed = {d.lower().replace("_", "-") for d in distributions.get(name, [name])}
            assert needed & allowed, f"{module.name} imports {name} ({needed}), not in the demo extra"
    assert "from tests" not in DEMO.read_text()

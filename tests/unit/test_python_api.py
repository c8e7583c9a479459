"""The Python API's surface: the names ``import rollup`` gives are pinned, imported on first use
(``import rollup`` and ``import rollup.core`` load nothing else), and a missing optional
dependency is a message saying what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rollup
from rollup.app.frames import MissingExtraError, to_frame
from rollup.jobs.loader import job_from

REPO = Path(__file__).resolve().parents[2]
JOB = {
    "name": "bw",
    "source": {"profile": "buffer", "database": "telegraf", "measurement": "ifc"},
    "window": {"every": "1d"},
    "fields": {"octets": {}},
    "output": {"measurement": "bw", "sinks": ["out"]},
}


def test_the_exported_names_are_these() -> None:
    assert rollup.__all__ == [
        "BackfillReport",
        "ConfigError",
        "Job",
        "RollupError",
        "backfill",
        "load_job",
        "preview",
    ]
    for name in rollup.__all__:
        assert getattr(rollup, name).__name__ == name
    assert set(rollup.__all__) <= set(dir(rollup))
    with pytest.raises(AttributeError, match="module 'rollup' has no attribute 'previews'"):
        rollup.previews  # noqa: B018


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_import_rollup_loads_nothing_until_a_name_is_used() -> None:
    assert not {"rollup.api", "rollup.app", "pandas", "numpy"} & loaded_after("import rollup")
    assert not {"rollup.app", "rollup.jobs", "pandas"} & loaded_after("import rollup.core.pipeline")
    assert "rollup.api" in loaded_after("import rollup; rollup.load_job")
    assert "pandas" not in loaded_after("import rollup; rollup.preview")  # pandas: when a frame is made


@pytest.mark.parametrize(
    ("missing", "parquet", "message"),
    [
        ("pandas", False, "a DataFrame needs pandas, which is not installed: pip install 'rollup[pandas]'"),
        (
            "pyarrow",
            True,
            "Parquet output needs pyarrow, which is not installed: pip install 'rollup[parquet]'",
        ),
    ],
)
def test_a_missing_optional_dependency_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, missing: str, parquet: bool, message: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError
    with pytest.raises(MissingExtraError) as raised:
        to_frame(job_from(JOB, "job bw"), [], parquet=parquet)
    assert str(raised.value) == message
    assert isinstance(raised.value, rollup.ConfigError)

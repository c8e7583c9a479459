"""docs/plugins.md stays true: its tutorial module loads from the settings and computes what it
says, and ``rollup.plugins.evaluate`` runs a plug-in as the core does, failures included."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from rollup.plugins import Chunks, Results, State, StreamingAggregate, discover, evaluate

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "plugins.md"


def tutorial_module() -> str:
    section = DOC.read_text().split("## Tutorial", 1)[1].split("\n## ", 1)[0]
    (module,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return str(module)


def test_the_tutorial_module_is_found_through_the_settings_and_computes_utilisation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_aggs.py").write_text(tutorial_module())
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = discover(["my_aggs"])
    use = registry.use("utilisation", {"capacity": 10e9})
    values = np.linspace(0, 10e9, 101)  # 0 % to 100 % of the link
    assert evaluate(use.aggregate, values) == pytest.approx(
        {"utilisation_mean": 0.5, "utilisation_p95": 0.95}
    )
    with pytest.raises(ValueError, match="capacity must be above 0"):
        registry.use("utilisation", {"capacity": 0})


def test_evaluate_hands_a_streaming_plugin_its_values_in_batches_and_merges_them() -> None:
    class Chunky(StreamingAggregate):
        """How many chunks it was given, and the sum of the values."""

        name = "chunky"
        parts = ("chunks", "sum")
        needs = ()

        def update(self, chunks: Chunks) -> State:
            return np.ones(chunks.chunks), np.add.reduceat(chunks.values, chunks.starts)

        def merge(self, old: State, new: State) -> State:
            return old[0] + new[0], old[1] + new[1]

        def result(self, state: State) -> Results:
            return {"chunks": state[0], "sum": state[1]}

    assert evaluate(Chunky(), np.arange(10.0), batch_rows=3) == {"chunky_chunks": 4.0, "chunky_sum": 45.0}
    assert evaluate(Chunky(), np.arange(10.0)) == {"chunky_chunks": 1.0, "chunky_sum": 45.0}


def test_evaluate_raises_the_reason_a_window_would_fail_with() -> None:
    class Empty(StreamingAggregate):
        name = "empty"
        needs = ()

        def update(self, chunks: Chunks) -> State:
            return (np.zeros(chunks.chunks),)

        def merge(self, old: State, new: State) -> State:
            return old

        def result(self, state: State) -> Results:
            return state[0] / state[0]

    with pytest.raises(ValueError, match=r"^result returned nan$"), np.errstate(invalid="ignore"):
        evaluate(Empty(), [1.0, 2.0])

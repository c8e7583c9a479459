"""The Grafana dashboard deploy/grafana/rollup.json, read as Grafana would import it (Grafana
itself cannot be installed here; tests/integration/test_prometheus.py runs every query against a
real Prometheus)."""

from __future__ import annotations

import itertools
import re

import pytest

from scripts import grafana

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_BUILT_INS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}


def test_every_panel_and_query_uses_the_prometheus_chosen_at_import() -> None:
    dashboard = grafana.load()
    (chooser,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert (chooser["name"], chooser["query"]) == ("datasource", "prometheus")
    for panel in grafana.panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"]), panel["title"]


def test_every_variable_in_a_query_is_defined_by_the_dashboard_or_by_grafana() -> None:
    dashboard = grafana.load()
    defined = {v["name"]: ".+" for v in dashboard["templating"]["list"]}
    queries = grafana.panel_queries(dashboard, {**defined, **GRAFANA_BUILT_INS})
    assert all("$" not in query.expr for query in queries)
    with pytest.raises(ValueError, match=r"no value for the dashboard variable \$job"):
        grafana.panel_queries(dashboard, GRAFANA_BUILT_INS)


def test_the_dashboard_shows_lag_windows_work_and_health_per_job() -> None:
    text = " ".join(
        query.expr for query in grafana.panel_queries(grafana.load(), {"job": ".+", **GRAFANA_BUILT_INS})
    )
    shown = set(re.findall(r"\brollup_[a-z_]+\b", text))
    assert shown >= {
        "rollup_oldest_owed_window_age_seconds",
        "rollup_newest_done_window_end_timestamp_seconds",
        "rollup_windows_owed",
        "rollup_windows_done_total",
        "rollup_windows_failed_total",
        "rollup_windows_unrecoverable_total",
        "rollup_windows_empty_total",
        "rollup_pass_duration_seconds_bucket",
        "rollup_points_read_total",
        "rollup_sink_errors_total",
        "rollup_last_pass_timestamp_seconds",
        "rollup_ledger_up",
    }


def test_no_two_panels_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in grafana.panels(grafana.load()):
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for cell in itertools.product(
            range(box["x"], box["x"] + box["w"]), range(box["y"], box["y"] + box["h"])
        ):
            assert cell not in cells, f"{panel['title']} overlaps {cells[cell]}"
            cells[cell] = panel["title"]

"""The queries of the Grafana dashboard (deploy/grafana/rollup.json) as PromQL a Prometheus can
run: template variables replaced by values, as Grafana does before it sends a query. The tests
run them against a real Prometheus; scripts/dashboard_png.py plots them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "rollup.json"
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*(\w+)\)$")


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    expr: str
    legend: str
    unit: str


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: Mapping[str, Any], values: Mapping[str, str]) -> list[PanelQuery]:
    """Every target of every panel, variables replaced by ``values``."""
    return [
        PanelQuery(
            panel["title"],
            substitute(target["expr"], values),
            target.get("legendFormat", ""),
            panel["fieldConfig"]["defaults"].get("unit", ""),
        )
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """``$name`` and ``${name}`` replaced; a variable without a value is an error naming it."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise ValueError(f"no value for the dashboard variable ${name} in: {expr}")
        return values[name]

    return _VARIABLE.sub(value, expr)


def label_values_queries(dashboard: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Query variables of the form ``label_values(metric, label)``, by name: (metric, label)."""
    found: dict[str, tuple[str, str]] = {}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = _LABEL_VALUES.match(variable["definition"])
        if match is None:
            raise ValueError(f"variable {variable['name']}: not label_values(metric, label)")
        found[variable["name"]] = (match.group(1), match.group(2))
    return found

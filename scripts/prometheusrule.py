"""Write deploy/kubernetes/serve/prometheusrule.yaml: the alert rules of
deploy/prometheus/rules.yaml as a PrometheusRule for the Prometheus Operator. Run it after
changing the rules; tests/unit/test_deploy_assets.py fails while the two differ.

    .venv/bin/python -m scripts.prometheusrule
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
PROMETHEUS_RULE = REPO / "deploy" / "kubernetes" / "serve" / "prometheusrule.yaml"
HEADER = """\
# Generated from deploy/prometheus/rules.yaml by `python -m scripts.prometheusrule`: edit the
# rules there (what each alert means: docs/operations.md). For the Prometheus Operator; add the
# label your Prometheus selects rules by (e.g. release: kube-prometheus-stack) under metadata.labels.
"""


class _IndentedDumper(yaml.SafeDumper):
    """Indents sequences inside mappings, as yamllint and the other manifests do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = ">" if len(value) > 80 else None  # long expressions and descriptions, folded
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_IndentedDumper.add_representer(str, _text)


def prometheus_rule() -> dict[str, Any]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "rollup", "labels": {"app.kubernetes.io/name": "rollup"}},
        "spec": {"groups": groups},
    }


def render() -> str:
    body = yaml.dump(prometheus_rule(), Dumper=_IndentedDumper, sort_keys=False, width=88)
    return HEADER + body


def main() -> int:
    PROMETHEUS_RULE.write_text(render())
    print(f"wrote {PROMETHEUS_RULE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

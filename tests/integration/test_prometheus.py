"""A real Prometheus (Debian's, on deploy/prometheus/prometheus.yml with its rules) scraping a real
``rollup serve``: the series the alert rules and the Grafana dashboard use are there, with the
values the ledger has; every rule evaluates and none fires for a healthy job; every query of the
dashboard runs and finds data."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import yaml

from scripts import grafana
from scripts.servers import free_port
from tests.conftest import PROMETHEUS_DEPLOY, InfluxHelper, LedgerTarget, PrometheusHelper
from tests.integration.proxy import WriteProxy, gated_sink
from tests.integration.serving import (
    S,
    Served,
    done_records,
    fast_job,
    first_window,
    serve_env,
    wait_for,
    write_counters,
)
from tests.integration.workspace import Workspace

pytestmark = pytest.mark.integration

METRIC_NAME = re.compile(r"\brollup_[a-z_]+\b")
# What Grafana puts in place of its own variables, for a Prometheus that scrapes every second.
GRAFANA_VALUES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
NEVER_EVALUATED = "0001-01-01T00:00:00Z"


def rule_expressions() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS_DEPLOY / "rules.yaml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_prometheus_scrapes_the_values_the_ledger_has_and_the_rules_and_dashboard_queries_run(
    workspace: Workspace,
    influx: InfluxHelper,
    ledger: LedgerTarget,
    proxy: WriteProxy,
    prometheus: Callable[[list[str]], PrometheusHelper],
    serve: Callable[..., Served],
) -> None:
    start = first_window(back=4)
    write_counters(influx, start)
    gated_sink(workspace, proxy)
    fast_job(workspace, start, sink="gated")
    port = free_port()
    served = serve(workspace, serve_env(ledger, port=str(port), shutdown_timeout="1s"))
    server = prometheus([f"127.0.0.1:{port}"])
    wait_for(lambda: len(done_records(ledger)) >= 5, 30, "5 windows done", served.output)

    # Hold the next write: no window is recorded any more, so what Prometheus scrapes from now
    # on must be what the ledger has.
    proxy.hold_at = proxy.seen + 1
    assert proxy.held.wait(15), served.output()
    records = done_records(ledger)
    expected = {
        "rollup_windows_done_total": len(records),
        "rollup_points_read_total": sum(r.points for r in records),
        "rollup_rows_written_total": sum(r.rows for r in records),
        "rollup_window_duration_seconds_count": len(records),
        "rollup_windows_failed_total": 0,
        "rollup_windows_empty_total": 0,
        "rollup_windows_unrecoverable_total": 0,
        "rollup_newest_done_window_end_timestamp_seconds": max(r.window.end for r in records) / S,
    }

    def scraped() -> dict[str, float | None]:
        return {name: server.one(f'{name}{{job="fast"}}') for name in expected}

    wait_for(lambda: scraped() == expected, 20, "Prometheus has the ledger's values", lambda: str(scraped()))
    last_finished = max(r.finished or 0 for r in records) / S
    last_success = server.one('rollup_last_success_timestamp_seconds{job="fast"}')
    assert last_success == pytest.approx(last_finished, abs=1)
    assert server.one(f'rollup_ledger_up{{instance="127.0.0.1:{port}", job="rollup"}}') == 1  # scrape job
    # The pass is stuck on the held write: windows closing meanwhile are owed, and age.
    wait_for(
        lambda: server.values('rollup_oldest_owed_window_age_seconds{job="fast"} > 0'),
        20,
        "an owed window ageing",
        served.output,
    )
    assert (server.one('rollup_windows_owed{job="fast"}') or 0) >= 1

    # Every series the rules and the dashboard name is scraped.
    dashboard = grafana.load()
    queries = grafana.panel_queries(dashboard, {**GRAFANA_VALUES, "job": "fast"})
    used = {
        name
        for expr in [*rule_expressions(), *(q.expr for q in queries)]
        for name in METRIC_NAME.findall(expr)
    }
    series = server.api("series", **{"match[]": '{__name__=~"rollup_.+"}'})
    assert used <= {s["__name__"] for s in series}

    # Every rule evaluates without error, and none fires or is pending for this healthy job.
    def evaluated() -> list[dict[str, object]]:
        return [rule for group in server.api("rules")["groups"] for rule in group["rules"]]

    wait_for(
        lambda: all(rule["lastEvaluation"] != NEVER_EVALUATED for rule in evaluated()),
        20,
        "every rule evaluated",
        lambda: str(evaluated()),
    )
    assert len(evaluated()) == len(rule_expressions())
    assert {rule["name"]: rule["health"] for rule in evaluated()} == dict.fromkeys(
        [rule["name"] for rule in evaluated()], "ok"
    )
    # (RollupAbsent may be pending from an evaluation before the first scrape, until the next.)
    wait_for(lambda: server.api("alerts")["alerts"] == [], 10, "no alert", lambda: str(server.api("alerts")))

    # Every query of the dashboard parses, runs and finds data; the job variable finds the job.
    for query in queries:  # (a rate needs two scrapes in its range: this Prometheus just started)
        expr = query.expr
        wait_for(lambda e=expr: server.query(e), 10, f"panel {query.panel!r}: data for {expr}", str)
    for metric, label in grafana.label_values_queries(dashboard).values():
        assert "fast" in server.api(f"label/{label}/values", **{"match[]": metric})

    proxy.arm()  # drop the held write
    assert served.stop().code == 0

"""Plot the Grafana dashboard's panels (deploy/grafana/rollup.json) from a real Prometheus into a
PNG, where no Grafana can run: every panel's queries, variables replaced, asked as range queries
and drawn with matplotlib (a development dependency).

It starts influxd and Prometheus (on deploy/prometheus/prometheus.yml and its rules) in a temp
dir, writes synthetic interface counters around now, and runs ``rollup serve`` on four jobs for
``--minutes``: two healthy ones, one whose sink is down (failed windows, sink errors, owed
windows, growing lag) and one reading a measurement with no data (empty windows). At the end it
prints the alerts firing or pending.

    .venv/bin/python -m scripts.dashboard_png --minutes 5 --output docs/dashboard.png
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

from scripts import grafana, synth
from scripts.servers import free_port, rollup_prometheus_config, start_influxd, start_prometheus

REPO = Path(__file__).resolve().parent.parent
SCRAPE = "2s"
GRAFANA_VALUES = {"job": ".+", "__rate_interval": "30s", "__interval": "5s", "__range": "1h"}
JOB = """
name = "{name}"
start = {start}
group_by = ["agent_host"]

[source]
profile = "buffer"
database = "telegraf"
measurement = "{measurement}"

[window]
every = "{every}"
delay = "2s"
lookback = "10s"

[fields.ifHCInOctets]
as = "in"
on_decrease = "auto"
aggregates = ["mean", "max", "increase"]

[output]
measurement = "{name}"
sinks = ["{sink}"]

[schedule]
retry_backoff = "5s"
retry_backoff_max = "20s"
"""


def workspace(root: Path, influx_url: str, start: str) -> None:
    for directory in ("config", "jobs", "sinks"):
        (root / directory).mkdir(parents=True)
    (root / "config" / "rollup.toml").write_text(f'[sources.buffer]\nurl = "{influx_url}"\n')
    (root / "sinks" / "longterm.toml").write_text(
        f'type = "influxdb"\nurl = "{influx_url}"\ndatabase = "rollups"\n'
    )
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    (root / "sinks" / "archive.toml").write_text(
        f'type = "influxdb"\nurl = "{down}"\ndatabase = "rollups"\nretries = 0\n'
    )
    jobs = [
        ("edge-10s", "interface", "10s", "longterm"),
        ("core-30s", "interface", "30s", "longterm"),
        ("archive-10s", "interface", "10s", "archive"),
        ("wireless-10s", "wireless", "10s", "longterm"),
    ]
    for name, measurement, every, sink in jobs:
        body = JOB.format(name=name, start=start, measurement=measurement, every=every, sink=sink)
        (root / "jobs" / f"{name}.toml").write_text(textwrap.dedent(body))


def range_query(client: httpx.Client, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/query_range", params={"query": expr, "start": start, "end": end, "step": 5})
    body = answer.json()
    if body["status"] != "success":
        raise SystemExit(f"{expr}: {body.get('error')}")
    return list(body["data"]["result"])


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or str(labels)


def plot(client: httpx.Client, start: float, end: float, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dashboard = grafana.load()
    shown = [p for p in grafana.panels(dashboard) if p["type"] != "row"]
    columns = 3
    rows = -(-len(shown) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(18, 4 * rows), squeeze=False)
    colors: dict[str, str] = {}  # one colour per job (or sink) across panels
    palette = itertools.cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for axis, panel in zip(axes.flat, shown, strict=False):
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        for style, target in zip(("-", "--"), panel["targets"], strict=False):
            expr = grafana.substitute(target["expr"], GRAFANA_VALUES)
            for series in range_query(client, expr, start, end):
                times = [(float(t) - start) / 60 for t, _ in series["values"]]
                values = [float(v) for _, v in series["values"]]
                who = next(iter(series["metric"].values()), "")
                if who not in colors:
                    colors[who] = next(palette)
                color = colors[who]
                label = legend(target.get("legendFormat", ""), series["metric"])
                axis.plot(times, values, style, color=color, label=label)
        axis.set_title(panel["title"], fontsize=11)
        axis.set_xlabel("minutes", fontsize=8)
        axis.set_ylabel("seconds" if unit == "s" else "", fontsize=8)
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="upper left")
    for axis in axes.flat[len(shown) :]:
        axis.set_visible(False)
    figure.suptitle(
        "rollup dashboard (deploy/grafana/rollup.json): its queries against Prometheus, plotted by "
        "matplotlib (not Grafana)",
        fontsize=13,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=80)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5, help="how long rollup serve runs")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "dashboard.png")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="rollup-dashboard-"))
    servers = []
    serve: subprocess.Popen[bytes] | None = None
    try:
        influxd = start_influxd(root / "influxd")
        servers.append(influxd)
        with httpx.Client(base_url=influxd.url, timeout=60) as influx:
            for database in ("telegraf", "rollups"):
                influx.post("/query", data={"q": f'CREATE DATABASE "{database}"'}).raise_for_status()
            now = int(time.time())
            first, last = now - 240, now + int(args.minutes * 60) + 120
            lines = synth.interface_lines(first, last, 10, 8, 2, seed=1, resets=0, wrap32=False)
            print(f"{synth.write(influx, 'telegraf', lines)} points written", file=sys.stderr)

        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 180))
        workspace(root / "ws", influxd.url, start)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLUP_")}
        env |= {
            "PYTHONPATH": str(REPO), "ROLLUP_SERVE__PORT": str(port), "ROLLUP_SERVE__SWEEP": "5s",
            "ROLLUP_LEDGER": f"sqlite:{root / 'ledger.sqlite'}",
        }  # fmt: skip
        log = (root / "serve.log").open("wb")
        serve = subprocess.Popen(
            [sys.executable, "-m", "rollup", "serve"], cwd=root / "ws", env=env, stdout=log, stderr=log
        )
        (root / "prometheus").mkdir()
        shutil.copy(REPO / "deploy" / "prometheus" / "rules.yaml", root / "prometheus" / "rules.yaml")
        prometheus = start_prometheus(
            root / "prometheus", rollup_prometheus_config([f"127.0.0.1:{port}"], SCRAPE)
        )
        servers.append(prometheus)
        began = time.time()
        print(f"rollup serve and Prometheus running for {args.minutes} minute(s) …", file=sys.stderr)
        time.sleep(args.minutes * 60)
        with httpx.Client(base_url=prometheus.url, timeout=60) as client:
            end = float(client.get("/api/v1/query", params={"query": "time()"}).json()["data"]["result"][0])
            plot(client, end - (time.time() - began), end, args.output)
            for alert in client.get("/api/v1/alerts").json()["data"]["alerts"]:
                labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
                print(f"alert {alert['state']}: {labels}")
        print(f"wrote {args.output}")
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait(60)
        for server in reversed(servers):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The container and service assets: Dockerfile, Kubernetes manifests, systemd unit, docker
compose file. No Docker engine or cluster runs here, so they are checked with the tools that can
run without one (hadolint, kubernetes-validate, docker compose config, systemd-analyze verify,
yamllint; installed by the dev extra, except systemd-analyze) and by reading their essential
keys. The Kubernetes manifests are what `kubectl kustomize` renders (kubectl from the dev extra);
the settings, jobs and profiles their ConfigMaps carry are validated by rollup itself."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = ("serve", "cron")
UNIT = REPO / "deploy" / "systemd" / "rollup.service"
YAMLLINT = (
    "{extends: default, rules: {line-length: {max: 110}, document-start: disable, "
    "comments: {min-spaces-from-content: 1}, truthy: {check-keys: false}}}"
)


def tool(name: str) -> str:
    """A checking tool from the virtualenv (dev extra) or the PATH; skip the test without it."""
    found = Path(sys.executable).parent / name
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def check(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["containers"]
    return dict(only)


def environment(spec: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in spec["env"]}


# -- Dockerfile ---------------------------------------------------------------------------------


def test_the_dockerfile_passes_hadolint() -> None:
    check(tool("hadolint"), "Dockerfile")


def test_the_image_is_multi_stage_runs_as_a_non_root_user_and_checks_healthz_on_all_interfaces() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["rollup"\]$', text, re.M)
    assert re.search(r'^CMD \["serve"\]$', text, re.M)
    assert "ROLLUP_SERVE__HOST=0.0.0.0" in text  # the default 127.0.0.1 is unreachable from outside
    healthcheck = re.search(r"^HEALTHCHECK .*\n(?:\s.*\n)*", text, re.M)
    assert healthcheck is not None
    assert "/healthz" in healthcheck.group(0)


def test_the_docker_build_context_keeps_everything_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {
        source.rstrip("/")
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    }
    assert copied == {"pyproject.toml", "README.md", "rollup", "config", "jobs", "sinks"}
    assert copied <= allowed


# -- Kubernetes ---------------------------------------------------------------------------------


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    """What ``kubectl kustomize deploy/kubernetes/OVERLAY`` gives (kubectl from the dev extra)."""
    result = check(tool("kubectl"), "kustomize", str(KUBERNETES / overlay))
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def manifest(kind: str, overlay: str = "serve") -> dict[str, Any]:
    found = [d for d in rendered(overlay) if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def config_maps(overlay: str) -> dict[str, dict[str, Any]]:
    """The generated ConfigMaps by their name without the content hash."""
    return {d["metadata"]["name"].rsplit("-", 1)[0]: d for d in rendered(overlay) if d["kind"] == "ConfigMap"}


def pod_of(kind: str, overlay: str) -> dict[str, Any]:
    spec = manifest(kind, overlay)["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if kind == "CronJob" else spec["template"]
    return dict(template)


def generated_files(name: str) -> list[str]:
    kustomization = yaml.safe_load((KUBERNETES / "base" / "kustomization.yaml").read_text())
    (generator,) = [g for g in kustomization["configMapGenerator"] if g["name"] == name]
    return list(generator["files"])


def test_the_kustomizations_render_and_match_the_kubernetes_schemas(tmp_path: Path) -> None:
    files = [str(KUBERNETES / "base" / "secret.example.yaml")]
    for overlay in OVERLAYS:
        out = tmp_path / f"{overlay}.yaml"
        out.write_text(yaml.safe_dump_all(rendered(overlay)))
        files.append(str(out))
    result = check(tool("kubernetes-validate"), "--strict", *files)
    # The Prometheus Operator's kinds have no schema here: checked by their keys below.
    unchecked = set(re.findall(r"Couldn't find schema for kind (\w+)", result.stdout + result.stderr))
    assert unchecked == {"ServiceMonitor", "PrometheusRule"}
    kinds = {overlay: sorted(d["kind"] for d in rendered(overlay)) for overlay in OVERLAYS}
    assert kinds == {
        "serve": [
            "ConfigMap", "ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "PrometheusRule",
            "Service", "ServiceMonitor",
        ],
        "cron": ["ConfigMap", "ConfigMap", "ConfigMap", "CronJob"],
    }  # fmt: skip


def test_the_cronjob_runs_rollup_run_and_never_two_at_once() -> None:
    cronjob = manifest("CronJob", "cron")
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_of("CronJob", "cron")["spec"]
    assert container(pod)["args"] == ["run"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_deployment_serves_with_probes_on_healthz_and_readyz_and_takes_credentials_from_a_secret() -> (
    None
):
    pod = pod_of("Deployment", "serve")["spec"]
    serve = container(pod)
    assert serve["args"] == ["serve"]
    assert serve["ports"] == [{"name": "http", "containerPort": 9108}]
    assert serve["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert serve["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = environment(serve)
    assert env["ROLLUP_SERVE__HOST"] == "0.0.0.0"
    assert env["ROLLUP_LEDGER"] == {"secretKeyRef": {"name": "rollup", "key": "ledger-url"}}
    assert env["ROLLUP_INFLUX_PASSWORD"] == {"secretKeyRef": {"name": "rollup", "key": "influx-password"}}
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The service gets shutdown_timeout to finish its windows, and Kubernetes waits longer than that.
    assert 'shutdown_timeout = "50s"' in config_maps("serve")["rollup-config"]["data"]["rollup.toml"]
    assert pod["terminationGracePeriodSeconds"] == 60


@pytest.mark.parametrize(("overlay", "kind"), [("serve", "Deployment"), ("cron", "CronJob")])
def test_the_mounted_settings_jobs_and_sink_profiles_are_valid_for_rollup(
    tmp_path: Path, overlay: str, kind: str
) -> None:
    pod = pod_of(kind, overlay)["spec"]
    main = container(pod)
    by_name = {d["metadata"]["name"]: d for d in rendered(overlay) if d["kind"] == "ConfigMap"}
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    for volume in pod["volumes"]:
        if "configMap" in volume:
            directory = tmp_path / mounts[volume["name"]].lstrip("/")
            directory.mkdir(parents=True)
            for key, text in by_name[volume["configMap"]["name"]]["data"].items():
                (directory / key).write_text(text)

    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLUP_")}
    for name, value in environment(main).items():
        if isinstance(value, str):
            env[name] = str(tmp_path / value.lstrip("/")) if value.startswith("/etc/rollup") else value
    env |= {"ROLLUP_INFLUX_PASSWORD": "not-used", "ROLLUP_LEDGER": f"sqlite:{tmp_path / 'ledger.sqlite'}"}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "rollup", "jobs", "validate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = len(generated_files("rollup-jobs"))
    assert f"{jobs} valid, 0 invalid" in result.stdout


def test_a_job_or_sink_profile_is_added_in_one_place_for_the_deployment_and_the_cronjob() -> None:
    base = KUBERNETES / "base"
    assert generated_files("rollup-jobs") == sorted(
        str(p.relative_to(base)) for p in base.glob("jobs/*.toml")
    )
    assert generated_files("rollup-sinks") == sorted(
        str(p.relative_to(base)) for p in base.glob("sinks/*.toml")
    )
    for name in ("rollup-config", "rollup-sinks", "rollup-jobs"):
        served, run = config_maps("serve")[name], config_maps("cron")[name]
        assert served == run
        for kind, overlay in (("Deployment", "serve"), ("CronJob", "cron")):
            (volume,) = [
                v for v in pod_of(kind, overlay)["spec"]["volumes"]
                if v.get("configMap", {}).get("name") == served["metadata"]["name"]
            ]  # fmt: skip
            assert "items" not in volume["configMap"]  # the whole ConfigMap, as a directory


def test_the_disruption_budget_and_the_service_cover_the_serve_pods_only() -> None:
    serve_labels = pod_of("Deployment", "serve")["metadata"]["labels"]
    run_labels = pod_of("CronJob", "cron")["metadata"]["labels"]
    budget = manifest("PodDisruptionBudget")["spec"]
    selector = budget["selector"]["matchLabels"]
    assert selector.items() <= serve_labels.items()
    assert not selector.items() <= run_labels.items()
    assert budget["maxUnavailable"] == 1 < manifest("Deployment")["spec"]["replicas"]
    service = manifest("Service")["spec"]
    assert service["selector"] == selector


def test_the_service_monitor_scrapes_the_service_keeping_rollups_job_label() -> None:
    monitor = manifest("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = manifest("Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["honorLabels"]) == ("/metrics", True)


def test_the_prometheus_rule_carries_the_rules_of_deploy_prometheus() -> None:
    rule = manifest("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    shipped = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yaml").read_text())["groups"]
    assert rule["spec"]["groups"] == shipped, "run: .venv/bin/python -m scripts.prometheusrule"


# -- systemd ------------------------------------------------------------------------------------


def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = tool("systemd-analyze")
    stub = tmp_path / "rollup"  # verify insists that ExecStart's program exists
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = tmp_path / "rollup.service"
    unit.write_text(UNIT.read_text().replace("/opt/rollup/bin/rollup", str(stub)))
    result = check(analyze, "verify", str(unit))
    assert result.stderr == ""  # unknown keys and bad values are only warnings


def test_the_systemd_unit_restarts_on_failure_reloads_with_sighup_and_runs_as_its_own_user() -> None:
    lines = {
        line.split("=", 1)[0]: line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if "=" in line
    }
    assert lines["ExecStart"] == "/opt/rollup/bin/rollup serve"
    assert lines["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert lines["Restart"] == "on-failure"
    assert (lines["User"], lines["Group"]) == ("rollup", "rollup")
    assert lines["KillSignal"] == "SIGTERM"


# -- docker compose, YAML style -----------------------------------------------------------------


def test_the_compose_file_is_valid_for_docker_compose() -> None:
    result = check(tool("docker-compose"), "-f", "docker-compose.yml", "config", "--format", "json")
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"influxdb", "influxdb-init", "elasticsearch", "rollup"}
    rollup = services["rollup"]
    assert rollup["command"] == ["serve"]
    assert rollup["ports"][0] | {"mode": None, "protocol": None} == {
        "host_ip": "127.0.0.1", "target": 9108, "published": "9108", "mode": None, "protocol": None
    }  # fmt: skip
    assert rollup["environment"]["ROLLUP_INFLUX_URL"] == "http://influxdb:8086"


def test_the_yaml_files_pass_yamllint() -> None:
    check(tool("yamllint"), "-s", "-d", YAMLLINT, "docker-compose.yml", "deploy")

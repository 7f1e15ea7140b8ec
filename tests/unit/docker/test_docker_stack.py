"""docker/ checked offline (no Docker engine runs here): compose, Prometheus and Grafana files parse
and agree with each other, the Dockerfiles are multi-stage, non-root and pinned, every command the
stack runs parses with the real ``lpuperf`` parser, and every metric the dashboard queries is one the
code exposes (read from the real SUT and harness registries).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
PROMETHEUS = DOCKER / "prometheus" / "prometheus.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "lpuperf.json"
DATASOURCES = DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"
PROVIDERS = DOCKER / "grafana" / "provisioning" / "dashboards" / "lpuperf.yaml"


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


# ---- helpers under test: each has a planted-fault test below -----------------------------------


def exposed_series(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry can expose, including labelled metrics with no child yet."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    suffixes |= {"summary": ("_sum", "_count", "_created"), "info": ("_info",)}
    names: set[str] = set()
    for family in registry.collect():
        names.update(s.name for s in family.samples)
        if family.type in suffixes:
            names.update(family.name + s for s in suffixes[family.type])
        else:  # gauge, stateset (Enum), unknown: the family name is the series name
            names.add(family.name)
    return names


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            exprs.append(target["expr"])
    return exprs


_METRIC = re.compile(r"\b(lpuperf_[a-z0-9_]+)\b")


def unknown_metrics(exprs: list[str], exposed: set[str]) -> set[str]:
    return {name for e in exprs for name in _METRIC.findall(e)} - exposed


def scrape_target_problems(prom: dict[str, Any], compose: dict[str, Any]) -> list[str]:
    """Targets that name no compose service, or a port that service does not serve metrics on."""
    problems = []
    services = compose["services"]
    for job in prom["scrape_configs"]:
        targets = [t for static in job.get("static_configs", []) for t in static["targets"]]
        # dns_sd: each name resolves to every replica of that service (docker compose up --scale).
        targets += [f"{n}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for n in sd["names"]]
        for target in targets:
            host, _, port = target.rpartition(":")
            svc = services.get(host)
            if svc is None:
                problems.append(f"{job['job_name']}: {target}: no compose service '{host}'")
                continue
            cmd = svc.get("command", [])
            if "--metrics-port" not in cmd or cmd[cmd.index("--metrics-port") + 1] != port:
                problems.append(f"{job['job_name']}: {target}: service '{host}' has no --metrics-port {port}")
    return problems


# ---- the real registries ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def code_metrics() -> set[str]:
    from loadgen_harness._metrics import HarnessMetrics
    from sut import ArtifactManifest
    from sut._metrics import SutMetrics

    manifest = ArtifactManifest(artifact_id="a", backend="sim", model="m", precision="fp32", max_context_tokens=8)
    harness = HarnessMetrics()
    return exposed_series(SutMetrics(manifest).registry) | exposed_series(harness.registry)


def test_every_dashboard_metric_exists_in_the_code(code_metrics: set[str]) -> None:
    exprs = dashboard_queries(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    assert len(exprs) >= 10
    assert unknown_metrics(exprs, code_metrics) == set()


def test_a_misspelt_dashboard_metric_is_caught(code_metrics: set[str]) -> None:
    planted = [
        "histogram_quantile(0.99, sum by (le) (rate(lpuperf_harness_ttft_second_bucket[1m])))",
        "rate(lpuperf_harness_queries_completed[1m])",  # a counter is only exposed with _total
        "lpuperf_sut_queue_depth",
    ]
    assert unknown_metrics(planted, code_metrics) == {
        "lpuperf_harness_ttft_second_bucket",
        "lpuperf_harness_queries_completed",
    }


def test_dashboard_covers_the_required_panels() -> None:
    dash = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    text = "\n".join(dashboard_queries(dash))
    for needed in (
        "histogram_quantile(0.99, sum by (le) (rate(lpuperf_harness_ttft_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(lpuperf_harness_tpot_seconds_bucket",
        "lpuperf_harness_target_qps",
        "rate(lpuperf_harness_queries_completed_total",
        "lpuperf_sut_queue_depth",
        "lpuperf_sut_active_batch_size",
        "lpuperf_harness_query_errors_total",
    ):
        assert needed in text, needed
    ds = _yaml(DATASOURCES)["datasources"][0]
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == ds["uid"], panel["title"]
        assert panel["targets"], panel["title"]


def test_compose_services_and_mounts() -> None:
    compose = _yaml(COMPOSE)
    services = compose["services"]
    assert set(services) == {"sut", "harness", "prometheus", "grafana", "postgres"}
    for name in ("sut", "harness"):
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file(), name
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (COMPOSE.parent / src).exists(), f"{name}: {src}"
            else:
                assert src in compose.get("volumes", {}), f"{name}: volume {src}"
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on {dep}"
    prom_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    config_flag = next(a for a in services["prometheus"]["command"] if a.startswith("--config.file="))
    assert (COMPOSE.parent / prom_mounts[config_flag.split("=", 1)[1]]).resolve() == PROMETHEUS.resolve()
    # Grafana reads the datasource URL and dashboard path from provisioning: both must line up.
    ds_url = _yaml(DATASOURCES)["datasources"][0]["url"]
    assert ds_url == "http://prometheus:9090" and "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    dash_path = _yaml(PROVIDERS)["providers"][0]["options"]["path"]
    graf_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert (COMPOSE.parent / graf_mounts[dash_path]).resolve() == DASHBOARD.parent.resolve()


def exposure_problems(compose: dict[str, Any]) -> list[str]:
    """Published ports not bound to loopback, anonymous Grafana, and /run/secrets/NAME paths a service uses
    without compose mounting that secret there (or that compose does not define)."""
    problems = []
    defined = set(compose.get("secrets", {}))
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name}: port {port} is published on every interface")
        mounted = set(svc.get("secrets", []))
        used = set(re.findall(r"/run/secrets/([a-z_]+)", json.dumps(svc)))
        for secret in sorted(used - mounted):
            problems.append(f"{name}: uses /run/secrets/{secret} without the secret '{secret}'")
        for secret in sorted(mounted - defined):
            problems.append(f"{name}: secret '{secret}' is not defined")
    env = compose["services"]["grafana"].get("environment", {})
    if str(env.get("GF_AUTH_ANONYMOUS_ENABLED", "false")).lower() != "false":
        problems.append("grafana: anonymous access is enabled")
    if "GF_SECURITY_ADMIN_PASSWORD__FILE" not in env:
        problems.append("grafana: the admin password does not come from a secret file")
    return problems


def test_compose_binds_loopback_needs_logins_and_mounts_its_secrets() -> None:
    compose = _yaml(COMPOSE)
    assert exposure_problems(compose) == []
    for name in compose["secrets"].values():
        assert name["file"].startswith("./secrets/")  # made by docker/make-certs.sh, never checked in
    sut_cmd, run_cmd = compose["services"]["sut"]["command"], compose["services"]["harness"]["command"]
    for flag in ("--tls-cert", "--tls-key", "--auth-token-file", "--metrics-token-file"):
        assert flag in sut_cmd, flag
    for flag in ("--tls-ca", "--token-file", "--metrics-tls-cert", "--metrics-tls-key", "--metrics-token-file"):
        assert flag in run_cmd, flag
    assert "/run/secrets/ca_cert" in json.dumps(compose["services"]["sut"]["healthcheck"])


def test_exposed_ports_and_anonymous_grafana_are_caught() -> None:
    compose = _yaml(COMPOSE)
    compose["services"]["prometheus"]["ports"] = ["9090:9090"]
    compose["services"]["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] = "true"
    compose["services"]["harness"]["secrets"].remove("sut_token")
    assert exposure_problems(compose) == [
        "harness: uses /run/secrets/sut_token without the secret 'sut_token'",
        "prometheus: port 9090:9090 is published on every interface",
        "grafana: anonymous access is enabled",
    ]


def test_prometheus_scrapes_over_tls_with_a_token() -> None:
    prom, compose = _yaml(PROMETHEUS), _yaml(COMPOSE)
    mounted = set(compose["services"]["prometheus"]["secrets"])
    for job in prom["scrape_configs"]:
        assert job["scheme"] == "https", job["job_name"]
        ca, creds = job["tls_config"]["ca_file"], job["authorization"]["credentials_file"]
        assert job["authorization"].get("type", "Bearer") == "Bearer"
        for path in (ca, creds):
            assert path.startswith("/run/secrets/") and path.rsplit("/", 1)[1] in mounted, path
    # The token Prometheus sends is the one both exporters require.
    for svc in ("sut", "harness"):
        cmd = compose["services"][svc]["command"]
        assert (
            cmd[cmd.index("--metrics-token-file") + 1] == prom["scrape_configs"][0]["authorization"]["credentials_file"]
        )


def test_make_certs_script_makes_a_verifiable_set(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl CLI (Debian package 'openssl'); docker/make-certs.sh not exercised")
    out = tmp_path / "secrets"
    done = subprocess.run(
        ["bash", str(DOCKER / "make-certs.sh"), str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    compose = _yaml(COMPOSE)
    for secret in compose["secrets"].values():
        assert (out / Path(secret["file"]).name).stat().st_size > 0, secret
    check = [openssl, "verify", "-CAfile", str(out / "ca.crt"), str(out / "server.crt"), str(out / "client.crt")]
    assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
    sans = subprocess.run(
        [openssl, "x509", "-in", str(out / "server.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    for name in ("DNS:sut", "DNS:harness", "DNS:localhost"):  # the names compose dials
        assert name in sans
    assert (out / "ca.key").stat().st_mode & 0o077 == 0
    again = subprocess.run(["bash", str(DOCKER / "make-certs.sh"), str(out)], capture_output=True, timeout=120)
    assert again.returncode == 0 and (out / "ca.crt").read_bytes() == (out / "ca.crt").read_bytes()


def _with_secret_files(text: str, directory: Path) -> str:
    """``text`` with /run/secrets/NAME pointing at stand-in files under ``directory`` (parsers check they exist)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in set(re.findall(r"/run/secrets/([a-z_]+)", text)):
        (directory / name).write_text("stand-in\n", encoding="utf-8")
    return text.replace("/run/secrets/", f"{directory}/")


def test_prometheus_targets_match_compose() -> None:
    assert scrape_target_problems(_yaml(PROMETHEUS), _yaml(COMPOSE)) == []
    jobs = {j["job_name"] for j in _yaml(PROMETHEUS)["scrape_configs"]}
    assert jobs == {"lpuperf-sut", "lpuperf-harness"}


def test_a_wrong_scrape_target_is_caught() -> None:
    prom = _yaml(PROMETHEUS)
    prom["scrape_configs"][0]["dns_sd_configs"][0]["port"] = 9999
    prom["scrape_configs"][1]["static_configs"][0]["targets"] = ["loadgen:9102"]
    problems = scrape_target_problems(prom, _yaml(COMPOSE))
    assert problems == [
        "lpuperf-sut: sut:9999: service 'sut' has no --metrics-port 9999",
        "lpuperf-harness: loadgen:9102: no compose service 'loadgen'",
    ]


def test_promtool_accepts_the_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'); config syntax not checked by promtool")
    # promtool opens the CA and token files: point them at stand-ins for the compose secrets.
    good = tmp_path / "good.yml"
    good.write_text(_with_secret_files(PROMETHEUS.read_text(encoding="utf-8"), tmp_path / "secrets"))
    ok = subprocess.run([promtool, "check", "config", str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "prometheus.yml"
    bad.write_text(good.read_text(encoding="utf-8").replace("scrape_timeout: 1s", "scrape_timeout: 5s"))
    # A scrape timeout above the interval is rejected: promtool really checks semantics.
    assert subprocess.run([promtool, "check", "config", str(bad)], capture_output=True, timeout=60).returncode != 0


def _stages(dockerfile: Path) -> list[dict[str, Any]]:
    """Instructions per stage, with line continuations joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    stages: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        if op.upper() == "FROM":
            stages.append({"from": rest, "ops": []})
        elif stages:
            stages[-1]["ops"].append((op.upper(), rest.strip()))
    return stages


@pytest.mark.parametrize("name", ["sut", "harness"])
def test_dockerfiles_are_multistage_nonroot_and_pinned(name: str) -> None:
    path = DOCKER / f"Dockerfile.{name}"
    text = path.read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    stages = _stages(path)
    assert len(stages) >= 2 and all(s["from"].startswith("${PYTHON_IMAGE}") for s in stages)
    final = stages[-1]["ops"]
    assert any(op == "COPY" and arg.startswith("--from=build ") for op, arg in final)
    users = [arg for op, arg in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for stage in stages:
        for op, arg in stage["ops"]:
            if op == "COPY" and not arg.startswith("--from"):
                for src in shlex.split(arg)[:-1]:
                    assert (ROOT / src).exists(), f"{path.name}: COPY {src}"
    ignore = (DOCKER / f"Dockerfile.{name}.dockerignore").read_text(encoding="utf-8")
    copied = {shlex.split(arg)[0] for stage in stages for op, arg in stage["ops"] if op == "COPY" and "/" not in arg}
    if name == "sut":
        # The SUT image carries only the bottom layers; the import contract keeps sut from needing more.
        assert copied >= {"common", "proto", "scenarios", "sut"}
        assert not copied & {"loadgen_harness", "accuracy", "compliance", "gate", "workflows", "cli"}
        assert "!sut" in ignore and "!loadgen_harness" not in ignore
    else:
        assert copied >= {"common", "loadgen_harness", "cli", "workflows"}
        assert "!sut" in ignore and "!loadgen_harness" in ignore and "!cli" in ignore


def _exec_form(text: str, op: str) -> list[str]:
    m = re.search(rf"^{op} (\[.*\])$", text, re.M)
    assert m is not None, op
    value = json.loads(m.group(1))
    assert isinstance(value, list)
    return [str(v) for v in value]


def test_sut_image_and_compose_commands_parse_with_lpuperf(tmp_path: Path) -> None:
    parser = build_parser()
    text = (DOCKER / "Dockerfile.sut").read_text(encoding="utf-8")
    entry, cmd = _exec_form(text, "ENTRYPOINT"), _exec_form(text, "CMD")
    # `python -m sut serve` is `lpuperf serve` without the harness packages.
    assert entry == ["python", "-m", "sut", "serve"]
    compose = yaml.safe_load(_with_secret_files(COMPOSE.read_text(encoding="utf-8"), tmp_path))["services"]
    for argv in (["serve", *cmd], ["serve", *compose["sut"]["command"]]):
        args = parser.parse_args(argv)
        assert args.command == "serve" and args.host == "0.0.0.0" and args.metrics_port == 9101 and args.port == 50051


def test_harness_compose_command_parses_with_lpuperf(tmp_path: Path) -> None:
    text = (DOCKER / "Dockerfile.harness").read_text(encoding="utf-8")
    assert _exec_form(text, "ENTRYPOINT") == ["lpuperf"]
    compose = yaml.safe_load(_with_secret_files(COMPOSE.read_text(encoding="utf-8"), tmp_path))
    args = build_parser().parse_args(compose["services"]["harness"]["command"])
    # The harness drives every replica of `--scale sut=N`: compose's DNS lists them, round_robin spreads the load.
    assert args.command == "run" and args.sut == "dns:///sut:50051" and args.metrics_port == 9102
    # Prometheus scrapes from another container: the exporter must not bind loopback only.
    assert args.metrics_host == "0.0.0.0"

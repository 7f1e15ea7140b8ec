"""deploy/k8s checked offline (no cluster here): every manifest against pinned Kubernetes schemas
(kubernetes-validate, strict), the commands the pods run parse with the real ``lpuperf`` parser, and the
pieces agree with each other (labels, ports, probes, mounts, the harness's target, the scrape config).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes the manifests promise to work on (grpc probes are GA since 1.27).
K8S_VERSION = "1.34.0"
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
# Applied on their own with kubectl apply -f after the base (a sharded load: tests/unit/deploy/test_k8s_sharded.py).
STANDALONE = ("harness-sharded.yaml",)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _one(path: Path, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _docs(path) if d["kind"] == kind]
    return doc


def schema_errors(doc: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {exc.message}"]
    return []


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    return c


def _expand(args: list[str], pod: str = "lpuperf-sut-7d9f-abcde") -> list[str]:
    """Kubernetes expands $(VAR) from the container's env; the one used is the downward API's pod name."""
    return [a.replace("$(POD_NAME)", pod) for a in args]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_validates_against_pinned_kubernetes_schema(path: Path) -> None:
    docs = _docs(path)
    assert docs
    for doc in docs:
        assert schema_errors(doc) == []


def test_schema_check_catches_planted_faults() -> None:
    dep = _one(K8S / "sut-deployment.yaml", "Deployment")
    typo = yaml.safe_load(yaml.safe_dump(dep))
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = typo["spec"]["template"]["spec"]["containers"][
        0
    ].pop("readinessProbe")
    assert schema_errors(typo)
    wrong_type = yaml.safe_load(yaml.safe_dump(dep))
    wrong_type["spec"]["replicas"] = "three"
    assert schema_errors(wrong_type)


@pytest.mark.parametrize("directory", [K8S, K8S / "tls"], ids=["plain", "tls"])
def test_kustomization_lists_every_manifest(directory: Path) -> None:
    listed = {
        (directory / r).resolve() for r in yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]
    }
    assert all(p.is_file() for p in listed)
    own = {p.resolve() for p in directory.glob("*.yaml") if p.name not in ("kustomization.yaml", *STANDALONE)}
    assert own <= listed
    kinds = sorted(_docs(p)[0]["kind"] for p in listed)
    assert kinds == sorted(
        ["Namespace", "ConfigMap", "ConfigMap", "Deployment", "Service", "PersistentVolumeClaim", "Job"]
    )


@pytest.mark.parametrize("variant", ["", "tls"])
def test_harness_job_command_parses_and_targets_the_headless_service(variant: str, tmp_path: Path) -> None:
    from loadgen_harness import parse_target

    job = _one(K8S / variant / "harness-job.yaml", "Job")
    c = _container(job)
    args = build_parser().parse_args(_stand_ins(c["args"], tmp_path))  # the harness image's entrypoint: lpuperf
    assert args.command == "run" and args.scenario == "Server"
    target = parse_target(args.sut)
    svc = _one(K8S / "sut-service.yaml", "Service")
    host, _, port = target.endpoints[0].rpartition(":")
    assert (
        target.kind == "dns" and host == f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"
    )
    assert int(port) == next(p["port"] for p in svc["spec"]["ports"] if p["name"] == "grpc")
    # Results go to the volume, and the exporter listens beyond loopback for Prometheus.
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert str(args.out) == mounts["results"] and args.metrics_host == "0.0.0.0"
    vols = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert (
        vols["results"]["persistentVolumeClaim"]["claimName"]
        == _one(K8S / "results-pvc.yaml", "PersistentVolumeClaim")["metadata"]["name"]
    )
    ann = job["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and int(ann["prometheus.io/port"]) == args.metrics_port
    _files_are_mounted(c["args"], mounts)


def _files_are_mounted(argv: list[str], mounts: dict[str, str]) -> None:
    """Every file a flag names (but the results directory) lies under a mounted volume (a Secret or ConfigMap)."""
    for flag, value in itertools.pairwise(argv):
        if flag.startswith("--") and value.startswith("/") and flag != "--out":
            assert any(value.startswith(m + "/") for m in mounts.values()), f"{flag} {value}: not mounted"


def _stand_ins(argv: list[str], tmp: Path) -> list[str]:
    """The command line with each mounted file replaced by a local stand-in (secret-file flags check the file)."""
    out = []
    for i, a in enumerate(argv):
        if a.startswith("/etc/lpuperf/") and not a.endswith("manifest.json"):
            stand_in = tmp / f"{i}-{Path(a).name}"
            stand_in.write_text("stand-in\n")
            a = str(stand_in)
        out.append(a)
    return out


@pytest.mark.parametrize("variant", ["", "tls"])
def test_sut_deployment_serves_the_artifact_with_grpc_health_probes(variant: str, tmp_path: Path) -> None:
    from sut import ArtifactManifest

    dep = _one(K8S / variant / "sut-deployment.yaml", "Deployment")
    c = _container(dep)
    argv = _expand(c["args"])
    args = build_parser().parse_args(["serve", *_stand_ins(argv, tmp_path)])  # image: `python -m sut serve`
    assert args.host == "0.0.0.0" and args.replica_id == "lpuperf-sut-7d9f-abcde"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in c["env"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": args.port, "metrics": args.metrics_port}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        spec = c[probe]
        if variant:  # kubelet's grpc probe has no TLS: a TLS health check in the pod instead
            assert (
                "grpc_health" in " ".join(spec["exec"]["command"]) and "127.0.0.1:50051" in spec["exec"]["command"][-1]
            )
        else:
            assert spec["grpc"]["port"] == args.port
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    # The artifact: the ConfigMap's manifest.json, mounted where --artifact points, a valid manifest.
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    cm = _one(K8S / "sut-artifact.yaml", "ConfigMap")
    assert vols["artifact"]["configMap"]["name"] == cm["metadata"]["name"]
    assert args.artifact == f"{mounts['artifact']}/manifest.json"
    ArtifactManifest.model_validate_json(cm["data"]["manifest.json"])
    svc = _one(K8S / "sut-service.yaml", "Service")
    assert svc["spec"]["clusterIP"] == "None"  # headless: one DNS record per ready pod
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert int(ann["prometheus.io/port"]) == args.metrics_port
    _files_are_mounted(argv, mounts)


def test_prometheus_keeps_annotated_pods_on_their_port() -> None:
    cm = _one(K8S / "prometheus-config.yaml", "ConfigMap")
    prom = yaml.safe_load(cm["data"]["prometheus.yml"])
    (job,) = prom["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["lpuperf"]}}]
    relabel = job["relabel_configs"]
    keep = next(r for r in relabel if r.get("action") == "keep")
    assert (
        keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] and keep["regex"] == "true"
    )
    addr = next(r for r in relabel if r.get("target_label") == "__address__")
    # The port rewrite Prometheus would apply to a pod at 10.0.0.7:50051 annotated with port 9101:
    joined = "10.0.0.7:50051;9101"
    assert re.fullmatch(addr["regex"], joined) is not None
    assert re.sub(addr["regex"], addr["replacement"].replace("$", "\\"), joined) == "10.0.0.7:9101"
    assert any(r.get("target_label") == "replica" for r in relabel)  # the pod name: results.json's replica id


def test_command_checks_catch_planted_faults(tmp_path: Path) -> None:
    c = _container(_one(K8S / "tls" / "harness-job.yaml", "Job"))
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    with pytest.raises(SystemExit):  # a flag the CLI does not have
        build_parser().parse_args([*_stand_ins(c["args"], tmp_path), "--no-such-flag", "3"])
    with pytest.raises(AssertionError, match="not mounted"):
        _files_are_mounted([*c["args"], "--tls-ca", "/etc/elsewhere/ca.crt"], mounts)

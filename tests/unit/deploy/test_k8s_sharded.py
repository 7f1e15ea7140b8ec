"""deploy/k8s/harness-sharded.yaml checked offline: the Indexed Job's command line, for every completion index,
parses with the real ``lpuperf`` parser into shard I of N; the merge Job merges exactly those N shards from the
same ReadWriteMany volume. (Every manifest's schema is checked in test_k8s_manifests.py.)"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
import yaml

from cli import build_parser
from cli._merge import shard_options_from_args
from tests.unit.deploy.test_k8s_manifests import K8S, _docs, schema_errors

SHARDED = K8S / "harness-sharded.yaml"


def _by_name(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in _docs(SHARDED) if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def _expand(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion from the container's env."""
    out = []
    for a in args:
        for name, value in env.items():
            a = a.replace(f"$({name})", value)
        out.append(a)
    return out


def _env_sources(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("valueFrom") for e in container.get("env", [])}


def sharded_problems(job: dict[str, Any], merge: dict[str, Any], pvc: dict[str, Any]) -> list[str]:
    """What would make the sharded run wrong: each pod's parsed command, the merge's list, the shared volume."""
    problems: list[str] = []
    spec = job["spec"]
    n = spec["completions"]
    if spec.get("completionMode") != "Indexed" or spec.get("parallelism") != n:
        problems.append("the shards must be an Indexed Job running all its completions at once")
    (c,) = _pod(job)["containers"]
    sources = _env_sources(c)
    index_src = (sources.get("JOB_COMPLETION_INDEX") or {}).get("fieldRef", {}).get("fieldPath", "")
    if "batch.kubernetes.io/job-completion-index" not in index_src:
        problems.append("JOB_COMPLETION_INDEX does not come from the pod's completion index")
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    parser = build_parser()
    run_dirs, starts = [], set()
    for i in range(n):
        try:
            args = parser.parse_args(_expand(c["args"], {"JOB_COMPLETION_INDEX": str(i), "START_AT": start}))
        except SystemExit:  # argparse refused it (its line is on stderr)
            problems.append(f"pod {i}: its command line does not parse")
            continue
        opts = shard_options_from_args(args)  # refused for a LoadGen scenario: a shard must be a --load run
        if args.command != "run" or str(opts.get("shard")) != f"{i}/{n}":
            problems.append(f"pod {i}: runs shard {opts.get('shard')}, expected {i}/{n}")
        starts.add(opts.get("start_at_unix_ns"))
        run_dirs.append(f"{args.out}/{args.run_id}")
    if len(set(run_dirs)) != n:
        problems.append(f"the shards write {len(set(run_dirs))} distinct run directories, expected {n}")
    if len(starts) != 1 or None in starts:
        problems.append("the shards do not share one --start-at")
    (m,) = _pod(merge)["containers"]
    margs = parser.parse_args(m["args"])
    if margs.command != "merge" or sorted(map(str, margs.dirs)) != sorted(run_dirs):
        problems.append(f"the merge Job merges {sorted(map(str, margs.dirs))}, the shards write {sorted(run_dirs)}")
    if not margs.wait > 0:
        problems.append("the merge Job does not wait for shards still running (--wait)")
    claim = pvc["metadata"]["name"]
    for name, pod in (("shards", _pod(job)), ("merge", _pod(merge))):
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
        if claims != [claim]:
            problems.append(f"the {name} do not mount the shared volume {claim}")
    if "ReadWriteMany" not in pvc["spec"]["accessModes"]:
        problems.append("pods on several nodes write the results volume: it must be ReadWriteMany")
    return problems


def _parts() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return (
        _by_name("Job", "lpuperf-harness-sharded"),
        _by_name("Job", "lpuperf-harness-merge"),
        _by_name("PersistentVolumeClaim", "lpuperf-results-shared"),
    )


def test_every_shard_parses_and_the_merge_covers_them_all() -> None:
    job, merge, pvc = _parts()
    assert sharded_problems(job, merge, pvc) == []
    for doc in (job, merge, pvc):
        assert schema_errors(doc) == []
    (c,) = _pod(job)["containers"]
    assert _env_sources(c)["START_AT"] == {"configMapKeyRef": {"name": "lpuperf-shard-start", "key": "start-at"}}
    mounts = {v["name"]: v["mountPath"] for v in c["volumeMounts"]}
    args = build_parser().parse_args(_expand(c["args"], {"JOB_COMPLETION_INDEX": "0", "START_AT": "1700000000"}))
    assert str(args.out).startswith(mounts["results"] + "/") and args.scenario is None


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(doc))
    return out


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ("four-pods", "pod 3: its command line does not parse"),
        ("merge-misses-one", "the merge Job merges"),
        ("scenario", "LoadGen scenario runs as one LoadGen"),
        ("rwo", "must be ReadWriteMany"),
        ("fixed-index", "pod 1: runs shard 0/3"),
        ("no-wait", "does not wait"),
    ],
)
def test_planted_faults_are_caught(fault: str, needle: str) -> None:
    job, merge, pvc = (_copy(d) for d in _parts())
    (c,) = _pod(job)["containers"]
    (m,) = _pod(merge)["containers"]
    if fault == "four-pods":
        job["spec"]["completions"] = job["spec"]["parallelism"] = 4
    elif fault == "merge-misses-one":
        m["args"] = [a for a in m["args"] if not a.endswith("shard-2")]
    elif fault == "scenario":
        c["args"] = [a for a, b in itertools.pairwise([*c["args"], ""]) if a != "--load" and not a.startswith("rate:")]
        c["args"] += ["--scenario", "Server"]
    elif fault == "rwo":
        pvc["spec"]["accessModes"] = ["ReadWriteOnce"]
    elif fault == "fixed-index":
        c["args"] = [a.replace("$(JOB_COMPLETION_INDEX)/3", "0/3") for a in c["args"]]
    elif fault == "no-wait":
        m["args"] = m["args"][: m["args"].index("--wait")]
    try:
        problems = sharded_problems(job, merge, pvc)
    except Exception as exc:  # a refusal of the command line itself (one line, as the CLI would print)
        problems = [str(exc)]
    assert any(needle in p for p in problems), problems

"""docker/compose.sharded.yaml checked offline (docker cannot run here): the profile's harness containers are
shards 0..N-1 of one load with one start time, their command lines parse with the real ``lpuperf`` parser,
the merge container merges exactly their runs, and everything they use is defined by compose.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli import build_parser
from cli._merge import shard_options_from_args
from tests.unit.docker.test_docker_stack import COMPOSE, DOCKER, _with_secret_files

SHARDED = DOCKER / "compose.sharded.yaml"
START = "2026-06-01T12:00:00Z"


def _load(tmp: Path) -> dict[str, Any]:
    text = re.sub(r"\$\{LPUPERF_START_AT:\?[^}]*\}", START, SHARDED.read_text(encoding="utf-8"))
    doc: dict[str, Any] = yaml.safe_load(_with_secret_files(text, tmp))
    return doc


def compose_shard_problems(sharded: dict[str, Any], base: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    parser = build_parser()
    services = sharded["services"]
    shards = {k: v for k, v in services.items() if v["command"][0] == "run"}
    seen: dict[str, str] = {}
    run_dirs, starts, loads = [], set(), set()
    for name, svc in sorted(shards.items()):
        if svc.get("profiles") != ["sharded"]:
            problems.append(f"{name}: not in the sharded profile (a plain `up` would start it)")
        args = parser.parse_args(svc["command"])
        opts = shard_options_from_args(args)
        shard = str(opts["shard"])
        if shard in seen:
            problems.append(f"{name}: shard {shard} is also {seen[shard]}'s")
        seen[shard] = name
        starts.add(opts["start_at_unix_ns"])
        loads.add(args.load)
        run_dirs.append(f"{args.out}/{args.run_id}")
    counts = {s.split("/")[1] for s in seen}
    if len(counts) != 1 or sorted(seen) != [f"{i}/{len(seen)}" for i in range(len(seen))]:
        problems.append(f"the shards are {sorted(seen)}: expected 0/N..N-1/N with N = {len(seen)}")
    if len(starts) != 1 or len(loads) != 1:
        problems.append("the shards do not share one load and one --start-at")
    merge = parser.parse_args(services["harness-merge"]["command"])
    if sorted(map(str, merge.dirs)) != sorted(run_dirs) or not merge.wait > 0:
        problems.append(
            f"harness-merge merges {sorted(map(str, merge.dirs))} (waiting {merge.wait:g} s), shards write {sorted(run_dirs)}"
        )
    every = {**base["services"], **services}
    for name, svc in services.items():
        for dep in svc.get("depends_on", []):
            if dep not in every:
                problems.append(f"{name}: depends on {dep}, which no compose file defines")
        for vol in svc.get("volumes", []):
            if vol.split(":")[0] not in base.get("volumes", {}):
                problems.append(f"{name}: volume {vol.split(':')[0]} is not defined")
        for secret in svc.get("secrets", []):
            if secret not in base.get("secrets", {}):
                problems.append(f"{name}: secret {secret} is not defined")
    return problems


def test_the_sharded_profile_is_three_shards_and_their_merge(tmp_path: Path) -> None:
    doc = _load(tmp_path)
    base = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert compose_shard_problems(doc, base) == []
    assert set(doc["services"]) == {"harness-shard-0", "harness-shard-1", "harness-shard-2", "harness-merge"}
    args = build_parser().parse_args(doc["services"]["harness-shard-1"]["command"])
    assert args.load == "rate:60" and args.sut == "dns:///sut:50051" and args.scenario is None


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ("same-index", "shard 0/3 is also"),
        ("merge-misses-one", "harness-merge merges"),
        ("unknown-volume", "volume scratch is not defined"),
        ("no-profile", "not in the sharded profile"),
    ],
)
def test_planted_faults_are_caught(fault: str, needle: str, tmp_path: Path) -> None:
    doc = _load(tmp_path)
    base = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    svc = doc["services"]
    if fault == "same-index":
        svc["harness-shard-2"]["command"] = [a.replace("2/3", "0/3") for a in svc["harness-shard-2"]["command"]]
    elif fault == "merge-misses-one":
        svc["harness-merge"]["command"].remove("results/sharded/shard-1")
    elif fault == "unknown-volume":
        svc["harness-shard-1"]["volumes"] = ["scratch:/home/lpuperf/results"]
    elif fault == "no-profile":
        del svc["harness-shard-0"]["profiles"]
    assert any(needle in p for p in compose_shard_problems(doc, base))

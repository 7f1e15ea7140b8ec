"""`lpuperf submission run` end to end on the sim, then the checker on the real tree and planted faults.

A clean quick-preset tree is accepted except for its "not submittable" label and the embedded benchmark
being lpuperf's own; each planted problem
(missing hash, token latencies off, INVALID result) is rejected with its own finding.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

# A small dataset and a fast sim keep the three LoadGen passes to a few seconds each.
DATASET = "synthetic:64:3"
SERVE = [
    "--dataset",
    DATASET,
    "--decode-step-s",
    "0.001",
    "--prefill-base-s",
    "0.001",
    "--prefill-per-token-s",
    "0.000002",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cli import main

    out = tmp_path_factory.mktemp("submission")
    # 600 queries (LoadGen's early stopping) at a rate a loaded 2-core box serves within the limits.
    argv = ["submission", "run", "--dataset", DATASET, "--qps", "50", "--duration", "12", "--out", str(out)]
    argv += ["--run-id", "sub", "--submitter", "acme", "--system", "sim-node"]
    argv += [f"--serve-arg={a}" for a in SERVE]
    # The quick tree is complete; its only finding is the not-submittable label, so the run itself succeeds.
    assert main(argv) == 0
    return out / "sub" / "submission"


def _scenario(root: Path) -> Path:
    return root / "closed" / "acme" / "results" / "sim-node" / "embedded" / "Server"


def _codes(root: Path) -> list[str]:
    from workflows._submission_check import check_submission

    return sorted(f.code for f in check_submission(root).findings)


def test_quick_tree_has_every_file_and_only_the_not_submittable_finding(tree: Path) -> None:
    from workflows._submission import MAX_ACCURACY_LOG_BYTES
    from workflows._submission_check import check_submission

    scen = _scenario(tree)
    for rel in (
        "accuracy/accuracy.txt",
        "accuracy/mlperf_log_accuracy.json",
        "accuracy/mlperf_log_detail.txt",
        "accuracy/mlperf_log_summary.txt",
        "performance/run_1/mlperf_log_summary.txt",
        "performance/run_1/mlperf_log_detail.txt",
        "TEST06/verify_accuracy.txt",
        "TEST06/accuracy/mlperf_log_accuracy.json",
        "user.conf",
        "measurements.json",
        "README.md",
    ):
        assert (scen / rel).is_file(), rel
    assert (tree / "closed" / "acme" / "systems" / "sim-node.json").is_file()
    assert (scen / "accuracy" / "mlperf_log_accuracy.json").stat().st_size <= MAX_ACCURACY_LOG_BYTES
    assert re.search(r"^hash=[0-9a-f]{64}$", (scen / "accuracy" / "accuracy.txt").read_text(), re.M)
    assert (tree / "closed" / "acme" / "src" / "README.md").is_file()
    assert "**Not an MLPerf submission**" in (scen / "README.md").read_text()
    findings = check_submission(tree).findings
    # The embedded benchmark is lpuperf's own: named once, beside the quick preset's label.
    assert [f.code for f in findings] == ["benchmark", "not-submittable"], [f.line for f in findings]
    assert "preset 'quick' is not submittable" in findings[1].message
    from cli import main

    assert main(["submission", "check", str(tree)]) == 1  # the checker itself never accepts it


def _planted(tree: Path, tmp_path: Path) -> tuple[Path, Path]:
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy)
    return copy, _scenario(copy)


def test_missing_hash_is_rejected(tree: Path, tmp_path: Path) -> None:
    root, scen = _planted(tree, tmp_path)
    acc = scen / "accuracy" / "accuracy.txt"
    acc.write_text("".join(ln for ln in acc.read_text().splitlines(keepends=True) if not ln.startswith("hash=")))
    assert _codes(root) == ["benchmark", "hash", "not-submittable"]


def test_token_latencies_off_is_rejected(tree: Path, tmp_path: Path) -> None:
    root, scen = _planted(tree, tmp_path)
    detail = scen / "performance" / "run_1" / "mlperf_log_detail.txt"
    text, n = re.subn(r'("key": "requested_use_token_latencies", "value": )true', r"\g<1>false", detail.read_text())
    assert n == 1
    detail.write_text(text)
    assert _codes(root) == ["benchmark", "not-submittable", "token-latencies"]


def test_invalid_result_is_rejected(tree: Path, tmp_path: Path) -> None:
    root, scen = _planted(tree, tmp_path)
    detail = scen / "performance" / "run_1" / "mlperf_log_detail.txt"
    text, n = re.subn(r'("key": "result_validity", "value": )"VALID"', r'\g<1>"INVALID"', detail.read_text())
    assert n == 1
    detail.write_text(text)
    assert _codes(root) == ["benchmark", "invalid", "not-submittable"]

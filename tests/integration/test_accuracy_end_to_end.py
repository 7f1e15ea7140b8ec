"""``lpuperf accuracy`` end to end: a real AccuracyOnly LoadGen pass against the spawned sim SUT, then scoring.

A clean pass replays the FP32 reference outputs and passes the 99.9% gate; the same pass with
``--max-new-tokens`` cutting every output short (a planted truncation) fails it with exit status 1.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli import main

pytestmark = pytest.mark.integration

DATASET = "synthetic:24:3"


def test_accuracy_pass_scores_gates_and_writes_mlperf_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = tmp_path / "baseline.json"
    assert main(["accuracy", "--write-baseline", str(baseline), "--dataset", DATASET]) == 0
    common = ["--dataset", DATASET, "--baseline", str(baseline), "--results", str(tmp_path / "runs")]

    assert main(["accuracy", *common, "--run-id", "clean", "--gate", "99.9"]) == 0
    out = capsys.readouterr().out
    log_dir = tmp_path / "runs" / "clean" / "Offline" / "accuracy"
    lines = (log_dir / "accuracy.txt").read_text().splitlines()
    assert re.match(r".*'rougeL':\s([\d.]+).*", lines[0]) and re.match(r"^hash=[0-9a-f]{64}$", lines[1])
    report = json.loads((log_dir / "accuracy.json").read_text())
    assert (
        report["gen_num"] == 24
        and report["scores_percent"]["rougeL"] == json.loads(baseline.read_text())["metrics"]["rougeL"]
    )
    fidelity = json.loads((log_dir / "fidelity.json").read_text())
    assert fidelity["overall"]["exact_match_fraction"] == 1.0 and fidelity["overall"]["rouge_l_percent"] == 100.0
    assert "accuracy gate 99.9% vs embedded FP32 baseline: PASS" in out

    assert main(["accuracy", *common, "--run-id", "short", "--max-new-tokens", "30"]) == 1
    out = capsys.readouterr().out
    assert "accuracy gate 99% vs embedded FP32 baseline: FAIL" in out
    assert re.search(r"tokens_per_sample [\d.]+ outside .* FAIL by", out)

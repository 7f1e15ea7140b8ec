"""Accuracy gates and accuracy.txt: planted failures FAIL, clean outputs PASS, the file parses like MLPerf's checker.

MLPerf's submission checker reads accuracy.txt line by line with patterns of the form
``.*'rouge1':\\s([\\d.]+).*`` (one per metric: rouge1, rouge2, rougeL, rougeLsum, gen_len,
tokens_per_sample) and takes the sha256 from the line ``hash=<64 hex>``; the equivalents are below.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from accuracy import (
    AccuracyLogError,
    AccuracyOutcome,
    apply_gate,
    compute_reference_baseline,
    load_baseline,
    read_accuracy_log,
    save_baseline,
    score_accuracy_log,
    write_accuracy_log,
)
from cli import main
from scenarios import resolve_dataset

DATASET = "synthetic:60:5"
METRIC_RE = {k: re.compile(rf".*'{k}':\s([\d.]+).*") for k in ("rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len")}
METRIC_RE["tokens_per_sample"] = re.compile(r".*'tokens_per_sample':\s([\d.]+).*")
HASH_RE = re.compile(r"^hash=([0-9a-f]{64})$")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gates")
    ds = resolve_dataset(DATASET)
    base, _ = compute_reference_baseline(ds, benchmark="embedded")
    paths = {"baseline": save_baseline(base, root / "baseline.json")}
    clean = [r.copy() for r in ds.reference_ids]
    # Truncate every output by 20% (keeping EOS): ROUGE recall and tokens/sample both drop.
    truncated = [np.append(r[: int(len(r[:-1]) * 0.8)], r[-1]) for r in ds.reference_ids]
    # Same text, but 15% extra EOS ids: ROUGE unchanged, tokens/sample out of its +-10% window.
    padded = [np.append(r, [ds.eos_token_id] * max(1, int(len(r) * 0.15))) for r in ds.reference_ids]
    for name, outs in (("clean", clean), ("truncated", truncated), ("padded", padded)):
        d = root / name
        d.mkdir()
        paths[name] = write_accuracy_log(d / "mlperf_log_accuracy.json", outs)
    return paths


def _score(setup: dict[str, Path], which: str) -> AccuracyOutcome:
    return score_accuracy_log(
        setup[which], dataset_spec=DATASET, baseline=setup["baseline"], out_dir=setup[which].parent, fidelity=False
    )


@pytest.mark.parametrize("level", ["99", "99.9"])
def test_clean_outputs_pass_both_levels(setup: dict[str, Path], level: str) -> None:
    out = _score(setup, "clean")
    verdict = next(v for v in out.verdicts if v.level == level)
    assert verdict.passed, verdict.text()
    assert all(g.passed for g in verdict.lines)
    assert all("PASS by" in g.line or ("within" in g.line and g.line.endswith("PASS")) for g in verdict.lines)


@pytest.mark.parametrize("level", ["99", "99.9"])
def test_outputs_truncated_by_20_percent_fail(setup: dict[str, Path], level: str) -> None:
    out = _score(setup, "truncated")
    verdict = next(v for v in out.verdicts if v.level == level)
    assert not verdict.passed
    failed = {g.metric for g in verdict.lines if not g.passed}
    assert {"rouge1", "rougeL", "tokens_per_sample"} <= failed
    line = next(g.line for g in verdict.lines if g.metric == "rougeL")
    assert re.fullmatch(rf"rougeL [\d.]+ < [\d.]+ target \({re.escape(level)}% of [\d.]+\) FAIL by [\d.]+", line), line


def test_tokens_per_sample_out_of_window_fails_alone(setup: dict[str, Path]) -> None:
    out = _score(setup, "padded")
    verdict = next(v for v in out.verdicts if v.level == "99.9")
    assert not verdict.passed
    assert [g.metric for g in verdict.lines if not g.passed] == ["tokens_per_sample"]
    assert "outside" in verdict.lines[-1].line and "FAIL by" in verdict.lines[-1].line


def test_gate_compares_against_fraction_of_target() -> None:
    base = load_baseline("llama2-70b")
    at_99 = {"rouge1": 44.4312 * 0.99, "rouge2": 22.0352, "rougeL": 28.6162, "tokens_per_sample": 294.45}
    assert apply_gate(at_99, base, "99").passed
    assert not apply_gate(at_99, base, "99.9").passed
    below = at_99 | {"rougeL": round(28.6162 * 0.99, 4) - 0.0001}
    assert not apply_gate(below, base, "99").passed
    missing = {k: v for k, v in at_99.items() if k != "rouge2"}
    assert "not measured" in next(g.line for g in apply_gate(missing, base).lines if g.metric == "rouge2")


def test_accuracy_txt_parses_with_checker_patterns(setup: dict[str, Path]) -> None:
    out = _score(setup, "clean")
    lines = (setup["clean"].parent / "accuracy.txt").read_text().splitlines()
    assert len(lines) == 2
    found = {}
    for key, rx in METRIC_RE.items():
        m = rx.match(lines[0])
        assert m, key
        found[key] = float(m.group(1))
    assert found["rougeL"] == out.report.scores_percent["rougeL"]
    assert found["tokens_per_sample"] == out.report.tokens_per_sample
    m = HASH_RE.match(lines[1])
    assert m and m.group(1) == hashlib.sha256(setup["clean"].read_bytes()).hexdigest()
    # The result dict line is a Python literal with plain numbers (no numpy reprs).
    assert "np." not in lines[0] and lines[0].startswith("{'rouge1': ")


def test_cli_exit_status_follows_the_gate(setup: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--dataset", DATASET, "--baseline", str(setup["baseline"]), "--no-fidelity"]
    assert main(["accuracy", "--log", str(setup["clean"]), *common, "--gate", "99.9"]) == 0
    assert main(["accuracy", "--log", str(setup["truncated"]), *common]) == 1
    assert main(["accuracy", "--log", str(setup["padded"]), *common, "--gate", "99.9"]) == 1
    printed = capsys.readouterr().out
    assert "FAIL by" in printed and "PASS by" in printed
    assert main(["accuracy", "--log", str(setup["clean"].parent / "nope.json"), *common]) == 2
    assert "--log" in capsys.readouterr().err


def test_baseline_from_another_dataset_is_refused(setup: dict[str, Path]) -> None:
    with pytest.raises(AccuracyLogError, match="dataset_sha256"):
        score_accuracy_log(setup["clean"], dataset_spec="synthetic:60:6", baseline=setup["baseline"], fidelity=False)


def test_int64_log_scores_like_int32(tmp_path: Path, setup: dict[str, Path]) -> None:
    outs = read_accuracy_log(setup["clean"]).outputs
    p = write_accuracy_log(tmp_path / "mlperf_log_accuracy.json", outs, dtype="int64")
    a = score_accuracy_log(setup["clean"], dataset_spec=DATASET, fidelity=False).report
    b = score_accuracy_log(p, dataset_spec=DATASET, dtype="int64", fidelity=False).report
    assert a.scores_percent == b.scores_percent and a.gen_tok_len == b.gen_tok_len

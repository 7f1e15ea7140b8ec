"""Every command that writes files says where: each new file, or a directory holding it, is named on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cli import main
from compliance import encode_tokens
from tests.unit.workflows.test_report import make_run
from tests.unit.workflows.test_submission_checker import make_runs


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _written_and_named(
    root: Path, argv: list[str], capsys: pytest.CaptureFixture[str], ok: Callable[[int], bool] = lambda rc: rc in (0, 1)
) -> set[Path]:
    before = _files(root)
    rc = main(argv)
    out = capsys.readouterr().out
    assert ok(rc), out
    new = _files(root) - before
    assert new, f"{argv[0]} wrote nothing"
    for f in new:
        named = [a for a in (f, *f.parents) if a != root and root in a.parents and str(a) in out]
        assert named, f"lpuperf {' '.join(argv[:2])} wrote {f} without naming it (or its directory):\n{out}"
    return new


def test_report_gate_and_compare_name_what_they_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, cand = tmp_path / "runs" / "base", tmp_path / "runs" / "cand"
    make_run(base, n=200)
    make_run(cand, n=200, seed=4)
    assert {p.name for p in _written_and_named(tmp_path, ["report", str(base)], capsys)} == {"report.html"}
    gate = _written_and_named(tmp_path, ["gate", str(base), "--slo", "latency-only"], capsys)
    assert {p.name for p in gate} == {"gate.json", "gate.junit.xml"}
    cmp_json = tmp_path / "cmp" / "compare.json"
    assert _written_and_named(tmp_path, ["compare", str(base), str(cand), "--json", str(cmp_json)], capsys) == {
        cmp_json
    }


def test_submission_build_and_check_name_what_they_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = make_runs(tmp_path)
    build = ["submission", "build", "--performance", str(runs["perf"]), "--accuracy", str(runs["acc"])]
    build += ["--test06", str(runs["t06"]), "--out", str(runs["root"]), "--submitter", "acme"]
    assert len(_written_and_named(tmp_path, build, capsys)) >= 9
    findings = tmp_path / "check" / "findings.json"
    check = ["submission", "check", str(runs["root"]), "--json", str(findings)]
    assert _written_and_named(tmp_path, check, capsys) == {findings}


def test_compliance_test06_log_names_its_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "logs"
    run.mkdir()
    outputs = [[1, 2, 9], [4, 9]]
    log = [
        {"seq_id": i, "qsl_idx": i, "data": encode_tokens(o), "token_data": encode_tokens(o[:1]), "token_count": len(o)}
        for i, o in enumerate(outputs)
    ]
    (run / "mlperf_log_accuracy.json").write_text(json.dumps(log))
    argv = ["compliance", "test06", "--scenario", "Server", "--log", str(run), "--eos-id", "9"]
    argv += ["--output", str(tmp_path / "t06")]
    assert len(_written_and_named(tmp_path, argv, capsys)) >= 3

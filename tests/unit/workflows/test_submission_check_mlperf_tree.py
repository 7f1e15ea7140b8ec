"""The checker on another submitter's tree in MLPerf's layout: no false findings, planted faults found.

The tree (tests/mlperf_tree.py) holds an LLM with TEST06 in Server, Offline and Interactive and a
non-LLM (stable-diffusion-xl) without TEST06 or token latencies, made with MLPerf v5.1's seeds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scenarios import MLPERF_ROUND_SEEDS
from tests.mlperf_tree import SUBMITTER, SYSTEM, write_tree
from workflows._submission_check import check_submission

V51 = MLPERF_ROUND_SEEDS["v5.1"].model_dump()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("published"), V51)


def _copy(published: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(published, tmp_path / "tree"))


def _scen(root: Path, benchmark: str, scenario: str) -> Path:
    return root / "closed" / SUBMITTER / "results" / SYSTEM / benchmark / scenario


def test_a_valid_v51_tree_has_no_findings(published: Path) -> None:
    report = check_submission(published, version="v5.1")
    assert report.passed, [f.line for f in report.findings]
    assert report.scenarios_checked == 5
    assert report.notes == [
        "seeds checked against MLPerf v5.1's",
        "round 'v5.1' has no rule table: required scenarios, sample counts and dataset coverage not checked",
    ]
    # TEST06's log is whole (MLPerf does not truncate it) and over 10 KiB: not a finding.
    t06 = _scen(published, "llama2-70b-99", "Server") / "TEST06" / "accuracy" / "mlperf_log_accuracy.json"
    assert t06.stat().st_size > 10 * 1024 and json.loads(t06.read_text())


def test_the_round_decides_the_seeds(published: Path) -> None:
    # Held to another round's seeds, every performance log is off: one finding per seed and scenario.
    wrong = check_submission(published, version="v6.0")
    seeds = [f for f in wrong.findings if f.code == "seeds"]
    assert len(seeds) == 3 * 5 and "expected MLPerf v6.0's" in seeds[0].message
    # v6.0 also moved the code folder from code/ to src/: one finding for the submitter.
    assert [f.path for f in wrong.findings if f.code != "seeds"] == [f"closed/{SUBMITTER}/src"]
    # A round the table does not hold: seeds are not checked, and the report says so.
    unknown = check_submission(published, version="v9.9")
    assert unknown.passed, [f.line for f in unknown.findings]
    assert unknown.notes[0].startswith("round 'v9.9' unknown: seeds not checked (known: v4.0, ")


def test_cli_names_the_round_and_prints_the_note(published: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    assert main(["submission", "check", str(published), "--version", "5.1"]) == 0
    out = capsys.readouterr().out
    assert "note: seeds checked against MLPerf v5.1's" in out and "accepted (5 scenario(s)" in out


@pytest.mark.parametrize(
    ("fault", "code", "where"),
    [
        ("missing-test06", "missing-file", "llama2-70b-99/Server/TEST06/verify_accuracy.txt"),
        ("failed-test06", "TEST06", "llama2-70b-99/Offline/TEST06/verify_accuracy.txt"),
        ("big-accuracy-log", "log-size", "stable-diffusion-xl/Offline/accuracy/mlperf_log_accuracy.json"),
        ("seed", "seeds", "stable-diffusion-xl/Server/performance/run_1/mlperf_log_detail.txt"),
        ("invalid", "invalid", "llama2-70b-99/Offline/performance/run_1/mlperf_log_detail.txt"),
        ("no-token-latencies", "token-latencies", "llama2-70b-99/Server/performance/run_1/mlperf_log_detail.txt"),
        ("slow-interactive", "latency", "llama2-70b-99/Interactive/performance/run_1/mlperf_log_detail.txt"),
        ("short", "min-duration", "stable-diffusion-xl/Offline/performance/run_1/mlperf_log_detail.txt"),
        ("no-system", "missing-file", f"closed/{SUBMITTER}/systems/{SYSTEM}.json"),
    ],
)
def test_planted_faults_are_found(published: Path, tmp_path: Path, fault: str, code: str, where: str) -> None:
    root = _copy(published, tmp_path)
    llm_server, llm_offline = _scen(root, "llama2-70b-99", "Server"), _scen(root, "llama2-70b-99", "Offline")
    sdxl_offline, sdxl_server = (
        _scen(root, "stable-diffusion-xl", "Offline"),
        _scen(root, "stable-diffusion-xl", "Server"),
    )

    def edit(path: Path, old: str, new: str) -> None:
        text = path.read_text()
        assert old in text, (path, old)
        path.write_text(text.replace(old, new))

    detail = "performance/run_1/mlperf_log_detail.txt"
    if fault == "missing-test06":
        (llm_server / "TEST06" / "verify_accuracy.txt").unlink()
    elif fault == "failed-test06":
        edit(llm_offline / "TEST06" / "verify_accuracy.txt", "EOS check pass: True", "EOS check pass: False")
    elif fault == "big-accuracy-log":
        (sdxl_offline / "accuracy" / "mlperf_log_accuracy.json").write_text("[" + " " * 20000 + "]")
    elif fault == "seed":
        seed = str(V51["schedule_rng_seed"])
        edit(sdxl_server / detail, seed, str(V51["schedule_rng_seed"] - 1))
    elif fault == "invalid":
        edit(llm_offline / detail, '"value": "VALID"', '"value": "INVALID"')
    elif fault == "no-token-latencies":
        edit(
            llm_server / detail,
            '"key": "requested_use_token_latencies", "value": true',
            '"key": "requested_use_token_latencies", "value": false',
        )
    elif fault == "slow-interactive":  # 1 s TTFT p99: fine for Server's 2 s, not for Interactive's 450 ms
        edit(_scen(root, "llama2-70b-99", "Interactive") / detail, '"value": 390000000,', '"value": 1000000000,')
    elif fault == "short":
        edit(sdxl_offline / detail, '"value": 600000,', '"value": 60000,')
    elif fault == "no-system":
        (root / "closed" / SUBMITTER / "systems" / f"{SYSTEM}.json").unlink()
    findings = check_submission(root, version="v5.1").findings
    assert [(f.code, f.path.endswith(where)) for f in findings] == [(code, True)], [f.line for f in findings]


def test_an_llm_without_test06_is_found_but_a_non_llm_needs_none(published: Path, tmp_path: Path) -> None:
    root = _copy(published, tmp_path)
    shutil.rmtree(_scen(root, "llama2-70b-99", "Offline") / "TEST06")
    assert not (_scen(root, "stable-diffusion-xl", "Offline") / "TEST06").exists()
    found = check_submission(root, version="v5.1").findings
    assert sorted(f.path.rpartition("Offline/")[2] for f in found) == [
        "TEST06/accuracy/mlperf_log_accuracy.json",
        "TEST06/verify_accuracy.txt",
    ]
    assert all("llama2-70b-99/Offline" in f.path for f in found)

"""What ``submission build`` / ``run`` / ``init-system`` add for MLPerf's rules: MLPerf's benchmark directory
name, a system description with every required field, the code folder, a non-empty user.conf, the
submitter's own system file (a blank field refused by name), the open division without compliance, the
embedded benchmark labelled, and a closed run missing a required scenario refused before it starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main
from tests.unit.workflows.test_submission_checker import make_runs
from workflows._submission import SubmissionConfig, SubmissionError, build_submission
from workflows._submission_check import check_submission
from workflows._submission_rules import SYSTEM_ANSWER_REQUIRED, SYSTEM_REQUIRED_FIELDS, system_findings


def _build(tmp: Path, cfg: SubmissionConfig, with_test06: bool = True) -> Path:
    scen = tmp
    for scenario in ("Offline", "Server"):
        runs = make_runs(tmp / scenario, scenario=scenario)
        scen = build_submission(tmp / "sub", runs["perf"], runs["acc"], runs["t06"] if with_test06 else None, cfg)
    return scen


def test_a_built_tree_carries_what_mlperf_requires(tmp_path: Path) -> None:
    scen = _build(tmp_path, SubmissionConfig(submitter="acme", system="node"))
    assert scen.parent.name == "llama3.1-8b"  # MLPerf's directory name, not the profile's llama3_1-8b
    sub = tmp_path / "sub" / "closed" / "acme"
    system = json.loads((sub / "systems" / "node.json").read_text())
    assert set(SYSTEM_REQUIRED_FIELDS) <= set(system)
    assert all(system[k] for k in SYSTEM_ANSWER_REQUIRED)
    assert system_findings(system, "closed", "acme") == []
    assert "not detected by lpuperf" in system["cooling"]  # said, not invented
    assert "run `run` (Offline)" in (sub / "src" / "README.md").read_text()
    assert "run `run` (Server)" in (sub / "src" / "README.md").read_text()
    assert (scen / "user.conf").read_text().strip()
    report = check_submission(tmp_path / "sub", version="v6.1")
    assert report.passed, [f.line for f in report.findings]


def test_the_open_division_needs_no_compliance(tmp_path: Path) -> None:
    _build(tmp_path, SubmissionConfig(submitter="acme", division="open"), with_test06=False)
    report = check_submission(tmp_path / "sub", version="v6.1")
    assert report.passed, [f.line for f in report.findings]
    # The same tree in the closed division lacks its TEST06 files: found.
    _build(tmp_path / "closed", SubmissionConfig(submitter="acme"), with_test06=False)
    codes = {f.code for f in check_submission(tmp_path / "closed" / "sub", version="v6.1").findings}
    assert codes == {"missing-file"}


def test_init_system_template_and_a_blank_field_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "system.json"
    assert main(["submission", "init-system", str(template), "--submitter", "acme", "--system", "node"]) == 0
    data = json.loads(template.read_text())
    assert set(SYSTEM_REQUIRED_FIELDS) <= set(data) and data["cooling"] == "" and data["system_name"] == "node"
    cfg = SubmissionConfig(submitter="acme", system="node", system_desc=template)
    with pytest.raises(SubmissionError) as info:
        _build(tmp_path / "blank", cfg)
    first_blank = next(k for k in SYSTEM_REQUIRED_FIELDS if k in SYSTEM_ANSWER_REQUIRED and not data.get(k))
    assert f"field '{first_blank}' is blank; MLPerf requires an answer" in str(info.value)
    assert str(template) in str(info.value) and "\n" not in str(info.value)
    # Filled in, it wins over what lpuperf detects.
    data.update({k: f"stated {k}" for k in SYSTEM_REQUIRED_FIELDS if not data.get(k)})
    data["cooling"] = "liquid"
    template.write_text(json.dumps(data))
    _build(tmp_path / "filled", cfg)
    written = json.loads((tmp_path / "filled" / "sub" / "closed" / "acme" / "systems" / "node.json").read_text())
    assert written["cooling"] == "liquid" and written["submitter"] == "acme"


def test_a_blank_field_stops_submission_run_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = tmp_path / "system.json"
    assert main(["submission", "init-system", str(template)]) == 0
    capsys.readouterr()
    argv = ["submission", "run", "--benchmark", "llama3_1-8b", "--scenario", "Offline,Server"]
    assert main([*argv, "--system-desc", str(template), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is blank; MLPerf requires an answer" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_closed_run_missing_a_required_scenario_is_refused_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc = main(["submission", "run", "--benchmark", "llama3_1-8b", "--scenario", "Server", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "llama3.1-8b (datacenter, closed division) needs Offline" in err[0], err
    assert not out.exists()
    rc = main(["submission", "run", "--benchmark", "llama3_1-8b", "--scenario", "Offline", "--out", str(out)])
    assert rc == 2 and "needs (one of) Server or Interactive" in capsys.readouterr().err
    rc = main(["submission", "run", "--scenario", "Offline,Server", "--qps", "Offline=1,Single=2", "--out", str(out)])
    assert rc == 2 and "--qps: Single not among --scenario Offline,Server" in capsys.readouterr().err
    assert not out.exists()


def test_an_embedded_tree_is_labelled_not_an_mlperf_submission(tmp_path: Path) -> None:
    runs = make_runs(tmp_path)
    results = json.loads((runs["perf"] / "results.json").read_text())
    (runs["perf"] / "results.json").write_text(json.dumps({**results, "benchmark": "embedded"}))
    scen = build_submission(runs["root"], runs["perf"], runs["acc"], None, SubmissionConfig(submitter="acme"))
    assert scen.parent.name == "embedded"
    assert "**Not an MLPerf submission**" in (scen / "README.md").read_text()
    codes = [f.code for f in check_submission(runs["root"]).findings]
    assert codes.count("benchmark") == 1


def test_a_submission_run_on_a_short_dataset_is_refused_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["submission", "run", "--benchmark", "llama3_1-8b", "--preset", "submission", "--out", str(out)]
    assert main([*argv, "--dataset", "synthetic:510"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "synthetic:510: 510 samples; llama3.1-8b's accuracy run covers 13368" in err[0], err
    assert not out.exists()


def test_the_rate_in_user_conf_keeps_a_submission_run_submittable(tmp_path: Path) -> None:
    from scenarios import SettingsOverrides, plan_settings
    from workflows._submission import SubmissionRunConfig, _user_conf_text, performance_step

    run = SubmissionRunConfig(scenario="Server", benchmark="llama3_1-8b", preset="submission", qps=24)
    assert "llama3_1-8b.Server.target_qps = 24" in _user_conf_text(run, "llama3_1-8b")
    step = performance_step(run)
    plan = plan_settings("Server", "llama3_1-8b", "submission", overrides=SettingsOverrides(qps=step.qps))
    assert step.qps is None and plan.submittable
    # The submitter's own user.conf may not hold the rate: --qps is then an override, and says so.
    own = performance_step(run.model_copy(update={"user_conf": tmp_path / "user.conf"}))
    assert own.qps == 24
    assert not plan_settings(
        "Server", "llama3_1-8b", "submission", overrides=SettingsOverrides(qps=own.qps)
    ).submittable

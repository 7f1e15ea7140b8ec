"""The checker against MLPerf v6.1's table on a llama3.1-8b tree written here: every division clean, and each
planted fault found once, by name.

The tree (tests/mlperf_tree.py) is a datacenter system with llama3.1-8b's required scenarios (Offline, and
Server as the one of Server/Interactive), the dataset's 13,368 samples in the performance and accuracy runs,
v6.1's seeds, every system field MLPerf requires, and the code folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from scenarios import MLPERF_ROUND_SEEDS
from tests.mlperf_tree import SUBMITTER, SYSTEM, write_tree
from workflows._submission_check import check_submission

V61 = MLPERF_ROUND_SEEDS["v6.1"].model_dump()
V60 = MLPERF_ROUND_SEEDS["v6.0"].model_dump()
BENCH = "llama3.1-8b"
MODELS = ((BENCH, ("Offline", "Server"), True),)
DETAIL = "performance/run_1/mlperf_log_detail.txt"


def _tree(root: Path, division: str = "closed") -> Path:
    write_tree(root, V61, MODELS, division=division, code_folder="src")
    # llama3.1-8b's Server TPOT limit is 100 ms: the tree's p99 goes under it.
    server = _scen(root, "Server", division) / DETAIL
    server.write_text(server.read_text().replace('"value": 120000000', '"value": 80000000'))
    return root


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tree(tmp_path_factory.mktemp("v61"))


def _scen(root: Path, scenario: str, division: str = "closed") -> Path:
    return root / division / SUBMITTER / "results" / SYSTEM / BENCH / scenario


def _system(root: Path, division: str = "closed") -> Path:
    return root / division / SUBMITTER / "systems" / f"{SYSTEM}.json"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _edit_system(root: Path, change: Callable[[dict[str, object]], None]) -> None:
    data = json.loads(_system(root).read_text())
    change(data)
    _system(root).write_text(json.dumps(data))


@pytest.mark.parametrize("division", ["closed", "open", "network"])
def test_a_clean_tree_of_each_division_has_no_findings(tmp_path: Path, division: str) -> None:
    root = _tree(tmp_path, division)
    if division == "open":  # the open division carries no compliance tests, and MLPerf asks for none
        assert not (_scen(root, "Server", division) / "TEST06").exists()
    report = check_submission(root, version="v6.1")
    assert report.passed, [f.line for f in report.findings]
    assert report.scenarios_checked == 2
    assert (
        report.notes[-1] == "required scenarios, sample counts and dataset coverage checked against MLPerf v6.1's table"
    )


def test_the_open_division_may_leave_out_scenarios(tmp_path: Path) -> None:
    root = _tree(tmp_path, "open")
    shutil.rmtree(_scen(root, "Offline", "open"))
    assert check_submission(root, version="v6.1").passed


def _plant(root: Path, fault: str) -> None:
    offline, server = _scen(root, "Offline"), _scen(root, "Server")
    if fault == "missing-scenario":
        shutil.rmtree(offline)
    elif fault == "short-run":
        _edit(server / DETAIL, '"value": 600000,', '"value": 60000,')
    elif fault == "sample-count":
        _edit(server / DETAIL, '"key": "effective_performance_sample_count", "value": 13368', '"key": "x", "value": 0')
        _edit(server / DETAIL, '"key": "x", "value": 0', '"key": "effective_performance_sample_count", "value": 510')
    elif fault == "coverage":
        _edit(
            offline / "accuracy/mlperf_log_detail.txt",
            '"qsl_reported_total_count", "value": 13368',
            '"qsl_reported_total_count", "value": 510',
        )
    elif fault == "blank-system-field":
        _edit_system(root, lambda d: d.update(cooling=""))
    elif fault == "missing-system-field":
        _edit_system(root, lambda d: d.pop("host_storage_type"))
    elif fault == "no-code-folder":
        shutil.rmtree(root / "closed" / SUBMITTER / "src")
    elif fault == "missing-compliance":
        (server / "TEST06" / "verify_accuracy.txt").unlink()
    elif fault == "other-round-seed":
        _edit(server / DETAIL, str(V61["schedule_rng_seed"]), str(V60["schedule_rng_seed"]))
    elif fault == "offline-samples":
        _edit(
            offline / DETAIL,
            '"effective_samples_per_query", "value": 13368',
            '"effective_samples_per_query", "value": 660',
        )
    elif fault == "empty-user-conf":
        (server / "user.conf").write_text("")
    elif fault == "measurements-field":
        _edit(offline / "measurements.json", '"retraining": "No"', '"retraining": ""')
    elif fault == "system-division":
        _edit_system(root, lambda d: d.update(division="open"))
    elif fault == "system-status":
        _edit_system(root, lambda d: d.update(status="coming soon"))
    elif fault == "system-type":
        _edit_system(root, lambda d: d.update(system_type="cloud"))
    elif fault == "system-submitter":
        _edit_system(root, lambda d: d.update(submitter="someone-else"))
    elif fault == "unknown-scenario":
        shutil.copytree(offline, offline.parent / "SingleStream")
    elif fault == "accuracy":
        _edit(server / "accuracy/accuracy.txt", "'rouge2': 22.11", "'rouge2': 12.5")
    elif fault == "early-stopping":
        _edit(server / DETAIL, '"early_stopping_met", "value": true', '"early_stopping_met", "value": false')


@pytest.mark.parametrize(
    ("fault", "code", "where"),
    [
        ("missing-scenario", "required-scenario", f"{BENCH}"),
        ("short-run", "min-duration", f"Server/{DETAIL}"),
        ("sample-count", "performance-sample-count", f"Server/{DETAIL}"),
        ("coverage", "accuracy-coverage", "Offline/accuracy/mlperf_log_detail.txt"),
        ("blank-system-field", "system-field", f"systems/{SYSTEM}.json"),
        ("missing-system-field", "system-field", f"systems/{SYSTEM}.json"),
        ("no-code-folder", "code-folder", f"closed/{SUBMITTER}/src"),
        ("missing-compliance", "missing-file", "Server/TEST06/verify_accuracy.txt"),
        ("other-round-seed", "seeds", f"Server/{DETAIL}"),
        ("offline-samples", "offline-samples", f"Offline/{DETAIL}"),
        ("empty-user-conf", "empty-file", "Server/user.conf"),
        ("measurements-field", "measurements-field", "Offline/measurements.json"),
        ("system-division", "system-division", f"systems/{SYSTEM}.json"),
        ("system-status", "system-status", f"systems/{SYSTEM}.json"),
        ("early-stopping", "early-stopping", f"Server/{DETAIL}"),
        ("accuracy", "accuracy-target", "Server/accuracy/accuracy.txt"),
        ("system-type", "system-type", f"systems/{SYSTEM}.json"),
        ("system-submitter", "system-submitter", f"systems/{SYSTEM}.json"),
        ("unknown-scenario", "unknown-scenario", f"{BENCH}"),
    ],
)
def test_each_planted_fault_is_found_once_by_name(
    clean: Path, tmp_path: Path, fault: str, code: str, where: str
) -> None:
    root = Path(shutil.copytree(clean, tmp_path / "tree"))
    _plant(root, fault)
    findings = check_submission(root, version="v6.1").findings
    assert [(f.code, f.path.endswith(where)) for f in findings] == [(code, True)], [f.line for f in findings]


def test_the_messages_name_the_rule(clean: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(clean, tmp_path / "tree"))
    _plant(root, "blank-system-field")
    _plant(root, "coverage")
    _plant(root, "missing-scenario")
    lines = [f.line for f in check_submission(root, version="v6.1").findings]
    assert f"[system-field] closed/{SUBMITTER}/systems/{SYSTEM}.json: 1 required field(s) blank: cooling" in lines
    assert any(ln.startswith("[required-scenario]") and "datacenter needs Offline" in ln for ln in lines), lines


def test_a_network_system_that_says_it_is_not_one_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, "network")
    path = _system(root, "network")
    path.write_text(path.read_text().replace('"is_network": "true"', '"is_network": "false"'))
    findings = check_submission(root, version="v6.1").findings
    assert [(f.code, f.path) for f in findings] == [("network-mode", f"network/{SUBMITTER}/systems/{SYSTEM}.json")]


def test_a_benchmark_mlperf_does_not_know_is_named(clean: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(clean, tmp_path / "tree"))
    _scen(root, "Offline").parent.rename(_scen(root, "Offline").parent.parent / "embedded")
    found = [f for f in check_submission(root, version="v6.1").findings if f.code == "benchmark"]
    assert [f.path for f in found] == [f"closed/{SUBMITTER}/results/{SYSTEM}/embedded"]
    assert "not an MLPerf benchmark" in found[0].message

"""The gate on runs beside LoadGen (``--load``), from real runs against the spawned sim.

An SLO bounds dispatch lag, session latency, TTFT by turn and the prefix-cache hit fraction; a run whose
client fell behind its schedule fails every gate with the figure (planted: the same run directory passes
with the flag cleared); the gate finds a load run's reports and names what is missing without pointing at
LoadGen-only commands.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from accuracy import AccuracyReport
from cli import main
from gate import GateInputs, SloError, SloSpec, evaluate_slo, load_slo
from loadgen_harness import load_results
from tests.load_runs import load_run, plant_lag, sessions_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("load-gate")
    return {"sessions": sessions_run(out, "sess"), "concurrency": load_run(out, "conc", "concurrency:2")}


def _slo(tmp: Path, name: str = "slo.yaml", **objectives: Any) -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump({"name": "load", **objectives}))
    return p


def _gate(run_dir: Path, slo: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    report = run_dir.parent / f"gate-{slo.stem}.json"
    code = main(["gate", str(run_dir), "--slo", str(slo), "--json", str(report), "--junit",
                 str(report.with_suffix(".xml")), "--no-record", *extra])  # fmt: skip
    return code, json.loads(report.read_text())


def _lines(report: dict[str, Any]) -> dict[str, str]:
    return {o["name"]: o["line"] for o in report["objectives"]}


def test_client_limited_run_fails_every_gate_and_passes_with_the_flag_cleared(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "Concurrency" / "performance"
    shutil.copytree(runs["concurrency"], d)
    # require_valid off: the client's lateness fails the gate by itself, not through the run's verdict.
    slo = _slo(tmp_path, require_valid=False, ttft_ms={"p99": 60000}, max_error_rate=0.0)
    plant_lag(d, p99_ms=50.0, bound_ms=10.0)
    code, report = _gate(d, slo)
    assert code == 1 and report["passed"] is False
    line = _lines(report)["client_on_schedule"]
    assert "client-limited: dispatch lag p99 50 ms > 10 ms bound" in line
    assert line in capsys.readouterr().out  # the violation is printed, not only written
    plant_lag(d, p99_ms=1.0, bound_ms=10.0)  # the same run, its client on schedule
    code, report = _gate(d, slo)
    assert code == 0 and report["passed"] is True
    assert "dispatch lag p99 1 ms <= 10 ms bound" in _lines(report)["client_on_schedule"]


def test_require_valid_states_the_load_runs_basis_and_the_client_limited_reason(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    d = tmp_path / "Concurrency" / "performance"
    shutil.copytree(runs["concurrency"], d)
    res = plant_lag(d, p99_ms=80.0)
    code, report = _gate(d, _slo(tmp_path, require_valid=True))
    line = _lines(report)["result_valid"]
    assert code == 1 and "result INVALID (not a LoadGen verdict:" in line and "LoadGen result" not in line
    assert "client-limited: dispatch lag p99 80 ms > 10 ms" in line
    assert res.load is not None and res.load.validity_basis in line


def test_an_slo_bounds_dispatch_lag_sessions_turns_and_cache_hits(runs: dict[str, Path], tmp_path: Path) -> None:
    d = runs["sessions"]
    res = load_results(d)
    assert res.sessions is not None and res.prefix_cache is not None and res.dispatch_lag is not None
    loose = _slo(
        tmp_path,
        "loose.yaml",
        require_valid=False,
        dispatch_lag_ms={"p50": 5000, "p99": 5000, "max": 10000},
        session_latency_ms={"p50": 60000, "p99": 60000},
        turn_ttft_ms={"p50": 30000, "p99": 30000},
        min_prefix_cache_hit_fraction=0.01,
    )
    code, report = _gate(d, loose)
    lines = _lines(report)
    assert code == 0, lines
    assert {"dispatch_lag_p50", "dispatch_lag_p99", "dispatch_lag_max", "session_latency_p50",
            "session_latency_p99", "turn_ttft_p50", "turn_ttft_p99", "prefix_cache_hit_fraction",
            "client_on_schedule"} <= set(lines)  # fmt: skip
    worst = max(res.sessions.turns, key=lambda t: t.ttft_ms.p99 or 0.0)
    assert f"turn_ttft_p99 (worst: turn {worst.turn})" in lines["turn_ttft_p99"]
    by_name = {o["name"]: o for o in report["objectives"]}
    assert by_name["session_latency_p99"]["value"] == res.sessions.session_latency_ms.p99
    assert by_name["prefix_cache_hit_fraction"]["value"] == res.prefix_cache.hit_fraction
    tight = _slo(
        tmp_path,
        "tight.yaml",
        require_valid=False,
        session_latency_ms={"p99": 0.001},
        turn_ttft_ms={"p99": 0.001},
        min_prefix_cache_hit_fraction=1.0,
    )
    code, report = _gate(d, tight)
    lines = _lines(report)
    assert code == 1
    assert "session_latency_p99" in lines["session_latency_p99"] and "limit: over by" in lines["session_latency_p99"]
    assert "limit: over by" in lines["turn_ttft_p99"]
    assert "< 1.00 minimum" in lines["prefix_cache_hit_fraction"]


def test_load_objectives_on_a_run_without_those_figures_fail_by_name(runs: dict[str, Path]) -> None:
    slo = SloSpec.model_validate({"turn_ttft_ms": {"p99": 100}, "dispatch_lag_ms": {"p99": 5}, "require_valid": False})
    conc = evaluate_slo(slo, GateInputs(results=load_results(runs["concurrency"])))
    lines = {o.name: o.line for o in conc.objectives}
    assert "no session figures in the results" in lines["turn_ttft_p99"]
    loadgen = load_results(runs["concurrency"]).model_copy(
        update={"scenario": "Server", "load": None, "dispatch_lag": None, "sessions": None, "prefix_cache": None}
    )
    report = evaluate_slo(slo, GateInputs(results=loadgen))
    lines = {o.name: o.line for o in report.objectives}
    assert "no dispatch lag in the results" in lines["dispatch_lag_p99"]
    assert "client_on_schedule" not in lines  # LoadGen's own client: nothing to check


def test_dispatch_lag_limits_name_only_what_is_recorded(tmp_path: Path) -> None:
    with pytest.raises(SloError, match=r"dispatch_lag_ms\.p90"):
        load_slo(_slo(tmp_path, dispatch_lag_ms={"p90": 5}))


def test_missing_reports_of_a_load_run_point_at_loadgen_runs_not_its_own_scenario(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    d = runs["concurrency"]
    slo = _slo(
        tmp_path,
        require_valid=False,
        compliance_must_pass=["TEST06", "context"],
        accuracy=[{"metric": "rougeL", "min_value": 40}],
    )
    _, report = _gate(d, slo)
    lines = _lines(report)
    for name in ("compliance_TEST06", "accuracy_rougeL"):
        assert "--scenario Concurrency" not in lines[name]
    assert "TEST06 is a LoadGen pass" in lines["compliance_TEST06"]
    assert "give --accuracy PATH" in lines["accuracy_rougeL"]
    # The context probe needs no LoadGen scenario: its command is given as for any run.
    assert "lpuperf compliance context --out" in lines["compliance_context"]
    # A report that is there is found next to the load run (its scenario directory) as next to any other run.
    copy = tmp_path / "found" / "conc" / "Concurrency" / "performance"
    shutil.copytree(d, copy)
    (copy.parent / "accuracy.json").write_text(AccuracyReport(scores_percent={"rougeL": 44.0}).model_dump_json())
    _, report = _gate(copy, slo)
    assert "accuracy_rougeL 44.0 >= 40.0 minimum" in _lines(report)["accuracy_rougeL"]

"""Energy objectives in the SLO gate: each passes on a clean run, fails on a planted fault, and a run that
measured no energy fails them by name ("no energy measured"), never passes them silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cli import main
from gate import GateInputs, SloSpec, evaluate_slo, load_slo
from loadgen_harness import EnergyStats, RunResult

ENERGY_SLO = {
    "name": "energy",
    "require_valid": False,
    "max_joules_per_token": 0.5,
    "min_tokens_per_joule": 2.0,
    "max_joules_per_query": 30.0,
    "max_average_watts": 1500.0,
    "min_qps_per_watt": 0.02,
}


def _energy(**over: Any) -> dict[str, Any]:
    # 40 qps of 50 tokens each at 900 W: 22.5 J a query, 0.45 J a token; a clean run inside every limit.
    base: dict[str, Any] = {
        "source": "sim", "window_s": 60.0, "joules": 54000.0, "average_watts": 900.0, "n_queries": 2400,
        "output_tokens": 120000, "joules_per_query": 22.5, "joules_per_token": 0.45, "tokens_per_joule": 2.222,
        "queries_per_second_per_watt": 0.0444,
    }  # fmt: skip
    base.update(over)
    return base


def _results(energy: dict[str, Any] | None) -> RunResult:
    return RunResult(
        run_id="r1", scenario="Server", mode="performance", benchmark="embedded", preset="quick", valid=True,
        completed_qps=40.0, tokens_per_second=2000.0, n_queries=2400,
        energy=None if energy is None else EnergyStats.model_validate(energy),
    )  # fmt: skip


def _gate(energy: dict[str, Any] | None) -> dict[str, Any]:
    report = evaluate_slo(SloSpec.model_validate(ENERGY_SLO), GateInputs(results=_results(energy)))
    return {o.name: o for o in report.objectives} | {"__passed": report.passed}


def test_a_clean_run_meets_every_energy_objective() -> None:
    out = _gate(_energy())
    assert out.pop("__passed") is True and len(out) == 5
    assert (
        out["joules_per_token"].line
        == "joules_per_token 0.45 J/token <= 0.5 J/token limit: margin 0.05 J/token (10.0%)"
    )


@pytest.mark.parametrize(
    ("planted", "name"),
    [
        ({"joules_per_token": 0.62}, "joules_per_token"),
        ({"tokens_per_joule": 1.6}, "tokens_per_joule"),
        ({"joules_per_query": 31.0}, "joules_per_query"),
        ({"average_watts": 1800.0}, "average_watts"),
        ({"queries_per_second_per_watt": 0.015}, "qps_per_watt"),
    ],
)
def test_each_energy_objective_fails_on_a_planted_fault(planted: dict[str, Any], name: str) -> None:
    out = _gate(_energy(**planted))
    assert out.pop("__passed") is False
    assert [n for n, o in out.items() if not o.passed] == [name]
    assert out[name].margin is not None and out[name].margin < 0


def test_a_run_without_energy_fails_by_name() -> None:
    out = _gate(None)
    assert out.pop("__passed") is False
    assert all(not o.passed and "no energy measured" in o.line for o in out.values()) and len(out) == 5
    # An energy block without a figure (no output in the window) names the figure, not a silent pass.
    gap = _gate(_energy(joules_per_token=None, tokens_per_joule=None))
    assert not gap["joules_per_token"].passed and "has no joules_per_token" in gap["joules_per_token"].line


def test_energy_slo_file_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slo = tmp_path / "energy.yaml"
    slo.write_text("name: energy\nrequire_valid: false\nmax_joules_per_token: 0.5\n")
    assert load_slo(slo).count() == 1
    run = tmp_path / "r1" / "Server" / "performance"
    run.mkdir(parents=True)
    (run / "results.json").write_text(_results(_energy(joules_per_token=0.8)).model_dump_json())
    assert main(["gate", str(run), "--slo", str(slo)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "joules_per_token 0.8 J/token > 0.5 J/token limit: over by 0.3 J/token (60.0%)"
    slo.write_text("name: energy\nmax_joules_per_token: -1\n")
    assert main(["gate", str(run), "--slo", str(slo)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "max_joules_per_token" in err

"""Energy in ``lpuperf compare``: a planted rise in joules per token is a regression with an interval (the
throughput's), a same-energy run is not, average power gets no verdict, and a run without energy is noted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import QUERY_RECORD_DTYPE, EnergyStats, RunResult
from workflows._compare import CompareConfig, RunData, compare_runs, records_samples

FAST = CompareConfig(resamples=300)
TOKENS = 101


def _records(seed: int, n: int = 3000, qps: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rec = np.full(n, -1, dtype=QUERY_RECORD_DTYPE)
    issue = np.cumsum(rng.exponential(1e9 / qps, n)).astype(np.int64)
    rec["sample_index"] = np.arange(n)
    rec["issue_ns"] = issue
    rec["first_token_ns"] = issue + 300_000_000
    rec["done_ns"] = issue + 300_000_000 + 20_000_000 * (TOKENS - 1)
    rec["n_tokens"] = TOKENS
    rec["status"] = 0
    return rec


def _energy(rec: np.ndarray, joules_per_token: float) -> EnergyStats:
    """The energy a SUT spending ``joules_per_token`` on each output token of these records would report."""
    window_s = float(rec["done_ns"].max() - rec["issue_ns"].min()) / 1e9
    tokens = int(rec["n_tokens"].sum())
    joules = joules_per_token * tokens
    return EnergyStats(
        source="sim", window_s=window_s, joules=joules, average_watts=joules / window_s, n_queries=rec.size,
        output_tokens=tokens, joules_per_query=joules / rec.size, joules_per_token=joules_per_token,
        tokens_per_joule=1 / joules_per_token, queries_per_second_per_watt=rec.size / joules,
    )  # fmt: skip


def _run(name: str, seed: int, joules_per_token: float | None) -> tuple[RunData, np.ndarray]:
    rec = _records(seed)
    res = RunResult(
        run_id=name, scenario="Server", mode="performance", benchmark="embedded", preset="quick", valid=True,
        n_queries=rec.size, energy=None if joules_per_token is None else _energy(rec, joules_per_token),
    )  # fmt: skip
    run = RunData(name=name, results=res)
    run.latencies_ms, run.rates = records_samples(rec)
    return run, rec


def test_planted_energy_per_token_rise_is_a_regression_with_an_interval() -> None:
    base, _ = _run("a", 1, 0.50)
    cand, _ = _run("b", 2, 0.65)  # 30 % more energy for every token
    cmp = compare_runs(base, cand, FAST)
    m = {x.name: x for x in cmp.metrics}
    jpt = m["energy.joules_per_token"]
    assert jpt.regression and jpt.direction == "worse" and jpt.change == pytest.approx(0.30)
    assert jpt.ci_low is not None and jpt.ci_high is not None and 0 < jpt.ci_low <= jpt.change <= jpt.ci_high
    assert "joules per token regressed 30%" in jpt.line and "0.5 J/token -> 0.65 J/token" in jpt.line
    assert m["energy.tokens_per_joule"].regression and m["energy.tokens_per_joule"].better == "higher"
    assert m["energy.joules_per_query"].regression and m["energy.qps_per_watt"].regression
    # Power alone says nothing about efficiency: shown, never a verdict.
    watts = m["energy.average_watts"]
    assert watts.direction == "no CI" and not watts.regression
    assert not any("no CI" in n for n in cmp.notes)


def test_same_energy_per_token_is_no_regression() -> None:
    base, _ = _run("a", 1, 0.50)
    cand, _ = _run("b", 2, 0.505)
    m = {x.name: x for x in compare_runs(base, cand, FAST).metrics}
    for name in ("energy.joules_per_token", "energy.tokens_per_joule", "energy.joules_per_query"):
        assert not m[name].regression and m[name].direction == "same", m[name].line
        lo, hi = m[name].ci_low, m[name].ci_high
        assert lo is not None and hi is not None and lo <= m[name].change <= hi  # type: ignore[operator]


def test_energy_for_only_one_run_is_noted_not_compared() -> None:
    base, _ = _run("a", 1, 0.50)
    cand, _ = _run("b", 2, None)
    cmp = compare_runs(base, cand, FAST)
    assert not [x for x in cmp.metrics if x.name.startswith("energy.")]
    assert any("energy measured for only one run (the candidate" in n for n in cmp.notes)


def test_compare_cli_reports_energy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    dirs = []
    for name, seed, jpt in (("a", 1, 0.5), ("b", 2, 0.7)):
        run, rec = _run(name, seed, jpt)
        d = tmp_path / name / "Server" / "performance"
        d.mkdir(parents=True)
        (d / "results.json").write_text(run.results.model_dump_json())
        np.savez(d / "queries.npz", records=rec)
        dirs.append(str(d))
    assert main(["compare", *dirs, "--resamples", "300"]) == 1
    out = capsys.readouterr().out
    assert "joules per token regressed 40%" in out and "REGRESSION" in out

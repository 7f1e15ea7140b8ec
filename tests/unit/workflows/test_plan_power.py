"""Power in ``lpuperf plan``: kW per replica, rack and fleet from measured energy or the manifest's power model,
and racks counted under a power budget (the budget, not the slots, limiting where it feeds fewer replicas)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import QUERY_RECORD_DTYPE, EnergyStats, RunResult
from workflows import PlanConfig, PowerPlanError, format_plan, load_profile, plan_capacity
from workflows._plan_des import round_robin_arrivals, simulate_batcher, simulate_batcher_busy

STEP, BASE, BATCH = 0.008, 0.002, 4
POWER = {"chips": 8, "busy_watts_per_chip": 300.0, "idle_watts_per_chip": 100.0}
N_OUT = 16


def _run_dir(tmp: Path, power: dict[str, float] | None = POWER, energy: EnergyStats | None = None) -> Path:
    """A run directory whose records the batcher's own schedule made (every query 16 tokens, no prompt cost)."""
    n = 300
    arrivals = round_robin_arrivals(10.0, 1, n, seed=2)
    n_out = np.full(n, N_OUT)
    first, done = simulate_batcher(arrivals, np.full(n, BASE), n_out, STEP, BATCH)
    rec = np.full(n, -1, dtype=QUERY_RECORD_DTYPE)
    rec["sample_index"] = 0
    rec["issue_ns"] = (arrivals * 1e9).astype(np.int64)
    rec["first_token_ns"] = (first * 1e9).astype(np.int64)
    rec["done_ns"] = (done * 1e9).astype(np.int64)
    rec["n_tokens"] = n_out
    rec["status"] = 0
    artifact: dict[str, object] = {
        "artifact_id": "power-test",
        "max_batch": BATCH,
        "timing": {"prefill_base_s": BASE, "prefill_per_token_s": 0.0, "decode_step_s": STEP},
    }
    if power is not None:
        artifact["power"] = power
    run = tmp / "run" / "Server" / "performance"
    run.mkdir(parents=True)
    res = RunResult(
        run_id="run", scenario="Server", mode="performance", benchmark="embedded", preset="quick",
        dataset="synthetic:8:4", artifact=artifact, energy=energy,  # type: ignore[arg-type]
    )  # fmt: skip
    (run / "results.json").write_text(res.model_dump_json())
    np.savez(run / "queries.npz", records=rec)
    return run


def _energy(joules_per_token: float) -> EnergyStats:
    return EnergyStats(
        source="sim", window_s=30.0, joules=joules_per_token * 4800, average_watts=joules_per_token * 160,
        n_queries=300, output_tokens=4800, joules_per_token=joules_per_token,
    )  # fmt: skip


def test_des_counts_the_chips_busy_time() -> None:
    # One query: its prefill and its 15 decode steps, nothing else.
    _, done, busy = simulate_batcher_busy(np.array([1.0]), np.array([0.002]), np.array([16]), STEP, 4)
    assert busy == pytest.approx(0.002 + 15 * STEP) and done[0] == pytest.approx(1.0 + busy)
    # Everything queued at once: never idle until the last query is done.
    n = 40
    _, done, busy = simulate_batcher_busy(np.zeros(n), np.full(n, 0.002), np.full(n, 16), STEP, 4)
    assert busy == pytest.approx(float(done.max()))


def test_manifest_power_at_plan_and_at_peak(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    cap = load_profile(run).capacity_qps
    plan = plan_capacity(PlanConfig(run_dir=run, target_qps=2.5 * cap, queries=10000, pue=1.4))
    p = plan.power
    assert p is not None and p.source == "manifest" and p.replicas == plan.replicas == 4
    assert p.replica_kw_at_peak == pytest.approx(8 * 300 / 1000)  # every chip busy
    # A step costs the same however full the batch: the chips are busy at least the offered share of the time.
    busy = plan.at_plan.busy_fraction
    assert p.busy_fraction_at_plan == busy and plan.at_plan.utilisation <= busy < 1.0
    assert p.replica_kw_at_plan == pytest.approx(8 * (100 + busy * 200) / 1000, abs=1e-4)
    assert p.fleet_it_kw_at_plan == pytest.approx(4 * p.replica_kw_at_plan, abs=1e-3)
    assert p.facility_kw_at_peak == pytest.approx(1.4 * 4 * 2.4, abs=1e-3)
    # A lighter load keeps the chips idle longer: less power per replica.
    light = plan_capacity(PlanConfig(run_dir=run, target_qps=0.2 * cap, queries=10000))
    assert light.power is not None and light.power.replica_kw_at_plan < p.replica_kw_at_plan
    text = format_plan(plan)
    assert "power (manifest)" in text and "2.4 kW at peak" in text and "PUE 1.4" in text


def test_measured_energy_per_token_wins_over_the_manifest(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, energy=_energy(0.5))
    cap = load_profile(run).capacity_qps
    cfg = PlanConfig(run_dir=run, target_qps=2.5 * cap, queries=10000)
    p = plan_capacity(cfg).power
    assert p is not None and p.source == "measured" and p.joules_per_token == 0.5
    # 0.5 J per token x the tokens a replica serves: a quarter of the target each (N+1 of 3).
    assert p.replica_kw_at_plan == pytest.approx(0.5 * 2.5 * cap / 4 * N_OUT / 1000, rel=1e-3)
    assert p.replica_kw_at_peak == pytest.approx(0.5 * cap * N_OUT / 1000, rel=1e-3)
    forced = plan_capacity(cfg.model_copy(update={"power_source": "manifest"})).power
    assert forced is not None and forced.source == "manifest"
    with pytest.raises(PowerPlanError, match="no energy block"):
        plan_capacity(PlanConfig(run_dir=_run_dir(tmp_path / "b"), target_qps=cap, power_source="measured"))


def test_measured_power_keeps_the_manifests_idle_floor(tmp_path: Path) -> None:
    # 1200 W a replica at 160 output tokens/s (7.5 J a token); the manifest's 8 chips idle at 800 W in all.
    energy = EnergyStats(
        source="sim", window_s=30.0, joules=36000.0, average_watts=1200.0, n_queries=300, output_tokens=4800,
        joules_per_token=7.5,
    )  # fmt: skip
    run = _run_dir(tmp_path, energy=energy)
    cap = load_profile(run).capacity_qps
    p = plan_capacity(PlanConfig(run_dir=run, target_qps=0.2 * cap, queries=10000)).power
    assert p is not None and p.source == "measured" and p.marginal_joules_per_token == pytest.approx(2.5)
    tokens_per_s = 0.2 * cap / p.replicas * N_OUT
    assert p.replica_kw_at_plan == pytest.approx((800 + 2.5 * tokens_per_s) / 1000, rel=1e-3)
    assert p.replica_kw_at_peak == pytest.approx((800 + 2.5 * cap * N_OUT) / 1000, rel=1e-3)
    # Charging every joule to the tokens would put a lightly loaded replica below its own idle draw.
    assert 7.5 * tokens_per_s / 1000 < 0.8 < p.replica_kw_at_plan
    assert "idle 800 W plus 2.5 J per output token" in p.basis


def test_measured_power_never_exceeds_every_chip_busy(tmp_path: Path) -> None:
    # 2300 W a replica at 160 tokens/s: 9.4 J a token over the 800 W idle floor. Extrapolated linearly to a
    # full batch that is far past what 8 chips at 300 W can draw; the manifest's 2400 W bounds it.
    energy = EnergyStats(
        source="sim", window_s=30.0, joules=69000.0, average_watts=2300.0, n_queries=300, output_tokens=4800,
        joules_per_token=14.375,
    )  # fmt: skip
    run = _run_dir(tmp_path, energy=energy)
    cap = load_profile(run).capacity_qps
    p = plan_capacity(PlanConfig(run_dir=run, target_qps=2.5 * cap, queries=10000)).power
    assert p is not None and p.source == "measured"
    assert p.replica_kw_at_peak == pytest.approx(2.4) and p.replica_kw_at_plan <= 2.4
    assert "capped at the manifest's all-chips-busy 2400 W" in p.basis
    assert "extrapolated from 160 to" in p.basis


def test_the_rack_budget_not_the_slots_limits_replicas_per_rack(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    cap = load_profile(run).capacity_qps
    cfg = PlanConfig(run_dir=run, target_qps=2.5 * cap, queries=10000, replicas_per_rack=4)
    by_slots = plan_capacity(cfg.model_copy(update={"rack_kw": 10.0}))  # feeds 4 replicas at 2.4 kW
    assert by_slots.power is not None and by_slots.power.rack_limit == "slots"
    assert by_slots.racks == 1 and by_slots.power.replicas_per_rack == 4
    assert "its 4 slots limit it" in format_plan(by_slots)
    # A 5 kW budget feeds only 2 replicas at peak: twice the racks the slots alone would need.
    by_power = plan_capacity(cfg.model_copy(update={"rack_kw": 5.0}))
    p = by_power.power
    assert p is not None and p.rack_limit == "power" and p.replicas_per_rack_by_power == 2
    assert by_power.racks == p.racks == 2 and p.rack_kw_at_peak == pytest.approx(4.8)
    assert "5 kW budget, not its slots, limits it to 2 replicas" in format_plan(by_power)
    # Without slots the budget alone sets replicas per rack.
    budget_only = plan_capacity(cfg.model_copy(update={"rack_kw": 5.0, "replicas_per_rack": None})).power
    assert budget_only is not None and budget_only.replicas_per_rack == 2 and budget_only.racks == 2
    assert budget_only.rack_limit == "power" and budget_only.replicas_per_rack_by_slots is None
    with pytest.raises(PowerPlanError, match="over the rack's budget"):
        plan_capacity(cfg.model_copy(update={"rack_kw": 2.0}))


def test_no_power_source(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, power=None)
    cap = load_profile(run).capacity_qps
    plan = plan_capacity(PlanConfig(run_dir=run, target_qps=cap, queries=10000))
    assert plan.power is None and "power" not in format_plan(plan)
    with pytest.raises(PowerPlanError, match="--rack-kw: the run measured no energy"):
        plan_capacity(PlanConfig(run_dir=run, target_qps=cap, queries=10000, rack_kw=20.0))


def test_plan_cli_power_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import main

    run = _run_dir(tmp_path)
    args = ["plan", str(run), "--qps", "40", "--queries", "10000", "--replicas-per-rack", "4", "--rack-kw", "5"]
    assert main([*args, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["power"]["rack_limit"] == "power" and plan["racks"] == plan["power"]["racks"]
    for bad, needle in (
        (["--pue", "0.5"], "--pue"),
        (["--rack-kw", "-1"], "--rack-kw"),
        (["--rack-kw", "1"], "budget"),
    ):
        assert main([*args, *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err

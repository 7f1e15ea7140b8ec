"""``lpuperf plan`` from a real one-replica run of a sim whose capacity is known analytically.

The run is short (a few seconds at moderate load): the plan needs the artifact's schedule and the
query mix, not a saturated SUT. Its predicted highest VALID rate for 1, 2 and 3 replicas must be within
10 % of the analytic capacity of that many replicas (the TTFT limit of 500 ms is loose for 70 ms
queries, so the peak sits just under capacity); a wrong batch size (a planted fault) misses by more.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DATASET = "synthetic:512:0"
MAX_NEW = 16


def test_plan_predicts_the_analytic_sim_within_10_percent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sut
    from cli import main
    from scenarios import resolve_dataset
    from workflows import load_profile, max_valid_qps
    from workflows._plan import Limits

    manifest = sut.ArtifactManifest(
        artifact_id="sim-plan-test",
        backend="sim",
        model="embedded-sim",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=8,
        timing=sut.TimingModel(prefill_base_s=0.002, prefill_per_token_s=0.000002, decode_step_s=0.004),
        target="sim-lpu",
        power=sut.PowerModel(chips=4, busy_watts_per_chip=250.0, idle_watts_per_chip=50.0),
    )
    path = tmp_path / "artifact.json"
    path.write_text(manifest.model_dump_json())
    run = ["run", "--artifact", str(path), "--dataset", DATASET, "--max-new-tokens", str(MAX_NEW)]
    assert main([*run, "--qps", "30", "--duration", "6", "--out", str(tmp_path), "--run-id", "one"]) in (0, 1)
    run_dir = tmp_path / "one" / "Server" / "performance"
    capacity = sut.analytic_capacity_qps(manifest, resolve_dataset(DATASET), MAX_NEW)
    capsys.readouterr()
    # 4 chips at 250 W busy: 1 kW a replica at peak, so a 2.5 kW rack feeds 2 of its 4 slots.
    power = ["--replicas-per-rack", "4", "--rack-kw", "2.5"]
    assert main(["plan", str(run_dir), "--qps", str(round(2.5 * capacity, 1)), *power]) == 0
    out = capsys.readouterr().out
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["service"]["source"] == "manifest", out
    assert plan["service"]["capacity_qps_per_replica"] == pytest.approx(capacity, rel=0.03), out
    assert plan["replicas_for_slo"] == 3 and plan["replicas"] == 4, out  # 2 would be 125 % utilised; N+1
    assert plan["power"]["source"] == "manifest" and plan["power"]["replica_kw_at_peak"] == pytest.approx(1.0)
    assert plan["power"]["rack_limit"] == "power" and plan["racks"] == 2, out
    # A step costs the same however full its batch: at 62 % utilisation the chips are busy nearly all the time.
    busy = plan["at_plan"]["busy_fraction"]
    assert plan["at_plan"]["utilisation"] <= busy <= 1.0 and "not its slots" in out
    assert plan["power"]["replica_kw_at_plan"] == pytest.approx(4 * (50 + busy * 200) / 1000, abs=1e-3)
    assert (run_dir / "plan.svg").read_text().startswith("<svg")
    assert "queueing, not jitter, sets the tail" in out
    limits = Limits(ttft_ms={"p99": 500.0}, tpot_ms={"p99": 50.0})
    profile = load_profile(run_dir)
    for replicas in (1, 2, 3):
        predicted = max_valid_qps(profile, replicas, limits)
        error = predicted / (replicas * capacity) - 1
        print(
            f"{replicas} replica(s): predicted {predicted:.1f} qps, analytic {replicas * capacity:.1f} ({error:+.1%})"
        )
        assert abs(error) <= 0.10
    wrong = load_profile(run_dir, max_batch=4)  # planted fault: half the batch the artifact states
    assert abs(max_valid_qps(wrong, 1, limits) / capacity - 1) > 0.10

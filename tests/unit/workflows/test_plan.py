"""``lpuperf plan`` on run directories whose records come from the sim's own schedule (the DES), so the
right answers are known: the replica count, the redundancy, chips and racks, the fitted schedule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import QUERY_RECORD_DTYPE, RunResult
from workflows import PlanConfig, PlanError, load_profile, plan_capacity
from workflows._plan_des import round_robin_arrivals, simulate_batcher

STEP = 0.008
BASE = 0.002
PER_TOKEN = 0.000002
BATCH = 4
DATASET = "synthetic:64:4"


def _run_dir(tmp: Path, qps: float = 10.0, n: int = 400, timing: bool = True) -> Path:
    """A run directory as lpuperf run writes it, its records produced by the batcher's schedule at ``qps``."""
    from scenarios import resolve_dataset

    ds = resolve_dataset(DATASET)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(ds), n)
    prompts = np.array([ds.input_ids[i].size for i in idx])
    n_out = np.array([min(16, ds.reference_ids[i].size) for i in idx])
    arrivals = round_robin_arrivals(qps, 1, n, seed=2)
    first, done = simulate_batcher(arrivals, BASE + PER_TOKEN * prompts, n_out, STEP, BATCH)
    rec = np.full(n, -1, dtype=QUERY_RECORD_DTYPE)
    net = 0.003  # the harness sees everything 3 ms later than the SUT
    to_ns = 1e9
    rec["sample_index"] = idx
    rec["issue_ns"] = (arrivals * to_ns).astype(np.int64)
    rec["first_token_ns"] = ((first + net) * to_ns).astype(np.int64)
    rec["done_ns"] = ((done + net) * to_ns).astype(np.int64)
    rec["n_tokens"] = n_out
    rec["status"] = 0
    rec["sut_arrival_ns"] = (arrivals * to_ns).astype(np.int64) + 1_000_000_000  # another clock
    rec["sut_first_token_ns"] = (first * to_ns).astype(np.int64) + 1_000_000_000
    rec["sut_last_token_ns"] = (done * to_ns).astype(np.int64) + 1_000_000_000
    rec["replica"] = 0
    artifact: dict[str, object] = {"artifact_id": "plan-test", "max_batch": BATCH}
    if timing:
        artifact["timing"] = {"prefill_base_s": BASE, "prefill_per_token_s": PER_TOKEN, "decode_step_s": STEP}
    run = tmp / "run" / "Server" / "performance"
    run.mkdir(parents=True)
    res = RunResult(
        run_id="run", scenario="Server", mode="performance", benchmark="embedded", preset="quick",
        dataset=DATASET, artifact=artifact,  # type: ignore[arg-type]
    )  # fmt: skip
    (run / "results.json").write_text(res.model_dump_json())
    np.savez(run / "queries.npz", records=rec)
    return run


def test_plan_from_the_manifest_schedule(tmp_path: Path) -> None:
    from workflows import format_plan, write_plan

    run = _run_dir(tmp_path)
    profile = load_profile(run)
    assert profile.source == "manifest" and profile.max_batch == BATCH and profile.decode_step_s == STEP
    assert profile.overhead_ttft_s == pytest.approx(0.003, abs=1e-6)
    cap = profile.capacity_qps  # ~4 / (15 * 8 ms + 4 * 2.7 ms): about 30 qps a replica
    plan = plan_capacity(
        PlanConfig(run_dir=run, target_qps=2.5 * cap, chips_per_replica=8, replicas_per_rack=3, queries=10000)
    )
    # 2 replicas would be 125 % utilised; 3 are at 83 % and meet 500 ms; N+1 makes 4.
    assert plan.replicas_for_slo == 3 and plan.replicas == 4 and plan.spare_replicas == 1
    assert plan.chips == 32 and plan.racks == 2
    assert plan.degraded.replicas == 3 and plan.degraded.meets_slo
    assert plan.at_plan.replicas == 4 and plan.at_plan.utilisation == pytest.approx(2.5 / 4, rel=1e-3)
    assert plan.max_valid_qps > plan.target_qps and plan.headroom == pytest.approx(
        plan.max_valid_qps / plan.target_qps - 1, abs=1e-3
    )
    curve = {p.replicas: p for p in plan.curve}
    assert not curve[2].stable and curve[3].meets_slo
    assert curve[3].ttft_ms["p99"] > curve[4].ttft_ms["p99"] > curve[5].ttft_ms["p99"]  # more replicas, shorter queue
    text = format_plan(plan)
    assert "queueing, not jitter, sets the tail" in text and "4 replicas for" in text and "32 chips" in text
    json_path, svg_path = write_plan(plan, tmp_path / "out")
    assert json.loads(json_path.read_text())["replicas"] == 4
    svg = svg_path.read_text()
    assert svg.startswith("<svg") and 'data-series="predicted TTFT p99"' in svg and "limit 500" in svg


def test_redundancy_rule_and_limits(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    cap = load_profile(run).capacity_qps
    base = {"run_dir": run, "target_qps": 1.5 * cap, "queries": 10000}
    n0 = plan_capacity(PlanConfig(**base, redundancy="N+0"))
    n2 = plan_capacity(PlanConfig(**base, redundancy="N+2"))
    assert n2.replicas == n0.replicas + 2 and n0.replicas == n0.replicas_for_slo
    # A tighter TTFT limit needs more replicas; the command line wins over the benchmark's limits.
    tight = plan_capacity(PlanConfig(**base, ttft_ms=80.0))
    assert tight.limits.source == "command line" and tight.replicas_for_slo > n0.replicas_for_slo
    slo = tmp_path / "slo.yaml"
    slo.write_text("name: tight\nttft_ms: {p99: 80}\n")
    assert plan_capacity(PlanConfig(**base, slo=str(slo))).replicas_for_slo == tight.replicas_for_slo
    slo.write_text("name: none\nmax_error_rate: 0\n")
    with pytest.raises(PlanError, match="states no TTFT or TPOT limit"):
        plan_capacity(PlanConfig(**base, slo=str(slo)))
    with pytest.raises(PlanError, match="needs more than 2 replicas"):
        plan_capacity(PlanConfig(**{**base, "target_qps": 5 * cap}, max_replicas=2))


def test_schedule_fitted_from_records_when_the_manifest_states_none(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, qps=5.0, timing=False)
    profile = load_profile(run)
    assert profile.source == "records" and "fitted" in profile.note
    assert profile.decode_step_s == pytest.approx(STEP, rel=0.05)
    true_cap = load_profile(_run_dir(tmp_path / "b", qps=5.0)).capacity_qps
    assert profile.capacity_qps == pytest.approx(true_cap, rel=0.10)
    with pytest.raises(PlanError, match="no timing"):
        load_profile(run, service="manifest")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--qps", "10"], "no results.json"),
        (["--qps", "0", "RUN"], "--qps"),
        (["--qps", "10", "--redundancy", "2N", "RUN"], "--redundancy"),
        (["--qps", "10", "--slo", "/nonexistent/slo.yaml", "RUN"], "slo"),
    ],
)
def test_bad_plan_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    from cli import main

    run = _run_dir(tmp_path)
    args = [str(run) if a == "RUN" else a for a in argv]
    if "RUN" not in argv:
        args.append(str(tmp_path / "missing"))
    assert main(["plan", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_loadgen_early_stopping_share() -> None:
    from workflows._plan import loadgen_allowed_share

    # LoadGen says a p99 verdict needs at least 459 queries even when none is over the limit.
    assert loadgen_allowed_share(0.99, 458) == -1.0 and loadgen_allowed_share(0.99, 459) == 0.0
    assert loadgen_allowed_share(0.99, 800) * 800 == 1  # a short run tolerates far less than 1 % over
    long = loadgen_allowed_share(0.99, 1_000_000)
    assert 0.0097 < long < 0.01  # a long run: nearly the percentile itself


def test_short_loadgen_runs_carry_less_than_the_steady_state_percentile(tmp_path: Path) -> None:
    from workflows import max_valid_qps
    from workflows._plan import Limits

    profile = load_profile(_run_dir(tmp_path))
    limits = Limits(ttft_ms={"p99": 300.0})
    steady = max_valid_qps(profile, 1, limits, queries=10000)
    short = max_valid_qps(profile, 1, limits, queries=10000, loadgen_queries=800)
    long = max_valid_qps(profile, 1, limits, queries=10000, loadgen_queries=200_000)
    assert short < 0.97 * steady and long == pytest.approx(steady, rel=0.02)
    assert max_valid_qps(profile, 1, limits, queries=10000, loadgen_queries=400) == 0.0  # too short to be VALID


def _reasoning_run(tmp: Path, scale: float | None, reasoning_tokens: int = 12) -> Path:
    """The plan's test run with every query's first ``reasoning_tokens`` tokens reasoning; a sim that scaled
    its reasoning by ``scale`` (None: not scaled) says so in its manifest."""
    run = _run_dir(tmp)
    rec = np.load(run / "queries.npz")["records"]
    rec["n_reasoning"] = np.minimum(reasoning_tokens, rec["n_tokens"] - 2)
    rec["first_answer_ns"] = rec["first_token_ns"] + rec["n_reasoning"] * int(STEP * 1e9)
    np.savez(run / "queries.npz", records=rec)
    if scale is not None:
        res = RunResult.model_validate_json((run / "results.json").read_text())
        res.artifact["reasoning"] = {"style": "think", "reasoning_scale": scale, "benchmark": "deepseek-r1"}
        (run / "results.json").write_text(res.model_dump_json())
    return run


def test_reasoning_runs_plan_ttfa_and_a_scaled_run_at_full_length(tmp_path: Path) -> None:
    plain = load_profile(_reasoning_run(tmp_path / "a", None))
    scaled = load_profile(_reasoning_run(tmp_path / "b", 0.25))
    assert plain.n_reasoning is not None and scaled.n_reasoning is not None
    # The same records, planned at the benchmark's length: four times the reasoning, the answers kept.
    assert np.array_equal(scaled.n_reasoning, plain.n_reasoning * 4)
    assert np.array_equal(scaled.n_out - scaled.n_reasoning, plain.n_out - plain.n_reasoning)
    assert "planned at full length" in scaled.note and scaled.capacity_qps < plain.capacity_qps
    cfg = PlanConfig(run_dir=_reasoning_run(tmp_path / "c", None), target_qps=20.0, ttfa_ms=1000.0, queries=10000)
    plan = plan_capacity(cfg)
    p99 = plan.at_plan.ttfa_ms["p99"]
    assert p99 is not None and p99 <= 1000.0 and plan.limits.ttfa_ms == {"p99": 1000.0}
    # TTFA is TTFT plus the reasoning at one token a decode step, never less.
    assert p99 >= plan.at_plan.ttft_ms["p99"]
    # A TTFA limit no replica count can meet (below the reasoning's own duration) is refused, by the plan.
    with pytest.raises(PlanError, match="idle replica misses"):
        plan_capacity(cfg.model_copy(update={"ttfa_ms": 50.0}))


def test_a_ttfa_limit_needs_a_reasoning_run(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="reasoning model"):
        plan_capacity(PlanConfig(run_dir=_run_dir(tmp_path), target_qps=10.0, ttfa_ms=500.0))

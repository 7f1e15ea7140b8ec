"""Every benchmark MLPerf v6.1 added, in each of its MLPerf scenarios, as a real LoadGen run on the embedded sim.

deepseek-r1 and gpt-oss-120b run on the reasoning sim over their packaged sets, with reasoning shortened
to 2 % of the benchmark's length (``reasoning:<model>:0.02``) so a Server run gathers the ~500 queries
LoadGen's early stopping needs in seconds; the llama3.1-8b variants run on the embedded sim. Each run
must be VALID, carry its benchmark's limits, and (for the reasoning models) report reasoning tokens,
answer tokens and the time to the first answer token in results.json, the console summary and
queries.npz. A Server run's rate leaves the sim's batch room, so it holds on a loaded box.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import main
from loadgen_harness import load_query_records, load_results

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCALE = 0.02
# (benchmark, scenario, extra run flags)
CASES = [
    ("deepseek-r1", "Offline", ["--qps", "60", "--duration", "3"]),
    ("deepseek-r1", "Server", ["--qps", "30", "--duration", "20"]),
    ("deepseek-r1", "Interactive", ["--qps", "30", "--duration", "20"]),
    ("deepseek-r1-interactive", "Server", ["--qps", "30", "--duration", "20"]),
    ("gpt-oss-120b", "Offline", ["--qps", "60", "--duration", "3"]),
    ("gpt-oss-120b", "Server", ["--qps", "30", "--duration", "20"]),
    ("gpt-oss-120b", "Interactive", ["--qps", "30", "--duration", "20"]),
    ("gpt-oss-120b-interactive", "Server", ["--qps", "30", "--duration", "20"]),
    ("llama3_1-8b-interactive", "Server", ["--qps", "12", "--duration", "50"]),
    ("llama3_1-8b-edge", "SingleStream", ["--duration", "10"]),
    ("llama3_1-8b-edge", "Offline", ["--qps", "60", "--duration", "3"]),
]


@pytest.mark.parametrize(("benchmark", "scenario", "flags"), CASES, ids=[f"{b}-{s}" for b, s, _ in CASES])
def test_each_v61_benchmark_and_scenario_is_a_valid_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], benchmark: str, scenario: str, flags: list[str]
) -> None:
    from scenarios import get_benchmark

    bench = get_benchmark(benchmark)
    dataset = ["--dataset", f"{bench.dataset}:{SCALE:g}"] if bench.reasoning else []
    argv = ["run", "--benchmark", benchmark, "--scenario", scenario, *flags, *dataset]
    rc = main([*argv, "--out", str(tmp_path), "--run-id", "r", "--no-record"])
    out = capsys.readouterr().out
    run = next(tmp_path.glob(f"r/{scenario}/performance"))
    res = load_results(run)
    assert rc == 0 and res.valid, out
    assert res.benchmark == benchmark and res.n_errors == 0
    limits = bench.limits_for(scenario) if scenario in ("Server", "Interactive") else None
    if limits is not None:  # judged by its benchmark's TTFT/TPOT (Interactive: the -interactive limits)
        assert res.limits is not None and (res.limits.ttft_ms, res.limits.tpot_ms) == limits
    if not bench.reasoning:
        assert res.reasoning is None
        return
    r = res.reasoning
    assert r is not None and r.n_with_reasoning == r.n_queries == res.n_queries
    assert r.reasoning_tokens.mean and r.answer_tokens.mean and r.reasoning_fraction
    assert r.ttfa_ms.p50 is not None and r.n_without_answer == 0
    assert "TTFA" in out and "reasoning tokens mean" in out
    rec = load_query_records(run)
    assert (rec["n_reasoning"] > 0).all() and (rec["first_answer_ns"] > rec["first_token_ns"]).all()
    # The sim says its reasoning was shortened, and the run says so.
    assert any("reasoning_scale" in w for w in res.warnings), res.warnings

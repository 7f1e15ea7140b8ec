"""The load-shape benches measure what they say: a child's own CPU and peak memory from its rusage, a killed
child past its time limit, generated traces that the trace reader accepts with the sharing asked for, the
sustained and kept rules of the capacity ladder, and the peers' closed-loop command lines."""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

from bench.load_capacity import _summary, kept, sustained
from bench.load_common import ChildRun, figures, run_child
from bench.peers import Workload, aiperf_launch, lpuperf_launch, venv_name, vllm_launch
from bench.peers_concurrency import ConcRun, _vllm_prompts
from bench.trace_memory import BLOCK, make_trace
from scenarios import TraceSpec, check_trace, iter_trace

BURN_AND_HOLD = (
    "import time; b = bytearray(120 * 2**20); b[::4096] = b'x' * len(b[::4096]); t = time.process_time()\n"
    "while time.process_time() - t < 0.5: pass\n"
    "time.sleep(0.6)"
)


def test_child_cpu_and_peak_rss_are_the_childs_own() -> None:
    child = run_child([sys.executable, "-c", BURN_AND_HOLD], None, timeout_s=120, rss_every_s=0.1)
    assert child.rc == 0
    assert 0.4 <= child.cpu_s < 30, child.cpu_s  # its 0.5 s of CPU, not this process's
    assert child.maxrss_mb >= 110, child.maxrss_mb  # the 120 MB it touched
    assert max(m for _, m in child.rss_series) >= 100  # the sampler saw it while it held it


def test_a_child_past_its_limit_is_killed() -> None:
    t0 = time.monotonic()
    child = run_child([sys.executable, "-c", "import time; time.sleep(120)"], None, timeout_s=1.0)
    assert child.rc == -9
    assert time.monotonic() - t0 < 60


def test_figures_per_completed_request_and_less_the_fixed_cost() -> None:
    child = ChildRun(rc=0, wall_s=10.0, cpu_s=3.0, maxrss_mb=90.0, server_cpu_s=1.0, load1=(1.0, 2.0))
    child.results = {
        "successful": {"n_queries": 1000, "qps": 99.5, "ttft_ms": {"p50": 1.5}},
        "dispatch_lag": {"p50_ms": 0.1, "p99_ms": 2.0, "max_ms": 5.0},
        "load": {"sent_requests": 1000},
        "n_errors": 0,
        "client_limited": False,
        "overload": None,
    }
    row = figures(child, fixed_cpu_s=1.0)
    assert row["client_cpu_ms_per_req"] == 3.0 and row["client_cpu_net_ms_per_req"] == 2.0
    assert row["server_cpu_ms_per_req"] == 1.0 and row["lag_p99_ms"] == 2.0 and row["sent"] == 1000


def _row(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"completed": 100, "errors": 0, "overloaded": False, "lag_p99_ms": 1.0}
    return base | kw


def test_sustained_needs_the_rate_the_lag_bound_and_no_errors() -> None:
    assert sustained(_row(rate=1000.0, completed_qps=960.0))
    assert not sustained(_row(rate=1000.0, completed_qps=900.0))  # fell behind
    assert not sustained(_row(rate=1000.0, completed_qps=990.0, lag_p99_ms=25.0))  # client-limited
    assert not sustained(_row(rate=1000.0, completed_qps=990.0, errors=3))
    assert not kept(_row(overloaded=True))


def test_summary_knee_and_highest_kept() -> None:
    rows = [
        {"rep": 1, "mode": "concurrency", "concurrency": n, "completed_qps": q, "kept": k}
        for n, q, k in ((1, 400.0, True), (8, 1530.0, True), (64, 1580.0, False), (512, 1600.0, False))
    ]
    rows.append({"rep": 1, "mode": "rate", "rate": 1000.0, "sustained": True})
    rows.append({"rep": 1, "mode": "rate", "rate": 1500.0, "sustained": False})
    s = _summary(rows)
    assert s["knee_concurrency"] == [8] and s["max_kept_concurrency"] == [8] and s["max_rate"] == [1000.0]


def test_generated_traces_read_back_with_the_sharing_asked_for(tmp_path: Path) -> None:
    shared = check_trace(TraceSpec(path=make_trace(tmp_path / "s.jsonl", 3000, "shared"), block_tokens=BLOCK))
    unique = check_trace(TraceSpec(path=make_trace(tmp_path / "u.jsonl", 3000, "unique"), block_tokens=BLOCK))
    assert shared.n_requests == unique.n_requests == 3000
    assert shared.input_tokens_max <= 64 and shared.output_tokens_max == 8
    # shared: every later block comes from a pool of 10,000; unique: only the first block repeats
    assert unique.prefix_blocks_reused <= 3000 < shared.prefix_blocks_reused
    dues = [r.due_ns for r in iter_trace(TraceSpec(path=tmp_path / "s.jsonl", block_tokens=BLOCK, speed=100))]
    assert dues[0] == 0 and all(b >= a for a, b in itertools.pairwise(dues))


def _work(tmp: Path) -> Workload:
    return Workload(tmp / "d.jsonl", tmp / "a.jsonl", tmp / "g.jsonl", tmp / "tok", tmp / "v.jsonl")


def test_closed_loop_command_lines(tmp_path: Path) -> None:
    run = ConcRun(tool="t", rate=0.0, rep=1, concurrency=8)
    cmd = lpuperf_launch(run, "http://127.0.0.1:1/v1", _work(tmp_path), tmp_path, 13.0, "http", 8)[0]
    assert "concurrency:8" in cmd and "--scenario" not in cmd and "openai-http" in cmd
    cmd = aiperf_launch(run, "http://127.0.0.1:1/v1", _work(tmp_path), tmp_path, 10.0, 3.0, 8)[0]
    assert cmd[cmd.index("--concurrency") + 1] == "8" and "--request-rate" not in cmd
    cmd = vllm_launch(run, "http://127.0.0.1:1/v1", _work(tmp_path), tmp_path, 8, 5000)[0]
    assert cmd[cmd.index("--max-concurrency") + 1] == "8" and cmd[cmd.index("--num-prompts") + 1] == "5000"
    assert venv_name("vllm[bench]==0.33.0") == "vllm" and venv_name("aiperf==0.13.0") == "aiperf"


def test_vllm_prompts_outlast_the_run() -> None:
    assert _vllm_prompts([], 8, 10.0) == 22_500  # the floor, 1,500 req/s
    grpc = ConcRun(tool="lpuperf-grpc", rate=0.0, rep=1, concurrency=8, steady_rate=3000.0)
    http = ConcRun(tool="lpuperf-http", rate=0.0, rep=1, concurrency=8, steady_rate=1800.0)
    assert _vllm_prompts([grpc, http], 8, 10.0) == 27_000  # the HTTP tool's rate, not the gRPC client's
    own = ConcRun(tool="vllm", rate=0.0, rep=1, concurrency=8, steady_rate=500.0)
    assert _vllm_prompts([grpc, http, own], 8, 10.0) == 7_500  # its own, once it has run there
    assert json.dumps(_vllm_prompts([own], 64, 10.0)) == "22500"  # another concurrency: no figure of its own

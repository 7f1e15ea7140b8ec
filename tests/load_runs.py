"""Real run directories of runs beside LoadGen (``--load``) for the tests of the stages that read them.

Each run spawns the embedded sim and runs ``run_benchmark`` for a second or two: a closed loop of two, or
a few short agentic sessions against a sim with a prefix cache (so turns after the first hit it). The
dispatch-lag bound is loose: on a loaded machine the client may send late, and these runs are inputs to
other stages, not a test of the client (a test plants the client-limited case itself, :func:`plant_lag`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadgen_harness import DispatchLag, RunConfig, RunResult, load_results, run_benchmark
from loadgen_harness._results import save_results

SESSIONS_LOAD = (
    "sessions:synthetic:concurrency=4,sessions=4,turns=3,input_tokens=32,output_tokens=8,think_time_s=0.01,"
    "agentic=true,tool_latency_s=0.01,system_tokens=128"
)
LOOSE_LAG_MS = 1000.0
# A prefix cache big enough for every session's history (each later turn reuses its earlier turns' blocks), and tool
# calls short enough to fit the sessions' 8-token answers.
PREFIX_CACHE_ARGS = ["--prefix-cache-tokens", "16384", "--prefix-block-tokens", "16", "--tool-call-tokens", "4"]


def load_run(out: Path, run_id: str, load: str = "concurrency:2", duration_s: float = 1.5, **over: Any) -> Path:
    """OUT/<run-id>/<Scenario>/performance of one load run against a spawned embedded sim."""
    cfg = RunConfig(
        load=load,
        duration_s=duration_s,
        out_dir=out,
        run_id=run_id,
        metrics_linger_s=0,
        max_new_tokens=8,
        max_dispatch_lag_ms=LOOSE_LAG_MS,
        **over,
    )
    return Path(run_benchmark(cfg).log_dir)


def sessions_run(out: Path, run_id: str = "sessions") -> Path:
    """A few agentic three-turn sessions against a sim with a prefix cache."""
    import sut

    with sut.spawn_server(PREFIX_CACHE_ARGS) as server:
        return load_run(out, run_id, SESSIONS_LOAD, duration_s=20.0, sut=server.address)


def plant_lag(run_dir: Path, p99_ms: float, bound_ms: float = 10.0) -> RunResult:
    """Rewrite results.json as if the client's dispatch lag p99 had been ``p99_ms`` (client-limited above
    ``bound_ms``), the verdict and its reasons as the harness would state them."""
    res = load_results(run_dir)
    assert res.dispatch_lag is not None
    limited = p99_ms > bound_ms
    lag = DispatchLag(
        n_queries=res.dispatch_lag.n_queries,
        p50_ms=min(res.dispatch_lag.p50_ms or 0.0, p99_ms),
        p99_ms=p99_ms,
        max_ms=max(res.dispatch_lag.max_ms or 0.0, p99_ms),
        bound_ms=bound_ms,
        client_limited=limited,
    )
    reasons = [x for x in res.validity_reasons if not x.startswith("client-limited")]
    if limited:
        reasons.insert(0, f"client-limited: dispatch lag p99 {p99_ms:g} ms > {bound_ms:g} ms")
    res = res.model_copy(
        update={"dispatch_lag": lag, "client_limited": limited, "valid": not reasons, "validity_reasons": reasons}
    )
    save_results(res, run_dir)
    return res

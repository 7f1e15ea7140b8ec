"""Capacity plan against reality: ``lpuperf plan``'s predicted max VALID QPS for 1, 2 and 3 sim replicas
(from ONE one-replica run) against what ``find-peak`` measures on that many local replicas.

The artifact is slow enough that three replicas and the harness stay well inside two cores (about 30
QPS a replica, 16-token outputs) and the embedded benchmark's TTFT limit (500 ms p99) binds below
capacity, so the prediction is about queueing, not only throughput. Each count gets its own find-peak
(its own spawned replicas, the default search and confirm settings). Load average is recorded with each.

find-peak calls a rate VALID when LoadGen does, and LoadGen's early stopping judges p99 over the run's
queries: a run of ~800 queries (find-peak's probes and confirmations) passes only with at most one query
over the limit. The prediction compared is therefore ``plan --loadgen-queries 800``; the steady-state p99
prediction (what a long-running fleet sees, the plan's default) is reported next to it.

Usage: ``python -m bench.fleet_plan [--replicas 1 2 3] [--json PATH] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DATASET = "synthetic:512:0"
MAX_NEW_TOKENS = 16
ARTIFACT: dict[str, Any] = {
    "artifact_id": "sim-fleet-bench",
    "backend": "sim",
    "model": "embedded-sim",
    "precision": "fp32",
    "max_context_tokens": 4096,
    "max_batch": 4,
    "timing": {"prefill_base_s": 0.002, "prefill_per_token_s": 0.000002, "decode_step_s": 0.008},
    "target": "sim-lpu",
}
PLAN_INPUT_QPS = 15.0
PLAN_INPUT_DURATION_S = 20.0


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--json", type=Path)
    p.add_argument("--out", type=Path, help="keep the runs here (default: a temporary directory)")
    args = p.parse_args(argv)

    import sut
    from loadgen_harness import RunConfig, run_benchmark
    from scenarios import resolve_dataset
    from workflows import FindPeakConfig, find_peak, load_profile, max_valid_qps
    from workflows._find_peak import benchmark_limits_ms
    from workflows._plan import Limits

    out = args.out or Path(tempfile.mkdtemp(prefix="lpuperf-fleet-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "artifact.json"
    manifest_path.write_text(json.dumps(ARTIFACT))
    manifest = sut.ArtifactManifest.model_validate(ARTIFACT)
    analytic = sut.analytic_capacity_qps(manifest, resolve_dataset(DATASET), MAX_NEW_TOKENS)
    ttft_ms, tpot_ms = benchmark_limits_ms("embedded")
    limits = Limits(ttft_ms={"p99": ttft_ms or 500.0}, tpot_ms={"p99": tpot_ms or 50.0}, source="benchmark embedded")

    t0 = time.monotonic()
    load_before = _load()
    res = run_benchmark(
        RunConfig(
            scenario="Server",
            backend={"artifact": str(manifest_path)},
            dataset=DATASET,
            max_new_tokens=MAX_NEW_TOKENS,
            qps=PLAN_INPUT_QPS,
            duration_s=PLAN_INPUT_DURATION_S,
            out_dir=out,
            run_id="plan-input",
        )
    )
    run_dir = Path(res.log_dir)
    profile = load_profile(run_dir)
    print(
        f"plan input: 1 replica at {PLAN_INPUT_QPS:g} qps for {PLAN_INPUT_DURATION_S:g} s, {res.n_queries} queries, "
        f"{'VALID' if res.valid else 'INVALID'}; full-batch capacity {profile.capacity_qps:.2f} qps/replica "
        f"(analytic {analytic:.2f}), harness TTFT overhead {profile.overhead_ttft_s * 1e3:.1f} ms; "
        f"load {load_before} ({time.monotonic() - t0:.0f} s)",
        flush=True,
    )
    run_queries = FindPeakConfig().min_probe_queries
    rows: list[dict[str, Any]] = []
    for n in args.replicas:
        t = time.monotonic()
        steady = max_valid_qps(profile, n, limits)
        predicted = max_valid_qps(profile, n, limits, loadgen_queries=run_queries)
        load_start = _load()
        peak = find_peak(
            FindPeakConfig(
                replicas=n,
                backend={"artifact": str(manifest_path)},
                dataset=DATASET,
                max_new_tokens=MAX_NEW_TOKENS,
                out_dir=out,
                run_id=f"peak-{n}",
            ),
            echo=lambda line: print(f"    {line}", flush=True),
        )
        measured = peak.peak_qps
        row = {
            "replicas": n,
            "predicted_qps": round(predicted, 2),
            "predicted_steady_state_qps": round(steady, 2),
            "measured_qps": None if measured is None else round(measured, 2),
            "error": None if measured is None else round(predicted / measured - 1.0, 4),
            "analytic_capacity_qps": round(n * analytic, 2),
            "load_start": load_start,
            "load_end": _load(),
            "wall_s": round(time.monotonic() - t, 1),
        }
        rows.append(row)
        err = "-" if row["error"] is None else f"{row['error']:+.1%}"
        print(
            f"{n} replica(s): plan predicts {predicted:.1f} qps for {run_queries}-query LoadGen runs "
            f"({steady:.1f} at steady-state p99), find-peak measured {measured or 0:.1f} qps ({err}); "
            f"capacity {n * analytic:.1f}; load {load_start}->{row['load_end']}; {row['wall_s']:.0f} s",
            flush=True,
        )
    errors = [abs(r["error"]) for r in rows if r["error"] is not None]
    summary = {
        "artifact": ARTIFACT,
        "dataset": DATASET,
        "max_new_tokens": MAX_NEW_TOKENS,
        "limits": limits.model_dump(),
        "plan_input": {"qps": PLAN_INPUT_QPS, "duration_s": PLAN_INPUT_DURATION_S, "queries": res.n_queries},
        "loadgen_queries": run_queries,
        "service": profile.summary().model_dump(),
        "rows": rows,
        "median_abs_error": round(statistics.median(errors), 4) if errors else None,
        "max_abs_error": round(max(errors), 4) if errors else None,
        "out": str(out),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Harness memory for a long, fast plan: 1 h at 1,000 QPS (3.6M queries), measured without the hour.

The harness's own memory that grows with a run is the per-query record store (the bridge writes
one row per issued sample). This measures it synthetically: a child process fills the store with
3.6M rows the way the bridge does (``slot_ref`` then the per-query column writes), saves
``queries.npz`` and computes the success-only figures, and reports its peak RSS (VmHWM) against a
child that only imported the same modules. A third child asks ``run_benchmark`` for qps 1e9 x
duration 1 s and reports how fast, and at what memory, the plan is refused.

Usage: ``python -m bench.harness_memory [--queries 3600000] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PLAN_QPS = 1000.0
PLAN_DURATION_S = 3600.0


def _vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _child_baseline() -> dict[str, Any]:
    import numpy  # noqa: F401

    import loadgen_harness  # noqa: F401

    return {"peak_rss_mb": _vm_kb("VmHWM") / 1024}


def _child_records(n: int) -> dict[str, Any]:
    from loadgen_harness._records import QueryRecords

    expected = int(PLAN_QPS * PLAN_DURATION_S * 1.2) + 64  # what the plan asks the store to expect
    rec = QueryRecords(expected)
    t0 = time.perf_counter()
    for i in range(n):
        chunk, j = rec.slot_ref(i & 511, i * 1_000_000)
        chunk.first_token_ns[j] = i * 1_000_000 + 20_000_000
        chunk.first_chunk_tokens[j] = 1
        chunk.sut_arrival_ns[j] = i
        chunk.sut_first_token_ns[j] = i + 1
        chunk.done_ns[j] = i * 1_000_000 + 150_000_000
        chunk.n_tokens[j] = 128
        chunk.n_streamed[j] = 128
        chunk.n_chunks[j] = 17
        chunk.status[j] = 0 if i % 50 else 14
        chunk.sut_last_token_ns[j] = i + 2
        chunk.stream_matches_output[j] = True
    fill_s = time.perf_counter() - t0
    after_fill = _vm_kb("VmHWM")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = rec.save(tmp)
        save_s = time.perf_counter() - t0
        npz_mb = path.stat().st_size / 2**20
        after_save = _vm_kb("VmHWM")
        t0 = time.perf_counter()
        stats = rec.success_stats()
        stats_s = time.perf_counter() - t0
    return {
        "rows": rec.n,
        "store_mb": rec.nbytes / 2**20,
        "chunk_rows": rec.chunk_rows,
        "fill_s": fill_s,
        "peak_rss_after_fill_mb": after_fill / 1024,
        "save_s": save_s,
        "npz_mb": npz_mb,
        "peak_rss_after_save_mb": after_save / 1024,
        "stats_s": stats_s,
        "peak_rss_mb": _vm_kb("VmHWM") / 1024,
        "successful_qps": stats.qps,
    }


def _child_refusal() -> dict[str, Any]:
    from loadgen_harness import RunConfig, RunError, run_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(qps=1e9, duration_s=1, sut="127.0.0.1:9", out_dir=Path(tmp), run_id="refused")
        t0 = time.perf_counter()
        try:
            run_benchmark(cfg)
            message = "NOT REFUSED"
        except RunError as exc:
            message = str(exc)
        took = time.perf_counter() - t0
        left = sorted(p.name for p in Path(tmp).iterdir())
    return {"refused_in_s": took, "message": message, "files_left": left, "peak_rss_mb": _vm_kb("VmHWM") / 1024}


def _run_child(kind: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.harness_memory", "--child", kind, "--queries", str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=int(PLAN_QPS * PLAN_DURATION_S))
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--child", choices=("baseline", "records", "refusal"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        fn = {"baseline": _child_baseline, "refusal": _child_refusal}.get(args.child)
        print(json.dumps(fn() if fn else _child_records(args.queries)))
        return 0
    base = _run_child("baseline", 0)
    rec = _run_child("records", args.queries)
    refusal = _run_child("refusal", 0)
    itemsize = 97  # bytes per row of QUERY_RECORD_DTYPE
    figures = {
        "plan": f"{PLAN_QPS:g} QPS x {PLAN_DURATION_S:g} s = {args.queries} queries",
        "baseline_peak_rss_mb": round(base["peak_rss_mb"], 1),
        "records": {k: round(v, 3) if isinstance(v, float) else v for k, v in rec.items()},
        "record_growth_peak_mb": round(rec["peak_rss_mb"] - base["peak_rss_mb"], 1),
        "bytes_per_query_at_peak": round((rec["peak_rss_mb"] - base["peak_rss_mb"]) * 2**20 / max(rec["rows"], 1), 1),
        "old_preallocation_mb_for_this_plan": round((PLAN_QPS * PLAN_DURATION_S * 1.2 + 64) * itemsize / 2**20, 1),
        "old_preallocation_gb_for_qps_1e9_x_1s": round((1e9 * 1.2 + 64) * itemsize / 2**30, 1),
        "refusal": {k: round(v, 3) if isinstance(v, float) else v for k, v in refusal.items()},
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

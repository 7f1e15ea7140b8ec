"""Where a query's TTFT goes, from one invocation: LoadGen, the bridge, grpc, the SUT.

Each round (the two interleaved) measures the raw RPC's TTFT at ``--qps`` (a plain grpc.aio open loop,
``bench.harness_overhead.raw_ttft``) and runs the harness (Server, same rate) against the same spawned
``sim-instant`` SUT with time stamps added in this process (class attributes wrapped, nothing in the
package changed) at:

1. LoadGen's issue callback entry (the bridge's ``issue_ns``);
2. the hand-off reaching the uvloop thread (``Bridge._dispatch``);
3. the query's task starting, just before the RPC is made (``Bridge._one``);
4. the SUT receiving it (``sut_arrival_ns``) and 5. sending its first token (``sut_first_token_ns``),
   both SUT wall-clock times mapped onto this process's monotonic clock (one machine, same kernel clocks);
6. the first message received (``first_token_ns``); 7. ``FirstTokenComplete`` returning.

It reports, as medians over the round's queries: LoadGen's TTFT p50 (measured by LoadGen from the
*scheduled* time) minus the raw RPC's p50 (the harness's TTFT overhead), the harness-observed TTFT
(1 -> 6) minus the SUT-side TTFT (4 -> 5), and each segment. LoadGen's own part before the callback
(scheduled time -> 1) is LoadGen's TTFT p50 minus the bridge's (1 -> 6) p50. Usage::

    python -m bench.ttft_breakdown --rounds 3 --qps 10 --queries 150
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

import numpy as np

SEGMENTS = (
    ("callback -> uvloop thread (call_soon_threadsafe)", "cb", "loop"),
    ("uvloop thread -> task start (create_task, one loop pass)", "loop", "task"),
    ("task start -> SUT receives (grpc call set-up, send, SUT's grpc receive)", "task", "sut_in"),
    ("SUT receive -> SUT first token (SUT-side TTFT)", "sut_in", "sut_first"),
    ("SUT first token -> client first message (send, receive, parse)", "sut_first", "first"),
    ("first message -> FirstTokenComplete returned", "first", "ftc"),
)


class _Stamps:
    """Wraps Bridge._dispatch / Bridge._one / LoadGen's FirstTokenComplete to record monotonic times per query."""

    def __init__(self) -> None:
        from loadgen_harness import _bridge

        self.loop: dict[int, int] = {}
        self.task: dict[int, int] = {}
        self.ftc: dict[int, int] = {}
        self.rows: dict[int, tuple[Any, int]] = {}
        self.bridge: Any = None
        cls = _bridge.Bridge
        self._orig = (cls.__init__, cls._dispatch, cls._one)
        orig_init, orig_dispatch, orig_one = self._orig
        stamps = self

        def __init__(b: Any, *a: Any, **k: Any) -> None:
            orig_init(b, *a, **k)
            stamps.bridge = b
            b._lg = _LgProxy(b._lg, stamps.ftc)

        def _dispatch(b: Any, batch: list[tuple[int, int]], issued_ns: int) -> None:
            t = time.monotonic_ns()
            for qid, _ in batch:
                stamps.loop[qid] = t
            orig_dispatch(b, batch, issued_ns)

        async def _one(b: Any, qid: int, idx: int, issued_ns: int, chunk: Any, j: int) -> None:
            stamps.task[qid] = time.monotonic_ns()
            stamps.rows[qid] = (chunk, j)
            await orig_one(b, qid, idx, issued_ns, chunk, j)

        cls.__init__, cls._dispatch, cls._one = __init__, _dispatch, _one  # type: ignore[method-assign]

    def restore(self) -> None:
        from loadgen_harness import _bridge

        cls = _bridge.Bridge
        cls.__init__, cls._dispatch, cls._one = self._orig  # type: ignore[method-assign]

    def table(self) -> dict[str, np.ndarray]:
        """Per query, every stamp as monotonic ns."""
        b = self.bridge
        wall_to_mono = time.time_ns() - time.monotonic_ns()
        cols: dict[str, list[int]] = {k: [] for k in ("cb", "loop", "task", "sut_in", "sut_first", "first", "ftc")}
        for qid, (chunk, j) in self.rows.items():
            if qid not in self.ftc or chunk.first_token_ns[j] < 0 or chunk.sut_arrival_ns[j] <= 0:
                continue
            cols["cb"].append(int(chunk.issue_ns[j]) + b.t0_ns)
            cols["loop"].append(self.loop[qid])
            cols["task"].append(self.task[qid])
            cols["sut_in"].append(int(chunk.sut_arrival_ns[j]) - wall_to_mono)
            cols["sut_first"].append(int(chunk.sut_first_token_ns[j]) - wall_to_mono)
            cols["first"].append(int(chunk.first_token_ns[j]) + b.t0_ns)
            cols["ftc"].append(self.ftc[qid])
        return {k: np.array(v, dtype=np.int64) for k, v in cols.items()}


class _LgProxy:
    """mlperf_loadgen with FirstTokenComplete time-stamped on return."""

    def __init__(self, lg: Any, ftc: dict[int, int]) -> None:
        self._lg, self._ftc = lg, ftc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lg, name)

    def FirstTokenComplete(self, responses: list[Any]) -> None:
        self._lg.FirstTokenComplete(responses)
        t = time.monotonic_ns()
        for r in responses:
            self._ftc[r.id] = t


def one_round(address: str, dataset: Path, tmp: Path, qps: float, n: int) -> dict[str, Any]:
    from bench.harness_overhead import _requests, harness_run, raw_ttft

    raw = raw_ttft(address, _requests(dataset), qps, n)
    stamps = _Stamps()
    try:
        res = harness_run(address, dataset, tmp, f"b{time.monotonic_ns()}", qps, n / qps)
    finally:
        stamps.restore()
    t = stamps.table()
    ms = {name: float(np.median(t[b] - t[a])) / 1e6 for name, a, b in SEGMENTS}
    bridge_ttft = float(np.median(t["first"] - t["cb"])) / 1e6
    sut_ttft = float(np.median(t["sut_first"] - t["sut_in"])) / 1e6
    lg_ttft = float(res.ttft_ms.p50)
    return {
        "queries": int(t["cb"].size),
        "loadgen_ttft_p50_ms": lg_ttft,
        "raw_rpc_ttft_p50_ms": raw["p50_ms"],
        "overhead_vs_raw_p50_ms": lg_ttft - raw["p50_ms"],
        "bridge_ttft_p50_ms": bridge_ttft,
        "sut_ttft_p50_ms": sut_ttft,
        "harness_minus_sut_p50_ms": float(np.median((t["first"] - t["cb"]) - (t["sut_first"] - t["sut_in"]))) / 1e6,
        # The same figure for the raw grpc.aio client: what grpc's crossings cost with no harness at all.
        "raw_rpc_minus_sut_p50_ms": raw["minus_sut_p50_ms"],
        "loadgen_minus_sut_p50_ms": lg_ttft - sut_ttft,
        "loadgen_before_callback_ms": lg_ttft - bridge_ttft,
        "segments_ms": ms,
        "load1": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ttft_breakdown", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--qps", type=float, default=10.0)
    ap.add_argument("--queries", type=int, default=150)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from bench.harness_overhead import _dataset
    from bench.sut_cost import _spawn

    rows = []
    with tempfile.TemporaryDirectory(prefix="lpuperf-ttft-") as tmp_s:
        tmp = Path(tmp_s)
        dataset = _dataset(tmp)
        proc, address = _spawn(Path.cwd(), dataset, tmp)
        try:
            for r in range(args.rounds):
                row = one_round(address, dataset, tmp, args.qps, args.queries)
                rows.append(row)
                print(json.dumps({"round": r + 1, **row}), flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    keys = [k for k in rows[0] if k not in ("segments_ms", "queries")]
    print(f"\nmedians of {args.rounds} rounds at {args.qps:g} QPS (spread):")
    for k in keys:
        vals = [float(x[k]) for x in rows]
        print(f"  {k:32s} {statistics.median(vals):8.3f}  ({min(vals):.3f} .. {max(vals):.3f})")
    for name, _, _ in SEGMENTS:
        vals = [float(x["segments_ms"][name]) for x in rows]
        print(f"  {name:72s} {statistics.median(vals):7.3f} ms ({min(vals):.3f} .. {max(vals):.3f})")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

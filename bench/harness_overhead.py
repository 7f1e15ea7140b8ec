"""Harness overhead against the instant sim SUT, all figures from ONE invocation on one machine.

(a) raw grpc.aio streaming throughput: a plain client loop (no LoadGen) streaming the same
    128-token outputs with the same chunking, at fixed concurrency;
(b) the harness's maximum VALID Server QPS with 128-token outputs (a doubling + bisection search),
    as tokens/s and as a ratio to (a);
(c) TTFT p50/p99 at 10 QPS as LoadGen measures it, minus the raw RPC's TTFT at the same rate;
(d) CPU time per query: the raw client's per RPC vs the harness's (metrics off and on) at 100 QPS.

Each figure is the median of ``--repeats`` rounds (default 3). Usage: ``python -m bench.harness_overhead``
(``make bench``); ``--json PATH`` also writes the figures.

``--tls`` measures (a)-(d) a second time in each round against a second SUT serving TLS with a bearer
token (certificates from docker/make-certs.sh, made in a temp dir), and prints each TLS figure next to
the plaintext one with their ratio: what TLS costs the measurement, from one invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

OUTPUT_TOKENS = 128
CHUNK_SIZE = 8
RAW_CONCURRENCY = 64


def _dataset(tmp: Path) -> Path:
    from scenarios import save_dataset, synthetic_dataset

    ds = synthetic_dataset(n=256, seed=11, input_range=(50, 100), output_tokens=OUTPUT_TOKENS, name="bench-128")
    return save_dataset(ds, tmp / "bench-128.jsonl")


def _requests(dataset: Path) -> list[bytes]:
    from loadgen_harness._bridge import serialise_requests
    from scenarios import load_dataset

    ds = load_dataset(dataset)
    return serialise_requests(ds.input_ids, ds.prompts, [OUTPUT_TOKENS] * len(ds), ds.eos_token_id)


async def _raw_stream(call: Any, req: bytes) -> tuple[int, int, int, int]:
    """(ns to first message, ns to end, tokens, SUT-side ns from receipt to first token) for one Generate."""
    t0 = time.perf_counter_ns()
    first = -1
    sut_ttft = 0
    n = 0
    async for chunk in call(req):
        if first < 0:
            first = time.perf_counter_ns() - t0
            sut_ttft = chunk.sut_first_token_ns - chunk.sut_arrival_ns  # both on the SUT's clock
        n += len(chunk.token_ids)
    return first, time.perf_counter_ns() - t0, n, sut_ttft


def _channel_call(address: str, transport: Any = None) -> tuple[Any, Any]:
    from loadgen_harness import open_aio_channel
    from loadgen_harness._bridge import _CHANNEL_OPTIONS, _GENERATE
    from proto import inference_pb2

    ch, metadata = open_aio_channel(address, transport, options=_CHANNEL_OPTIONS)
    call = ch.unary_stream(
        _GENERATE, request_serializer=None, response_deserializer=inference_pb2.GenerateChunk.FromString
    )
    # The token (if any) rides on each call, as in the bridge.
    return ch, (call if metadata is None else functools.partial(call, metadata=metadata))


def raw_throughput(address: str, requests: list[bytes], seconds: float, transport: Any = None) -> dict[str, float]:
    """(a): closed loop, RAW_CONCURRENCY streams in flight, for ``seconds``."""
    import uvloop

    async def main() -> dict[str, float]:
        ch, call = _channel_call(address, transport)
        await _raw_stream(call, requests[0])  # connect outside the timed window
        deadline = time.perf_counter() + seconds
        tokens = 0
        rpcs = 0

        async def worker(k: int) -> None:
            nonlocal tokens, rpcs
            i = k
            while time.perf_counter() < deadline:
                _f, _e, n, _s = await _raw_stream(call, requests[i % len(requests)])
                tokens += n
                rpcs += 1
                i += RAW_CONCURRENCY

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(k) for k in range(RAW_CONCURRENCY)))
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        await ch.close()
        return {"tokens_per_s": tokens / dt, "rpcs_per_s": rpcs / dt, "cpu_us_per_rpc": cpu / max(rpcs, 1) * 1e6}

    return uvloop.run(main())


def raw_ttft(address: str, requests: list[bytes], qps: float, n: int, transport: Any = None) -> dict[str, float]:
    """The raw RPC's TTFT at an open-loop rate of ``qps`` (same pacing as the harness run in (c))."""
    import uvloop

    async def main() -> dict[str, float]:
        ch, call = _channel_call(address, transport)
        await _raw_stream(call, requests[0])
        ttfts: list[int] = []
        beyond_sut: list[int] = []
        tasks = []
        c0 = time.process_time()
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / qps - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(_raw_stream(call, requests[i % len(requests)])))
        for f, _e, _n, sut_ns in await asyncio.gather(*tasks):
            ttfts.append(f)
            beyond_sut.append(f - sut_ns)
        cpu = time.process_time() - c0
        await ch.close()
        arr = np.array(ttfts, dtype=np.float64) / 1e6
        return {
            "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99)),
            # The raw client's TTFT minus the SUT's own: grpc's two crossings with no harness around them.
            "minus_sut_p50_ms": float(np.median(beyond_sut)) / 1e6,
            "cpu_us_per_rpc": cpu / n * 1e6,
        }

    return uvloop.run(main())


def harness_run(
    address: str,
    dataset: Path,
    out: Path,
    run_id: str,
    qps: float,
    duration_s: float,
    metrics_port: int | None = None,
    transport: Any = None,
) -> Any:
    from loadgen_harness import RunConfig, TransportSecurity, run_benchmark

    cfg = RunConfig(
        scenario="Server",
        sut=address,
        transport=transport or TransportSecurity(),
        dataset=str(dataset),
        qps=qps,
        duration_s=duration_s,
        out_dir=out,
        run_id=run_id,
        max_new_tokens=OUTPUT_TOKENS,
        metrics_port=metrics_port,
    )
    return run_benchmark(cfg)


def harness_cpu(
    address: str, dataset: Path, out: Path, tag: str, qps: float, metrics: bool, transport: Any = None
) -> float:
    """Harness CPU time (all threads of this process: LoadGen, bridge, logging) per query, in us.

    CPU time per query is far less sensitive to other load on a shared machine than a rate is.
    """
    import socket

    port = None
    if metrics:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    c0 = time.process_time()
    res = harness_run(address, dataset, out, tag, qps, 4.0, metrics_port=port, transport=transport)
    return (time.process_time() - c0) / max(res.n_queries, 1) * 1e6


def _ok(res: Any) -> bool:
    return bool(res.valid) and not res.warnings and res.n_errors == 0


def max_valid_qps(
    address: str, dataset: Path, out: Path, tag: str, start: float = 250.0, transport: Any = None
) -> dict[str, Any]:
    """(b): double from ``start`` until a run is not VALID, then bisect to ~5 %."""
    trace: list[tuple[float, bool, float]] = []
    n = 0

    def probe(q: float) -> bool:
        nonlocal n
        n += 1
        dur = max(2.0, 800.0 / q)  # >= 800 queries: enough for early stopping at p99
        res = harness_run(address, dataset, out, f"{tag}-{n:02d}", q, dur, transport=transport)
        ok = _ok(res)
        trace.append((q, ok, float(res.tokens_per_second or 0.0)))
        print(f"    probe {q:8.1f} QPS: {'VALID' if ok else 'not valid'}  tokens/s {res.tokens_per_second or 0:.0f}")
        return ok

    lo, hi = 0.0, start
    while probe(hi) and hi < 20000:
        lo, hi = hi, hi * 2
    for _ in range(6):
        if lo and (hi - lo) / lo <= 0.05:
            break
        mid = (lo + hi) / 2 if lo else hi / 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    best_tps = max((t for q, ok, t in trace if ok and q == lo), default=0.0)
    return {"max_valid_qps": lo, "tokens_per_s": best_tps, "trace": trace}


def measure(
    addr: str, dataset: Path, requests: list[bytes], out: Path, tag: str, args: Any, transport: Any = None
) -> dict[str, float]:
    """(a)-(d) against the SUT at ``addr`` (over ``transport``); prints each figure as it comes."""
    raw = raw_throughput(addr, requests, args.raw_seconds, transport)
    print(f"  (a) raw grpc.aio: {raw['tokens_per_s']:.0f} tokens/s, {raw['rpcs_per_s']:.0f} RPC/s")
    peak = max_valid_qps(addr, dataset, out, f"{tag}-peak", transport=transport)
    ratio = peak["tokens_per_s"] / raw["tokens_per_s"] if raw["tokens_per_s"] else 0.0
    print(
        f"  (b) harness max VALID Server QPS {peak['max_valid_qps']:.0f} "
        f"({peak['tokens_per_s']:.0f} tokens/s, {ratio:.2f} of raw)"
    )
    raw_t = raw_ttft(addr, requests, 10.0, args.ttft_queries, transport)
    res = harness_run(addr, dataset, out, f"{tag}-ttft", 10.0, args.ttft_queries / 10.0, transport=transport)
    h50, h99 = res.ttft_ms.p50 or 0.0, res.ttft_ms.p99 or 0.0
    print(
        f"  (c) TTFT at 10 QPS: harness p50 {h50:.3f} / p99 {h99:.3f} ms, raw p50 {raw_t['p50_ms']:.3f} / "
        f"p99 {raw_t['p99_ms']:.3f} ms -> overhead p50 {h50 - raw_t['p50_ms']:.3f} / "
        f"p99 {h99 - raw_t['p99_ms']:.3f} ms"
    )
    raw_cpu = raw_ttft(addr, requests, 100.0, 400, transport)["cpu_us_per_rpc"]
    cpu_off = harness_cpu(addr, dataset, out, f"{tag}-cpu-off", 100.0, metrics=False, transport=transport)
    cpu_on = harness_cpu(addr, dataset, out, f"{tag}-cpu-on", 100.0, metrics=True, transport=transport)
    print(
        f"  (d) CPU per query, open loop at 100 QPS: raw RPC {raw_cpu:.0f} us, harness {cpu_off:.0f} us "
        f"(metrics on: {cpu_on:.0f} us); closed-loop raw at saturation {raw['cpu_us_per_rpc']:.0f} us"
    )
    return {
        "raw_tokens_per_s": raw["tokens_per_s"],
        "raw_rpcs_per_s": raw["rpcs_per_s"],
        "raw_cpu_us_per_rpc_saturated": raw["cpu_us_per_rpc"],
        "raw_cpu_us_per_rpc_100qps": raw_cpu,
        "harness_cpu_us_per_query": cpu_off,
        "harness_cpu_us_per_query_metrics_on": cpu_on,
        "max_valid_qps": peak["max_valid_qps"],
        "harness_tokens_per_s": peak["tokens_per_s"],
        "ratio": ratio,
        "harness_ttft_p50_ms": h50,
        "harness_ttft_p99_ms": h99,
        "raw_ttft_p50_ms": raw_t["p50_ms"],
        "raw_ttft_p99_ms": raw_t["p99_ms"],
        "ttft_overhead_p50_ms": h50 - raw_t["p50_ms"],
        "ttft_overhead_p99_ms": h99 - raw_t["p99_ms"],
    }


@contextlib.contextmanager
def tls_sut(serve: list[str], tmp: Path) -> Iterator[tuple[str, Any]]:
    """A second SUT serving TLS with a bearer token, and the TransportSecurity that reaches it."""
    import subprocess

    import grpc

    import sut
    from loadgen_harness import TransportSecurity

    secrets = tmp / "secrets"
    root = Path(__file__).resolve().parent.parent
    subprocess.run(["bash", str(root / "docker" / "make-certs.sh"), str(secrets)], check=True, capture_output=True)
    tls = ["--tls-cert", str(secrets / "server.crt"), "--tls-key", str(secrets / "server.key")]
    tls += ["--auth-token-file", str(secrets / "sut_token")]
    probe = grpc.ssl_channel_credentials((secrets / "ca.crt").read_bytes())
    with sut.spawn_server([*serve, *tls], credentials=probe) as server:
        yield server.address, TransportSecurity(tls_ca=secrets / "ca.crt", token_file=secrets / "sut_token")


def main(argv: list[str] | None = None) -> int:
    import sut

    ap = argparse.ArgumentParser(prog="bench.harness_overhead", description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--raw-seconds", type=float, default=5.0)
    ap.add_argument("--ttft-queries", type=int, default=100, help="queries at 10 QPS for (c)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--tls", action="store_true", help="also measure over TLS + a bearer token, next to plaintext")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats: expected a positive count")

    with tempfile.TemporaryDirectory(prefix="lpuperf-bench-") as tmpname:
        tmp = Path(tmpname)
        dataset = _dataset(tmp)
        requests = _requests(dataset)
        serve = ["--artifact", "sim-instant", "--dataset", str(dataset), "--chunk-size", str(CHUNK_SIZE)]
        rounds: list[dict[str, float]] = []
        tls_rounds: list[dict[str, float]] = []
        with contextlib.ExitStack() as stack:
            addr = stack.enter_context(sut.spawn_server(serve)).address
            secure = stack.enter_context(tls_sut(serve, tmp)) if args.tls else None
            for r in range(args.repeats):
                print(f"round {r + 1}/{args.repeats}" + (" (plaintext)" if secure else ""))
                rounds.append(measure(addr, dataset, requests, tmp / "out", f"r{r}", args))
                if secure is not None:
                    print(f"round {r + 1}/{args.repeats} (TLS + bearer token)")
                    tls_rounds.append(measure(secure[0], dataset, requests, tmp / "out", f"r{r}-tls", args, secure[1]))
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"\nmedians of {len(rounds)} rounds ({OUTPUT_TOKENS}-token outputs, chunk {CHUNK_SIZE}):")
    for k, v in med.items():
        print(f"  {k:24s} {v:12.3f}")
    goals = [
        ("(b)/(a) >= 0.8", med["ratio"] >= 0.8),
        ("max VALID Server QPS >= 1000", med["max_valid_qps"] >= 1000),
        ("TTFT overhead p50 <= 0.3 ms", med["ttft_overhead_p50_ms"] <= 0.3),
    ]
    for name, ok in goals:
        print(f"  goal {name}: {'met' if ok else 'MISSED'}")
    report: dict[str, Any] = {"medians": med, "rounds": rounds}
    if tls_rounds:
        tls_med = {k: statistics.median(r[k] for r in tls_rounds) for k in tls_rounds[0]}
        print(f"\nTLS + bearer token vs plaintext, medians of {len(tls_rounds)} rounds (same SUT backend, one run):")
        for k, v in tls_med.items():
            ratio = v / med[k] if med[k] else float("nan")
            print(f"  {k:36s} plaintext {med[k]:12.3f}  TLS {v:12.3f}  TLS/plaintext {ratio:6.3f}")
        report |= {"tls_medians": tls_med, "tls_rounds": tls_rounds}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

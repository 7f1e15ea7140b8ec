"""bench/peers.py's closed-loop comparison: lpuperf's ``--load concurrency:N`` beside AIPerf's and vLLM's concurrency modes.

Same server and workload as the rate comparison (the instant sim behind its HTTP front, the 128-token bench
prompts, exactly 128 output tokens, token counts from the server). At each concurrency N every tool keeps
N requests in flight for ``warmup`` + ``step`` seconds:

* lpuperf: ``lpuperf run --load concurrency:N --duration W+S`` over gRPC (``lpuperf-grpc``) and over HTTP to
  the same front as the peers (``--transport openai-http``: ``lpuperf-http``);
* AIPerf: ``aiperf profile --concurrency N --warmup-concurrency N --warmup-duration W --benchmark-duration S``;
* vLLM: ``vllm bench serve --max-concurrency N --request-rate inf --num-prompts K`` (it has no duration
  option: K is 1.5x the run's length at vLLM's own throughput at N in an earlier repetition, else at the best
  HTTP tool's there so far and at least 1,500 req/s; a run still going at 3x its length + 90 s is stopped, losing vLLM's own report but
  not the outside measurement);
* GuideLLM (when asked): its ``concurrent`` profile with N streams.

One rule for all, from outside each tool (``bench/peers_measure.py``): the server's count of OK answers and
the tool's process-tree CPU over the steady window (``warmup`` s after the server's first answer, for
``step`` - 2 s). A concurrency is **kept** when the window was measured and nothing failed. Each
repetition steps every tool through the concurrencies, interleaved, the order rotating.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bench.peers import (
    MODEL,
    PEERS,
    Bench,
    Launch,
    _peer_bin,
    _peer_version,
    aiperf_launch,
    guidellm_launch,
    installed,
    lpuperf_launch,
    make_workload,
    one,
    vllm_launch,
)
from bench.peers_measure import Run
from bench.relay_cost import free_port, spawn
from bench.sut_cost import CHUNK_SIZE

ROOT = Path(__file__).resolve().parent.parent
TOOLS = "lpuperf-grpc,lpuperf-http,aiperf,vllm"
VLLM_FLOOR_QPS = 1500.0  # the least throughput vLLM's prompt count assumes before it has run at a concurrency


@dataclass
class ConcRun(Run):
    concurrency: int = 0

    @property
    def kept(self) -> bool:
        return self.window_s > 0 and self.answered > 0 and self.errors == 0


def _vllm_prompts(runs: list[ConcRun], n: int, load_s: float) -> int:
    """Enough prompts for vLLM to outlast the window at ``n``: 1.5x its own throughput there in an earlier
    repetition, else 1.5x the best of the HTTP tools' there and ``VLLM_FLOOR_QPS`` (too few prompts lose the
    run; too many only make it run longer, up to its time limit)."""
    mine = [r.steady_rate for r in runs if r.concurrency == n and r.tool == "vllm" and r.steady_rate > 0]
    http = [r.steady_rate for r in runs if r.concurrency == n and r.steady_rate > 0 and r.tool != "lpuperf-grpc"]
    qps = max(mine) if mine else max([VLLM_FLOOR_QPS, *http])
    return max(200, int(1.5 * qps * load_s))


def _record(runs: list[ConcRun], run: ConcRun, json_path: Path | None, meta: dict[str, Any]) -> None:
    runs.append(run)
    print(json.dumps(asdict(run) | {"kept": run.kept}), flush=True)
    if json_path is not None:  # after every run, so an interrupted invocation keeps what it measured
        json_path.write_text(json.dumps({**meta, "runs": [asdict(r) for r in runs]}, indent=1))


def run_concurrency(
    tools: list[str],
    concurrencies: list[int],
    reps: int,
    step_s: float,
    warmup_s: float,
    guidellm_workers: int = 2,
    json_path: Path | None = None,
) -> dict[str, Any]:
    """Every tool at every concurrency in ``reps`` interleaved repetitions: ``{"summary", "runs"}``."""
    tools = installed(tools)
    meta: dict[str, Any] = {
        "mode": "concurrency",
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "versions": {t: _peer_version(t) for t in tools if t in PEERS},
        "options": {"warmup_s": warmup_s, "step_s": step_s, "guidellm_workers": guidellm_workers},
    }
    runs: list[ConcRun] = []
    load_s = warmup_s + step_s
    with tempfile.TemporaryDirectory(prefix="lpuperf-peers-conc-") as tmp_s:
        tmp = Path(tmp_s)
        peer_py = next((_peer_bin(t) / "python" for t in PEERS if t in tools), None)
        work = make_workload(tmp, peer_py)
        port, metrics_port = free_port(), free_port()
        flags = ["--artifact", MODEL, "--dataset", str(work.dataset), "--chunk-size", str(CHUNK_SIZE)]
        server, grpc_address = spawn(ROOT, [*flags, "--http", str(port), "--metrics-port", str(metrics_port)], tmp)
        base_url = f"http://127.0.0.1:{port}/v1"
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        gl_env = {"GUIDELLM__MAX_WORKER_PROCESSES": str(guidellm_workers)}

        def launchers(n: int) -> dict[str, Callable[[Run], Launch]]:
            def guidellm(r: Run) -> Launch:
                cmd, cwd, env, report = guidellm_launch(r, base_url, work, tmp, load_s, warmup_s, n)
                return cmd, cwd, {**env, **gl_env}, report

            return {
                "lpuperf-grpc": lambda r: lpuperf_launch(r, grpc_address, work, tmp, load_s, "grpc", n),
                "lpuperf-http": lambda r: lpuperf_launch(r, base_url, work, tmp, load_s, "http", n),
                "aiperf": lambda r: aiperf_launch(r, base_url, work, tmp, step_s, warmup_s, n),
                "vllm": lambda r: vllm_launch(r, base_url, work, tmp, n, _vllm_prompts(runs, n, load_s)),
                "guidellm": guidellm,
            }

        try:
            for rep in range(1, reps + 1):
                for step, n in enumerate(concurrencies):
                    bench = Bench(server.pid, metrics_url, warmup_s, step_s, launchers(n))
                    k = (rep + step) % len(tools)
                    for tool in tools[k:] + tools[:k]:
                        run = ConcRun(tool=tool, rate=0.0, rep=rep, concurrency=n)
                        one(bench, tool, 0.0, rep, run=run, timeout_s=3 * load_s + 90)
                        _record(runs, run, json_path, meta)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {**meta, "summary": summarize(runs, tools), "runs": [asdict(r) for r in runs]}
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1))
    return result


def _runs(raw: list[dict[str, Any]]) -> list[ConcRun]:
    names = {f.name for f in fields(ConcRun)}
    return [ConcRun(**{k: v for k, v in r.items() if k in names} | {"load1": tuple(r["load1"])}) for r in raw]


def summarize(runs: list[ConcRun], tools: list[str]) -> dict[str, Any]:
    """Per tool: peak throughput per rep, and the highest concurrency kept with no failures."""
    out: dict[str, Any] = {}
    for tool in tools:
        mine = [r for r in runs if r.tool == tool]
        reps = sorted({r.rep for r in mine})
        peaks = [max((r.steady_rate for r in mine if r.rep == rep and r.kept), default=0.0) for rep in reps]
        kept = [max((r.concurrency for r in mine if r.rep == rep and r.kept), default=0) for rep in reps]
        out[tool] = {
            "peak_rate_per_rep": [round(p, 1) for p in peaks],
            "peak_rate_median": round(statistics.median(peaks), 1) if peaks else 0.0,
            "max_kept_concurrency_per_rep": kept,
        }
    return out


def _med(values: list[float | None], fmt: str = "{:.3g}") -> str:
    xs = [v for v in values if v is not None]
    if not xs:
        return "–"
    m = statistics.median(xs)
    return fmt.format(m) + (f" ({fmt.format(min(xs))}–{fmt.format(max(xs))})" if len(xs) > 1 else "")


def table(raw: list[dict[str, Any]]) -> str:
    """One row per tool and concurrency: medians over the repetitions whose window was measured (min–max)."""
    runs = _runs(raw)
    lines = [
        "| tool | concurrency | answered in the window, req/s | client CPU per request, ms | "
        "TTFT p50 the tool reports, ms | kept (reps) | failed answers | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for tool in dict.fromkeys(r.tool for r in runs):
        for n in sorted({r.concurrency for r in runs if r.tool == tool}):
            mine = [r for r in runs if r.tool == tool and r.concurrency == n]
            loads = [x for r in mine for x in r.load1]
            notes += [f"{tool} at {n}, rep {r.rep}: {r.note}" for r in mine if r.note]
            lines.append(
                f"| {tool} | {n} | {_med([r.steady_rate for r in mine if r.window_s > 0], '{:.0f}')} | "
                f"{_med([r.client_cpu_ms_per_req for r in mine])} | {_med([r.ttft_p50_ms for r in mine])} | "
                f"{sum(r.kept for r in mine)} of {len(mine)} | {sum(r.errors for r in mine)} | "
                f"{min(loads):.1f}–{max(loads):.1f} |"
            )
    return "\n".join(lines + ([""] + [f"* {n}" for n in notes] if notes else []))


def report(path: Path) -> str:
    return table(json.loads(path.read_text())["runs"])


__all__ = ["TOOLS", "report", "run_concurrency", "table"]

"""GuideLLM, AIPerf and lpuperf side by side against one instant server, from one invocation.

The server is ``python -m sut serve --artifact sim-instant --http PORT --metrics-port M`` (zero-time sim
behind the OpenAI-compatible front, chunk 8) serving the 128-token bench dataset. Every tool sends that
dataset's prompts (~84 tokens; the peers read them from a prompt file, lpuperf from the dataset) and asks
for exactly 128 output tokens (``ignore_eos``); the peers take token counts from the server's ``usage``
instead of tokenizing, so no tool generates or tokenizes text while it is measured.

Each run offers a Poisson load at one rate for ``--warmup`` + ``--step`` seconds (the peers exclude the
warm-up from their own reports). Every tool is judged by one rule, from outside it: the server's count of
OK answers (its Prometheus counter) and the CPU of the tool's whole process tree (``/proc``), sampled
every 0.5 s, over the steady window from ``--warmup`` s after the server's first answer for ``--step`` - 2
s. Start-up, warm-up and shutdown lie outside that window. A rate is sustained when the server answered
at least 95 % of it in the window, less two Poisson standard deviations of the count. Each repetition
steps the rate up with the tools interleaved at every step (the order rotating) and drops a tool once it
misses a rate. Then, optionally, every tool runs once at twice its median maximum, and its reported TTFT
p50 is printed next to the TTFT measured from each request's *scheduled* time (coordinated omission).

The peers run from their own virtual environments (``bench/peers-requirements.txt``; see
``make_peer_venvs``); nothing is downloaded at run time: both get a small tokenizer trained here on the
served dataset's text and saved as a local directory (they load one even when the server counts tokens).
Usage::

    python -m bench.peers --make-venvs          # once: .venv-peers/{guidellm,aiperf,vllm}
    python -m bench.peers --reps 3 --json /tmp/peers.json

``--concurrency [1,16,256]`` compares closed loops instead (``bench/peers_concurrency.py``): lpuperf's
``--load concurrency:N``, AIPerf's ``--concurrency N``, vLLM's ``bench serve --max-concurrency N`` (and
GuideLLM's ``concurrent`` profile if asked), judged by the same outside rule.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.peers_measure import Run, sample_until_exit, server_answers, steady_window, summarize, table
from bench.relay_cost import free_port, spawn
from bench.sut_cost import CHUNK_SIZE, OUTPUT_TOKENS

__all__ = ["run_peers", "table"]

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / ".venv-peers"
REQUIREMENTS = Path(__file__).with_name("peers-requirements.txt")
MODEL = "sim-instant"
RATES = "10,100,150,200,300,400,600,800,1000,1200,1500,2000,2500,3000"
PEERS = ("guidellm", "aiperf", "vllm")
CONCURRENCIES = "1,16,256"  # --concurrency's default ladder
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def make_peer_venvs() -> None:
    """One venv per peer under .venv-peers/, pinned by bench/peers-requirements.txt (their trees conflict).

    A line is the tool's pin, then pins installed beside it in its venv (``guidellm==0.8.1 torch==2.13.0``)."""
    for line in REQUIREMENTS.read_text().splitlines():
        specs = line.split("#", 1)[0].split()
        if not specs:
            continue
        venv = PEERS_DIR / venv_name(specs[0])
        if not (venv / "bin" / "python").is_file():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *specs], check=True)


def venv_name(spec: str) -> str:
    """A requirement's venv under .venv-peers: its name without extras or version (``vllm[bench]==0.33.0``: vllm)."""
    return re.split(r"[\[=<>!~]", spec, maxsplit=1)[0]


def _peer_bin(tool: str) -> Path:
    return PEERS_DIR / tool / "bin"


def _peer_version(tool: str) -> str:
    proc = subprocess.run(
        [str(_peer_bin(tool) / "python"), "-c", f"import importlib.metadata as m; print(m.version('{tool}'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or "?"


TOKENIZER_SCRIPT = """
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
words = open(sys.argv[1]).read().split()
corpus = [" ".join(words[i:i + 64]) for i in range(0, len(words), 64)]
tok = Tokenizer(models.BPE(unk_token=None))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<eos>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(corpus, trainer)
PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>").save_pretrained(sys.argv[2])
"""


@dataclass
class Workload:
    dataset: Path  # lpuperf's --dataset and the server's
    aiperf_prompts: Path  # single_turn JSONL: text, output_length
    guidellm_prompts: Path  # JSONL: prompt, prompt_tokens_count, output_tokens_count
    tokenizer: Path
    vllm_prompts: Path  # vLLM's custom dataset: JSONL of prompt (the output length is its --custom-output-len)


def make_workload(tmp: Path, peer_python: Path | None) -> Workload:
    """The bench dataset, its prompts as the peers' prompt files, and a tokenizer trained on its text (the
    peers load one; it also keeps them off the network)."""
    from bench.harness_overhead import _dataset
    from scenarios import resolve_dataset

    dataset = _dataset(tmp)
    ds = resolve_dataset(str(dataset))
    aiperf, guidellm = tmp / "prompts-aiperf.jsonl", tmp / "prompts-guidellm.jsonl"
    rows = list(zip(ds.prompts, ds.input_ids, strict=True))
    aiperf.write_text("".join(json.dumps({"text": p, "output_length": OUTPUT_TOKENS}) + "\n" for p, _ in rows))
    guidellm.write_text(
        "".join(
            json.dumps({"prompt": p, "prompt_tokens_count": len(ids), "output_tokens_count": OUTPUT_TOKENS}) + "\n"
            for p, ids in rows
        )
    )
    vllm = tmp / "prompts-vllm.jsonl"
    vllm.write_text("".join(json.dumps({"prompt": p}) + "\n" for p, _ in rows))
    tokenizer = tmp / "tokenizer"
    if peer_python is not None:
        assert ds.decoder is not None
        corpus = tmp / "corpus.txt"
        corpus.write_text("\n".join([*ds.prompts, *(ds.decoder.decode(r) for r in ds.reference_ids)]))
        cmd = [str(peer_python), "-c", TOKENIZER_SCRIPT, str(corpus), str(tokenizer)]
        subprocess.run(cmd, check=True, env={**os.environ, **OFFLINE_ENV})
    return Workload(dataset, aiperf, guidellm, tokenizer, vllm)


def _p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ---- the tools --------------------------------------------------------------------------------------

# A tool's run: (command, working dir, extra environment, how to read its own report afterwards).
Launch = tuple[list[str], Path, dict[str, str], Callable[[Run], None]]


def lpuperf_launch(
    run: Run, target: str, work: Workload, tmp: Path, load_s: float, transport: str, concurrency: int | None = None
) -> Launch:
    """``lpuperf run`` (Server scenario, or ``--load concurrency:N`` with ``concurrency``): over gRPC to the
    server itself (``grpc``, ``target`` its address), via the gRPC relay it spawns (``relay``) or straight
    over HTTP (``http``; ``target`` the base URL)."""
    out = tmp / "lpuperf"
    run_id = f"{transport}-{run.rep}-{run.rate:g}-{concurrency}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "cli", "run"]
    if concurrency is None:
        cmd += ["--scenario", "Server", "--qps", f"{run.rate:g}"]
    else:
        cmd += ["--load", f"concurrency:{concurrency}", "--metrics-linger", "0"]
    cmd += ["--duration", f"{load_s:g}", "--dataset", str(work.dataset), "--max-new-tokens", str(OUTPUT_TOKENS)]
    cmd += ["--out", str(out), "--run-id", run_id, "--no-record", "--ignore-eos"]  # 128 tokens, as ignore_eos
    if transport == "grpc":
        cmd += ["--sut", target]
    else:
        cmd += ["--model", MODEL, "--base-url", target]
        cmd += ["--transport", "openai-http"] if transport == "http" else ["--backend", "openai"]

    def report(run: Run) -> None:
        found = list(out.glob(f"{run_id}/**/results.json"))
        if not found:
            run.note = run.note or "no results.json"
            return
        res = json.loads(found[0].read_text())
        run.ttft_p50_ms = run.ttft_sched_p50_ms = res["ttft_ms"]["p50"]  # LoadGen times from the scheduled issue
        if concurrency is not None:  # no LoadGen: the run's own dispatch lag and its verdict
            lag = res.get("dispatch_lag") or {}
            run.extra = {"dispatch_lag_p99_ms": lag.get("p99_ms"), "client_limited": res.get("client_limited")}
            run.extra |= {"n_errors": int(res["n_errors"]), "valid": bool(res["valid"])}
            return
        run.extra = {
            "loadgen_valid": bool(res["loadgen_valid"]),
            "loadgen_completed_over_scheduled": float(res["completed_qps"]) / max(float(res["scheduled_qps"]), 1e-9),
            "n_errors": int(res["n_errors"]),
        }

    return cmd, ROOT, {}, report


def guidellm_launch(
    run: Run, base_url: str, work: Workload, tmp: Path, load_s: float, warmup_s: float, concurrency: int | None = None
) -> Launch:
    """GuideLLM's ``run`` from a scenario file (its CLI takes one ``kind=...`` document per option); its
    ``concurrent`` profile of ``concurrency`` streams when given."""
    out = tmp / f"guidellm-{time.monotonic_ns()}"
    out.mkdir()
    warmup = {"mode": "duration", "value": warmup_s}
    profile: dict[str, Any] = {"kind": "poisson", "rate": [run.rate], "warmup": warmup}
    if concurrency is not None:
        profile = {"kind": "concurrent", "streams": [concurrency], "warmup": warmup}
    spec = {
        "backend": {
            "kind": "openai_http",
            "target": base_url.removesuffix("/v1"),
            "model": MODEL,
            "request_format": "/v1/completions",
            "extras": {"body": {"ignore_eos": True}},
        },
        "profile": profile,
        "constraints": [{"kind": "max_duration", "seconds": load_s}],
        "tokenizer": {"kind": "huggingface_auto", "model": str(work.tokenizer)},
        "data": [{"kind": "json_file", "path": str(_guidellm_prompts(work, out, (run.rate or 3000) * load_s))}],
        "outputs": [{"kind": "json", "path": str(out / "report.json")}],
    }
    scenario = out / "scenario.json"
    scenario.write_text(json.dumps({"metadata": {"name": "lpuperf-peers"}, "spec": spec}))
    cmd = [str(_peer_bin("guidellm") / "guidellm"), "run", "--config", str(scenario), "--disable-console-interactive"]

    def report(run: Run) -> None:
        reports = sorted(out.glob("**/report*.json"))
        if reports:
            _parse_guidellm(run, json.loads(reports[0].read_text()))
        else:
            run.note = run.note or "no report"

    return cmd, out, dict(OFFLINE_ENV), report


def _guidellm_prompts(work: Workload, out: Path, planned: float) -> Path:
    """The prompt file repeated past what the run can ask for: GuideLLM reads a file once, without cycling,
    and stops when it runs out (at 100 req/s a 256-prompt file ended the run in 2.6 s)."""
    rows = work.guidellm_prompts.read_text().splitlines(keepends=True)
    path = out / "prompts.jsonl"
    path.write_text("".join(rows * (int(1.5 * planned) // len(rows) + 1)))
    return path


def _parse_guidellm(run: Run, report: dict[str, Any]) -> None:
    bench = report["benchmarks"][0]
    ok = (bench.get("requests") or {}).get("successful") or []
    metrics = bench.get("metrics") or {}
    totals = metrics.get("request_totals") or {}
    run.extra = {"window_s": bench.get("duration"), "totals": totals}
    ttft = ((metrics.get("time_to_first_token_ms") or {}).get("successful") or {}).get("median")
    run.ttft_p50_ms = float(ttft) if ttft is not None else None
    waits = []
    for r in ok:
        timings = (r.get("info") or r.get("request_info") or {}).get("timings") or {}
        # GuideLLM records each request's own target time: TTFT from it is the scheduled-time TTFT.
        target, first = timings.get("targeted_start"), timings.get("first_token_iteration")
        # A target not on the first token's clock (a 57-year "TTFT" was seen) says nothing.
        if target and first and 0 <= float(first) - float(target) < 3600:
            waits.append(1000 * (float(first) - float(target)))
    run.ttft_sched_p50_ms = _p50(waits)


def aiperf_launch(
    run: Run, base_url: str, work: Workload, tmp: Path, step_s: float, warmup_s: float, concurrency: int | None = None
) -> Launch:
    """AIPerf's ``profile``: Poisson arrivals at the run's rate, or a closed loop of ``concurrency``."""
    out = tmp / f"aiperf-{time.monotonic_ns()}"
    cmd = [str(_peer_bin("aiperf") / "aiperf"), "profile", "--model", MODEL, "--url", base_url.removesuffix("/v1")]
    # AIPerf's "builtin" tokenizer downloads its tiktoken file, and with HF_HUB_OFFLINE set it looks only in the
    # hub cache; a local directory loads without either (from a path, transformers does not go online).
    cmd += ["--endpoint-type", "completions", "--streaming", "--tokenizer", str(work.tokenizer)]
    cmd += ["--input-file", str(work.aiperf_prompts), "--custom-dataset-type", "single_turn"]
    cmd += ["--use-server-token-count", "--extra-inputs", "ignore_eos:true"]
    if concurrency is None:
        cmd += ["--request-rate", f"{run.rate:g}", "--arrival-pattern", "poisson"]  # as LoadGen's Server scenario
        cmd += ["--warmup-duration", f"{warmup_s:g}", "--warmup-request-rate", f"{run.rate:g}"]
        cmd += ["--warmup-arrival-pattern", "poisson"]
    else:
        cmd += ["--concurrency", str(concurrency), "--warmup-duration", f"{warmup_s:g}"]
        cmd += ["--warmup-concurrency", str(concurrency)]
    cmd += ["--benchmark-duration", f"{step_s:g}"]
    cmd += ["--artifact-dir", str(out), "--ui-type", "none"]

    def report(run: Run) -> None:
        # The profiling phase's own summary (the top-level one includes the warm-up); the records hold both.
        summary = next(
            (p for p in (out / "phases/profiling", out) if (p / "profile_export_aiperf.json").is_file()), None
        )
        if summary is not None:
            _parse_aiperf(run, json.loads((summary / "profile_export_aiperf.json").read_text()), out)
        else:
            run.note = run.note or "no profile_export_aiperf.json"

    return cmd, tmp, {}, report


def _parse_aiperf(run: Run, summary: dict[str, Any], art: Path) -> None:
    ttft = summary.get("time_to_first_token") or summary.get("ttft") or {}
    run.ttft_p50_ms = float(ttft["p50"]) if isinstance(ttft, dict) and ttft.get("p50") is not None else None
    count = summary.get("request_count") or {}
    run.extra = {"request_count": count.get("avg") if isinstance(count, dict) else count}
    waits = []
    records = art / "profile_export.jsonl"
    if records.is_file():
        for line in records.read_text().splitlines():
            rec = json.loads(line)
            meta = rec.get("metadata") or {}
            if meta.get("benchmark_phase", "profiling") != "profiling":
                continue
            start_ns, credit_ns = meta.get("request_start_ns"), meta.get("credit_issued_ns")
            ttft_rec = (rec.get("metrics") or {}).get("time_to_first_token") or {}
            if start_ns and credit_ns and isinstance(ttft_rec, dict) and ttft_rec.get("value") is not None:
                # The credit is issued when the request is due: TTFT from it is the scheduled-time TTFT.
                waits.append((start_ns - credit_ns) / 1e6 + float(ttft_rec["value"]))
    run.ttft_sched_p50_ms = _p50(waits)


def vllm_launch(run: Run, base_url: str, work: Workload, tmp: Path, concurrency: int, num_prompts: int) -> Launch:
    """vLLM's ``bench serve``: ``num_prompts`` requests, at most ``concurrency`` in flight, sent as fast as it can
    (``--request-rate inf``). It has no duration limit: the caller sizes ``num_prompts`` to outlast the window."""
    out = tmp / f"vllm-{time.monotonic_ns()}"
    cmd = [str(_peer_bin("vllm") / "vllm"), "bench", "serve", "--backend", "openai", "--endpoint", "/v1/completions"]
    cmd += ["--base-url", base_url.removesuffix("/v1"), "--model", MODEL, "--tokenizer", str(work.tokenizer)]
    cmd += ["--dataset-name", "custom", "--dataset-path", str(work.vllm_prompts), "--skip-chat-template"]
    cmd += ["--custom-output-len", str(OUTPUT_TOKENS), "--ignore-eos", "--num-prompts", str(num_prompts)]
    cmd += ["--max-concurrency", str(concurrency), "--request-rate", "inf", "--disable-tqdm"]
    cmd += ["--save-result", "--result-dir", str(out), "--result-filename", "result.json"]

    def report(run: Run) -> None:
        path = out / "result.json"
        if not path.is_file():
            run.note = run.note or "no result.json (stopped before its last prompt)"
            return
        res = json.loads(path.read_text())
        ttft = res.get("median_ttft_ms")
        run.ttft_p50_ms = float(ttft) if ttft is not None else None
        run.extra = {k: res.get(k) for k in ("completed", "failed", "duration", "request_throughput")}

    return cmd, tmp, dict(OFFLINE_ENV), report


# ---- driver -----------------------------------------------------------------------------------------


@dataclass
class Bench:
    server_pid: int
    metrics_url: str
    warmup_s: float
    step_s: float
    launchers: dict[str, Callable[[Run], Launch]]


def one(
    bench: Bench,
    tool: str,
    rate: float,
    rep: int,
    settle_s: float = 1.0,
    run: Run | None = None,
    timeout_s: float | None = None,
) -> Run:
    """One run of ``tool`` (``run``: a prepared record to fill); past ``timeout_s`` its process group is killed."""
    run = run if run is not None else Run(tool=tool, rate=rate, rep=rep)
    time.sleep(settle_s)  # let the previous run's connections close
    load0, t0 = os.getloadavg()[0], time.monotonic()
    _, bad0 = server_answers(bench.metrics_url)
    try:
        cmd, cwd, env, report = bench.launchers[tool](run)
        log = (Path(tempfile.gettempdir()) / f"lpuperf-peers-{tool}.log").open("wb")
        with log:
            proc = subprocess.Popen(
                cmd, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            limit_s = timeout_s if timeout_s is not None else 6 * (bench.warmup_s + bench.step_s) + 180
            samples = sample_until_exit(proc, bench.server_pid, bench.metrics_url, limit_s)
        if proc.returncode and not (tool.startswith("lpuperf") and proc.returncode == 1):  # lpuperf 1: INVALID
            run.note = f"exit {proc.returncode} (log: {log.name})"
        steady_window(run, samples, bench.warmup_s, bench.step_s)
        run.client_cpu_total_s = samples[-1].client_cpu_s if samples else 0.0
        run.errors = samples[-1].bad - bad0
        report(run)
    except (subprocess.SubprocessError, OSError, KeyError, ValueError, IndexError) as exc:
        run.note = f"{exc.__class__.__name__}: {str(exc)[:200]}"
    run.wall_s = time.monotonic() - t0
    run.load1 = (load0, os.getloadavg()[0])
    return run


def _record(runs: list[Run], run: Run, json_path: Path | None, meta: dict[str, Any]) -> None:
    runs.append(run)
    print(json.dumps({**asdict(run), "completion": round(run.completion, 3), "sustained": run.sustained}), flush=True)
    if json_path is not None:  # after every run, so an interrupted invocation keeps what it measured
        json_path.write_text(json.dumps({**meta, "runs": [asdict(r) for r in runs]}, indent=1))


def installed(tools: list[str]) -> list[str]:
    """``tools`` less the peers not installed under .venv-peers (each named once, with how to install it)."""
    tools = [t for t in tools if t]
    for t in tools:
        if t in PEERS and not (_peer_bin(t) / t).is_file():
            print(f"{t}: not installed under {PEERS_DIR / t} (python -m bench.peers --make-venvs); skipped", flush=True)
    return [t for t in tools if t not in PEERS or (_peer_bin(t) / t).is_file()]


def run_peers(
    tools: list[str],
    rates: list[float],
    reps: int,
    duration_s: float,
    twice: bool,
    warmup_s: float = 5.0,
    guidellm_workers: int = 2,
    json_path: Path | None = None,
) -> dict[str, Any]:
    """Every tool stepped through ``rates`` (``duration_s`` s measured after ``warmup_s``) in ``reps``
    interleaved repetitions, then once at 2x its maximum: ``{"summary": per tool, "runs": every run}``."""
    if "vllm" in tools:  # `vllm bench serve` has no duration limit to hold a rate for a window: closed loops only
        print("vllm: compared with --concurrency only; skipped", flush=True)
    tools = installed([t for t in tools if t != "vllm"])
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "versions": {t: _peer_version(t) for t in tools if t in PEERS},
        "options": {"warmup_s": warmup_s, "step_s": duration_s, "guidellm_workers": guidellm_workers},
    }
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="lpuperf-peers-") as tmp_s:
        tmp = Path(tmp_s)
        peer_py = next((_peer_bin(t) / "python" for t in PEERS if t in tools), None)
        work = make_workload(tmp, peer_py)
        port, metrics_port = free_port(), free_port()
        flags = ["--artifact", "sim-instant", "--dataset", str(work.dataset), "--chunk-size", str(CHUNK_SIZE)]
        server, grpc_address = spawn(ROOT, [*flags, "--http", str(port), "--metrics-port", str(metrics_port)], tmp)
        base_url = f"http://127.0.0.1:{port}/v1"
        load_s = warmup_s + duration_s
        gl_env = {"GUIDELLM__MAX_WORKER_PROCESSES": str(guidellm_workers)}

        def guidellm(r: Run) -> Launch:
            cmd, cwd, env, report = guidellm_launch(r, base_url, work, tmp, load_s, warmup_s)
            return cmd, cwd, {**env, **gl_env}, report

        bench = Bench(
            server.pid,
            f"http://127.0.0.1:{metrics_port}/metrics",
            warmup_s,
            duration_s,
            {
                "lpuperf-grpc": lambda r: lpuperf_launch(r, grpc_address, work, tmp, load_s, "grpc"),
                "lpuperf-relay": lambda r: lpuperf_launch(r, base_url, work, tmp, load_s, "relay"),
                "lpuperf-http": lambda r: lpuperf_launch(r, base_url, work, tmp, load_s, "http"),
                "guidellm": guidellm,
                "aiperf": lambda r: aiperf_launch(r, base_url, work, tmp, duration_s, warmup_s),
            },
        )
        try:
            for rep in range(1, reps + 1):
                alive = list(tools)
                for step, rate in enumerate(rates):
                    k = (rep + step) % len(tools)
                    for tool in [t for t in tools[k:] + tools[:k] if t in alive]:
                        run = one(bench, tool, rate, rep)
                        _record(runs, run, json_path, meta)
                        if not run.sustained:
                            alive.remove(tool)
                    if not alive:
                        break
            summary = summarize(runs, tools, reps)
            if twice:
                for tool in tools:
                    run = one(bench, tool, 2 * (summary[tool]["max_rate_median"] or rates[0]), 0)
                    _record(runs, run, json_path, meta)
                    summary[tool]["at_2x"] = asdict(run) | {"completion": run.completion}
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {**meta, "summary": summary, "runs": [asdict(r) for r in runs]}
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    ap.add_argument("--make-venvs", action="store_true", help="create .venv-peers/<tool> from peers-requirements.txt")
    ap.add_argument(
        "--tools",
        help="comma-separated (default: lpuperf-grpc,lpuperf-http,lpuperf-relay,guidellm,aiperf; "
        "with --concurrency: lpuperf-grpc,lpuperf-http,aiperf,vllm)",
    )
    ap.add_argument("--rates", default=RATES)
    ap.add_argument(
        "--concurrency",
        nargs="?",
        const=CONCURRENCIES,
        help=f"compare closed loops at these concurrencies instead (alone: {CONCURRENCIES})",
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--step", "--duration", dest="step", type=float, help="measured seconds per run (20; 10 with --concurrency)"
    )
    ap.add_argument("--warmup", type=float, help="seconds of load before the measured window (5; 3 with --concurrency)")
    ap.add_argument(
        "--quick", action="store_true", help="with --concurrency: one rep at 1 and 64, 2 s warm-up, 6 s window"
    )
    ap.add_argument("--guidellm-workers", type=int, default=2, help="GuideLLM's worker processes (its default: 10)")
    ap.add_argument("--twice", action="store_true", help="also run each tool once at twice its maximum rate")
    ap.add_argument("--json", type=Path, help="write every run here (rewritten after each run)")
    ap.add_argument("--report", type=Path, help="only print the Markdown tables of a --json file")
    args = ap.parse_args(argv)
    if args.concurrency is not None or (args.report is not None and '"mode": "concurrency"' in args.report.read_text()):
        return _main_concurrency(args)
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        tools = list(dict.fromkeys(r["tool"] for r in saved["runs"]))
        print(table(saved["runs"], tools))
        return 0
    if args.make_venvs:
        make_peer_venvs()
        return 0
    result = run_peers(
        (args.tools or "lpuperf-grpc,lpuperf-http,lpuperf-relay,guidellm,aiperf").split(","),
        [float(x) for x in args.rates.split(",")],
        args.reps,
        20.0 if args.step is None else args.step,
        args.twice,
        warmup_s=5.0 if args.warmup is None else args.warmup,
        guidellm_workers=args.guidellm_workers,
        json_path=args.json,
    )
    print(json.dumps(result["summary"], indent=1))
    print(table(result["runs"], list(result["summary"])))
    return 0


def _main_concurrency(args: argparse.Namespace) -> int:
    from bench import peers_concurrency  # it imports this module: loaded at the CLI boundary only

    if args.report is not None:
        print(peers_concurrency.report(args.report))
        return 0
    reps, step, warmup, conc = args.reps, args.step or 10.0, args.warmup or 3.0, args.concurrency
    if args.quick:
        reps, step, warmup, conc = 1, 6.0, 2.0, "1,64"
    result = peers_concurrency.run_concurrency(
        (args.tools or peers_concurrency.TOOLS).split(","),
        [int(x) for x in conc.split(",")],
        reps,
        step,
        warmup,
        guidellm_workers=args.guidellm_workers,
        json_path=args.json,
    )
    print(json.dumps(result["summary"], indent=1))
    print(peers_concurrency.table(result["runs"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

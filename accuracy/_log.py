"""Reading LoadGen's ``mlperf_log_accuracy.json`` and decoding its token ids to text.

The log is a JSON list of ``{"seq_id", "qsl_idx", "data": HEX, ...}``; ``data`` holds the raw
response bytes, here token ids of ``--dtype`` int32 (LoadGen's LLM default) or int64. A sample can
appear more than once (LoadGen may issue it repeatedly); MLPerf's evaluation keeps the first entry
per ``qsl_idx`` and so does :func:`read_accuracy_log`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from common import write_atomic

TokenDtype = Literal["int32", "int64"]


class AccuracyLogError(ValueError):
    """The accuracy log (or its decoding) is unusable; the message is one line naming the file and field."""


@dataclass
class AccuracyLog:
    path: Path
    sha256: str
    qsl_indices: list[int]  # first-seen order, deduplicated
    outputs: list[np.ndarray]  # token ids per entry in qsl_indices
    n_entries: int  # entries in the file, duplicates included


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_accuracy_log(path: str | Path, dtype: TokenDtype = "int32") -> AccuracyLog:
    p = Path(path)
    if not p.is_file():
        raise AccuracyLogError(f"{p}: accuracy log not found")
    try:
        entries = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AccuracyLogError(f"{p}: not a JSON accuracy log ({exc.__class__.__name__})") from None
    if not isinstance(entries, list):
        raise AccuracyLogError(f"{p}: expected a JSON list of {{qsl_idx, data}} entries")
    np_dtype = np.dtype("<i4" if dtype == "int32" else "<i8")
    seen: set[int] = set()
    indices: list[int] = []
    outputs: list[np.ndarray] = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("qsl_idx"), int):
            raise AccuracyLogError(f"{p}: entry {k}: field 'qsl_idx': expected an integer")
        idx = entry["qsl_idx"]
        if idx in seen:
            continue
        data = entry.get("data")
        if not isinstance(data, str):
            raise AccuracyLogError(f"{p}: entry {k}: field 'data': expected a hex string")
        try:
            raw = bytes.fromhex(data)
        except ValueError:
            raise AccuracyLogError(f"{p}: entry {k}: field 'data': not valid hex") from None
        if len(raw) % np_dtype.itemsize:
            raise AccuracyLogError(
                f"{p}: entry {k}: field 'data': {len(raw)} bytes is not a whole number of {dtype} token ids"
            )
        seen.add(idx)
        indices.append(idx)
        outputs.append(np.frombuffer(raw, dtype=np_dtype).astype(np.int64))
    return AccuracyLog(path=p, sha256=file_sha256(p), qsl_indices=indices, outputs=outputs, n_entries=len(entries))


def write_accuracy_log(path: str | Path, outputs: Sequence[np.ndarray], dtype: TokenDtype = "int32") -> Path:
    """Write a LoadGen-shaped accuracy log (used to score recordings and by tests)."""
    np_dtype = np.dtype("<i4" if dtype == "int32" else "<i8")
    rows = [
        {"seq_id": i, "qsl_idx": i, "data": np.asarray(ids).astype(np_dtype).tobytes().hex().upper()}
        for i, ids in enumerate(outputs)
    ]
    return write_atomic(path, json.dumps(rows, indent=0))


def hf_decoder(tokenizer_dir: str | Path) -> Callable[[Sequence[int]], str]:
    """``batch_decode``-equivalent for one sample with a Hugging Face tokenizer (needs transformers)."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise AccuracyLogError("--tokenizer: transformers is not installed (pip install lpuperf[hf])") from None
    d = Path(tokenizer_dir)
    if not d.exists():
        raise AccuracyLogError(f"--tokenizer: {d}: directory not found")
    try:
        tok = AutoTokenizer.from_pretrained(str(d))
    except (OSError, ValueError) as exc:
        raise AccuracyLogError(f"--tokenizer: {d}: cannot load a tokenizer ({exc.__class__.__name__})") from None

    def decode(ids: Sequence[int]) -> str:
        return str(tok.decode([int(i) for i in ids], skip_special_tokens=True))

    return decode

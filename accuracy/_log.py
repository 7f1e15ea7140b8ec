"""Scoring's view of LoadGen's ``mlperf_log_accuracy.json``: token ids per sample, and decoding them to text.

The file is read and its hex decoded by the harness (``loadgen_harness.read_accuracy_log_entries``,
``decode_tokens``); token ids are ``--dtype`` int32 (LoadGen's LLM default) or int64. A sample can
appear more than once (LoadGen may issue it repeatedly); MLPerf's evaluation keeps the first entry
per ``qsl_idx`` and so does :func:`read_accuracy_log`, unless asked to keep every entry (gpt-oss-120b's
evaluator counts each one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import file_sha256
from loadgen_harness import TokenDtype, accuracy_log_path, decode_tokens, read_accuracy_log_entries


class AccuracyLogError(ValueError):
    """The accuracy log (or its decoding) is unusable; the message is one line naming the file and field."""


@dataclass
class AccuracyLog:
    path: Path
    sha256: str
    qsl_indices: list[int]  # first-seen order, deduplicated (every entry when read with dedupe=False)
    outputs: list[np.ndarray]  # token ids per entry in qsl_indices
    n_entries: int  # entries in the file, duplicates included


def read_accuracy_log(path: str | Path, dtype: TokenDtype = "int32", dedupe: bool = True) -> AccuracyLog:
    p = accuracy_log_path(path)
    entries = read_accuracy_log_entries(p, AccuracyLogError)
    seen: set[int] = set()
    indices: list[int] = []
    outputs: list[np.ndarray] = []
    for k, entry in enumerate(entries):
        idx = entry.get("qsl_idx")
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise AccuracyLogError(f"{p}: entry {k}: field 'qsl_idx': expected an integer")
        if dedupe and idx in seen:
            continue
        try:
            ids = decode_tokens(entry.get("data"), dtype)
        except ValueError as exc:
            raise AccuracyLogError(f"{p}: entry {k}: field 'data': {exc}") from None
        seen.add(idx)
        indices.append(idx)
        outputs.append(ids.astype(np.int64))
    return AccuracyLog(path=p, sha256=file_sha256(p), qsl_indices=indices, outputs=outputs, n_entries=len(entries))


def hf_decoder(tokenizer_dir: str | Path, skip_special_tokens: bool = True) -> Callable[[Sequence[int]], str]:
    """``batch_decode``-equivalent for one sample with a Hugging Face tokenizer (needs transformers).

    ``skip_special_tokens=False`` keeps markers such as gpt-oss's harmony channels in the text (what
    MLPerf's gpt-oss-120b evaluator decodes with).
    """
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
        return str(tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens))

    return decode

"""Batch ROUGE (optionally on all cores) and MLPerf's text post-processing.

MLPerf's LLM evaluation scripts strip each text, split it into sentences with nltk's punkt and
join the sentences with "\\n" (only rougeLsum looks at the split). punkt's data cannot be
downloaded here, so :func:`split_sentences` uses ``nupunkt``'s bundled model instead. How close
the two splitters are is measured in tests/unit/accuracy/test_accuracy_sentences.py and recorded in
docs/algorithms.md (Sentence splitting).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from accuracy._rouge import ROUGE_TYPES, _score_chunk


@dataclass
class RougeResult:
    """Per-sample scores: ``scores[type]`` is an (N, 3) float64 array of precision, recall, fmeasure."""

    scores: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.scores.values())))

    def fmeasure(self, rouge_type: str) -> np.ndarray:
        return self.scores[rouge_type][:, 2]

    def means(self) -> dict[str, float]:
        """Mean F-measure x 100 rounded to 4 places, as MLPerf's evaluation scripts report it."""
        return {t: round(float(np.mean(a[:, 2])) * 100, 4) if len(a) else 0.0 for t, a in self.scores.items()}


def rouge_scores(
    predictions: Sequence[str],
    references: Sequence[str],
    workers: int = 1,
    chunk_size: int = 256,
    start_method: str | None = None,
) -> RougeResult:
    """Score each prediction against its reference; ``workers`` > 1 uses a process pool (0 = all cores).

    ``start_method`` (fork/spawn) overrides the automatic choice of :func:`_start_method`.
    """
    if len(predictions) != len(references):
        raise ValueError(f"predictions: expected {len(references)} texts (one per reference), got {len(predictions)}")
    pairs = list(zip(references, predictions, strict=True))
    n_workers = (os.cpu_count() or 1) if workers <= 0 else workers
    n_workers = max(1, min(n_workers, (len(pairs) + chunk_size - 1) // chunk_size))
    chunks = [pairs[i : i + chunk_size] for i in range(0, len(pairs), chunk_size)]
    rows: list[tuple[float, ...]] = []
    if n_workers == 1:
        for chunk in chunks:
            rows.extend(_score_chunk(chunk))
    else:
        ctx = multiprocessing.get_context(start_method or _start_method())
        with ctx.Pool(n_workers) as pool:
            for part in pool.imap(_score_chunk, chunks):
                rows.extend(part)
    table = np.asarray(rows, dtype=np.float64).reshape(len(pairs), 3 * len(ROUGE_TYPES))
    return RougeResult({t: table[:, 3 * k : 3 * k + 3].copy() for k, t in enumerate(ROUGE_TYPES)})


def _start_method() -> str:
    """fork when nothing forbids it (cheap, workers inherit the warm stem cache), else spawn.

    gRPC and LoadGen run native threads that do not survive a fork, so once either is loaded, or
    any other Python thread runs, workers are spawned instead.
    """
    unsafe = threading.active_count() > 1 or any(m in sys.modules for m in ("grpc", "mlperf_loadgen", "torch"))
    if unsafe or "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "fork"


@lru_cache(maxsize=1)
def _nupunkt_split():  # type: ignore[no-untyped-def]
    import nupunkt

    return nupunkt.sent_tokenize


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` by nupunkt's bundled English Punkt model (offline)."""
    if not text.strip():
        return []
    return [s for s in _nupunkt_split()(text) if s.strip()]


def postprocess_text(text: str) -> str:
    """MLPerf's post-processing: strip, split into sentences, join them with "\\n"."""
    return "\n".join(split_sentences(text.strip()))

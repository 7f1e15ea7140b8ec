"""Score an accuracy log against a dataset's ground truth, MLPerf-style, and write accuracy.txt/json.

What MLPerf's LLM evaluation script does, step by step, and what this module does the same way:
decode each sample's ids (first entry per qsl_idx), strip the text, split into sentences and join
them with "\\n" (targets too), ROUGE per sample with use_stemmer=True, mean x 100 rounded to 4
places. ``gen_len`` is the summed character count of the post-processed predictions, ``gen_num``
the number of samples, ``gen_tok_len`` the summed token count and ``tokens_per_sample`` their
ratio rounded to 1 place. accuracy.txt is the printed result dict and a ``hash=`` line with the
sha256 of the accuracy log, as the submission checker expects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from accuracy._log import AccuracyLog, AccuracyLogError
from accuracy._rouge import ROUGE_TYPES
from accuracy._scoring import postprocess_text, rouge_scores
from common import read_model, write_atomic


class AccuracyReport(BaseModel):
    """accuracy.json: the MLPerf result dict plus where it came from.

    ``scores_percent`` holds each metric on MLPerf's printed scale: ROUGE as mean F x 100 (0..100).
    Unknown fields are refused so a report from another writer fails loudly instead of reading as empty.
    """

    model_config = ConfigDict(extra="forbid")

    benchmark: str = ""
    dataset: str = ""
    dataset_sha256: str = ""
    scores_percent: dict[str, float] = Field(
        default_factory=dict, description="rouge1/2/L/Lsum (or a baseline's other metrics), 0..100"
    )
    gen_len: int = 0
    gen_num: int = 0
    gen_tok_len: int = 0
    tokens_per_sample: float = 0.0
    log_path: str = ""
    log_sha256: str = ""
    log_entries: int = 0
    duplicates_dropped: int = 0
    decoder: str = ""

    def result_dict(self) -> dict[str, float | int]:
        """The dict MLPerf's evaluation prints, keys in its order, plain Python numbers."""
        out: dict[str, float | int] = {
            t: float(self.scores_percent[t]) for t in ROUGE_TYPES if t in self.scores_percent
        }
        out |= {
            "gen_len": int(self.gen_len),
            "gen_num": int(self.gen_num),
            "gen_tok_len": int(self.gen_tok_len),
            "tokens_per_sample": float(self.tokens_per_sample),
        }
        return out


class ScoredSamples(BaseModel):
    """Per-sample texts and scores behind a report (for fidelity and debugging); not serialised to accuracy.json."""

    qsl_indices: list[int]
    predictions: list[str]
    outputs: list[list[int]]
    rougeL: list[float]


def format_accuracy_txt(report: AccuracyReport) -> str:
    return f"{report.result_dict()!r}\nhash={report.log_sha256}\n"


def write_accuracy_files(report: AccuracyReport, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    txt, js = out / "accuracy.txt", out / "accuracy.json"
    write_atomic(txt, format_accuracy_txt(report))
    write_atomic(js, report.model_dump_json(indent=2) + "\n")
    return txt, js


def score_texts(
    predictions: Sequence[str], targets: Sequence[str], token_counts: Sequence[int], workers: int = 1
) -> tuple[AccuracyReport, np.ndarray]:
    """The MLPerf result dict for raw (not yet post-processed) texts; returns also per-sample rougeL F."""
    preds = [postprocess_text(p) for p in predictions]
    refs = [postprocess_text(t) for t in targets]
    result = rouge_scores(preds, refs, workers=workers)
    n = len(preds)
    gen_tok_len = int(sum(int(c) for c in token_counts))
    report = AccuracyReport(
        scores_percent=result.means(),
        gen_len=int(sum(len(p) for p in preds)),
        gen_num=n,
        gen_tok_len=gen_tok_len,
        tokens_per_sample=round(gen_tok_len / n, 1) if n else 0.0,
    )
    return report, result.fmeasure("rougeL")


def evaluate_log(
    log: AccuracyLog,
    targets: Sequence[str],
    decode: Callable[[Sequence[int]], str],
    workers: int = 1,
    decoder_name: str = "",
    scorer: BaseModel | Mapping[str, Any] | None = None,
) -> tuple[AccuracyReport, ScoredSamples]:
    """Score a read accuracy log against ``targets`` (indexed by qsl_idx) with ``scorer`` (default: ROUGE)."""
    from accuracy._scorers import create_scorer

    if not log.qsl_indices:
        raise AccuracyLogError(f"{log.path}: the accuracy log has no entries")
    bad = [i for i in log.qsl_indices if not 0 <= i < len(targets)]
    if bad:
        raise AccuracyLogError(f"{log.path}: field 'qsl_idx': {bad[0]} is outside the dataset's {len(targets)} samples")
    texts = [decode(ids.tolist()) for ids in log.outputs]
    scoring = create_scorer(scorer if scorer is not None else {"kind": "rouge", "workers": workers})
    report, rouge_l = scoring.score(texts, [targets[i] for i in log.qsl_indices], [len(o) for o in log.outputs])
    report.log_path = str(log.path)
    report.log_sha256 = log.sha256
    report.log_entries = log.n_entries
    report.duplicates_dropped = log.n_entries - len(log.qsl_indices)
    report.decoder = decoder_name
    samples = ScoredSamples(
        qsl_indices=list(log.qsl_indices),
        predictions=texts,
        outputs=[o.tolist() for o in log.outputs],
        rougeL=rouge_l,
    )
    return report, samples


def load_accuracy_report(path: str | Path) -> AccuracyReport:
    """accuracy.json as written by :func:`write_accuracy_files`; AccuracyLogError naming the file and field."""
    return read_model(path, AccuracyReport, "accuracy report", AccuracyLogError)

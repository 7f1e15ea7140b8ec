"""Fidelity / slippage: a candidate artifact's outputs against the FP32 reference outputs, prompt by prompt.

Aggregate ROUGE can hide a quantized artifact that breaks one kind of prompt. Per sample this
module records ROUGE-L F between the candidate's text and the FP32 text, whether the token ids are
identical (up to the trailing EOS), and the first token position where they diverge. It then
aggregates per category (exact-match rate, mean ROUGE-L, mean divergence position), scores
arithmetic answers (the last number in the output against the dataset's answer) for both sides,
and ranks the worst samples with both texts. Output: JSON (:class:`FidelityReport`) and Markdown.

Units are in the field names: ``exact_match_fraction`` and ``answer_accuracy_fraction`` are 0..1,
``rouge_l_percent`` is ROUGE-L F x 100 (0..100). The SLO gate and the comparison read these fields.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from accuracy._log import AccuracyLogError
from accuracy._scoring import rouge_scores
from common import read_model, write_atomic

_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class CategoryFidelity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=0)
    exact_match_fraction: float = Field(ge=0, le=1, description="fraction of samples whose ids equal the FP32 ids")
    rouge_l_percent: float = Field(ge=0, le=100, description="mean ROUGE-L F x 100 of candidate text vs FP32 text")
    mean_first_divergence: float | None = Field(description="mean first differing token position, diverging samples")
    answer_accuracy_fraction: float | None = Field(default=None, ge=0, le=1)
    reference_answer_accuracy_fraction: float | None = Field(default=None, ge=0, le=1)


class SampleFidelity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int
    category: str
    rouge_l_percent: float = Field(ge=0, le=100)
    exact_match: bool
    first_divergence: int | None
    candidate_tokens: int
    reference_tokens: int
    candidate_text: str = ""
    reference_text: str = ""
    answer: str | None = None
    candidate_answer: str | None = None


class FidelityReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate: str
    reference: str
    dataset: str
    n_samples: int
    overall: CategoryFidelity
    by_category: dict[str, CategoryFidelity]
    worst: list[SampleFidelity]
    samples: list[SampleFidelity] = Field(default_factory=list, description="every sample, texts omitted")


def _strip_eos(ids: np.ndarray, eos: int) -> np.ndarray:
    end = len(ids)
    while end and int(ids[end - 1]) == eos:
        end -= 1
    return ids[:end]


def first_divergence(a: np.ndarray, b: np.ndarray) -> int | None:
    """First index where the sequences differ (the shorter length if one is a prefix); None if equal."""
    n = min(len(a), len(b))
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    if diff.size:
        return int(diff[0])
    return None if len(a) == len(b) else n


def last_number(text: str) -> str | None:
    """The last number in a text, normalised (thousands separators and a trailing '.0' dropped)."""
    found: list[str] = _NUMBER_RE.findall(text)
    if not found:
        return None
    s = found[-1].replace(",", "")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _answers_match(expected: str | None, got: str | None) -> bool:
    return expected is not None and got is not None and last_number(expected) == got


def _aggregate(
    rows: list[SampleFidelity], answers: list[str | None], refs_answer: list[str | None]
) -> CategoryFidelity:
    div = [r.first_divergence for r in rows if r.first_divergence is not None]
    graded = [i for i, r in enumerate(rows) if r.answer is not None]
    acc = ref_acc = None
    if graded:
        acc = sum(_answers_match(rows[i].answer, answers[i]) for i in graded) / len(graded)
        ref_acc = sum(_answers_match(rows[i].answer, refs_answer[i]) for i in graded) / len(graded)
    return CategoryFidelity(
        n=len(rows),
        exact_match_fraction=round(sum(r.exact_match for r in rows) / len(rows), 6) if rows else 0.0,
        rouge_l_percent=round(float(np.mean([r.rouge_l_percent for r in rows])), 4) if rows else 0.0,
        mean_first_divergence=round(float(np.mean(div)), 2) if div else None,
        answer_accuracy_fraction=None if acc is None else round(acc, 6),
        reference_answer_accuracy_fraction=None if ref_acc is None else round(ref_acc, 6),
    )


def compare_outputs(
    dataset: object,
    candidate: Sequence[np.ndarray],
    reference: Sequence[np.ndarray] | None = None,
    indices: Sequence[int] | None = None,
    candidate_name: str = "candidate",
    reference_name: str = "fp32",
    worst_k: int = 10,
    workers: int = 1,
) -> FidelityReport:
    """Fidelity of ``candidate[k]`` (ids for sample ``indices[k]``) vs the FP32 ids (default: the dataset's)."""
    from scenarios.dataset import Dataset

    if not isinstance(dataset, Dataset):
        raise TypeError("dataset: expected a scenarios.Dataset")
    idx = list(range(len(candidate))) if indices is None else list(indices)
    if len(idx) != len(candidate):
        raise ValueError(f"indices: expected {len(candidate)} entries, got {len(idx)}")
    refs_all = dataset.reference_ids if reference is None else reference
    if any(not 0 <= i < len(dataset) or i >= len(refs_all) for i in idx):
        raise ValueError(f"indices: expected sample indices below {min(len(dataset), len(refs_all))}")
    eos = dataset.eos_token_id
    cand = [_strip_eos(np.asarray(c), eos) for c in candidate]
    ref = [_strip_eos(np.asarray(refs_all[i]), eos) for i in idx]
    cand_text = [dataset.decode(c) for c in cand]
    ref_text = [dataset.decode(r) for r in ref]
    rouge_l = rouge_scores(cand_text, ref_text, workers=workers).fmeasure("rougeL") * 100.0
    rows: list[SampleFidelity] = []
    cand_answers: list[str | None] = []
    ref_answers: list[str | None] = []
    for k, i in enumerate(idx):
        fd = first_divergence(cand[k], ref[k])
        answer = dataset.answers[i]
        cand_answers.append(last_number(cand_text[k]))
        ref_answers.append(last_number(ref_text[k]))
        rows.append(
            SampleFidelity(
                index=i,
                category=dataset.categories[i],
                rouge_l_percent=round(float(rouge_l[k]), 4),
                exact_match=fd is None,
                first_divergence=fd,
                candidate_tokens=len(cand[k]),
                reference_tokens=len(ref[k]),
                candidate_text=cand_text[k],
                reference_text=ref_text[k],
                answer=answer,
                candidate_answer=cand_answers[-1] if answer is not None else None,
            )
        )
    cats: dict[str, list[int]] = {}
    for k, r in enumerate(rows):
        cats.setdefault(r.category, []).append(k)
    by_cat = {
        c: _aggregate([rows[k] for k in ks], [cand_answers[k] for k in ks], [ref_answers[k] for k in ks])
        for c, ks in sorted(cats.items())
    }
    order = sorted(
        range(len(rows)), key=lambda k: (rows[k].rouge_l_percent, rows[k].first_divergence or 0, rows[k].index)
    )
    worst = [rows[k] for k in order[:worst_k] if not rows[k].exact_match]
    slim = [r.model_copy(update={"candidate_text": "", "reference_text": ""}) for r in rows]
    return FidelityReport(
        candidate=candidate_name,
        reference=reference_name,
        dataset=dataset.name,
        n_samples=len(rows),
        overall=_aggregate(rows, cand_answers, ref_answers),
        by_category=by_cat,
        worst=worst,
        samples=slim,
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _clip(text: str, n: int = 400) -> str:
    t = text.replace("\n", " ").replace("|", "\\|").strip()
    return t if len(t) <= n else t[: n - 1] + "…"


def render_markdown(rep: FidelityReport) -> str:
    out = [
        f"# Fidelity: {rep.candidate} vs {rep.reference}",
        "",
        f"Dataset `{rep.dataset}`, {rep.n_samples} samples. Exact match = identical token ids up to EOS; "
        "ROUGE-L = candidate text vs FP32 text (F x 100); divergence = first differing token position.",
        "",
        "| category | n | exact match | ROUGE-L | mean first divergence | answer accuracy (candidate / FP32) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, c in [*rep.by_category.items(), ("**all**", rep.overall)]:
        div = "-" if c.mean_first_divergence is None else f"{c.mean_first_divergence:.1f}"
        ans = (
            "-"
            if c.answer_accuracy_fraction is None
            else f"{_pct(c.answer_accuracy_fraction)} / {_pct(c.reference_answer_accuracy_fraction)}"
        )
        out.append(f"| {name} | {c.n} | {_pct(c.exact_match_fraction)} | {c.rouge_l_percent:.2f} | {div} | {ans} |")
    out += ["", f"## Worst {len(rep.worst)} samples (lowest ROUGE-L vs FP32)", ""]
    if not rep.worst:
        out.append("Every sample matches the FP32 reference exactly.")
    for s in rep.worst:
        ans = f", answer {s.answer} vs candidate {s.candidate_answer}" if s.answer is not None else ""
        out += [
            f"### sample {s.index} ({s.category}): ROUGE-L {s.rouge_l_percent:.2f}, diverges at token {s.first_divergence}"
            f" ({s.candidate_tokens} vs {s.reference_tokens} tokens{ans})",
            "",
            f"- candidate: {_clip(s.candidate_text)}",
            f"- FP32: {_clip(s.reference_text)}",
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def write_fidelity_report(rep: FidelityReport, out_dir: str | Path, stem: str = "fidelity") -> tuple[Path, Path]:
    out = Path(out_dir)
    paths = (out / f"{stem}.json", out / f"{stem}.md")
    for path, text in zip(paths, (rep.model_dump_json(indent=2) + "\n", render_markdown(rep)), strict=True):
        write_atomic(path, text)
    return paths


def load_fidelity_report(path: str | Path) -> FidelityReport:
    """A fidelity JSON as written by :func:`write_fidelity_report`; AccuracyLogError naming the file and field."""
    return read_model(path, FidelityReport, "fidelity report", AccuracyLogError)

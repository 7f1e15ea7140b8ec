"""Scorers are registry plugins: ROUGE by default, another one selected by its config's kind."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel

from accuracy import (
    AccuracyReport,
    ScorerConfig,
    create_scorer,
    read_accuracy_log,
    score_accuracy_log,
    scorers,
    write_accuracy_log,
)
from common import RegistryError
from scenarios import resolve_dataset

DATASET = "synthetic:6:4"


class _LengthConfig(ScorerConfig):
    kind: str = "test-length"


class _LengthScorer:
    """Scores each sample by its token count (a stand-in for a benchmark's own metric)."""

    config_model: ClassVar[type[BaseModel]] = _LengthConfig

    def __init__(self, config: _LengthConfig) -> None:
        self.config = config

    def score(
        self, predictions: Sequence[str], targets: Sequence[str], token_counts: Sequence[int]
    ) -> tuple[AccuracyReport, list[float]]:
        per = [float(c) for c in token_counts]
        report = AccuracyReport(scores_percent={"mean_tokens": sum(per) / len(per)}, gen_num=len(per))
        return report, per


@pytest.fixture
def length() -> Iterator[None]:
    scorers.register("test-length")(_LengthScorer)
    try:
        yield
    finally:
        scorers.unregister("test-length")


def _log(tmp: Path, wrong: int) -> Path:
    ds = resolve_dataset(DATASET)
    outs = [r.tolist() for r in ds.reference_ids]
    outs[wrong] = outs[wrong][:1]  # one answer cut short
    return write_accuracy_log(tmp / "mlperf_log_accuracy.json", outs)


def test_rouge_is_the_default_scorer(tmp_path: Path) -> None:
    path = _log(tmp_path, 0)
    default = score_accuracy_log(path, dataset_spec=DATASET, benchmark="embedded", fidelity=False).report
    chosen = score_accuracy_log(
        path, dataset_spec=DATASET, benchmark="embedded", fidelity=False, scorer={"kind": "rouge", "workers": 1}
    ).report
    assert default.scores_percent == chosen.scores_percent and "rougeL" in default.scores_percent


def test_a_registered_scorer_is_selected_by_kind(length: None, tmp_path: Path) -> None:
    path = _log(tmp_path, 2)
    outcome = score_accuracy_log(
        path, dataset_spec=DATASET, benchmark="embedded", fidelity=False, scorer={"kind": "test-length"}
    )
    counts = [len(o) for o in read_accuracy_log(path).outputs]
    assert outcome.samples.rougeL == [float(c) for c in counts] and counts[2] == 1
    assert outcome.report.scores_percent == {"mean_tokens": pytest.approx(sum(counts) / len(counts))}


def test_bad_scorer_config_is_one_line() -> None:
    with pytest.raises(RegistryError, match="unknown scorer kind 'bleu'"):
        create_scorer({"kind": "bleu"})
    with pytest.raises(RegistryError, match="field 'workers'"):
        create_scorer({"kind": "rouge", "workers": 0})
    with pytest.raises(RegistryError, match="already registered"):
        scorers.register("rouge")(_LengthScorer)

"""Scorers as plugins: the accuracy pipeline scores decoded texts with the scorer its config names.

``rouge`` (MLPerf's ROUGE-1/2/L/Lsum with the summarisation post-processing) is the built-in one;
``exact_match-deepseek-r1`` and ``exact_match-gpt-oss-120b`` reproduce MLPerf v6.1's reasoning evaluators
(registered lazily: their module loads sympy only when one is used). A benchmark with another metric
registers its own scorer under a new ``kind``; ``BenchmarkProfile.scorer`` names a benchmark's.

Besides the texts, a scorer gets per sample (one :class:`SampleFields`, when the dataset has any of them)
the sub-dataset name, the ground truth, the code tests and the raw int32 token ids. Two optional class attributes tell
the pipeline how to prepare its input: ``dedupe_log`` (keep only the first log entry per ``qsl_idx``,
default True) and ``skip_special_tokens`` (decode without special tokens, default True).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from accuracy._evaluate import DEEPSEEK_R1_SCORER, GPT_OSS_SCORER, AccuracyReport, score_texts
from common import PluginConfig, Registry


class ScorerConfig(PluginConfig):
    """Base scorer config; ``kind`` names the registered scorer."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class SampleFields:
    """What a scorer may need per logged sample beyond its text, target and token count (one entry a sample).

    ``datasets``: the MLPerf sub-dataset each answer is routed by; ``ground_truths``: its ground truth;
    ``raw_token_ids``: the logged output ids; ``tests``: a code sample's test cases. None where the dataset
    has no such field (ROUGE needs none of them).
    """

    datasets: Sequence[str | None] | None = None
    ground_truths: Sequence[str | None] | None = None
    raw_token_ids: Sequence[np.ndarray] | None = None
    tests: Sequence[Any] | None = None


NO_FIELDS = SampleFields()


class Scorer(Protocol):
    config_model: ClassVar[type[BaseModel]]

    def score(
        self,
        predictions: Sequence[str],
        targets: Sequence[str],
        token_counts: Sequence[int],
        fields: SampleFields = NO_FIELDS,
    ) -> tuple[AccuracyReport, list[float]]:
        """The report over all samples, and each sample's score (what fidelity and debugging look at)."""
        ...


scorers: Registry[Scorer] = Registry("scorer")


class RougeScorerConfig(ScorerConfig):
    kind: str = "rouge"
    workers: int = Field(default=1, ge=1, description="processes scoring in parallel")


@scorers.register("rouge")
class RougeTextScorer:
    """MLPerf's LLM evaluation: post-process, ROUGE with stemming, means x 100; per sample rougeL F."""

    config_model: ClassVar[type[BaseModel]] = RougeScorerConfig

    def __init__(self, config: RougeScorerConfig) -> None:
        self.config = config

    def score(
        self,
        predictions: Sequence[str],
        targets: Sequence[str],
        token_counts: Sequence[int],
        fields: SampleFields = NO_FIELDS,
    ) -> tuple[AccuracyReport, list[float]]:
        report, rouge_l = score_texts(predictions, targets, token_counts, workers=self.config.workers)
        return report, [float(x) for x in rouge_l]


scorers.register_lazy(DEEPSEEK_R1_SCORER, "accuracy._exact_match_scorers:DeepseekR1Scorer")
scorers.register_lazy(GPT_OSS_SCORER, "accuracy._exact_match_scorers:GptOss120bScorer")


def scorer_class(kind: str) -> type[Scorer]:
    """The registered class of ``kind`` (its ``dedupe_log`` / ``skip_special_tokens`` shape the pipeline)."""
    return scorers.get(kind)


def create_scorer(config: BaseModel | Mapping[str, Any] | None = None) -> Scorer:
    """The scorer a config names (None: ROUGE); RegistryError, one line, for an unknown kind or field."""
    return scorers.create(config if config is not None else {"kind": "rouge"}, where="scorer")

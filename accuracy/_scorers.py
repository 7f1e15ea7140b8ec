"""Scorers as plugins: the accuracy pipeline scores decoded texts with the scorer its config names.

``rouge`` (MLPerf's ROUGE-1/2/L/Lsum with the summarisation post-processing) is the built-in one; a
benchmark with another metric registers its own scorer under a new ``kind``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from accuracy._evaluate import AccuracyReport, score_texts
from common import PluginConfig, Registry


class ScorerConfig(PluginConfig):
    """Base scorer config; ``kind`` names the registered scorer."""

    model_config = ConfigDict(extra="forbid")


class Scorer(Protocol):
    config_model: ClassVar[type[BaseModel]]

    def score(
        self, predictions: Sequence[str], targets: Sequence[str], token_counts: Sequence[int]
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
        self, predictions: Sequence[str], targets: Sequence[str], token_counts: Sequence[int]
    ) -> tuple[AccuracyReport, list[float]]:
        report, rouge_l = score_texts(predictions, targets, token_counts, workers=self.config.workers)
        return report, [float(x) for x in rouge_l]


def create_scorer(config: BaseModel | Mapping[str, Any] | None = None) -> Scorer:
    """The scorer a config names (None: ROUGE); RegistryError, one line, for an unknown kind or field."""
    return scorers.create(config if config is not None else {"kind": "rouge"}, where="scorer")

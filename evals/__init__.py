"""Evals against an artifact: lpuperf as an Inspect AI model provider and an lm-eval model, eval suites
on baseline and candidate (``validate --inspect``) and under load (``run --eval-during``).

The provider modules import their framework at the top: Inspect loads ``evals._inspect_provider`` through
the entry point, ``lpuperf evals lm-eval`` loads ``evals._lm_eval_model``; nothing else imports them.
Every other name is imported on first use (:func:`common.lazy_exports`).
"""

from typing import TYPE_CHECKING

from common import lazy_exports

if TYPE_CHECKING:
    from evals._client import EMBEDDED_PREFIX, EvalReply, EvalSut, GenerationSettings, transport_from_args
    from evals._codec import TextCodec, codec_for, default_tokenizer_spec
    from evals._lm_eval_runner import LM_EVAL_INSTALL, LmEvalRun, read_lm_eval_samples, run_lm_eval
    from evals._runner import INSPECT_INSTALL, InspectRun, inspect_available, run_inspect
    from evals._scores import (
        ALL_CATEGORIES,
        CategoryScore,
        SampleScore,
        ScoreDelta,
        TaskScore,
        compare_scores,
        mean_interval,
        read_inspect_log,
    )

__getattr__ = lazy_exports(
    __name__,
    {
        "evals._client": ["EMBEDDED_PREFIX", "EvalReply", "EvalSut", "GenerationSettings", "transport_from_args"],
        "evals._codec": ["TextCodec", "codec_for", "default_tokenizer_spec"],
        "evals._lm_eval_runner": ["LM_EVAL_INSTALL", "LmEvalRun", "read_lm_eval_samples", "run_lm_eval"],
        "evals._runner": ["INSPECT_INSTALL", "InspectRun", "inspect_available", "run_inspect"],
        "evals._scores": [
            "ALL_CATEGORIES",
            "CategoryScore",
            "SampleScore",
            "ScoreDelta",
            "TaskScore",
            "compare_scores",
            "mean_interval",
            "read_inspect_log",
        ],
    },
)

__all__ = [
    "ALL_CATEGORIES",
    "EMBEDDED_PREFIX",
    "INSPECT_INSTALL",
    "LM_EVAL_INSTALL",
    "CategoryScore",
    "EvalReply",
    "EvalSut",
    "GenerationSettings",
    "InspectRun",
    "LmEvalRun",
    "SampleScore",
    "ScoreDelta",
    "TaskScore",
    "TextCodec",
    "codec_for",
    "compare_scores",
    "default_tokenizer_spec",
    "inspect_available",
    "mean_interval",
    "read_inspect_log",
    "read_lm_eval_samples",
    "run_inspect",
    "run_lm_eval",
    "transport_from_args",
]

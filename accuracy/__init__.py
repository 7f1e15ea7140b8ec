"""Accuracy: MLPerf-exact ROUGE, accuracy-log scoring, FP32-baseline gates and fidelity reports."""

from accuracy._rouge import ROUGE_TYPES, RougeScorer, Score
from accuracy._scoring import RougeResult, postprocess_text, rouge_scores, split_sentences

__all__ = [
    "ROUGE_TYPES",
    "RougeResult",
    "RougeScorer",
    "Score",
    "postprocess_text",
    "rouge_scores",
    "split_sentences",
]

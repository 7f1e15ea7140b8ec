"""Accuracy: MLPerf-exact ROUGE, accuracy-log scoring, FP32-baseline gates and fidelity reports."""

from accuracy._baseline import (
    BASELINES_DIR,
    Baseline,
    GateLine,
    GateVerdict,
    apply_gate,
    available_baselines,
    baseline_path,
    compute_reference_baseline,
    load_baseline,
    save_baseline,
)
from accuracy._evaluate import (
    AccuracyReport,
    ScoredSamples,
    evaluate_log,
    format_accuracy_txt,
    load_accuracy_report,
    score_texts,
    write_accuracy_files,
)
from accuracy._fidelity import (
    CategoryFidelity,
    FidelityReport,
    SampleFidelity,
    compare_outputs,
    first_divergence,
    last_number,
    load_fidelity_report,
    render_markdown,
    write_fidelity_report,
)
from accuracy._log import AccuracyLog, AccuracyLogError, read_accuracy_log
from accuracy._pipeline import AccuracyOutcome, recording_fidelity, score_accuracy_log
from accuracy._rouge import ROUGE_TYPES, RougeScorer, Score
from accuracy._scorers import RougeScorerConfig, Scorer, ScorerConfig, create_scorer, scorers
from accuracy._scoring import RougeResult, postprocess_text, rouge_scores, split_sentences

# The log's writer is the harness's (one encoder of LoadGen's format); accuracy users keep finding it here.
from loadgen_harness import write_accuracy_log

__all__ = [
    "BASELINES_DIR",
    "ROUGE_TYPES",
    "AccuracyLog",
    "AccuracyLogError",
    "AccuracyOutcome",
    "AccuracyReport",
    "Baseline",
    "CategoryFidelity",
    "FidelityReport",
    "GateLine",
    "GateVerdict",
    "RougeResult",
    "RougeScorer",
    "RougeScorerConfig",
    "SampleFidelity",
    "Score",
    "ScoredSamples",
    "Scorer",
    "ScorerConfig",
    "apply_gate",
    "available_baselines",
    "baseline_path",
    "compare_outputs",
    "compute_reference_baseline",
    "create_scorer",
    "evaluate_log",
    "first_divergence",
    "format_accuracy_txt",
    "last_number",
    "load_accuracy_report",
    "load_baseline",
    "load_fidelity_report",
    "postprocess_text",
    "read_accuracy_log",
    "recording_fidelity",
    "render_markdown",
    "rouge_scores",
    "save_baseline",
    "score_accuracy_log",
    "score_texts",
    "scorers",
    "split_sentences",
    "write_accuracy_files",
    "write_accuracy_log",
    "write_fidelity_report",
]

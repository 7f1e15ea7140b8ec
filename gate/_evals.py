"""The eval-suite objectives: ``min_task_score`` on each task's overall score and ``max_task_drop`` on each
task's and each category's paired drop against the baseline (point estimate; the interval is shown).

A spec that sets one of them and a gate input without eval results fails the objective by name, saying
how to produce them (``validate --inspect TASK``), as a missing accuracy report does.
"""

from __future__ import annotations

from evals import ALL_CATEGORIES, ScoreDelta, TaskScore
from gate._evaluate import ObjectiveOutcome, check_max, check_min, check_pass
from gate._slo import SloSpec

__all__ = ["eval_objectives"]

MISSING_EVALS = "no eval results; run validate with --inspect TASK or --lm-eval TASK"


def _label(task: str, category: str) -> str:
    return task if category == ALL_CATEGORIES else f"{task}/{category}"


def eval_objectives(
    slo: SloSpec, scores: list[TaskScore] | None, deltas: list[ScoreDelta] | None
) -> list[ObjectiveOutcome]:
    out: list[ObjectiveOutcome] = []
    if slo.min_task_score is not None:
        if not scores:
            out.append(check_pass("min_task_score", None, MISSING_EVALS))
        for score in scores or []:
            out.append(check_min(f"task_score[{score.task}]", score.overall.score, slo.min_task_score))
    if slo.max_task_drop is not None:
        if not deltas:
            out.append(check_pass("max_task_drop", None, MISSING_EVALS))
        for d in deltas or []:
            # A drop is baseline minus candidate: a candidate that scores higher has a negative drop.
            out.append(check_max(f"task_drop[{_label(d.task, d.category)}]", -d.delta, slo.max_task_drop))
    return out

"""The eval-suite stage of ``lpuperf validate --inspect TASK``: each Inspect task runs on the baseline's SUT
and on the candidate's (the same SUT processes the other stages measured), and the verdict table gets one
row per task and per category: baseline score, candidate score, the paired delta with its 95% interval,
and the ``max_task_drop`` limit when the SLO sets one. A category whose interval lies wholly below zero is
named as slipped, next to the fidelity slippage.

``--lm-eval TASK`` runs an lm-eval task (or group) the same way, through ``lpuperf evals lm-eval``: each
subtask is a category. Each side's logs are kept under ``OUT/<run-id>-<label>/evals/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from common import UsageError
from evals import ALL_CATEGORIES, InspectRun, LmEvalRun, ScoreDelta, TaskScore, compare_scores, run_inspect, run_lm_eval
from gate import GateReport, SloSpec, fmt_number
from loadgen_harness import TransportSecurity

__all__ = ["VerdictRow", "eval_deltas", "eval_rows", "eval_slippage", "run_eval_suites"]


class VerdictRow(BaseModel):
    """One row of validate's verdict table (defined here so the eval rows are built as such rows)."""

    objective: str
    baseline: str
    candidate: str
    limit: str
    passed: bool
    line: str


def run_eval_suites(
    runs: list[InspectRun | LmEvalRun],
    address: str,
    transport: TransportSecurity | None,
    log_root: Path,
    label: str,
    echo: Callable[[str], None],
) -> tuple[list[TaskScore], list[str]]:
    """Every suite against one SUT: (scores, errors); a suite that cannot run is an error, never skipped."""
    scores: list[TaskScore] = []
    errors: list[str] = []
    for i, run in enumerate(runs):
        try:
            if isinstance(run, LmEvalRun):
                score = run_lm_eval(run, address, log_root / "evals" / f"lm-eval-{i}", transport, label)
            else:
                score = run_inspect(run, address, log_root / "evals", transport, label)
        except UsageError as exc:
            errors.append(f"eval {run.task}: {exc}")
            echo(f"[{label}] eval {run.task}: ERROR {exc}")
            continue
        scores.append(score)
        o = score.overall
        echo(f"[{label}] eval {score.task}: {o.score:.3f} [{o.ci_low:.3f}, {o.ci_high:.3f}] over {o.n_samples} samples")
    return scores, errors


def eval_deltas(base: list[TaskScore], cand: list[TaskScore]) -> list[ScoreDelta]:
    """Paired deltas of every task both sides scored (matched by task name)."""
    by_task = {s.task: s for s in cand}
    out: list[ScoreDelta] = []
    for b in base:
        c = by_task.get(b.task)
        if c is not None:
            out += compare_scores(b, c)
    return out


def _label(d: ScoreDelta) -> str:
    return d.task if d.category == ALL_CATEGORIES else f"{d.task}/{d.category}"


def eval_rows(slo: SloSpec, gate: GateReport, deltas: list[ScoreDelta]) -> list[VerdictRow]:
    """A row per delta; its pass/fail is the gate's ``task_drop`` objective where the SLO sets one."""
    outcomes = {o.name: o for o in gate.objectives}
    rows = []
    for d in deltas:
        o = outcomes.get(f"task_drop[{_label(d)}]")
        interval = f"delta {d.delta:+.3f}, 95% CI [{d.ci_low:+.3f}, {d.ci_high:+.3f}]"
        rows.append(
            VerdictRow(
                objective=f"eval[{_label(d)}]",
                baseline=f"{d.baseline_score:.3f}",
                candidate=f"{d.candidate_score:.3f} ({interval})",
                limit="-" if slo.max_task_drop is None else f"drop <= {fmt_number(slo.max_task_drop)}",
                passed=True if o is None else o.passed,
                line=o.line if o is not None else f"eval[{_label(d)}]: {interval} over {d.n_samples} samples",
            )
        )
    return rows


def eval_slippage(deltas: list[ScoreDelta]) -> list[str]:
    """The categories that slipped for sure (the whole interval below zero), worst first."""
    slipped = sorted((d for d in deltas if d.ci_high < 0), key=lambda d: d.delta)
    return [
        f"eval {_label(d)}: {d.baseline_score:.3f} -> {d.candidate_score:.3f} "
        f"(delta {d.delta:+.3f}, 95% CI [{d.ci_low:+.3f}, {d.ci_high:+.3f}], {d.changed_answers} answers changed)"
        for d in slipped
    ]

"""The report's eval-under-load section (``run --eval-during``): the eval's score under load next to its
idle score, per category with intervals, how many answers changed, and the eval requests' own TTFT idle
and under load. Shown when the run directory holds eval_under_load.json."""

from __future__ import annotations

import html
import statistics
from pathlib import Path

from common import UsageError
from evals import ALL_CATEGORIES, TaskScore
from workflows._eval_during import EVAL_UNDER_LOAD_FILE, EvalUnderLoad

__all__ = ["eval_section", "read_eval_under_load"]


def read_eval_under_load(run_dir: Path) -> EvalUnderLoad | None:
    """The run's eval_under_load.json (None without one); UsageError naming the file when malformed."""
    path = run_dir / EVAL_UNDER_LOAD_FILE
    if not path.is_file():
        return None
    try:
        return EvalUnderLoad.model_validate_json(path.read_text())
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UsageError(f"{path}: not an eval-under-load result ({first})") from None


def _median_ttft(score: TaskScore) -> str:
    values = [s.ttft_ms for s in score.samples if s.ttft_ms is not None]
    return f"{statistics.median(values):.1f} ms" if values else "—"


def _cell(score: TaskScore, category: str) -> str:
    c = score.category(category)
    return "—" if c is None else f"{c.score:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]"


def eval_section(result: EvalUnderLoad | None) -> str:
    if result is None:
        return ""
    e = html.escape
    rows = []
    for d in result.deltas:
        name = result.task if d.category == ALL_CATEGORIES else d.category
        rows.append(
            "<tr>"
            f"<td>{e(name)}</td><td>{e(_cell(result.idle, d.category))}</td>"
            f"<td>{e(_cell(result.under_load, d.category))}</td>"
            f"<td>{d.delta:+.3f} [{d.ci_low:+.3f}, {d.ci_high:+.3f}]</td><td>{d.changed_answers}</td>"
            "</tr>"
        )
    head = "<tr><th>task / category</th><th>idle</th><th>under load</th><th>delta (95% CI)</th><th>answers changed</th></tr>"
    verdict = "PASS" if result.passed else "FAIL"
    return (
        '<h2 id="eval-under-load">Eval under load</h2>'
        f'<p id="eval-verdict" class="{verdict.lower()}"><b>{verdict}</b> {e(result.line)}</p>'
        f'<table id="eval-table">{head}{"".join(rows)}</table>'
        f'<p class="note">eval requests: {result.n_under_load} of {result.n_samples} under load; their median TTFT '
        f"idle {_median_ttft(result.idle)}, under load {_median_ttft(result.under_load)}. They are not LoadGen "
        "queries: the figures above hold only the load's.</p>"
    )

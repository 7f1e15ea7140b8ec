"""The report's reasoning section: how each query split into reasoning and answer, and when the answer began.

Shown for runs whose results carry reasoning figures (a reasoning model): the time to the first answer
token (TTFA) as a CDF beside TTFT's, and histograms of reasoning and answer tokens per query, over the
successful queries of ``queries.npz``.
"""

from __future__ import annotations

import html

import numpy as np

from loadgen_harness import RunResult
from workflows._charts import _Series, cdf_points, histogram_chart, line_chart
from workflows._report import ReportInputs


def reasoning_arrays(records: np.ndarray) -> dict[str, np.ndarray]:
    """Per successful query: ``ttfa_ms``, ``ttft_ms`` (both where reached), ``reasoning`` and ``answer`` tokens."""
    names = records.dtype.names or ()
    if "n_reasoning" not in names or not (records["n_reasoning"] > 0).any():
        return {}
    issue, first, answer_at = records["issue_ns"], records["first_token_ns"], records["first_answer_ns"]
    ok = (records["status"] == 0) & (records["done_ns"] >= 0) & (issue >= 0)
    reasoning = np.clip(records["n_reasoning"][ok], 0, None)
    return {
        "ttfa_ms": (answer_at - issue)[ok & (answer_at >= issue)] / 1e6,
        "ttft_ms": (first - issue)[ok & (first >= issue)] / 1e6,
        "reasoning": reasoning.astype(np.float64),
        "answer": np.clip(records["n_tokens"][ok] - reasoning, 0, None).astype(np.float64),
    }


def _facts(r: RunResult) -> str:
    s = r.reasoning
    if s is None:
        return ""
    share = "—" if s.reasoning_fraction is None else f"{s.reasoning_fraction:.0%}"
    mean_r = "—" if s.reasoning_tokens.mean is None else f"{s.reasoning_tokens.mean:,.0f}"
    mean_a = "—" if s.answer_tokens.mean is None else f"{s.answer_tokens.mean:,.0f}"
    ttfa = "—" if s.ttfa_ms.p99 is None else f"{s.ttfa_ms.p99:,.1f} ms"
    cut = (
        f" {s.n_without_answer} of {s.n_queries} queries ended inside their reasoning, with no answer."
        if s.n_without_answer
        else ""
    )
    return (
        f'<p id="reasoning-summary">{s.n_with_reasoning} of {s.n_queries} successful queries reasoned before '
        f"answering: <b>{mean_r}</b> reasoning tokens and <b>{mean_a}</b> answer tokens per query on average "
        f"({share} of output tokens were reasoning); TTFA p99 <b>{html.escape(ttfa)}</b>. TTFT counts the first "
        f"token of any kind (MLPerf's); TTFA the first answer token.{cut}</p>"
    )


def reasoning_section(inputs: ReportInputs) -> str:
    """The section's HTML, or "" for a run without reasoning."""
    r, arrays = inputs.result, inputs.reasoning
    if r.reasoning is None and not arrays:
        return ""
    plots: list[str] = []
    ttfa, ttft = arrays.get("ttfa_ms"), arrays.get("ttft_ms")
    if ttfa is not None and ttfa.size:
        series = [_Series("TTFA", *cdf_points(ttfa))]
        if ttft is not None and ttft.size:
            series.append(_Series("TTFT", *cdf_points(ttft), dashed=True))
        plots.append(line_chart("ttfa-cdf", "Time to first answer token (CDF)", series, "ms", "fraction of queries"))
    for key, title in (("reasoning", "Reasoning tokens per query"), ("answer", "Answer tokens per query")):
        values = arrays.get(key)
        if values is not None and values.size:
            plots.append(histogram_chart(f"{key}-tokens", title, values, "tokens"))
    return (
        '<h2 id="reasoning">Reasoning</h2>'
        + _facts(r)
        + ('<div class="plots">' + "".join(plots) + "</div>" if plots else "")
    )

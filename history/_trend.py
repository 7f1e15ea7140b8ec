"""A metric over time or over builds, as ``lpuperf history trend`` and the history report show it."""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import BaseModel

from common import UsageError
from history._models import MetricValue, RunFilter, StoredRun
from history._store import Store

TrendBy = Literal["run", "build"]


class TrendPoint(BaseModel):
    run: StoredRun
    value: MetricValue


def trend_points(runs: list[StoredRun], metric: str, by: TrendBy = "run") -> list[TrendPoint]:
    """Every run's value of ``metric`` (oldest first); ``by="build"`` keeps each build's newest run of each kind."""
    points = [TrendPoint(run=r, value=m) for r in runs if (m := r.metric(metric)) is not None]
    if by == "run":
        return points
    newest: dict[tuple[str, ...], TrendPoint] = {}
    for p in points:
        r = p.run
        key = (r.artifact.name, r.artifact.manifest_sha256, r.command, r.scenario, r.load_spec, r.mode, r.benchmark)
        newest[key] = p
    return sorted(newest.values(), key=lambda p: (p.run.run_at, p.run.id))


def trend(store: Store, metric: str, flt: RunFilter, by: TrendBy = "run") -> list[TrendPoint]:
    """The trend of a recorded metric; an unknown name is a UsageError suggesting the nearest recorded ones."""
    known = store.metric_names()
    if metric not in known:
        near = difflib.get_close_matches(metric, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(near)}?" if near else f"recorded: {', '.join(known[:12]) or 'none'}"
        raise UsageError(f"METRIC: no metric '{metric}' in {store.where}; {hint}")
    points = trend_points(store.runs(flt.model_copy(update={"limit": None})), metric, by)
    return points[-flt.limit :] if flt.limit is not None else points


def ci_text(m: MetricValue) -> str:
    """The interval as text: ``[lo, hi]``, with ``..`` for a side the run could not bound; '' without one."""
    if m.ci_low is None and m.ci_high is None:
        return ""

    def side(v: float | None) -> str:
        return ".." if v is None else f"{v:.4g}"

    return f"[{side(m.ci_low)}, {side(m.ci_high)}]"

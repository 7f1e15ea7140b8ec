"""Regressions over builds: each build against the last build marked good, with ``lpuperf compare``'s statistics.

A build is one (artifact name, manifest hash). Its candidate run is its newest record of a kind (command,
scenario, load, mode, benchmark); the baseline is the newest record marked good of the same artifact name and
kind, of another build, that ran before it. The comparison is :func:`workflows.compare_runs`: latency
percentiles get a bootstrap interval from both runs' ``queries.npz`` when their directories are still
there, and a metric is a regression when it moved the wrong way beyond the tolerance and, where an
interval exists, the interval excludes zero.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from common import UsageError
from gate import GateReport, ObjectiveOutcome
from history._models import RunFilter, RunRecord, StoredRun
from history._store import Store
from workflows import CompareConfig, Comparison, RunData, compare_runs, load_run_data

LAST_GOOD = "last-good"


class BuildComparison(BaseModel):
    """One build's newest run against the last good build; ``comparison`` is None without a baseline."""

    candidate: StoredRun
    baseline: StoredRun | None = None
    comparison: Comparison | None = None
    note: str = ""

    @property
    def regressed(self) -> bool:
        return self.comparison is not None and not self.comparison.passed

    def headline(self) -> str:
        c = self.candidate
        head = (
            f"{c.artifact.name or '?'} build {c.artifact.build_key or '?'} (#{c.id} {c.run_id}, {c.scenario} {c.mode})"
        )
        if self.baseline is None or self.comparison is None:
            return f"{head}: {self.note or 'no earlier build marked good'}"
        b = self.baseline
        n = len(self.comparison.regressions)
        verdict = f"{n} regression{'s' if n != 1 else ''}" if n else "no regression"
        return f"{head} vs good build {b.artifact.build_key or '?'} (#{b.id} {b.run_id}): {verdict}"


def run_data(rec: StoredRun) -> RunData | None:
    """The run as ``compare`` sees it: from its directory when it is still there (per-query data, so
    intervals), else from the reports the store kept (figures only)."""
    d = Path(rec.run_dir) if rec.run_dir else None
    if d is not None and (d / "results.json").is_file():
        try:
            data = load_run_data(d)
            data.name = f"#{rec.id}"
            return data
        except (UsageError, OSError, ValueError):
            pass  # unreadable now: fall back to what the store kept
    if rec.results is None:
        return None
    return RunData(name=f"#{rec.id}", results=rec.results, accuracy=rec.accuracy, fidelity=rec.fidelity)


def compare_to_last_good(store: Store, candidate: StoredRun, cfg: CompareConfig) -> BuildComparison:
    baseline = store.last_good(candidate)
    if baseline is None:
        a = candidate.artifact
        load = f" --load {candidate.load_spec}" if candidate.load_spec else ""
        note = (
            f"no other build of artifact '{a.name}' marked good for {candidate.command} {candidate.scenario}{load} "
            f"{candidate.mode} {candidate.benchmark} before it (lpuperf history mark-good RUN)"
        )
        return BuildComparison(candidate=candidate, note=note)
    base, cand = run_data(baseline), run_data(candidate)
    if base is None or cand is None:
        which = f"#{baseline.id}" if base is None else f"#{candidate.id}"
        return BuildComparison(
            candidate=candidate, baseline=baseline, note=f"{which}: neither its run directory nor its results kept"
        )
    return BuildComparison(candidate=candidate, baseline=baseline, comparison=compare_runs(base, cand, cfg))


def _kind(r: RunRecord) -> tuple[str, str, str, str, str, str]:
    return (r.artifact.name, r.command, r.scenario, r.load_spec, r.mode, r.benchmark)


def build_regressions(store: Store, flt: RunFilter, cfg: CompareConfig) -> list[BuildComparison]:
    """For each build in ``flt`` (oldest first), its newest run of each kind against the last good build."""
    newest: dict[tuple[tuple[str, str, str, str, str, str], str], StoredRun] = {}
    for rec in store.runs(flt.model_copy(update={"limit": None}), documents=True):
        # A LoadGen run that ran its course: the context probe's records have nothing to compare, and a run a
        # signal stopped measured part of a run (its figures would flag or clear its build by accident).
        if rec.results_sha256 and rec.state in ("", "complete"):
            newest[(_kind(rec), rec.artifact.manifest_sha256)] = rec
    builds = sorted(newest.values(), key=lambda r: (r.run_at, r.id))
    if flt.limit is not None:
        builds = builds[-flt.limit :]
    return [compare_to_last_good(store, rec, cfg) for rec in builds]


class LastGoodCheck(BaseModel):
    """The gate's objectives against the last good build, and what they compared."""

    comparison: BuildComparison
    objectives: list[ObjectiveOutcome] = Field(default_factory=list)


def last_good_objectives(store: Store, candidate: RunRecord, cfg: CompareConfig) -> LastGoodCheck:
    """One objective per compared metric (failing on a regression), or one failing objective when there is
    no good build to compare against: a gate that cannot see a baseline does not wave the build through."""
    stored = store.find_results(candidate.results_sha256)
    if stored is None:
        stored = StoredRun(id=0, recorded_at=candidate.run_at, **candidate.model_dump())
    found = compare_to_last_good(store, stored, cfg)
    if found.comparison is None or found.baseline is None:
        why = found.note or "no baseline"
        outcome = ObjectiveOutcome(name=LAST_GOOD, direction="pass", passed=False, line=f"{LAST_GOOD}: {why}")
        return LastGoodCheck(comparison=found, objectives=[outcome])
    b = found.baseline
    prefix = f"vs last good #{b.id} ({b.artifact.build_key})"
    objectives = [
        ObjectiveOutcome(
            name=f"{LAST_GOOD}.{m.name}",
            direction="max" if m.better == "lower" else "min",
            passed=not m.regression,
            value=m.candidate,
            unit=m.unit,
            line=f"{prefix}: {m.line}",
        )
        for m in found.comparison.metrics
    ]
    return LastGoodCheck(comparison=found, objectives=objectives)


def with_objectives(report: GateReport | None, source: str, objectives: list[ObjectiveOutcome]) -> GateReport:
    """The SLO gate's report with the last-good objectives added (or a report of those alone)."""
    if report is None:
        return GateReport(slo=LAST_GOOD, source=source, passed=all(o.passed for o in objectives), objectives=objectives)
    merged = [*report.objectives, *objectives]
    return report.model_copy(update={"objectives": merged, "passed": all(o.passed for o in merged)})

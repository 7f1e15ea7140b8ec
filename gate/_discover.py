"""Find the reports a gate reads next to a run directory (accuracy, fidelity, compliance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import UsageError

# Where other stages leave their reports, relative to a run directory (``OUT/<run-id>/<scenario>/<mode>/``)
# and then to its scenario directory; the context probe writes ``OUT/<run-id>/context_report.json``.
# The first existing match wins.
_ACCURACY_GLOBS = ("accuracy/accuracy.json", "performance/accuracy.json", "accuracy.json")
_FIDELITY_GLOBS = ("accuracy/fidelity*.json", "fidelity*.json", "*/fidelity*.json")
_COMPLIANCE_GLOBS: dict[str, tuple[str, ...]] = {
    "TEST06": ("TEST06/test06*.json", "TEST06/*report*.json", "TEST06/*.json", "*/TEST06/*.json"),
    "context": ("context*.json", "*/context*.json", "../context*.json"),
    "strict": ("TEST06/strict*.json", "strict*.json", "*/strict*.json"),
}


def results_file(path: str | Path) -> Path:
    """``results.json`` for a run directory or file argument; UsageError naming the path otherwise."""
    p = Path(path)
    f = p / "results.json" if p.is_dir() else p
    if not f.is_file():
        raise UsageError(f"{path}: no results.json (expected a run directory OUT/<run-id>/<scenario>/<mode>/)")
    return f


def _first_match(roots: list[Path], patterns: tuple[str, ...]) -> Path | None:
    for root in roots:
        for pattern in patterns:
            hits = sorted(root.glob(pattern))
            if hits:
                return hits[0]
    return None


def discover_reports(run_dir: Path) -> dict[str, Path]:
    """Reports found next to a run: keys 'accuracy', 'fidelity' and compliance check names."""
    roots = [run_dir, run_dir.parent]
    found: dict[str, Path] = {}
    acc = _first_match(roots, _ACCURACY_GLOBS)
    if acc is not None:
        found["accuracy"] = acc
    fid = _first_match(roots, _FIDELITY_GLOBS)
    if fid is not None:
        found["fidelity"] = fid
    for name, patterns in _COMPLIANCE_GLOBS.items():
        hit = _first_match(roots, patterns)
        if hit is not None:
            found[name] = hit
    return found


def shipped_baseline(benchmark: str) -> dict[str, Any] | None:
    """The FP32 reference scores the accuracy package ships for a benchmark, as an accuracy report."""
    if not benchmark:
        return None
    from accuracy import available_baselines, load_baseline

    if benchmark not in available_baselines():
        return None
    base = load_baseline(benchmark)
    return {"scores": dict(base.metrics), "source": base.source}

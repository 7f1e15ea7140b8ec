"""Compare two runs' energy (results.json ``energy``): joules per token and per query, tokens per joule,
average watts and queries per second per watt.

A run's energy is one meter reading over its measured window, with no per-query share to resample.
What varies between two runs of the same SUT at the same load is mostly how many queries and tokens
the window held, and that the per-query records do carry: the throughput's bootstrap (completions
binned over the window, :func:`workflows._stats.mean_change`) is the interval. The change itself is
the two energy blocks' ratio; its interval is that ratio moved by the throughput's interval around its
own point estimate (a per-token energy is power over throughput: a throughput lower than measured
means more energy per token). Power itself is treated as measured exactly.

Average watts get no interval (no verdict): a fleet drawing more because it served more is no
regression. A run without an energy block is not compared on energy; when only one run has one, a
note says so.
"""

from __future__ import annotations

import math
from typing import Literal

from loadgen_harness import EnergyStats
from workflows._compare_load import ComparedFigure
from workflows._stats import Estimate

# An energy figure is compared as the load figures are (a relative change and its interval).
EnergyFigure = ComparedFigure


# (name, label, unit, better, field, throughput it divides by: "tokens", "queries" or None)
_FIGURES: tuple[tuple[str, str, str, Literal["lower", "higher"], str, str | None], ...] = (
    ("energy.joules_per_token", "joules per token", "J/token", "lower", "joules_per_token", "tokens"),
    ("energy.tokens_per_joule", "tokens per joule", "tok/J", "higher", "tokens_per_joule", "tokens"),
    ("energy.joules_per_query", "joules per query", "J", "lower", "joules_per_query", "queries"),
    ("energy.qps_per_watt", "QPS per watt", "qps/W", "higher", "queries_per_second_per_watt", "queries"),
    ("energy.average_watts", "average power", "W", "lower", "average_watts", None),
)


def energy_note(base: EnergyStats | None, cand: EnergyStats | None) -> str | None:
    """Why energy is not compared when one run measured it and the other did not."""
    if (base is None) == (cand is None):
        return None
    which = "baseline" if base is None else "candidate"
    return f"energy measured for only one run (the {which} has no energy block): not compared"


def energy_figures(
    base: EnergyStats | None, cand: EnergyStats | None, rates: dict[str, Estimate | None]
) -> list[EnergyFigure]:
    """The figures both runs' energy blocks hold; ``rates`` are the throughput changes ("tokens", "queries")."""
    if base is None or cand is None:
        return []
    out: list[EnergyFigure] = []
    for name, label, unit, better, field, per in _FIGURES:
        vb, vc = getattr(base, field), getattr(cand, field)
        if not _positive(vb) or not _positive(vc):
            continue
        rate = rates.get(per) if per is not None else None
        est = None if per is None else _energy_change(vc / vb - 1.0, rate, inverse=better == "lower")
        out.append(EnergyFigure(name, label, unit, better, vb, vc, est))
    return out


def _energy_change(change: float, rate: Estimate | None, *, inverse: bool) -> Estimate | None:
    """``change`` with the throughput's interval around its point: per-unit energy is 1 / throughput
    (``inverse``), units per joule is throughput."""
    if rate is None or rate.ci is None:
        return None
    point, (lo, hi) = 1.0 + rate.value, (1.0 + rate.ci[0], 1.0 + rate.ci[1])
    if point <= 0 or lo <= 0:
        return None
    ratio = 1.0 + change
    bounds = (ratio * point / hi, ratio * point / lo) if inverse else (ratio * lo / point, ratio * hi / point)
    return Estimate(change, (bounds[0] - 1.0, bounds[1] - 1.0))


def _positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0

"""Energy over a run's measured window, from the power sources its telemetry scraped (results.json ``energy``).

The window is LoadGen's (first issue to last completion, the one ``successful`` is rated over), on the
run's clock as the telemetry is. Per target the energy is an energy counter's increase between the
window's ends (interpolated between the scrapes around each end: the sampler scrapes once at start and
once at stop, so both ends are bracketed), or else the power gauge integrated over the window
(trapezoids). Measured sources win over the model: DCGM, then RAPL, then any other scraped gauge, then
the sim's power model; the energy is the sum over the targets of the chosen kind (one per replica).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from loadgen_harness._results import EnergySource, EnergyStats
from loadgen_harness._telemetry import Telemetry
from loadgen_harness._telemetry_sources import CanonicalSeries, counter_increase

# Which canonical source stands for which EnergyStats source, best first.
_KIND_OF_SOURCE: dict[str, EnergySource] = {"dcgm": "dcgm", "rapl": "rapl", "lpuperf": "sim"}
_PREFERENCE: tuple[EnergySource, ...] = ("dcgm", "rapl", "prometheus", "sim")


def measured_window_s(records: Mapping[str, np.ndarray]) -> tuple[float, float] | None:
    """(start, end) of LoadGen's window on the run's clock, in seconds; None when no query finished."""
    issue = np.asarray(records["issue_ns"], dtype=np.int64)
    done = np.asarray(records["done_ns"], dtype=np.int64)
    finished = done >= 0
    if not finished.any() or not (issue >= 0).any():
        return None
    return float(issue[issue >= 0].min()) / 1e9, float(done[finished].max()) / 1e9


def _counter_joules(s: CanonicalSeries, w0: float, w1: float) -> tuple[float, bool]:
    inc = counter_increase(s.values)
    covered = bool(s.t_s[0] <= w0 and s.t_s[-1] >= w1)
    return float(np.interp(w1, s.t_s, inc) - np.interp(w0, s.t_s, inc)), covered


def _gauge_joules(s: CanonicalSeries, w0: float, w1: float) -> tuple[float, bool]:
    covered = bool(s.t_s[0] <= w0 and s.t_s[-1] >= w1)
    inside = (s.t_s > w0) & (s.t_s < w1)
    ts = np.concatenate([[w0], s.t_s[inside], [w1]])
    ws = np.interp(ts, s.t_s, s.values)
    return float(np.trapezoid(ws, ts)), covered


def _target_energy(series: list[CanonicalSeries], w0: float, w1: float) -> dict[str, tuple[EnergySource, float, bool]]:
    """Per target: (source kind, joules over the window, whether its scrapes covered the whole window)."""
    out: dict[str, tuple[EnergySource, float, bool]] = {}
    for want in ("energy_joules", "power_watts"):  # a counter is exact; a gauge is sampled
        for s in series:
            if s.canonical != want or s.target in out or s.t_s.size < 2:
                continue
            joules, covered = _counter_joules(s, w0, w1) if want == "energy_joules" else _gauge_joules(s, w0, w1)
            out[s.target] = (_KIND_OF_SOURCE.get(s.source, "prometheus"), joules, covered)
    return out


def energy_over_window(
    telemetry: Telemetry, records: Mapping[str, np.ndarray], series: list[CanonicalSeries] | None = None
) -> EnergyStats | None:
    """EnergyStats over the measured window, or None when no scraped target has a power source."""
    window = measured_window_s(records)
    if window is None or window[1] <= window[0]:
        return None
    w0, w1 = window
    per_target = _target_energy(series if series is not None else telemetry.canonical(), w0, w1)
    if not per_target:
        return None
    kind = next(k for k in _PREFERENCE if any(v[0] == k for v in per_target.values()))
    chosen = {t: v for t, v in per_target.items() if v[0] == kind}
    joules = sum(v[1] for v in chosen.values())
    window_s = w1 - w0
    status = np.asarray(records["status"])
    ok = (np.asarray(records["done_ns"]) >= 0) & (status == 0)
    n_ok = int(ok.sum())
    tokens = int(np.asarray(records["n_tokens"], dtype=np.int64)[ok].sum())
    watts = joules / window_s
    warnings = [
        f"energy: {t}'s scrapes do not cover the whole measured window; its energy counts the covered part only"
        for t, v in sorted(chosen.items())
        if not v[2]
    ]
    return EnergyStats(
        source=kind,
        window_s=round(window_s, 6),
        joules=round(joules, 6),
        average_watts=round(watts, 6),
        n_queries=n_ok,
        output_tokens=tokens,
        joules_per_query=round(joules / n_ok, 9) if n_ok else None,
        joules_per_token=round(joules / tokens, 9) if tokens else None,
        tokens_per_joule=round(tokens / joules, 9) if joules > 0 else None,
        queries_per_second_per_watt=round(n_ok / window_s / watts, 9) if watts > 0 else None,
        replicas=len(chosen),
        warnings=warnings,
    )


def energy_line(e: EnergyStats) -> str:
    """The console's one line about energy."""
    what = {"sim": "the artifact's power model", "dcgm": "DCGM", "rapl": "RAPL", "prometheus": "a scraped power gauge"}
    parts = [f"energy: {e.joules:,.1f} J over {e.window_s:.1f} s, {e.average_watts:,.1f} W average"]
    if e.joules_per_token is not None:
        parts.append(f"{e.joules_per_token:.4g} J/token")
    if e.tokens_per_joule is not None:
        parts.append(f"{e.tokens_per_joule:.4g} tokens/J")
    if e.queries_per_second_per_watt is not None:
        parts.append(f"{e.queries_per_second_per_watt:.4g} QPS/W")
    replicas = f", {e.replicas} replicas" if e.replicas > 1 else ""
    return ", ".join(parts) + f" ({what[e.source]}{replicas})"

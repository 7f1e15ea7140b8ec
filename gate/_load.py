"""What the gate reads from a run beside LoadGen (``lpuperf run --load``): dispatch lag, sessions, prefix cache,
and whether the run's client kept its own schedule.

Each SLO objective on these figures becomes a :class:`LoadCheck` (name, value, limit, why a value is
missing), which the gate turns into an outcome like any other. A run whose client fell behind (its
dispatch lag p99 over the run's bound, results.json's ``client_limited``) measured the client, not the
SUT: :func:`client_verdict` fails it whatever the SLO sets, naming the figure.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from gate._slo import SloSpec
from loadgen_harness import RunResult, TurnStats

NO_LAG = "no dispatch lag in the results (only a run beside LoadGen, lpuperf run --load, records one)"
NO_SESSIONS = "no session figures in the results (the run sent no sessions: lpuperf run --load sessions:...)"
NO_TURNS = "no turn answered in the run's sessions"
NO_CACHE = "no prefix-cache figures in the results (only a run beside LoadGen, lpuperf run --load, records them)"


class LoadCheck(BaseModel):
    """One objective on a load run's figures: ``value`` (None: missing, for the reason ``missing``) vs ``limit``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    direction: Literal["max", "min"]
    value: float | None
    limit: float
    unit: str = ""
    missing: str
    detail: str = ""  # said after the name in the outcome's line (e.g. which turn was the worst)


def is_load_run(r: RunResult) -> bool:
    return r.load is not None or r.dispatch_lag is not None


def client_verdict(r: RunResult) -> tuple[bool, str] | None:
    """(kept its schedule, the figure) for a run beside LoadGen; None for a LoadGen run (LoadGen's own client)."""
    if not is_load_run(r):
        return None
    lag = r.dispatch_lag
    limited = r.client_limited or (lag is not None and lag.client_limited)
    if lag is None or lag.p99_ms is None:
        figure = "no query was sent" if not limited else "results.json marks the run client-limited"
    else:
        sign = ">" if limited else "<="
        figure = f"dispatch lag p99 {lag.p99_ms:g} ms {sign} {lag.bound_ms:g} ms bound"
    if limited:
        return False, (
            f"client-limited: {figure}; the client sent late, so the figures are not the SUT's own "
            "(lower the load, use a faster client machine, or raise --max-dispatch-lag-ms)"
        )
    return True, figure


def _worst_turn(turns: list[TurnStats], pct: Literal["p50", "p90", "p99"]) -> tuple[float, int] | None:
    seen = [(v, t.turn) for t in turns if (v := t.ttft_ms.at(pct)) is not None]
    return max(seen) if seen else None


def load_checks(slo: SloSpec, r: RunResult | None, missing: str) -> list[LoadCheck]:
    """The SLO's objectives on dispatch lag, sessions and prefix-cache hits; ``missing`` is why there are no results."""
    out: list[LoadCheck] = []
    lag = None if r is None else r.dispatch_lag
    for key, limit in slo.dispatch_lag_ms.items() if slo.dispatch_lag_ms is not None else []:
        value = None if lag is None else {"p50": lag.p50_ms, "p99": lag.p99_ms, "max": lag.max_ms}[key]
        out.append(
            LoadCheck(
                name=f"dispatch_lag_{key}",
                direction="max",
                value=value,
                limit=limit,
                unit="ms",
                missing=missing if r is None else NO_LAG,
            )
        )
    sessions = None if r is None else r.sessions
    why = missing if r is None else NO_SESSIONS
    for pct, limit in slo.session_latency_ms.items() if slo.session_latency_ms is not None else []:
        value = None if sessions is None else sessions.session_latency_ms.at(pct)
        out.append(
            LoadCheck(name=f"session_latency_{pct}", direction="max", value=value, limit=limit, unit="ms", missing=why)
        )
    for pct, limit in slo.turn_ttft_ms.items() if slo.turn_ttft_ms is not None else []:
        worst = None if sessions is None else _worst_turn(sessions.turns, pct)
        out.append(
            LoadCheck(
                name=f"turn_ttft_{pct}",
                direction="max",
                value=None if worst is None else worst[0],
                limit=limit,
                unit="ms",
                missing=why if sessions is None else NO_TURNS,
                detail="" if worst is None else f" (worst: turn {worst[1]})",
            )
        )
    if slo.min_prefix_cache_hit_fraction is not None:
        cache = None if r is None else r.prefix_cache
        out.append(
            LoadCheck(
                name="prefix_cache_hit_fraction",
                direction="min",
                value=None if cache is None else cache.hit_fraction,
                limit=slo.min_prefix_cache_hit_fraction,
                missing=missing if r is None else NO_CACHE,
            )
        )
    return out

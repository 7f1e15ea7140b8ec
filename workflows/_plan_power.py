"""Power in the capacity plan: kilowatts per replica, per rack and for the fleet, and racks under a power budget.

A replica's draw at a load comes from one of two sources (``--power-source``, ``auto`` takes the first
there is):

* **measured**: the run's energy (results.json ``energy``) and the output tokens per second a replica
  serves. Where the manifest states an idle draw below the measured power, a replica draws that idle
  floor plus the measured marginal energy per token; otherwise energy per token is taken as constant
  (the idle draw inside it), which under-states the draw at a lighter load than the run's.
* **manifest**: the artifact's power model (``power``: chips, busy and idle watts per chip). The chips
  draw their busy power through every prefill and decode step, whatever the batch's fill, and their
  idle power between steps; the share of the time they are busy comes from the plan's own simulation
  of the batcher at the planned load (:attr:`Prediction.busy_fraction`).

"At plan" is every planned replica (spares included: round robin spreads the target over all of them)
at the target rate; "at peak" is every replica kept full (its full-batch capacity, chips busy all the
time): the draw a rack's power budget has to hold. With ``--rack-kw`` the replicas a rack holds are the
fewer of its slots (``--replicas-per-rack``) and what its budget feeds at peak; the plan says which
limits, and counts racks accordingly. ``--pue`` turns the fleet's IT power into facility power.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from common import UsageError
from loadgen_harness import EnergyStats
from sut import PowerModel

PowerSource = Literal["auto", "measured", "manifest"]
_KW = 1e-3  # watts to kilowatts


class PowerPlanError(UsageError):
    """The plan's power input is missing or inconsistent: one line, exit 2."""


class ReplicaDraw(BaseModel):
    """What one replica draws, from the chosen source, before any rack or fleet arithmetic."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["measured", "manifest"]
    basis: str = Field(description="how the draw was derived, in words")
    kw_at_plan: float = Field(ge=0)
    kw_at_peak: float = Field(ge=0)
    joules_per_token: float | None = Field(default=None, description="measured: joules per output token")
    marginal_joules_per_token: float | None = Field(
        default=None, description="measured, with the manifest's idle draw: joules per token above the idle draw"
    )
    busy_fraction_at_plan: float | None = Field(default=None, description="manifest: chips busy at the target")


class PowerPlan(BaseModel):
    """Power at the planned load and at peak, per replica, per rack and for the fleet with spares."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["measured", "manifest"]
    basis: str
    joules_per_token: float | None = None
    marginal_joules_per_token: float | None = None
    busy_fraction_at_plan: float | None = None
    replica_kw_at_plan: float
    replica_kw_at_peak: float
    replicas: int = Field(description="the planned replicas, spares included")
    fleet_it_kw_at_plan: float = Field(description="all planned replicas at the target rate")
    fleet_it_kw_at_peak: float = Field(description="all planned replicas kept full")
    pue: float = Field(default=1.0, ge=1.0, description="facility power over IT power (1.0: IT power only)")
    facility_kw_at_plan: float
    facility_kw_at_peak: float
    rack_kw_budget: float | None = Field(default=None, description="--rack-kw: a rack's power budget")
    replicas_per_rack_by_slots: int | None = None
    replicas_per_rack_by_power: int | None = Field(default=None, description="replicas the budget feeds at peak")
    replicas_per_rack: int | None = Field(default=None, description="the fewer of slots and power")
    rack_limit: Literal["slots", "power"] | None = Field(default=None, description="what limits replicas per rack")
    racks: int | None = None
    rack_kw_at_plan: float | None = Field(default=None, description="the fullest rack at the target rate")
    rack_kw_at_peak: float | None = Field(default=None, description="the fullest rack, its replicas kept full")


def replica_draw(
    source: PowerSource,
    energy: EnergyStats | None,
    model: PowerModel | None,
    tokens_per_s_at_plan: float,
    tokens_per_s_at_peak: float,
    busy_fraction_at_plan: float,
) -> ReplicaDraw | None:
    """A replica's draw from the source asked for (``auto``: measured energy, else the manifest); None without
    either under ``auto``, PowerPlanError when the source asked for is missing."""
    measured = energy.joules_per_token if energy is not None else None
    if source in ("auto", "measured") and measured is not None and math.isfinite(measured) and measured > 0:
        assert energy is not None
        return measured_draw(measured, tokens_per_s_at_plan, tokens_per_s_at_peak, energy, model)
    if source == "measured":
        why = "no energy block" if energy is None else "no joules_per_token in its energy block"
        raise PowerPlanError(f"--power-source measured: the run's results.json has {why} (run with a power source)")
    if model is not None:
        return manifest_draw(model.chips, model.busy_watts_per_chip, model.idle_watts_per_chip, busy_fraction_at_plan)
    if source == "manifest":
        raise PowerPlanError("--power-source manifest: the artifact manifest states no power model (power)")
    return None


def measured_draw(
    joules_per_token: float,
    tokens_per_s_at_plan: float,
    tokens_per_s_at_peak: float,
    energy: EnergyStats,
    model: PowerModel | None = None,
) -> ReplicaDraw:
    """A replica's draw from the run's energy, at the planned and the full-batch output token rates.

    With the manifest's idle draw below the measured power, the draw is that idle floor plus the
    measured marginal energy per token: a replica serving fewer tokens than the run's still draws its
    idle power. Otherwise every joule is charged to the tokens (energy per token taken as constant).
    """
    replicas = max(energy.replicas, 1)
    run_watts = energy.average_watts / replicas
    run_tps = energy.output_tokens / energy.window_s / replicas if energy.window_s > 0 else 0.0
    rate = energy.n_queries / energy.window_s if energy.window_s > 0 else 0.0
    run = f"{energy.source} over {energy.window_s:.0f} s at {rate:.3g} qps, {run_watts:.4g} W a replica"
    idle = model.chips * model.idle_watts_per_chip if model is not None else None
    # Energy per token falls as a batch fills (a step costs the same whatever its fill), so a linear
    # extrapolation from a lighter run over-states the draw; the chips' all-busy draw bounds it.
    ceiling = model.chips * model.busy_watts_per_chip if model is not None else None
    if idle is not None and run_tps > 0 and run_watts > idle:
        marginal = (run_watts - idle) / run_tps
        basis = (
            f"measured {joules_per_token:.4g} J per output token ({run}): the manifest's idle {idle:.4g} W "
            f"plus {marginal:.4g} J per output token served"
        )
        watts_plan, watts_peak = idle + marginal * tokens_per_s_at_plan, idle + marginal * tokens_per_s_at_peak
    else:
        why = "no idle draw known" if idle is None else f"the manifest's idle {idle:.4g} W is not below it"
        basis = (
            f"measured {joules_per_token:.4g} J per output token ({run}) x output tokens/s per replica; "
            f"idle draw not separated ({why})"
        )
        watts_plan, watts_peak = joules_per_token * tokens_per_s_at_plan, joules_per_token * tokens_per_s_at_peak
        marginal = None
    if run_tps > 0 and tokens_per_s_at_plan > 1.25 * run_tps:
        basis += (
            f"; extrapolated from {run_tps:.4g} to {tokens_per_s_at_plan:.4g} output tokens/s a replica "
            "(measure near the planned load for a tighter figure)"
        )
    if ceiling is not None and max(watts_plan, watts_peak) > ceiling:
        basis += f"; capped at the manifest's all-chips-busy {ceiling:.4g} W"
        watts_plan, watts_peak = min(watts_plan, ceiling), min(watts_peak, ceiling)
    return ReplicaDraw(
        source="measured",
        basis=basis,
        kw_at_plan=watts_plan * _KW,
        kw_at_peak=watts_peak * _KW,
        joules_per_token=joules_per_token,
        marginal_joules_per_token=marginal,
    )


def manifest_draw(
    chips: int, busy_watts_per_chip: float, idle_watts_per_chip: float, busy_fraction_at_plan: float
) -> ReplicaDraw:
    """A replica's draw from the artifact's power model, its chips busy ``busy_fraction_at_plan`` at the target."""
    share = min(max(busy_fraction_at_plan, 0.0), 1.0)
    per_chip_at_plan = idle_watts_per_chip + share * (busy_watts_per_chip - idle_watts_per_chip)
    return ReplicaDraw(
        source="manifest",
        basis=f"manifest power model: {chips} chip{'s' if chips != 1 else ''} x "
        f"{busy_watts_per_chip:g} W busy / {idle_watts_per_chip:g} W idle, busy {share:.0%} of the time at the target",
        kw_at_plan=chips * per_chip_at_plan * _KW,
        kw_at_peak=chips * busy_watts_per_chip * _KW,
        busy_fraction_at_plan=round(share, 4),
    )


def power_plan(
    draw: ReplicaDraw,
    replicas: int,
    replicas_per_rack: int | None = None,
    rack_kw: float | None = None,
    pue: float = 1.0,
) -> PowerPlan:
    """Fleet, rack and facility power for ``replicas`` replicas that each draw ``draw``; racks under ``rack_kw``."""
    fleet_plan, fleet_peak = replicas * draw.kw_at_plan, replicas * draw.kw_at_peak
    plan = PowerPlan(
        source=draw.source,
        basis=draw.basis,
        joules_per_token=draw.joules_per_token,
        marginal_joules_per_token=draw.marginal_joules_per_token,
        busy_fraction_at_plan=draw.busy_fraction_at_plan,
        replica_kw_at_plan=_round(draw.kw_at_plan),
        replica_kw_at_peak=_round(draw.kw_at_peak),
        replicas=replicas,
        fleet_it_kw_at_plan=_round(fleet_plan),
        fleet_it_kw_at_peak=_round(fleet_peak),
        pue=pue,
        facility_kw_at_plan=_round(fleet_plan * pue),
        facility_kw_at_peak=_round(fleet_peak * pue),
        rack_kw_budget=rack_kw,
        replicas_per_rack_by_slots=replicas_per_rack,
    )
    by_power = _replicas_by_power(draw.kw_at_peak, rack_kw)
    per_rack = (
        min(x for x in (replicas_per_rack, by_power) if x is not None) if (replicas_per_rack or by_power) else None
    )
    if per_rack is None:
        return plan
    plan.replicas_per_rack_by_power = by_power
    plan.replicas_per_rack = per_rack
    # Power limits only where it feeds fewer replicas than the rack has slots for.
    plan.rack_limit = (
        "power" if by_power is not None and (replicas_per_rack is None or by_power < replicas_per_rack) else "slots"
    )
    plan.racks = math.ceil(replicas / per_rack)
    full = min(per_rack, replicas)
    plan.rack_kw_at_plan = _round(full * draw.kw_at_plan)
    plan.rack_kw_at_peak = _round(full * draw.kw_at_peak)
    return plan


def _replicas_by_power(replica_kw_at_peak: float, rack_kw: float | None) -> int | None:
    if rack_kw is None:
        return None
    if replica_kw_at_peak <= 0:
        return None  # a replica that draws nothing is limited by slots alone
    fits = math.floor(rack_kw / replica_kw_at_peak + 1e-9)
    if fits < 1:
        raise PowerPlanError(
            f"--rack-kw {rack_kw:g}: one replica draws {replica_kw_at_peak:.3g} kW at peak, over the rack's budget"
        )
    return fits


def _round(kw: float) -> float:
    return round(kw, 4)


def format_power(p: PowerPlan) -> list[str]:
    """The plan's power lines (text output)."""
    lines = [
        f"  power ({p.source}): {p.basis}",
        f"  per replica: {p.replica_kw_at_plan:.3g} kW at plan, {p.replica_kw_at_peak:.3g} kW at peak (kept full)",
        f"  fleet of {p.replicas} (spares included): {p.fleet_it_kw_at_plan:.3g} kW IT at plan, "
        f"{p.fleet_it_kw_at_peak:.3g} kW at peak; facility (PUE {p.pue:g}"
        + ("" if p.pue != 1.0 else ": IT only, --pue sets it")
        + f"): {p.facility_kw_at_plan:.3g} kW at plan, {p.facility_kw_at_peak:.3g} kW at peak",
    ]
    if p.replicas_per_rack is not None and p.racks is not None:
        lines.append(
            f"  per rack: up to {p.replicas_per_rack} replicas; {p.racks} rack{'' if p.racks == 1 else 's'}, the "
            f"fullest ({min(p.replicas_per_rack, p.replicas)} replicas) {p.rack_kw_at_plan:.3g} kW at plan, "
            f"{p.rack_kw_at_peak:.3g} kW at peak; {_limit_text(p)}"
        )
    return lines


def _limit_text(p: PowerPlan) -> str:
    if p.rack_kw_budget is None:
        return "no rack power budget given (--rack-kw)"
    if p.rack_limit == "power" and p.replicas_per_rack_by_slots is None:
        return f"the rack's {p.rack_kw_budget:g} kW budget limits it; its slots not given (--replicas-per-rack)"
    if p.rack_limit == "power":
        return (
            f"the rack's {p.rack_kw_budget:g} kW budget, not its slots, limits it to {p.replicas_per_rack_by_power} "
            f"replicas of its {p.replicas_per_rack_by_slots} slots"
        )
    return f"its {p.replicas_per_rack_by_slots} slots limit it (the {p.rack_kw_budget:g} kW budget feeds {p.replicas_per_rack_by_power})"

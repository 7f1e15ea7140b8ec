"""``lpuperf plan``'s output: the text summary, plan.json and plan.svg (predicted TTFT p99 against replicas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workflows._plan import PlanResult
from workflows._plan_power import format_power

PLAN_FILE = "plan.json"
PLOT_FILE = "plan.svg"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def format_plan(plan: PlanResult) -> str:
    s = plan.service
    a, d = plan.at_plan, plan.degraded
    lines = [
        f"lpuperf plan: {plan.replicas} replicas for {plan.target_qps:g} qps under {plan.limits.describe()} "
        f"({plan.limits.source}), redundancy {plan.redundancy}",
        f"  model: {plan.model}",
        *(
            [
                f"  limits judged as LoadGen's early stopping judges a run of {plan.loadgen_queries} queries "
                f"(VALID needs the share over each limit within its 99 % confidence bound)"
            ]
            if plan.loadgen_queries
            else []
        ),
        f"  service per replica ({s.source}): max_batch {s.max_batch}, decode step {s.decode_step_ms:.3f} ms, "
        f"mean prefill {s.mean_prefill_ms:.3f} ms, {s.mean_output_tokens:.1f} output tokens/query"
        + (f" ({s.mean_reasoning_tokens:.1f} of them reasoning)" if s.mean_reasoning_tokens is not None else "")
        + ", "
        f"+{s.overhead_ttft_ms:.1f} ms harness TTFT; full-batch capacity {s.capacity_qps_per_replica:.2f} qps"
        + (f" ({s.note})" if s.note else ""),
        f"  {plan.replicas_for_slo} replicas meet the SLO at the target, +{plan.spare_replicas} spare: "
        f"{plan.replicas} replicas",
        f"  at {a.replicas} replicas: utilisation {a.utilisation:.0%}, TTFT p50/p99 {_ms(a.ttft_ms.get('p50'))}/"
        f"{_ms(a.ttft_ms.get('p99'))} ms, TPOT p99 {_ms(a.tpot_ms.get('p99'))} ms"
        + (f", TTFA p50/p99 {_ms(a.ttfa_ms.get('p50'))}/{_ms(a.ttfa_ms.get('p99'))} ms" if a.ttfa_ms else ""),
        f"  with {plan.spare_replicas} failed ({d.replicas} replicas): utilisation {d.utilisation:.0%}, "
        f"TTFT p99 {_ms(d.ttft_ms.get('p99'))} ms, TPOT p99 {_ms(d.tpot_ms.get('p99'))} ms",
        f"  headroom: {plan.replicas} replicas carry up to {plan.max_valid_qps:.1f} qps within the SLO "
        f"({plan.headroom:+.0%} over the target)",
    ]
    if plan.chips is not None or plan.racks is not None:
        hw = []
        if plan.chips is not None:
            hw.append(f"{plan.chips} chips ({plan.chips_per_replica} per replica)")
        if plan.racks is not None:
            per_rack = f"{plan.replicas_per_rack} replicas per rack"
            if plan.power is not None and plan.power.rack_limit == "power":
                per_rack = f"{plan.power.replicas_per_rack} replicas per rack: its power budget limits it"
            hw.append(f"{plan.racks} rack{'' if plan.racks == 1 else 's'} ({per_rack})")
        lines.append("  hardware: " + ", ".join(hw))
    if plan.power is not None:
        lines += format_power(plan.power)
    lines.append("  replicas  utilisation  TTFT p99 ms  TPOT p99 ms  SLO")
    for p in plan.curve:
        ttft = _ms(p.ttft_ms.get("p99")) if p.stable else "unbounded"
        ok = "meets" if p.meets_slo else "misses"
        lines.append(f"  {p.replicas:>8}  {p.utilisation:>11.0%}  {ttft:>11}  {_ms(p.tpot_ms.get('p99')):>11}  {ok}")
    return "\n".join(lines)


def plan_svg(plan: PlanResult) -> str:
    """Predicted TTFT p99 against the replica count, with the limit (an unbounded queue drawn at the top)."""
    from workflows._charts import _Series, line_chart

    limit = plan.limits.ttft_ms.get("p99")
    stable = [p.ttft_ms.get("p99") for p in plan.curve if p.stable]
    top = max([v for v in stable if v is not None] + [limit or 0.0]) * 1.2 or 1.0
    xs = np.array([p.replicas for p in plan.curve], dtype=float)
    ys = np.array([min(p.ttft_ms.get("p99") or top, top) if p.stable else top for p in plan.curve])
    series = [_Series("predicted TTFT p99", xs, ys)]
    if limit is not None:
        series.append(_Series(f"TTFT p99 limit {limit:g} ms", np.array([xs.min(), xs.max()]), np.full(2, limit), True))
    return line_chart(
        "plan",
        f"Predicted TTFT p99 at {plan.target_qps:g} qps vs replicas (DES; unbounded queues at the top)",
        series,
        "replicas",
        "TTFT p99 (ms)",
        markers=[(f"plan: {plan.replicas}", float(plan.replicas))],
        y_range=(0.0, top),
    )


def write_plan(plan: PlanResult, out_dir: str | Path) -> tuple[Path, Path]:
    from common import write_atomic

    out = Path(out_dir)
    json_path = write_atomic(out / PLAN_FILE, plan.model_dump_json(indent=2) + "\n")
    svg_path = write_atomic(out / PLOT_FILE, plan_svg(plan) + "\n")
    return json_path, svg_path

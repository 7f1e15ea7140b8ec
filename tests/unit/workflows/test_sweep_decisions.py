"""The sweep's decisions on made-up points, with exact expectations: the load lists it accepts, where the
curve saturates, which point is best (never one over the SLO), when an auto sweep stops, and how a point
is judged from its results."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate import SloSpec
from gate._slo import AccuracyObjective, PercentileLimits
from loadgen_harness import LatencyLimits, Percentiles, RunResult
from workflows._plan import PlanConfig, PlanError, resolve_limits
from workflows._sweep import (
    SweepConfig,
    SweepError,
    SweepLoads,
    SweepPoint,
    SweepResult,
    auto_stop_reason,
    best_run_dir,
    choose_best,
    detect_saturation,
    judge_point,
    load_sweep,
    next_auto_load,
    parse_auto,
    parse_rates,
    parse_sweep_load,
)


def pt(
    c: int,
    tput: float,
    ttft99: float,
    lat99: float | None = None,
    meets: bool = True,
    client_limited: bool = False,
    state: str = "complete",
    index: int | None = None,
) -> SweepPoint:
    i = index if index is not None else c
    return SweepPoint(
        index=i,
        label=f"{i:02d}-concurrency-{c}",
        load=f"concurrency:{c}",
        concurrency=c,
        state=state,  # type: ignore[arg-type]
        output_tokens_per_s=tput,
        completed_qps=tput / 10,
        ttft_p99_ms=ttft99,
        latency_p99_ms=lat99,
        meets_slo=meets,
        slo_violations=[] if meets else ["TTFT p99 900 ms > 500 ms"],
        client_limited=client_limited,
    )


# ---- load lists ------------------------------------------------------------------------------


def test_load_lists_are_read_sorted_with_their_options() -> None:
    loads = parse_sweep_load("concurrency:8,1,4,2")
    assert (loads.kind, loads.values, loads.options) == ("concurrency", [1.0, 2.0, 4.0, 8.0], "")
    assert [loads.spec(v) for v in loads.values] == ["concurrency:1", "concurrency:2", "concurrency:4", "concurrency:8"]
    assert loads.label(3, 4.0) == "03-concurrency-4"
    rates = parse_sweep_load("rate:20,10,40.5:constant:seed=3")
    assert (rates.kind, rates.values, rates.options) == ("rate", [10.0, 20.0, 40.5], "constant:seed=3")
    assert rates.spec(40.5) == "rate:40.5:constant:seed=3" and rates.label(1, 40.5) == "01-rate-40.5"
    assert parse_rates("10,20").spec(10.0) == "rate:10"
    assert parse_auto("concurrency").values == [1.0]
    assert parse_auto("concurrency:4").values == [4.0]
    auto_rate = parse_auto("rate:5:constant")
    assert (auto_rate.kind, auto_rate.values, auto_rate.options) == ("rate", [5.0], "constant")


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_sweep_load, "concurrency:", "--load concurrency: expected a comma-separated list of concurrencies"),
        (
            parse_sweep_load,
            "concurrency:1,,2",
            "--load concurrency: expected whole numbers of requests in flight, got ''",
        ),
        (
            parse_sweep_load,
            "concurrency:1,two",
            "--load concurrency: expected whole numbers of requests in flight, got 'two'",
        ),
        (parse_sweep_load, "concurrency:2.5", "got '2.5'"),
        (parse_sweep_load, "concurrency:0,1", "--load concurrency: a concurrency is at least 1, got 0"),
        (parse_sweep_load, "concurrency:-4", "a concurrency is at least 1, got -4"),
        (parse_sweep_load, "concurrency:2,2", "--load concurrency: each load once, got '2,2'"),
        (parse_sweep_load, "rate:", "--load rate: expected a comma-separated list of rates"),
        (parse_sweep_load, "rate:10,0", "--load rate: a rate is a positive number of requests per second, got '0'"),
        (parse_sweep_load, "rate:10,inf", "got 'inf'"),
        (parse_sweep_load, "rate:10:sometimes", "--load rate: field 'arrival'"),
        (parse_sweep_load, "trace:t.jsonl", "--load: expected concurrency:N1,N2,... or rate:R1,R2,..."),
        (parse_sweep_load, "concurrency:" + ",".join(str(n) for n in range(1, 70)), "at most 64 points, got 69"),
        (parse_rates, "", "--rates: expected a comma-separated list of rates"),
        (parse_rates, "10,fast", "--rates: expected rates in requests per second, got 'fast'"),
        (parse_auto, "rate", "--auto rate: expected a starting rate"),
        (parse_auto, "concurrency:1,2", "--auto concurrency: expected one starting load"),
        (parse_auto, "sessions", "--auto: expected concurrency[:START] or rate:START"),
    ],
)
def test_bad_load_lists_are_one_line_naming_the_flag(parse: object, text: str, message: str) -> None:
    with pytest.raises(SweepError) as err:
        parse(text)  # type: ignore[operator]
    assert message in str(err.value) and "\n" not in str(err.value)


# ---- saturation ------------------------------------------------------------------------------


def test_saturation_is_the_first_flat_step_with_climbing_latency() -> None:
    points = [pt(1, 100, 20), pt(2, 190, 25), pt(4, 350, 40), pt(8, 360, 90), pt(16, 362, 180)]
    sat = detect_saturation(points)
    assert sat is not None
    assert (sat.knee, sat.detected_at) == ("04-concurrency-4", "08-concurrency-8")
    assert sat.throughput_gain == round(360 / 350 - 1, 4) == 0.0286
    assert sat.latency_rise == 1.25
    assert "concurrency:4 to concurrency:8" in sat.reason and "saturated at concurrency:4" in sat.reason
    # The order points are listed in does not matter: the curve goes from the lightest load.
    assert detect_saturation(list(reversed(points))) == sat


def test_no_saturation_while_throughput_rises_or_latency_stays_flat() -> None:
    rising = [pt(1, 100, 20), pt(2, 110, 40), pt(4, 121, 80)]  # +10 % a step: still rising
    assert detect_saturation(rising) is None
    flat_latency = [pt(1, 100, 20), pt(2, 101, 21)]  # a step that bought nothing and cost nothing: noise
    assert detect_saturation(flat_latency) is None
    exactly = [pt(1, 100, 20), pt(2, 105, 40)]  # a gain of exactly min_gain is still rising
    assert detect_saturation(exactly, min_gain=0.05) is None
    assert detect_saturation(exactly, min_gain=0.06) is not None


def test_saturation_reads_latency_p99_too_and_a_falling_throughput() -> None:
    points = [pt(1, 100, 20, lat99=1000), pt(2, 95, 20, lat99=2100)]  # TTFT flat, latency doubled
    sat = detect_saturation(points)
    assert sat is not None and sat.knee == "01-concurrency-1" and sat.throughput_gain == -0.05
    assert sat.latency_rise == 1.1


def test_an_interrupted_point_is_not_part_of_the_curve() -> None:
    points = [pt(1, 100, 20), pt(2, 190, 25), pt(4, 10, 400, state="interrupted")]
    assert detect_saturation(points) is None


# ---- the best point --------------------------------------------------------------------------


def test_a_point_over_the_slo_is_never_best_however_high_its_throughput() -> None:
    # Planted fault: the highest throughput of the sweep misses the SLO.
    points = [pt(1, 100, 20), pt(2, 190, 25), pt(4, 350, 400), pt(8, 420, 900, meets=False)]
    label, why = choose_best(points)
    assert label == "04-concurrency-4"
    assert why == "highest throughput of the 3 points meeting the SLO; concurrency:8 went higher but missed it"


def test_a_client_limited_or_interrupted_point_is_never_best() -> None:
    points = [
        pt(1, 100, 20),
        pt(2, 190, 25),
        pt(4, 500, 30, client_limited=True),
        pt(8, 600, 30, state="interrupted"),
    ]
    assert choose_best(points)[0] == "02-concurrency-2"


def test_ties_go_to_the_lighter_load_and_no_point_means_no_best() -> None:
    assert choose_best([pt(4, 300, 30), pt(2, 300, 20)])[0] == "02-concurrency-2"
    assert choose_best([pt(1, 100, 20)]) == ("01-concurrency-1", "the only point meeting the SLO")
    none = choose_best([pt(1, 100, 900, meets=False), pt(2, 150, 950, meets=False)])
    assert none == (None, "none of the 2 complete points meets the SLO with its client on schedule")


# ---- auto stepping ---------------------------------------------------------------------------


def _auto(**kw: object) -> SweepConfig:
    return SweepConfig(loads=SweepLoads(kind="concurrency", values=[1.0]), auto=True, run_id="s", **kw)  # type: ignore[arg-type]


def test_next_auto_load_steps_by_the_factor() -> None:
    assert [next_auto_load("concurrency", c, 2.0) for c in (1, 2, 64)] == [2.0, 4.0, 128.0]
    assert next_auto_load("concurrency", 1, 1.2) == 2.0  # a concurrency always grows by at least one
    assert next_auto_load("rate", 5.0, 1.5) == 7.5


def test_auto_stops_at_saturation_the_slo_the_client_the_point_count_and_the_time() -> None:
    cfg = _auto(max_points=5, time_budget_s=100.0)
    going = [pt(1, 100, 20), pt(2, 190, 25)]
    assert auto_stop_reason(going, cfg, elapsed_s=10.0, next_point_s=5.0) is None
    saturated = [*going, pt(4, 195, 60)]
    assert (auto_stop_reason(saturated, cfg, 10.0, 5.0) or "").startswith(
        "saturated: throughput +2.6% from concurrency:2"
    )
    broke = [*going, pt(4, 380, 900, meets=False)]
    assert auto_stop_reason(broke, cfg, 10.0, 5.0) == "the SLO broke at concurrency:4 (TTFT p99 900 ms > 500 ms)"
    behind = [*going, pt(4, 380, 30, client_limited=True)]
    assert (auto_stop_reason(behind, cfg, 10.0, 5.0) or "").startswith("the client fell behind at concurrency:4")
    many = [pt(2**k, 100 * 2**k, 20) for k in range(5)]
    assert auto_stop_reason(many, cfg, 10.0, 5.0) == "max points (5) reached before saturation"
    assert auto_stop_reason(going, cfg, 96.0, 5.0) == "time budget (100 s) would be exceeded by another point"


# ---- judging a point from its results --------------------------------------------------------


def _run(valid: bool, ttft99: float, tpot99: float = 10.0) -> RunResult:
    return RunResult(
        run_id="p",
        scenario="Concurrency",
        mode="performance",
        benchmark="embedded",
        preset="quick",
        valid=valid,
        ttft_ms=Percentiles(p50=ttft99 / 2, p99=ttft99),
        tpot_ms=Percentiles(p99=tpot99),
        latency_ms=Percentiles(p99=1000.0),
        n_queries=100,
        limits=LatencyLimits(ttft_ms=500.0, tpot_ms=50.0),
    )


def test_judged_on_the_benchmark_limits_even_when_results_say_valid() -> None:
    assert judge_point(_run(True, 120.0), None) == (True, [])
    # Planted fault: a results.json marked valid whose TTFT p99 is over its own limit.
    assert judge_point(_run(True, 720.0), None) == (False, ["TTFT p99 720 ms > 500 ms"])
    invalid = _run(False, 100.0)
    invalid.validity_reasons = ["client-limited: dispatch lag p99 40 ms > 10 ms"]
    assert judge_point(invalid, None) == (False, ["client-limited: dispatch lag p99 40 ms > 10 ms"])


def test_judged_on_an_slo_file_by_its_results_objectives_only() -> None:
    slo = SloSpec(
        name="tight",
        require_valid=False,
        ttft_ms=PercentileLimits(p99=200.0),
        accuracy=[AccuracyObjective(metric="rougeL", min_value=40.0)],  # needs an accuracy run: not judged here
    )
    assert judge_point(_run(True, 150.0), slo) == (True, [])
    meets, why = judge_point(_run(True, 250.0), slo)
    assert not meets and len(why) == 1 and why[0].startswith("ttft_p99 250.0 ms > 200.0 ms limit")


# ---- reading a sweep back --------------------------------------------------------------------


def test_load_sweep_refuses_what_is_not_a_sweep_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match=r"no sweep\.json"):
        load_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text('{"sweep_id": "s"}')
    with pytest.raises(SweepError) as err:
        load_sweep(tmp_path)
    assert str(err.value).startswith(str(tmp_path / "sweep.json")) and "\n" not in str(err.value)


def test_best_run_dir_needs_a_best_point(tmp_path: Path) -> None:
    result = SweepResult(
        sweep_id="s",
        kind="concurrency",
        benchmark="embedded",
        point_duration_s=1.0,
        slo="x",
        points=[pt(1, 1, 900, meets=False)],
    )
    (tmp_path / "sweep.json").write_text(result.model_dump_json())
    with pytest.raises(SweepError, match="no point of the sweep meets its SLO"):
        best_run_dir(tmp_path)


def test_plan_reads_a_load_run_by_the_limits_it_was_judged_by(tmp_path: Path) -> None:
    cfg = PlanConfig(run_dir=tmp_path, target_qps=10.0)
    limits = resolve_limits(cfg, "embedded", "Concurrency", LatencyLimits(ttft_ms=500.0, tpot_ms=50.0))
    assert (limits.ttft_ms, limits.tpot_ms) == ({"p99": 500.0}, {"p99": 50.0})
    assert limits.source == "the Concurrency run's limits (embedded)"
    with pytest.raises(PlanError, match="states no TTFT/TPOT limits"):
        resolve_limits(cfg, "embedded", "Concurrency")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--load", "concurrency:"], "--load concurrency: expected a comma-separated list of concurrencies"),
        (["--load", "concurrency:1,x"], "--load concurrency: expected whole numbers of requests in flight, got 'x'"),
        (["--load", "concurrency:0,4"], "--load concurrency: a concurrency is at least 1, got 0"),
        (["--rates", "10,abc"], "--rates: expected rates in requests per second, got 'abc'"),
        (["--load", "concurrency:2", "--duration", "0"], "option '--duration': Input should be greater than 0"),
        (["--load", "concurrency:2", "--slo", "no-such-slo"], "--slo no-such-slo: SLO file not found"),
    ],
)
def test_bad_sweep_input_is_one_line_and_exit_2_before_anything_runs(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main

    assert main(["sweep", *argv, "--out", str(tmp_path), "--no-record"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lpuperf sweep: error: ") and err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []

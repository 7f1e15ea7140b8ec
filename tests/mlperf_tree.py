"""MLPerf result trees written from scratch, in MLPerf's layout and LoadGen's log formats, for tests.

``write_tree`` lays out ``closed/<submitter>/results/<system>/<benchmark>/<scenario>/`` for several
benchmarks the way another submitter's published tree looks: detail logs of ``:::MLLOG`` records,
summaries in LoadGen's wording, truncated accuracy logs, TEST06 only for the LLMs, and no lpuperf
files anywhere. The figures are chosen so that every run is VALID under MLPerf's rules.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SUBMITTER = "acme"
SYSTEM = "acme-node-8x"
# (benchmark directory, scenarios, LLM): an LLM carries TEST06 and token latencies, SDXL neither.
MODELS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("llama2-70b-99", ("Server", "Offline", "Interactive"), True),
    ("stable-diffusion-xl", ("Server", "Offline"), False),
)
# llama3.1-8b's dataset (MLPerf's performance and accuracy sample count); the other models' figures are
# not held to a round table, so one count serves every model.
PERF_SAMPLE_COUNT = 13368
# Token-latency p99s well inside MLPerf's limits (Server 2000/200 ms, Interactive 450/40 ms).
TTFT_P99_NS = {"Server": 1_400_000_000, "Interactive": 390_000_000}
TPOT_P99_NS = {"Server": 120_000_000, "Interactive": 33_000_000}


def mllog(values: dict[str, Any]) -> str:
    """Detail-log lines as LoadGen writes them: one ``:::MLLOG {json}`` record per key."""
    lines = []
    for i, (key, value) in enumerate(values.items()):
        rec = {
            "key": key,
            "value": value,
            "time_ms": 0.01 + i,
            "namespace": "mlperf::logging",
            "event_type": "POINT_IN_TIME",
            "metadata": {
                "is_error": False,
                "is_warning": False,
                "file": "loadgen.cc",
                "line_no": 100 + i,
                "pid": 7,
                "tid": 7,
            },
        }
        lines.append(":::MLLOG " + json.dumps(rec) + "\n")
    return "".join(lines)


def _pcts(prefix: str, suffix: str, p50: int, p90: int, p99: int) -> dict[str, int]:
    return {f"{prefix}50.00{suffix}": p50, f"{prefix}90.00{suffix}": p90, f"{prefix}99.00{suffix}": p99}


def detail_values(
    scenario: str, seeds: dict[str, int], llm: bool, mode: str = "PerformanceOnly", **over: Any
) -> dict[str, Any]:
    """The detail-log keys a published run of ``scenario`` holds."""
    server = scenario in ("Server", "Interactive")
    v: dict[str, Any] = {
        "loadgen_version": "5.1.2 @ 0123abc",
        "test_datetime": "2025-07-01T10:00:00Z",
        "sut_name": "ACME-SUT",
        "requested_scenario": "Server" if server else scenario,
        "requested_test_mode": mode,
        "requested_use_token_latencies": llm,
        "effective_scenario": "Server" if server else scenario,
        "effective_test_mode": mode,
        "effective_samples_per_query": 1 if server else 24576,
        "effective_target_qps": 40.0 if server else 60.0,
        "effective_min_duration_ms": 600000,
        "effective_min_query_count": 100 if server else 1,
        **{f"effective_{k}": v for k, v in seeds.items()},
        "effective_sample_concatenate_permutation": llm,
        "effective_performance_sample_count": PERF_SAMPLE_COUNT,
        "qsl_reported_total_count": PERF_SAMPLE_COUNT,
        "generated_query_count": 24576 if server else 1,
        "generated_samples_per_query": 1 if server else 24576,
    }
    if mode == "AccuracyOnly":
        return {**v, **over}
    v["result_validity"] = "VALID"
    v["result_min_duration_met"] = True
    v["result_min_queries_met"] = True
    v["result_perf_constraints_met"] = True
    v["early_stopping_met"] = True
    if server:
        v["result_scheduled_samples_per_sec"] = 40.01
        v["result_completed_samples_per_sec"] = 39.97
        v["result_query_count"] = 24576
        v.update(_pcts("result_", "_percentile_latency_ns", 9_000_000_000, 16_000_000_000, 21_000_000_000))
        if llm:
            ttft, tpot = TTFT_P99_NS[scenario], TPOT_P99_NS[scenario]
            v["result_completed_tokens_per_second"] = 11800.5
            v.update(_pcts("result_first_token_", "_percentile_latency_ns", ttft // 3, ttft // 2, ttft))
            v.update(_pcts("result_time_per_output_token_", "_percentile_ns", tpot // 2, tpot * 3 // 4, tpot))
            v["early_stopping_ttft_result"] = " * Run successful."
            v["early_stopping_tpot_result"] = " * Run successful."
        else:
            v["early_stopping_result"] = " * Run successful."
    else:
        v["result_samples_per_second"] = 61.25
        if llm:
            v["result_tokens_per_second"] = 18010.75
    return {**v, **over}


def summary_text(scenario: str, values: dict[str, Any], old_tpot_label: bool = False) -> str:
    """mlperf_log_summary.txt in LoadGen's wording; ``old_tpot_label`` uses older rounds' 'time to output token'."""
    server = scenario in ("Server", "Interactive")
    valid = values.get("result_validity", "VALID")
    lines = [
        "================================================",
        "MLPerf Results Summary",
        "================================================",
        "SUT name : ACME-SUT",
        f"Scenario : {values['effective_scenario']}",
        "Mode     : PerformanceOnly",
    ]
    if server:
        lines.append(f"Completed samples per second    : {values['result_completed_samples_per_sec']:.2f}")
    else:
        lines.append(f"Samples per second: {values['result_samples_per_second']:.2f}")
    lines += [f"Result is : {valid}", "  Performance constraints satisfied : Yes", "  Min duration satisfied : Yes"]
    lines += ["  Min queries satisfied : Yes", "  Early stopping satisfied: Yes"]
    lines += ["", "================================================", "Additional Stats"]
    lines.append("================================================")
    for pct in ("50.00", "90.00", "99.00"):
        key = f"result_{pct}_percentile_latency_ns"
        if key in values:
            lines.append(f"{pct} percentile latency (ns)   : {values[key]}")
    for pct in ("50.00", "90.00", "99.00"):
        key = f"result_first_token_{pct}_percentile_latency_ns"
        if key in values:
            lines.append(f"{pct} percentile first token latency (ns)   : {values[key]}")
    label = "time to output token" if old_tpot_label else "time per output token"
    for pct in ("50.00", "90.00", "99.00"):
        key = f"result_time_per_output_token_{pct}_percentile_ns"
        if key in values:
            lines.append(f"{pct} percentile {label} (ns)   : {values[key]}")
    return "\n".join(lines) + "\n"


def _accuracy_log_truncated(n: int) -> str:
    """What MLPerf's truncation leaves of a long accuracy log: the head and tail, well under 10 KiB."""
    entries = ",\n".join(f'{{"seq_id": {i}, "qsl_idx": {i}, "data": "{"0A000000" * 40}"}}' for i in range(n))
    text = "[\n" + entries + "\n]\n"
    return text[:4000] + "\n\n...\n\n" + text[-4000:]


def write_scenario(
    root: Path,
    benchmark: str,
    scenario: str,
    seeds: dict[str, int],
    llm: bool,
    old_tpot_label: bool = False,
    division: str = "closed",
) -> Path:
    """One ``<benchmark>/<scenario>`` directory of a published closed-division tree.

    ``old_tpot_label``: the summary names TPOT "time to output token", as LoadGen's summaries long did.
    """
    scen = root / division / SUBMITTER / "results" / SYSTEM / benchmark / scenario
    perf = scen / "performance" / "run_1"
    acc = scen / "accuracy"
    for d in (perf, acc):
        d.mkdir(parents=True, exist_ok=True)
    over = {"effective_samples_per_query": PERF_SAMPLE_COUNT} if scenario == "Offline" else {}
    values = detail_values(scenario, seeds, llm, **over)
    (perf / "mlperf_log_detail.txt").write_text(mllog(values))
    (perf / "mlperf_log_summary.txt").write_text(summary_text(scenario, values, old_tpot_label))
    acc_values = detail_values(scenario, seeds, llm, mode="AccuracyOnly")
    (acc / "mlperf_log_detail.txt").write_text(mllog(acc_values))
    (acc / "mlperf_log_summary.txt").write_text("MLPerf Results Summary\nMode     : AccuracyOnly\n")
    full_hash = hashlib.sha256(b"the full accuracy log").hexdigest()
    (acc / "mlperf_log_accuracy.json").write_text(_accuracy_log_truncated(300))
    score = (
        "{'rouge1': 44.61, 'rouge2': 22.11, 'rougeL': 28.75, 'rougeLsum': 41.9, 'gen_len': 8100000, 'tokens_per_sample': 293.1}"
        if llm
        else ("{'FID_SCORE': 23.4, 'CLIP_SCORE': 31.75}")
    )
    (acc / "accuracy.txt").write_text(f"{score}\nhash={full_hash}\n")
    if llm and division != "open":  # the open division carries no compliance tests
        t06 = scen / "TEST06"
        (t06 / "accuracy").mkdir(parents=True, exist_ok=True)
        first = "Skipped" if scenario == "Offline" else "True"
        (t06 / "verify_accuracy.txt").write_text(
            f"First token check pass: {first}\nEOS check pass: True\nSample length check pass: True\n"
            "TEST06 verification complete\n"
        )
        # Whole and valid JSON: MLPerf does not truncate TEST06's log (here about 40 KiB).
        log = [
            {"seq_id": i, "qsl_idx": i, "data": "0A000000" * 40, "token_data": "0A000000", "token_count": 40}
            for i in range(100)
        ]
        (t06 / "accuracy" / "mlperf_log_accuracy.json").write_text(json.dumps(log))
    (scen / "user.conf").write_text(f"*.{'Server' if scenario == 'Interactive' else scenario}.target_qps = 40\n")
    measurements = {
        "input_data_types": "int32",
        "retraining": "No",
        "starting_weights_filename": "https://example.org/weights",
        "weight_data_types": "fp8",
        "weight_transformations": "quantization",
    }
    (scen / "measurements.json").write_text(json.dumps(measurements, indent=2))
    (scen / "README.md").write_text(f"# {benchmark} {scenario}\n\nSee the system description.\n")
    return scen


def system_description(division: str = "closed") -> dict[str, Any]:
    """Every field MLPerf's checker requires of a system description, each with an answer."""
    from workflows._submission_rules import SYSTEM_REQUIRED_FIELDS

    desc: dict[str, Any] = {k: f"acme {k}" for k in SYSTEM_REQUIRED_FIELDS}
    desc.update(
        division=division,
        submitter=SUBMITTER,
        status="available",
        system_name=SYSTEM,
        system_type="datacenter",
        number_of_nodes=1,
        accelerator_model_name="ACME LPU-1",
        accelerators_per_node=8,
    )
    if division == "network":
        from workflows._submission_rules import SYSTEM_NETWORK_FIELDS

        desc.update({k: f"acme {k}" for k in SYSTEM_NETWORK_FIELDS}, is_network="true")
    return desc


def write_tree(
    root: Path,
    seeds: dict[str, int],
    models: tuple[tuple[str, tuple[str, ...], bool], ...] = MODELS,
    division: str = "closed",
    code_folder: str = "code",
) -> Path:
    """A tree of one system with every model and scenario in ``models``; returns ``root``.

    ``code_folder``: ``code`` for rounds up to v5.1, ``src`` from v6.0 on.
    """
    for benchmark, scenarios, llm in models:
        for scenario in scenarios:
            write_scenario(
                root, benchmark, scenario, seeds, llm, old_tpot_label=scenario == "Interactive", division=division
            )
    sub_root = root / division / SUBMITTER
    (sub_root / code_folder).mkdir(parents=True, exist_ok=True)
    (sub_root / code_folder / "README.md").write_text("# How the results were produced\n")
    (sub_root / "systems").mkdir(parents=True, exist_ok=True)
    (sub_root / "systems" / f"{SYSTEM}.json").write_text(json.dumps(system_description(division), indent=2))
    return root

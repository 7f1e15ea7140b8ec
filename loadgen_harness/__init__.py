"""The LoadGen harness: QSL, LoadGen <-> gRPC bridge, run orchestration and results.

``run_benchmark(RunConfig(...))`` runs one scenario and returns a :class:`RunResult`; the run
directory holds LoadGen's logs plus results.json, artifact.json and queries.npz.
"""

from loadgen_harness._accuracy_log import (
    ACCURACY_LOG_FILE,
    TokenDtype,
    accuracy_log_path,
    check_accuracy_log_entries,
    decode_tokens,
    encode_tokens,
    read_accuracy_log_entries,
    write_accuracy_log,
)
from loadgen_harness._console import format_summary, progress_printer, verdict_basis
from loadgen_harness._fleet import FLEET_CHANNEL_OPTIONS, Fleet, FleetTarget, Replica, inspect_fleet, parse_target
from loadgen_harness._interrupt import MAX_PLANNED_SAMPLES, RunInterrupted
from loadgen_harness._launcher import RunningSut, SutTarget, launch_sut
from loadgen_harness._mlperf_dir import MLPERF_LOGS_PRESET, mlperf_log_dir, results_from_mlperf_logs, run_results_file
from loadgen_harness._preflight import manifest_count
from loadgen_harness._records import (
    QUERIES_FILE,
    QUERY_RECORD_DTYPE,
    goodput,
    inter_token_latency,
    load_query_records,
    success_stats,
)
from loadgen_harness._replicas import (
    FleetResult,
    PartStats,
    ReplicaEvent,
    ReplicaOutage,
    ReplicaStats,
    fleet_breakdown,
)
from loadgen_harness._results import (
    EarlyStoppingNeed,
    Goodput,
    InterTokenLatency,
    LatencyLimits,
    Percentiles,
    RunResult,
    RunState,
    SuccessStats,
    keep_up_qps,
    keep_up_ratio,
    latency_limits,
    load_results,
    parse_detail_log,
)
from loadgen_harness._run import NO_AUDIT_CONFIG, RunConfig, RunError, fetch_artifact, run_benchmark
from loadgen_harness._transport import (
    TOKEN_ENV,
    TransportSecurity,
    describe_failure,
    open_aio_channel,
    open_channel,
)

__all__ = [
    "ACCURACY_LOG_FILE",
    "FLEET_CHANNEL_OPTIONS",
    "MAX_PLANNED_SAMPLES",
    "MLPERF_LOGS_PRESET",
    "NO_AUDIT_CONFIG",
    "QUERIES_FILE",
    "QUERY_RECORD_DTYPE",
    "TOKEN_ENV",
    "EarlyStoppingNeed",
    "Fleet",
    "FleetResult",
    "FleetTarget",
    "Goodput",
    "InterTokenLatency",
    "LatencyLimits",
    "PartStats",
    "Percentiles",
    "Replica",
    "ReplicaEvent",
    "ReplicaOutage",
    "ReplicaStats",
    "RunConfig",
    "RunError",
    "RunInterrupted",
    "RunResult",
    "RunState",
    "RunningSut",
    "SuccessStats",
    "SutTarget",
    "TokenDtype",
    "TransportSecurity",
    "accuracy_log_path",
    "check_accuracy_log_entries",
    "decode_tokens",
    "describe_failure",
    "encode_tokens",
    "fetch_artifact",
    "fleet_breakdown",
    "format_summary",
    "goodput",
    "inspect_fleet",
    "inter_token_latency",
    "keep_up_qps",
    "keep_up_ratio",
    "latency_limits",
    "launch_sut",
    "load_query_records",
    "load_results",
    "manifest_count",
    "mlperf_log_dir",
    "open_aio_channel",
    "open_channel",
    "parse_detail_log",
    "parse_target",
    "progress_printer",
    "read_accuracy_log_entries",
    "results_from_mlperf_logs",
    "run_benchmark",
    "run_results_file",
    "success_stats",
    "verdict_basis",
    "write_accuracy_log",
]

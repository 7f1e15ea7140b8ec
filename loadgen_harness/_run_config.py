"""A run's configuration (``RunConfig``), usable programmatically and from ``lpuperf run``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common import BackendSpec, ExporterSecurity, RunId, UsageError, check_writable_dir
from loadgen_harness._interrupt import DEFAULT_MAX_IN_FLIGHT
from loadgen_harness._shard import ShardSpec
from loadgen_harness._telemetry import TelemetryConfig
from loadgen_harness._transport import TransportSecurity
from scenarios import BenchmarkProfile, Dataset, ScenarioName

# LoadGen applies ./audit.config when it exists; a stray one must never alter a normal run, so
# normal runs name a file that cannot exist.
NO_AUDIT_CONFIG = "/nonexistent/lpuperf-no-audit.config"
TRACE_FILE = "mlperf_log_trace.json"


class RunError(UsageError):
    """A run could not start (bad config, unreachable SUT); the message is one line."""


class RunConfig(BaseModel):
    """Everything one run needs; usable programmatically and from ``lpuperf run``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    scenario: ScenarioName = "Server"
    mode: Literal["performance", "accuracy"] = "performance"
    benchmark: str = "embedded"
    preset: Literal["quick", "submission"] = "quick"
    dataset: str | None = Field(default=None, description="dataset spec; None = the benchmark's")
    sut: str | None = Field(
        default=None,
        description="host:port, a list of host:port or a gRPC target URI (dns:///name:port, ipv4:a:p,b:q): "
        "one SUT or a fleet balanced by gRPC's round_robin; None = spawn the embedded sim SUT",
    )
    replicas: int = Field(default=1, ge=1, le=32, description="embedded SUT processes to spawn (no sut)")
    allow_mixed: bool = Field(default=False, description="run against replicas serving different artifacts")
    transport: TransportSecurity = Field(
        default_factory=TransportSecurity, description="TLS, client certificate and token for a running SUT (sut)"
    )
    backend: BackendSpec = Field(
        default_factory=dict, description="backend config of the spawned SUT ({'kind': ..., ...}); see SutTarget"
    )
    http_endpoint: BackendSpec | None = Field(
        default=None,
        description="an openai backend config ({'kind': 'openai', 'base_url': ...}): the harness streams each query "
        "straight to that OpenAI-compatible endpoint (--transport openai-http), no SUT process, no gRPC",
    )
    qps: float | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, gt=0)
    min_query_count: int | None = Field(default=None, gt=0)
    out_dir: Path = Path("results")
    run_id: RunId | None = None
    user_conf: Path | None = None
    audit_config: Path | None = None
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = Field(default="127.0.0.1", min_length=1, description="address the metrics exporter binds")
    metrics_security: ExporterSecurity = Field(
        default_factory=ExporterSecurity, description="HTTPS and basic/bearer auth of the metrics exporter"
    )
    # Keep the exporter up briefly after the run so a scraper sees the final counts and run state.
    metrics_linger_s: float = Field(default=2.0, ge=0, le=300)
    max_new_tokens: int | None = Field(default=None, gt=0)
    offline_concurrency: int | None = Field(default=None, gt=0)
    rpc_timeout_s: float = Field(default=300.0, gt=0)
    # After SIGINT/SIGTERM, how long LoadGen may take to end its test before it is abandoned (an
    # interrupted run is never submittable: waiting longer buys nothing; Offline ends within it).
    drain_timeout_s: float = Field(default=1.0, gt=0, le=3600)
    # A Server run stops early once more queries than this are outstanding (LoadGen's
    # server_max_async_queries is at most this): the harness's memory stays bounded when the SUT falls behind.
    max_in_flight: int = Field(default=DEFAULT_MAX_IN_FLIGHT, ge=16, le=10_000_000)
    progress: bool = False
    # LoadGen's trace log (mlperf_log_trace.json, megabytes per Server run) is written only when asked for:
    # queries.npz holds the per-query timings everything here reads.
    trace: bool = False
    # Samples over the SUT's advertised context are refused before the run unless this is set
    # (a test that wants to see the SUT's refusals sends them on purpose).
    allow_context_overflow: bool = False
    # Every answer held to exactly max_new_tokens (EOS suppressed until then), as fixed-length load tests
    # of other tools do; a performance-only setting: the outputs are no longer the model's own answers.
    ignore_eos: bool = False
    # How the queries are sent: None = LoadGen's scenario (``scenario``); otherwise a load shape beside
    # LoadGen (``concurrency:8``, ``rate:50:poisson``, ``trace:FILE``, ``sessions:FILE``; see _load_shapes).
    load: str | None = Field(default=None, min_length=1)
    # A load shape's client is client-limited (the run not valid) when its dispatch lag p99 exceeds this.
    max_dispatch_lag_ms: float = Field(default=10.0, gt=0)
    # A sharded load (docs/sharding.md): this process sends shard I of N of ``load``, starting at the agreed
    # wall-clock time (Unix ns) so the shards on other machines start with it.
    shard: ShardSpec | None = None
    start_at_unix_ns: int | None = Field(default=None, ge=0)
    # Server-side telemetry sampled during the run (--scrape): the SUT's own exporters and any other
    # Prometheus endpoint or RAPL, stored as telemetry.npz; energy over the measured window in results.json.
    telemetry: TelemetryConfig | None = None
    # Worker processes streaming LoadGen's queries (LoadGen stays in this process); 1 = this process streams.
    workers: int = Field(default=1, ge=1, le=64)

    @field_validator("sut")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        from loadgen_harness._fleet import check_target

        return None if v is None else check_target(v)

    @model_validator(mode="after")
    def _shard_needs_load(self) -> RunConfig:
        if (self.shard is not None or self.start_at_unix_ns is not None) and self.load is None:
            raise ValueError(
                "shard: a LoadGen scenario runs as one LoadGen and cannot be sharded (use --load with --shard/--start-at)"
            )
        return self

    def log_dir(self, run_id: str, scenario: str | None = None) -> Path:
        """``scenario``: the name a load shape runs under (Concurrency, Trace, ...); default the LoadGen scenario."""
        return Path(self.out_dir) / run_id / (scenario or self.scenario) / self.mode


def resolve_inputs(cfg: RunConfig) -> tuple[RunConfig, BenchmarkProfile, Dataset]:
    """The benchmark and dataset of a run (a spawned sim serves the benchmark's own set); RunError when bad."""
    from scenarios import DatasetError, embedded_dataset, embedded_sut_backend, get_benchmark, resolve_dataset

    try:
        bench = get_benchmark(cfg.benchmark)
        if cfg.sut is None and cfg.http_endpoint is None:
            # A spawned sim serves the benchmark's own set (a reasoning benchmark: its reasoning artifact).
            backend, _ = embedded_sut_backend(bench, cfg.preset, cfg.backend)
            cfg = cfg.model_copy(
                update={"backend": backend, "dataset": embedded_dataset(bench, cfg.preset, cfg.dataset)}
            )
        dataset = resolve_dataset(cfg.dataset or bench.dataset)
    except (DatasetError, ValueError) as exc:
        raise RunError(str(exc)) from None
    if cfg.ignore_eos and cfg.mode == "accuracy":
        raise RunError("ignore_eos: a performance-only setting; accuracy needs the model's own answers")
    check_writable_dir(cfg.out_dir, "out_dir")  # before the SUT starts, not when results are written
    return cfg, bench, dataset

"""Benchmark profiles: MLPerf's LLM constants plus the project's own ``embedded`` benchmark.

A profile names the LoadGen model (the key user.conf / mlperf.conf lines use), the Server and
Interactive token-latency limits, the dataset size and the defaults a quick run starts from.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from scenarios._plugins import scenario_class, scenario_names


class BenchmarkError(ValueError):
    """Unknown benchmark or a scenario the benchmark does not define; one readable line."""


class BenchmarkProfile(BaseModel):
    """One benchmark's constants. Latency limits are p99 limits in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    loadgen_model: str = Field(description="model name as LoadGen's mlperf.conf / user.conf spell it")
    dataset: str = Field(default="embedded", description="dataset spec resolved by scenarios.resolve_dataset")
    total_sample_count: int = Field(gt=0, description="MLPerf's sample count for the benchmark")
    server_ttft_ms: float | None = Field(default=None, gt=0)
    server_tpot_ms: float | None = Field(default=None, gt=0)
    interactive_ttft_ms: float | None = Field(default=None, gt=0)
    interactive_tpot_ms: float | None = Field(default=None, gt=0)
    interactive_only: bool = Field(default=False, description="the benchmark is itself the interactive variant")
    max_new_tokens: int = Field(gt=0)
    # Defaults for a quick run against the embedded sim; a real SUT passes --qps.
    default_server_qps: float = Field(default=1.0, gt=0)
    default_offline_qps: float = Field(default=10.0, gt=0)
    default_single_stream_latency_ms: float = Field(default=1000.0, gt=0)
    default_multi_stream_latency_ms: float = Field(default=2000.0, gt=0)
    accuracy_targets: dict[str, float] = Field(default_factory=dict)

    @property
    def ttft_ms(self) -> float | None:
        """The limit a Server-style run of this benchmark is judged by (interactive for -interactive)."""
        return self.interactive_ttft_ms if self.interactive_only else self.server_ttft_ms

    @property
    def tpot_ms(self) -> float | None:
        return self.interactive_tpot_ms if self.interactive_only else self.server_tpot_ms

    def supports(self, scenario: str) -> bool:
        kind = scenario_class(scenario)
        if self.interactive_only:
            return kind.loadgen_scenario == "Server"
        if kind.interactive:
            return self.interactive_ttft_ms is not None
        return True

    def check_scenario(self, scenario: str) -> None:
        """Raise BenchmarkError with one line when the combination is not defined."""
        if scenario not in scenario_names():
            raise BenchmarkError(f"scenario: expected one of {', '.join(scenario_names())}, got '{scenario}'")
        if self.supports(scenario):
            return
        if self.interactive_only:
            raise BenchmarkError(
                f"benchmark '{self.name}' is interactive and runs only as Server/Interactive, not {scenario}"
            )
        raise BenchmarkError(f"scenario '{scenario}': benchmark '{self.name}' defines no interactive TTFT/TPOT limits")

    def limits_for(self, scenario: str) -> tuple[float, float] | None:
        """(ttft_ms, tpot_ms) the scenario is judged by, or None when the scenario has no token limits."""
        kind = scenario_class(scenario)
        if kind.interactive or (kind.loadgen_scenario == "Server" and self.interactive_only):
            if self.interactive_ttft_ms is None or self.interactive_tpot_ms is None:
                return None
            return self.interactive_ttft_ms, self.interactive_tpot_ms
        if self.server_ttft_ms is None or self.server_tpot_ms is None:
            return None
        return self.server_ttft_ms, self.server_tpot_ms

    def loadgen_model_for(self, scenario: str) -> str:
        """The model key for user.conf lines; interactive runs use MLPerf's ``-interactive`` name."""
        if scenario_class(scenario).interactive and not self.loadgen_model.endswith("-interactive"):
            return f"{self.loadgen_model}-interactive"
        return self.loadgen_model


_LLAMA2_ACC = {"rouge1": 44.4312, "rouge2": 22.0352, "rougeL": 28.6162, "tokens_per_sample": 294.45}
_LLAMA31_8B_ACC = {"rouge1": 38.7792, "rouge2": 15.9075, "rougeL": 24.4957, "rougeLsum": 35.793}

BENCHMARKS: dict[str, BenchmarkProfile] = {
    p.name: p
    for p in (
        BenchmarkProfile(
            name="llama2-70b",
            loadgen_model="llama2-70b",
            total_sample_count=24576,
            server_ttft_ms=2000,
            server_tpot_ms=200,
            interactive_ttft_ms=450,
            interactive_tpot_ms=40,
            max_new_tokens=1024,
            accuracy_targets=_LLAMA2_ACC,
        ),
        BenchmarkProfile(
            name="llama2-70b-interactive",
            loadgen_model="llama2-70b-interactive",
            total_sample_count=24576,
            interactive_ttft_ms=450,
            interactive_tpot_ms=40,
            interactive_only=True,
            max_new_tokens=1024,
            accuracy_targets=_LLAMA2_ACC,
        ),
        BenchmarkProfile(
            name="llama3_1-8b",
            loadgen_model="llama3_1-8b",
            total_sample_count=13368,
            server_ttft_ms=2000,
            server_tpot_ms=100,
            interactive_ttft_ms=500,
            interactive_tpot_ms=30,
            max_new_tokens=128,
            accuracy_targets=_LLAMA31_8B_ACC,
        ),
        BenchmarkProfile(
            name="llama3_1-405b",
            loadgen_model="llama3_1-405b",
            total_sample_count=8313,
            server_ttft_ms=6000,
            server_tpot_ms=175,
            interactive_ttft_ms=4500,
            interactive_tpot_ms=80,
            max_new_tokens=20000,
            accuracy_targets={"rougeL": 21.6666, "exact_match": 90.1335},
        ),
        BenchmarkProfile(
            name="mixtral-8x7b",
            loadgen_model="mixtral-8x7b",
            total_sample_count=15000,
            server_ttft_ms=2000,
            server_tpot_ms=200,
            max_new_tokens=1024,
            accuracy_targets={
                "rouge1": 45.5989,
                "rouge2": 23.3526,
                "rougeL": 30.4608,
                "gsm8k": 73.66,
                "mbxp": 60.16,
            },
        ),
        # The project's own benchmark over the embedded dataset. The limits fit the sim's timing model
        # (prefill a few ms, 10 ms decode steps) with headroom for two busy cores, so a quick Server run
        # at the default QPS is VALID; Interactive tightens both.
        BenchmarkProfile(
            name="embedded",
            loadgen_model="lpuperf-embedded",
            total_sample_count=512,
            server_ttft_ms=500,
            server_tpot_ms=50,
            interactive_ttft_ms=200,
            interactive_tpot_ms=30,
            max_new_tokens=300,
            default_server_qps=12.0,
            default_offline_qps=60.0,
            default_single_stream_latency_ms=1500.0,
            default_multi_stream_latency_ms=3000.0,
        ),
    )
}


def benchmark_names() -> list[str]:
    return list(BENCHMARKS)


def get_benchmark(name: str) -> BenchmarkProfile:
    """The one way to select a benchmark profile by name (BenchmarkError, one line, when unknown)."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise BenchmarkError(f"benchmark: expected one of {', '.join(BENCHMARKS)}, got '{name}'") from None

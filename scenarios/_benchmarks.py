"""Benchmark profiles: MLPerf's LLM benchmarks, read from their round's table, plus the project's ``embedded``.

A profile names the LoadGen model (the key user.conf / mlperf.conf lines use), the Server and
Interactive token-latency limits, the sample counts, the accuracy scorer and the defaults a quick run
starts from. An MLPerf profile names its round (``round``); its limits and counts come from that round's
``mlperf.conf`` lines and its submission rules (required scenarios, checker targets, compliance tests,
seeds) from the round's checker table, both in ``scenarios._rounds``, so nothing is written twice.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from scenarios._conf_supply import lookup
from scenarios._plugins import scenario_class, scenario_names
from scenarios._rounds import (
    CURRENT_ROUND,
    ComplianceTest,
    ModelRules,
    RequiredScenarios,
    RoundSeeds,
    SystemType,
    Test07Rules,
    Test09Rules,
    get_round,
)

ReasoningStyle = Literal["think", "harmony"]
# The quick preset's sim scales reasoning lengths down by this much (a 3,886-token mean becomes ~390):
# a laptop run stays a few minutes; results.json says so.
QUICK_REASONING_SCALE = 0.1


class BenchmarkError(ValueError):
    """Unknown benchmark or a scenario the benchmark does not define; one readable line."""


class BenchmarkProfile(BaseModel):
    """One benchmark's constants. Latency limits are p99 limits in milliseconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    loadgen_model: str = Field(description="model name as LoadGen's mlperf.conf / user.conf spell it")
    round: str | None = Field(default=None, description="the MLPerf round the constants come from, e.g. 'v6.1'")
    checker_model: str | None = Field(default=None, description="MLPerf's results/<system>/<benchmark> name")
    dataset: str = Field(default="embedded", description="dataset spec resolved by scenarios.resolve_dataset")
    total_sample_count: int = Field(gt=0, description="MLPerf's performance sample count for the benchmark")
    accuracy_sample_count: int | None = Field(
        default=None, gt=0, description="LoadGen's accuracy_sample_count_override; None = the whole dataset"
    )
    server_ttft_ms: float | None = Field(default=None, gt=0)
    server_tpot_ms: float | None = Field(default=None, gt=0)
    interactive_ttft_ms: float | None = Field(default=None, gt=0)
    interactive_tpot_ms: float | None = Field(default=None, gt=0)
    interactive_only: bool = Field(default=False, description="the benchmark is itself the interactive variant")
    allowed_scenarios: tuple[str, ...] | None = Field(default=None, description="None = every scenario")
    max_new_tokens: int = Field(gt=0)
    accuracy_max_new_tokens: int | None = Field(
        default=None, gt=0, description="output cap of accuracy runs when it differs (gpt-oss-120b: 32768)"
    )
    scorer: str = Field(default="rouge", description="accuracy scorer kind (accuracy.scorers)")
    reasoning_style: ReasoningStyle | None = Field(default=None, description="how outputs mark their reasoning")
    sim_artifact: str | None = Field(default=None, description="the embedded sim's artifact when none is named")
    compliance_tests: tuple[ComplianceTest, ...] = ()
    # Defaults for a quick run against the embedded sim; a real SUT passes --qps.
    default_server_qps: float = Field(default=1.0, gt=0)
    default_offline_qps: float = Field(default=10.0, gt=0)
    default_single_stream_latency_ms: float = Field(default=1000.0, gt=0)
    default_multi_stream_latency_ms: float = Field(default=2000.0, gt=0)
    accuracy_targets: dict[str, float] = Field(
        default_factory=dict, description="FP32 reference scores (the gates apply 99 % / 99.9 %)"
    )

    @property
    def ttft_ms(self) -> float | None:
        """The limit a Server-style run of this benchmark is judged by (interactive for -interactive)."""
        return self.interactive_ttft_ms if self.interactive_only else self.server_ttft_ms

    @property
    def tpot_ms(self) -> float | None:
        return self.interactive_tpot_ms if self.interactive_only else self.server_tpot_ms

    @property
    def reasoning(self) -> bool:
        return self.reasoning_style is not None

    def supports(self, scenario: str) -> bool:
        kind = scenario_class(scenario)
        if self.allowed_scenarios is not None and scenario not in self.allowed_scenarios:
            return False
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
        if self.allowed_scenarios is not None and scenario not in self.allowed_scenarios:
            raise BenchmarkError(
                f"scenario '{scenario}': benchmark '{self.name}' runs only as {', '.join(self.allowed_scenarios)}"
            )
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

    def max_new_tokens_for(self, mode: str) -> int:
        """The output cap of a run in ``mode`` ('performance' or 'accuracy')."""
        return (
            self.accuracy_max_new_tokens if mode == "accuracy" and self.accuracy_max_new_tokens else self.max_new_tokens
        )

    # --- the round's rules ----------------------------------------------------------------------

    @property
    def rules(self) -> ModelRules | None:
        """MLPerf's checker rules for this benchmark in its round; None for the project's own benchmarks."""
        rnd = get_round(self.round) if self.round else None
        return rnd.rules(self.checker_model) if rnd is not None and self.checker_model else None

    @property
    def seeds(self) -> RoundSeeds | None:
        rnd = get_round(self.round) if self.round else None
        return rnd.seeds if rnd is not None else None

    def required_scenarios(self, system_type: SystemType) -> RequiredScenarios | None:
        """The scenarios a submission of ``system_type`` must hold; None where the benchmark is not of that type."""
        rules = self.rules
        return rules.required.get(system_type) if rules is not None else None

    @property
    def test07(self) -> Test07Rules | None:
        rules = self.rules
        return rules.test07 if rules is not None else None

    @property
    def test09(self) -> Test09Rules | None:
        rules = self.rules
        return rules.test09 if rules is not None else None

    def conf_value(self, scenario: str, key: str) -> str | None:
        """The round's mlperf.conf value of ``key`` for this benchmark in LoadGen scenario ``scenario``."""
        rnd = get_round(self.round) if self.round else None
        hit = lookup(rnd.conf, self.loadgen_model, scenario, key) if rnd is not None else None
        return hit[1] if hit is not None else None


def _conf_number(model: str, scenario: str, key: str, rnd: str = CURRENT_ROUND) -> float | None:
    table = get_round(rnd)
    hit = lookup(table.conf, model, scenario, key) if table is not None else None
    return float(hit[1]) if hit is not None else None


def _count(model: str, key: str, rnd: str = CURRENT_ROUND) -> int | None:
    value = _conf_number(model, "Offline", key, rnd)
    return int(value) if value is not None else None


def mlperf_profile(
    name: str, checker_model: str, *, interactive_only: bool = False, rnd: str = CURRENT_ROUND, **fields: Any
) -> BenchmarkProfile:
    """A profile whose limits and sample counts are read from round ``rnd``'s mlperf.conf lines.

    The Server limits are ``<model>.Server.ttft_latency``/``tpot_latency``; the Interactive ones the same keys
    under ``<model>-interactive``, the name LoadGen knows the Interactive scenario by.
    """
    model = name
    base = model.removesuffix("-interactive")
    limits: dict[str, float | None] = {
        "interactive_ttft_ms": _conf_number(f"{base}-interactive", "Server", "ttft_latency", rnd),
        "interactive_tpot_ms": _conf_number(f"{base}-interactive", "Server", "tpot_latency", rnd),
    }
    if not interactive_only:
        limits["server_ttft_ms"] = _conf_number(base, "Server", "ttft_latency", rnd)
        limits["server_tpot_ms"] = _conf_number(base, "Server", "tpot_latency", rnd)
    total = _count(model, "performance_sample_count_override", rnd)
    if total is None:
        raise BenchmarkError(f"round {rnd}: no performance_sample_count_override for {model}")
    table = get_round(rnd)
    rules = table.rules(checker_model) if table is not None else None
    # MLPerf's checker table names each benchmark's tests; a benchmark the table no longer lists names its own.
    fields.setdefault("compliance_tests", rules.compliance_tests if rules is not None else ())
    return BenchmarkProfile.model_validate(
        {
            "name": name,
            "loadgen_model": model,
            "round": rnd,
            "checker_model": checker_model,
            "total_sample_count": total,
            "accuracy_sample_count": _count(model, "accuracy_sample_count_override", rnd),
            "interactive_only": interactive_only,
            **limits,
            **fields,
        }
    )


# Benchmarks v6.1's checker table no longer lists (or lists under another name) still carry TEST06.
_TEST06: dict[str, Any] = {"compliance_tests": ("TEST06",)}
_LLAMA2_ACC = {"rouge1": 44.4312, "rouge2": 22.0352, "rougeL": 28.6162, "tokens_per_sample": 294.45}
_LLAMA31_8B_ACC = {"rouge1": 38.7792, "rouge2": 15.9075, "rougeL": 24.4957, "rougeLsum": 35.793}
_LLAMA31_8B_EDGE_ACC = {"rouge1": 39.06, "rouge2": 16.1147, "rougeL": 24.6375, "rougeLsum": 36.124}
# The reasoning benchmarks' reference scores (their READMEs) and their evaluators' output caps:
# deepseek-r1 MAX_OSL 20000 (utils/backend_registry.py); gpt-oss-120b 10240 in performance, 32768 in accuracy.
_DEEPSEEK_R1_ACC = {"exact_match": 81.3582, "tokens_per_sample": 3886.2274}
_GPT_OSS_ACC = {"exact_match": 83.13}
_DEEPSEEK_R1: dict[str, Any] = {
    "dataset": "reasoning:deepseek-r1",
    "max_new_tokens": 20000,
    "scorer": "exact_match-deepseek-r1",
    "reasoning_style": "think",
    "sim_artifact": "sim-reasoning",
    "accuracy_targets": _DEEPSEEK_R1_ACC,
    # A quick Server run on the reasoning sim (reasoning scaled to 10 %, ~400-token answers at 10 ms a step):
    # 5 QPS x 120 s gives early stopping its ~600 queries with ~20 streams in flight.
    "default_server_qps": 5.0,
    "default_offline_qps": 20.0,
    "default_single_stream_latency_ms": 8000.0,
}
_GPT_OSS: dict[str, Any] = {
    "dataset": "reasoning:gpt-oss-120b",
    "max_new_tokens": 10240,
    "accuracy_max_new_tokens": 32768,
    "scorer": "exact_match-gpt-oss-120b",
    "reasoning_style": "harmony",
    "sim_artifact": "sim-reasoning",
    "accuracy_targets": _GPT_OSS_ACC,
    "default_server_qps": 5.0,
    "default_offline_qps": 40.0,
    "default_single_stream_latency_ms": 3000.0,
}

BENCHMARKS: dict[str, BenchmarkProfile] = {
    p.name: p
    for p in (
        mlperf_profile("llama2-70b", "llama2-70b-99.9", max_new_tokens=1024, accuracy_targets=_LLAMA2_ACC, **_TEST06),
        mlperf_profile(
            "llama2-70b-interactive",
            "llama2-70b-99.9",
            interactive_only=True,
            max_new_tokens=1024,
            accuracy_targets=_LLAMA2_ACC,
            **_TEST06,
        ),
        mlperf_profile("llama3_1-8b", "llama3.1-8b", max_new_tokens=128, accuracy_targets=_LLAMA31_8B_ACC),
        mlperf_profile(
            "llama3_1-8b-interactive",
            "llama3.1-8b",
            interactive_only=True,
            max_new_tokens=128,
            accuracy_targets=_LLAMA31_8B_ACC,
        ),
        # The edge variant: SingleStream and Offline only (MLPerf's edge rules), no Server limits.
        mlperf_profile(
            "llama3_1-8b-edge",
            "llama3.1-8b-edge",
            allowed_scenarios=("SingleStream", "Offline"),
            max_new_tokens=128,
            accuracy_targets=_LLAMA31_8B_EDGE_ACC,
        ),
        mlperf_profile(
            "llama3_1-405b",
            "llama3.1-405b",
            max_new_tokens=20000,
            accuracy_targets={"rougeL": 21.6666, "exact_match": 90.1335},
            **_TEST06,
        ),
        mlperf_profile(
            "mixtral-8x7b",
            "mixtral-8x7b",
            max_new_tokens=1024,
            accuracy_targets={"rouge1": 45.5989, "rouge2": 23.3526, "rougeL": 30.4608, "gsm8k": 73.66, "mbxp": 60.16},
            **_TEST06,
        ),
        mlperf_profile("deepseek-r1", "deepseek-r1", **_DEEPSEEK_R1),
        mlperf_profile("deepseek-r1-interactive", "deepseek-r1", interactive_only=True, **_DEEPSEEK_R1),
        mlperf_profile("gpt-oss-120b", "gpt-oss-120b", **_GPT_OSS),
        mlperf_profile("gpt-oss-120b-interactive", "gpt-oss-120b", interactive_only=True, **_GPT_OSS),
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
            compliance_tests=("TEST06",),
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

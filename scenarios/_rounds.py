"""MLPerf Inference rounds: one table per round, the one place the project's MLPerf constants come from.

A round holds what LoadGen's ``mlperf.conf`` says for the models the project profiles (kept verbatim in
LoadGen's own syntax, so one parser reads it and the installed wheel's conf alike) and what MLPerf's
submission checker holds a submission to: required scenarios per system type, accuracy targets and upper
limits, sample counts, the compliance tests and their thresholds. Benchmark profiles
(``scenarios._benchmarks``) read their limits, counts and targets from here and name their round.

v6.1 is read from mlcommons/inference at b66003e1 (2026-08-20): ``loadgen/mlperf.conf``,
``tools/submission/submission_checker/constants.py`` (``MODEL_CONFIG["v6.1"]``, ``LLM_LATENCY_LIMITS``,
``TEST09_LOW``/``TEST09_HIGH``) and ``compliance/TEST07|TEST09/gpt-oss-120b/audit.config``.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SystemType = Literal["datacenter", "edge"]
ComplianceTest = Literal["TEST06", "TEST07", "TEST09"]
CURRENT_ROUND = "v6.1"


class RoundSeeds(BaseModel):
    """The LoadGen seeds every closed-division run of one MLPerf Inference round must use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    qsl_rng_seed: int
    sample_index_rng_seed: int
    schedule_rng_seed: int

    def seed(self, key: str) -> int:
        value: int = getattr(self, key)
        return value


class RequiredScenarios(BaseModel):
    """Scenarios a submission of one system type must hold: every ``all_of`` and at least one of ``one_of``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    all_of: tuple[str, ...] = ()
    one_of: tuple[str, ...] = Field(default=(), description="MLPerf: 'Only one of server or interactive'")

    def missing(self, present: set[str]) -> list[str]:
        """What a set of scenario directories lacks, as the checker names it."""
        out = [s for s in self.all_of if s not in present]
        if self.one_of and not present.intersection(self.one_of):
            out.append("(one of) " + " or ".join(self.one_of))
        return out


class Test07Rules(BaseModel):
    """TEST07's audit.config: accuracy in performance mode must reach ``accuracy_threshold`` (exact_match %)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    accuracy_threshold: float
    accuracy_log_sampling_target: int = Field(gt=0, description="MLPerf's value for its own compliance dataset")
    min_query_count: int = Field(gt=0)


class Test09Rules(BaseModel):
    """TEST09's audit.config: the mean output tokens in performance mode must lie in [min, max]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_output_tokens: float
    max_output_tokens: float
    accuracy_log_sampling_target: int = Field(gt=0)
    min_query_count: int = Field(gt=0)


class ModelRules(BaseModel):
    """What MLPerf's submission checker holds one benchmark to in one round (checker names and units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checker_model: str = Field(description="the results/<system>/<benchmark> directory name")
    required: dict[SystemType, RequiredScenarios]
    accuracy_targets: dict[str, float] = Field(description="checker metric -> lower bound (each >=)")
    accuracy_upper_limits: dict[str, float] = Field(default_factory=dict, description="metric -> upper bound")
    performance_sample_count: int = Field(gt=0)
    accuracy_sample_count: int = Field(gt=0, description="accuracy-sample-count, else dataset-size")
    dataset_size: int = Field(gt=0)
    min_queries: dict[str, int] = Field(default_factory=dict, description="scenario -> min queries (no early stopping)")
    compliance_tests: tuple[ComplianceTest, ...] = ()
    latency_limits_ms: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="scenario -> (TTFT, TPOT) p99 limits, LLM_LATENCY_LIMITS"
    )
    test07: Test07Rules | None = None
    test09: Test09Rules | None = None


class MlperfRound(BaseModel):
    """One round: its seeds, its mlperf.conf lines for the project's models, and its checker rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: str = Field(description="where the values were read (repository, commit)")
    seeds: RoundSeeds
    conf_text: str = Field(description="LoadGen mlperf.conf lines, verbatim, for the models profiled here")
    models: dict[str, ModelRules] = Field(description="by checker model name")

    def rules(self, checker_model: str) -> ModelRules | None:
        return self.models.get(checker_model)

    @functools.cached_property
    def conf(self) -> dict[str, str]:
        """``model.scenario.key`` -> value text, as LoadGen's parser keeps it (the last line of a key wins)."""
        from scenarios._conf_supply import parse_conf

        return parse_conf(self.conf_text)


# Every key below is a line of loadgen/mlperf.conf at b66003e1 (line numbers in the comments), limited to
# the LLM models the project profiles. Placeholders user.conf must set (target_qps, SingleStream
# target_latency) and keys no TestSettings field takes (target_duration) are left out.
_V61_CONF = """\
# l.16-38: performance (and accuracy) sample counts
mixtral-8x7b.*.performance_sample_count_override = 15000
llama2-70b.*.performance_sample_count_override = 24576
llama2-70b-interactive.*.performance_sample_count_override = 24576
llama3_1-405b.*.performance_sample_count_override = 8313
llama3_1-405b-interactive.*.performance_sample_count_override = 8313
llama3_1-8b.*.performance_sample_count_override = 13368
llama3_1-8b-edge.*.performance_sample_count_override = 5000
llama3_1-8b-interactive.*.performance_sample_count_override = 13368
deepseek-r1.*.performance_sample_count_override = 4388
deepseek-r1-interactive.*.performance_sample_count_override = 4388
gpt-oss-120b.*.performance_sample_count_override = 6396
gpt-oss-120b.*.accuracy_sample_count_override = 4395
gpt-oss-120b-interactive.*.performance_sample_count_override = 6396
gpt-oss-120b-interactive.*.accuracy_sample_count_override = 4395
# l.41-43: the v6.1 seeds
*.*.qsl_rng_seed = 2085463073848966840
*.*.sample_index_rng_seed = 2747215439041700203
*.*.schedule_rng_seed = 16159082839903944936
# l.50-57
*.SingleStream.target_latency_percentile = 90
*.SingleStream.min_duration = 600000
*.MultiStream.target_latency_percentile = 99
*.MultiStream.samples_per_query = 8
*.MultiStream.min_duration = 600000
*.MultiStream.min_query_count = 662
# l.68-81: equal-issue mode
llama2-70b.*.sample_concatenate_permutation = 1
llama2-70b-interactive.*.sample_concatenate_permutation = 1
mixtral-8x7b.*.sample_concatenate_permutation = 1
llama3_1-405b.*.sample_concatenate_permutation = 1
llama3_1-405b-interactive.*.sample_concatenate_permutation = 1
llama3_1-8b.*.sample_concatenate_permutation = 1
llama3_1-8b-edge.*.sample_concatenate_permutation = 1
llama3_1-8b-interactive.*.sample_concatenate_permutation = 1
deepseek-r1.*.sample_concatenate_permutation = 1
deepseek-r1-interactive.*.sample_concatenate_permutation = 1
gpt-oss-120b.*.sample_concatenate_permutation = 1
gpt-oss-120b-interactive.*.sample_concatenate_permutation = 1
# l.82-85
*.Server.target_latency = 10
*.Server.target_latency_percentile = 99
*.Server.min_duration = 600000
# l.96-108: token latencies
llama2-70b.*.use_token_latencies = 1
llama2-70b-interactive.*.use_token_latencies = 1
mixtral-8x7b.*.use_token_latencies = 1
llama3_1-405b.*.use_token_latencies = 1
llama3_1-405b-interactive.*.use_token_latencies = 1
llama3_1-8b.*.use_token_latencies = 1
llama3_1-8b-edge.*.use_token_latencies = 1
llama3_1-8b-interactive.*.use_token_latencies = 1
deepseek-r1.*.use_token_latencies = 1
deepseek-r1-interactive.*.use_token_latencies = 1
gpt-oss-120b.*.use_token_latencies = 1
gpt-oss-120b-interactive.*.use_token_latencies = 1
# l.116-164: Server TTFT/TPOT limits (ms); the -interactive models are the Interactive scenario's
llama2-70b.Server.target_latency = 0
llama2-70b.Server.ttft_latency = 2000
llama2-70b.Server.tpot_latency = 200
llama2-70b-interactive.Server.target_latency = 0
llama2-70b-interactive.Server.ttft_latency = 450
llama2-70b-interactive.Server.tpot_latency = 40
mixtral-8x7b.Server.target_latency = 0
mixtral-8x7b.Server.ttft_latency = 2000
mixtral-8x7b.Server.tpot_latency = 200
llama3_1-405b.Server.target_latency = 0
llama3_1-405b.Server.ttft_latency = 6000
llama3_1-405b.Server.tpot_latency = 175
llama3_1-405b-interactive.Server.target_latency = 0
llama3_1-405b-interactive.Server.ttft_latency = 4500
llama3_1-405b-interactive.Server.tpot_latency = 80
llama3_1-8b.Server.target_latency = 0
llama3_1-8b.Server.ttft_latency = 2000
llama3_1-8b.Server.tpot_latency = 100
llama3_1-8b-interactive.Server.target_latency = 0
llama3_1-8b-interactive.Server.ttft_latency = 500
llama3_1-8b-interactive.Server.tpot_latency = 30
deepseek-r1.Server.target_latency = 0
deepseek-r1.Server.ttft_latency = 2000
deepseek-r1.Server.tpot_latency = 80
deepseek-r1-interactive.Server.target_latency = 0
deepseek-r1-interactive.Server.ttft_latency = 1500
deepseek-r1-interactive.Server.tpot_latency = 15
gpt-oss-120b.Server.target_latency = 0
gpt-oss-120b.Server.ttft_latency = 3000
gpt-oss-120b.Server.tpot_latency = 80
gpt-oss-120b-interactive.Server.target_latency = 0
gpt-oss-120b-interactive.Server.ttft_latency = 2000
gpt-oss-120b-interactive.Server.tpot_latency = 15
# l.168-191: Offline (gpt-oss-120b has no min_query_count key: LoadGen's default 100 applies)
*.Offline.target_latency_percentile = 90
*.Offline.min_duration = 600000
llama2-70b.Offline.min_query_count = 24576
llama3_1-405b.Offline.min_query_count = 8313
llama3_1-8b.Offline.min_query_count = 13368
llama3_1-8b-edge.Offline.min_query_count = 5000
mixtral-8x7b.Offline.min_query_count = 15000
deepseek-r1.Offline.min_query_count = 4388
"""

_DATACENTER_LLM = RequiredScenarios(all_of=("Offline",), one_of=("Server", "Interactive"))
_EDGE_LLM = RequiredScenarios(all_of=("SingleStream", "Offline"))
_LLM_MIN_QUERIES = {"SingleStream": 1024, "Server": 270336, "Offline": 1}

# constants.py l.26-328 (MODEL_CONFIG["v6.1"]), l.1503-1504 and l.1736-1802; the audit.config files of
# compliance/TEST07/gpt-oss-120b (l.16-37) and compliance/TEST09/gpt-oss-120b (l.17-42).
_V61_MODELS = (
    ModelRules(
        checker_model="deepseek-r1",
        required={"datacenter": _DATACENTER_LLM},
        accuracy_targets={"exact_match": 0.99 * 81.3582, "TOKENS_PER_SAMPLE": 0.9 * 3886.2274},
        accuracy_upper_limits={"TOKENS_PER_SAMPLE": 1.1 * 3886.2274},
        performance_sample_count=4388,
        accuracy_sample_count=4388,
        dataset_size=4388,
        min_queries=_LLM_MIN_QUERIES,
        compliance_tests=("TEST06",),
        latency_limits_ms={"Server": (2000, 80), "Interactive": (1500, 15)},
    ),
    ModelRules(
        checker_model="gpt-oss-120b",
        required={"datacenter": _DATACENTER_LLM},
        accuracy_targets={"exact_match": 83.13 * 0.99},
        accuracy_upper_limits={"TOKENS_PER_SAMPLE": 1.1 * 9999},
        performance_sample_count=6396,
        accuracy_sample_count=4395,
        dataset_size=6396,
        min_queries=_LLM_MIN_QUERIES,
        compliance_tests=("TEST07", "TEST09"),
        latency_limits_ms={"Server": (3000, 80), "Interactive": (2000, 15)},
        test07=Test07Rules(accuracy_threshold=60.698, accuracy_log_sampling_target=990, min_query_count=990),
        test09=Test09Rules(
            min_output_tokens=1150.38,
            max_output_tokens=1406.02,
            accuracy_log_sampling_target=10000,
            min_query_count=6396,
        ),
    ),
    ModelRules(
        checker_model="llama3.1-8b",
        required={"datacenter": _DATACENTER_LLM},
        accuracy_targets={
            "ROUGE1": 38.7792 * 0.99,
            "ROUGE2": 15.9075 * 0.99,
            "ROUGEL": 24.4957 * 0.99,
            "ROUGELSUM": 35.793 * 0.99,
            "GEN_LEN": 8167644 * 0.9,
        },
        accuracy_upper_limits={"GEN_LEN": 8167644 * 1.1},
        performance_sample_count=13368,
        accuracy_sample_count=13368,
        dataset_size=13368,
        min_queries=_LLM_MIN_QUERIES,
        compliance_tests=("TEST06",),
        latency_limits_ms={"Server": (2000, 100), "Interactive": (500, 30)},
    ),
    ModelRules(
        checker_model="llama3.1-8b-edge",
        required={"edge": _EDGE_LLM},
        accuracy_targets={
            "ROUGE1": 39.06 * 0.99,
            "ROUGE2": 16.1147 * 0.99,
            "ROUGEL": 24.6375 * 0.99,
            "ROUGELSUM": 36.124 * 0.99,
            "GEN_LEN": 3051113 * 0.9,
        },
        accuracy_upper_limits={"GEN_LEN": 3051113 * 1.1},
        performance_sample_count=5000,
        accuracy_sample_count=5000,
        dataset_size=5000,
        min_queries={"SingleStream": 1024, "Offline": 1},
    ),
)

MLPERF_ROUNDS: dict[str, MlperfRound] = {
    "v6.1": MlperfRound(
        name="v6.1",
        source="mlcommons/inference b66003e1 (loadgen/mlperf.conf, submission_checker/constants.py, compliance/)",
        seeds=RoundSeeds(
            qsl_rng_seed=2085463073848966840,
            sample_index_rng_seed=2747215439041700203,
            schedule_rng_seed=16159082839903944936,
        ),
        conf_text=_V61_CONF,
        models={m.checker_model: m for m in _V61_MODELS},
    ),
}


# v6.0 (constants.py MODEL_CONFIG["v6.0"]) holds the same rules as v6.1 for every model profiled here;
# only its seeds (loadgen/mlperf.conf of that round) differ.
_V60_SEEDS = RoundSeeds(
    qsl_rng_seed=2465351861681999779,
    sample_index_rng_seed=14276810075590677512,
    schedule_rng_seed=3936089224930324775,
)


def _with_seeds(conf_text: str, seeds: RoundSeeds) -> str:
    """A round's conf lines with another round's seed lines (the ``*.*.<seed> = N`` keys)."""
    lines = []
    for line in conf_text.splitlines():
        key = line.partition("=")[0].strip()
        name = key.removeprefix("*.*.")
        lines.append(f"{key} = {seeds.seed(name)}" if key.startswith("*.*.") and name.endswith("_seed") else line)
    return "\n".join(lines) + "\n"


MLPERF_ROUNDS["v6.0"] = MlperfRound(
    name="v6.0",
    source="mlcommons/inference b66003e1 (submission_checker/constants.py MODEL_CONFIG['v6.0'])",
    seeds=_V60_SEEDS,
    conf_text=_with_seeds(_V61_CONF, _V60_SEEDS),
    models={m.checker_model: m for m in _V61_MODELS},
)

# Every benchmark directory name MLPerf's checker knows in v6.0 and v6.1 (MODEL_CONFIG[...]["models"]).
# A name outside it (lpuperf's own "embedded") is not an MLPerf benchmark at all.
MLPERF_BENCHMARK_DIRS: frozenset[str] = frozenset(
    {
        "3d-unet-99", "3d-unet-99.9", "bert-99", "bert-99.9", "deepseek-r1", "dlrm-v3", "e2e-rag-db",
        "e2e-rag-qna", "gpt-oss-120b", "llama2-70b-99", "llama2-70b-99.9", "llama3.1-405b", "llama3.1-8b",
        "llama3.1-8b-edge", "mixtral-8x7b", "pointpainting", "qwen3-vl-235b-a22b", "qwen3.6-27b", "resnet",
        "retinanet", "rgat", "stable-diffusion-xl", "wan-2.2-t2v-a14b", "whisper", "yolo-95", "yolo-99",
    }
)  # fmt: skip


def get_round(name: str) -> MlperfRound | None:
    """A round's full table; None for a round the project holds only seeds for (or none at all)."""
    return MLPERF_ROUNDS.get(name if name.startswith("v") else f"v{name}")

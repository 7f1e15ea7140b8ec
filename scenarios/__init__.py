"""Configuration foundation: the plugin registry, the dataset format, scenario and benchmark presets.

Every name is imported on first use (:func:`common.lazy_exports`): a CLI parser asking for the
scenario names must not load the dataset code and numpy.
"""

from typing import TYPE_CHECKING

from common import lazy_exports

if TYPE_CHECKING:
    from scenarios._benchmarks import (
        BENCHMARKS,
        BenchmarkError,
        BenchmarkProfile,
        benchmark_names,
        get_benchmark,
    )
    from scenarios._conf_supply import ConfSupply
    from scenarios._mlperf import (
        MLPERF_ROUND_SEEDS,
        TEST06_MODELS,
        TEST07_MODELS,
        TEST09_MODELS,
        RoundSeeds,
        compliance_tests,
        mlperf_model,
        project_benchmark,
        requires_test06,
        requires_test07,
        requires_test09,
        round_name,
        round_seeds,
    )
    from scenarios._plugins import get_scenario, loadgen_scenario, scenario_class, scenario_names, scenario_presets
    from scenarios._presets import (
        SettingsError,
        SettingsPlan,
        build_test_settings,
        embedded_dataset,
        embedded_sut_backend,
        plan_settings,
        quick_reasoning_scale,
    )
    from scenarios._reference_prompts import ReferencePrompt, write_prompts
    from scenarios._resolve import EMBEDDED_DATASET, resolve_dataset
    from scenarios._rounds import CURRENT_ROUND, MLPERF_ROUNDS, MlperfRound, ModelRules, get_round
    from scenarios._scenario import (
        LoadGenScenario,
        Preset,
        Scenario,
        ScenarioConfig,
        ScenarioName,
        ScenarioSettings,
        SettingsOverrides,
    )
    from scenarios._sessions import (
        SessionError,
        SessionSpec,
        SessionSummary,
        SyntheticSessions,
        TurnSpec,
        check_sessions,
        iter_sessions,
        parse_synthetic_sessions,
        synthetic_sessions,
    )
    from scenarios._tokens import system_prompt_tokens, tool_result_tokens, turn_tokens
    from scenarios._traces import TraceError, TraceRequest, TraceSpec, TraceSummary, check_trace, iter_trace
    from scenarios._userconf import MlperfRules, UserConfError, apply_user_conf, mlperf_conf_defaults
    from scenarios.dataset import ByteDecoder, Dataset, DatasetError, load_dataset, save_dataset
    from scenarios.recording import Recording, load_recording, save_recording
    from scenarios.synthetic import SYNTH_EOS, synthetic_dataset

__getattr__ = lazy_exports(
    __name__,
    {
        "scenarios._benchmarks": [
            "BENCHMARKS",
            "BenchmarkError",
            "BenchmarkProfile",
            "benchmark_names",
            "get_benchmark",
        ],
        "scenarios._conf_supply": ["ConfSupply"],
        "scenarios._mlperf": [
            "MLPERF_ROUND_SEEDS",
            "TEST06_MODELS",
            "TEST07_MODELS",
            "TEST09_MODELS",
            "RoundSeeds",
            "compliance_tests",
            "mlperf_model",
            "project_benchmark",
            "requires_test06",
            "requires_test07",
            "requires_test09",
            "round_name",
            "round_seeds",
        ],
        "scenarios._presets": [
            "SettingsError",
            "SettingsPlan",
            "build_test_settings",
            "embedded_dataset",
            "embedded_sut_backend",
            "plan_settings",
            "quick_reasoning_scale",
        ],
        "scenarios._rounds": ["CURRENT_ROUND", "MLPERF_ROUNDS", "MlperfRound", "ModelRules", "get_round"],
        "scenarios._reference_prompts": ["ReferencePrompt", "write_prompts"],
        "scenarios._resolve": ["EMBEDDED_DATASET", "resolve_dataset"],
        "scenarios._plugins": [
            "get_scenario",
            "loadgen_scenario",
            "scenario_class",
            "scenario_names",
            "scenario_presets",
        ],
        "scenarios._scenario": [
            "LoadGenScenario",
            "Preset",
            "Scenario",
            "ScenarioConfig",
            "ScenarioName",
            "ScenarioSettings",
            "SettingsOverrides",
        ],
        "scenarios._sessions": [
            "SessionError",
            "SessionSpec",
            "SessionSummary",
            "SyntheticSessions",
            "TurnSpec",
            "check_sessions",
            "iter_sessions",
            "parse_synthetic_sessions",
            "synthetic_sessions",
        ],
        "scenarios._tokens": ["system_prompt_tokens", "tool_result_tokens", "turn_tokens"],
        "scenarios._traces": ["TraceError", "TraceRequest", "TraceSpec", "TraceSummary", "check_trace", "iter_trace"],
        "scenarios._userconf": ["MlperfRules", "UserConfError", "apply_user_conf", "mlperf_conf_defaults"],
        "scenarios.dataset": ["ByteDecoder", "Dataset", "DatasetError", "load_dataset", "save_dataset"],
        "scenarios.recording": ["Recording", "load_recording", "save_recording"],
        "scenarios.synthetic": ["SYNTH_EOS", "synthetic_dataset"],
    },
)

__all__ = [
    "BENCHMARKS",
    "CURRENT_ROUND",
    "EMBEDDED_DATASET",
    "MLPERF_ROUNDS",
    "MLPERF_ROUND_SEEDS",
    "SYNTH_EOS",
    "TEST06_MODELS",
    "TEST07_MODELS",
    "TEST09_MODELS",
    "BenchmarkError",
    "BenchmarkProfile",
    "ByteDecoder",
    "ConfSupply",
    "Dataset",
    "DatasetError",
    "LoadGenScenario",
    "MlperfRound",
    "MlperfRules",
    "ModelRules",
    "Preset",
    "Recording",
    "ReferencePrompt",
    "RoundSeeds",
    "Scenario",
    "ScenarioConfig",
    "ScenarioName",
    "ScenarioSettings",
    "SessionError",
    "SessionSpec",
    "SessionSummary",
    "SettingsError",
    "SettingsOverrides",
    "SettingsPlan",
    "SyntheticSessions",
    "TraceError",
    "TraceRequest",
    "TraceSpec",
    "TraceSummary",
    "TurnSpec",
    "UserConfError",
    "apply_user_conf",
    "benchmark_names",
    "build_test_settings",
    "check_sessions",
    "check_trace",
    "compliance_tests",
    "embedded_dataset",
    "embedded_sut_backend",
    "get_benchmark",
    "get_round",
    "get_scenario",
    "iter_sessions",
    "iter_trace",
    "load_dataset",
    "load_recording",
    "loadgen_scenario",
    "mlperf_conf_defaults",
    "mlperf_model",
    "parse_synthetic_sessions",
    "plan_settings",
    "project_benchmark",
    "quick_reasoning_scale",
    "requires_test06",
    "requires_test07",
    "requires_test09",
    "resolve_dataset",
    "round_name",
    "round_seeds",
    "save_dataset",
    "save_recording",
    "scenario_class",
    "scenario_names",
    "scenario_presets",
    "synthetic_dataset",
    "synthetic_sessions",
    "system_prompt_tokens",
    "tool_result_tokens",
    "turn_tokens",
    "write_prompts",
]

"""Configuration foundation: the plugin registry, the dataset format, scenario and benchmark presets."""

from scenarios._benchmarks import (
    BENCHMARKS,
    SCENARIOS,
    BenchmarkError,
    BenchmarkProfile,
    get_benchmark,
)
from scenarios._presets import (
    SettingsError,
    SettingsOverrides,
    SettingsPlan,
    build_test_settings,
    plan_settings,
    scenario_presets,
)
from scenarios._reference_prompts import ReferencePrompt, write_prompts
from scenarios._resolve import EMBEDDED_DATASET, resolve_dataset
from scenarios._userconf import UserConfError, apply_user_conf, mlperf_conf_defaults
from scenarios.dataset import ByteDecoder, Dataset, DatasetError, load_dataset, save_dataset
from scenarios.recording import Recording, load_recording, save_recording
from scenarios.synthetic import SYNTH_EOS, synthetic_dataset

__all__ = [
    "BENCHMARKS",
    "EMBEDDED_DATASET",
    "SCENARIOS",
    "SYNTH_EOS",
    "BenchmarkError",
    "BenchmarkProfile",
    "ByteDecoder",
    "Dataset",
    "DatasetError",
    "Recording",
    "ReferencePrompt",
    "SettingsError",
    "SettingsOverrides",
    "SettingsPlan",
    "UserConfError",
    "apply_user_conf",
    "build_test_settings",
    "get_benchmark",
    "load_dataset",
    "load_recording",
    "mlperf_conf_defaults",
    "plan_settings",
    "resolve_dataset",
    "save_dataset",
    "save_recording",
    "scenario_presets",
    "synthetic_dataset",
    "write_prompts",
]

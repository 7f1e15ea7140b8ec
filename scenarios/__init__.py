"""Configuration foundation: the plugin registry, the dataset format, scenario and benchmark presets."""

from scenarios._gate import GateInputs, GateReport, ObjectiveOutcome, evaluate_slo, write_atomic
from scenarios._resolve import EMBEDDED_DATASET, resolve_dataset
from scenarios.dataset import ByteDecoder, Dataset, DatasetError, load_dataset, save_dataset
from scenarios.recording import Recording, load_recording, save_recording
from scenarios.registry import PluginConfig, Registry, RegistryError, first_error_line
from scenarios.slo import SloError, SloSpec, load_slo
from scenarios.synthetic import SYNTH_EOS, synthetic_dataset

__all__ = [
    "EMBEDDED_DATASET",
    "SYNTH_EOS",
    "ByteDecoder",
    "Dataset",
    "DatasetError",
    "GateInputs",
    "GateReport",
    "ObjectiveOutcome",
    "PluginConfig",
    "Recording",
    "Registry",
    "RegistryError",
    "SloError",
    "SloSpec",
    "evaluate_slo",
    "first_error_line",
    "load_dataset",
    "load_recording",
    "load_slo",
    "resolve_dataset",
    "save_dataset",
    "save_recording",
    "synthetic_dataset",
    "write_atomic",
]

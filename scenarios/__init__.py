"""Configuration foundation: the plugin registry, the dataset format, scenario and benchmark presets."""

from scenarios._resolve import EMBEDDED_DATASET, resolve_dataset
from scenarios.dataset import ByteDecoder, Dataset, DatasetError, load_dataset, save_dataset
from scenarios.recording import Recording, load_recording, save_recording
from scenarios.registry import PluginConfig, Registry, RegistryError, first_error_line
from scenarios.synthetic import SYNTH_EOS, synthetic_dataset

__all__ = [
    "EMBEDDED_DATASET",
    "SYNTH_EOS",
    "ByteDecoder",
    "Dataset",
    "DatasetError",
    "PluginConfig",
    "Recording",
    "Registry",
    "RegistryError",
    "first_error_line",
    "load_dataset",
    "load_recording",
    "resolve_dataset",
    "save_dataset",
    "save_recording",
    "synthetic_dataset",
]

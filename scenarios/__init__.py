"""Configuration foundation: the plugin registry, the dataset format, scenario and benchmark presets."""

from scenarios.dataset import ByteDecoder, Dataset, DatasetError, load_dataset, save_dataset
from scenarios.registry import PluginConfig, Registry, RegistryError, first_error_line
from scenarios.synthetic import SYNTH_EOS, synthetic_dataset

__all__ = [
    "SYNTH_EOS",
    "ByteDecoder",
    "Dataset",
    "DatasetError",
    "PluginConfig",
    "Registry",
    "RegistryError",
    "first_error_line",
    "load_dataset",
    "save_dataset",
    "synthetic_dataset",
]

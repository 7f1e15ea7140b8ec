"""The bottom layer: the plugin registry, the usage error, atomic file io and strict JSON reads.

Every other package may import this one; it imports none of them.
"""

from common._errors import UsageError
from common._io import atomic_path, read_json_object, write_atomic, write_json_atomic
from common._registry import PluginConfig, Registry, RegistryError, first_error_line

__all__ = [
    "PluginConfig",
    "Registry",
    "RegistryError",
    "UsageError",
    "atomic_path",
    "first_error_line",
    "read_json_object",
    "write_atomic",
    "write_json_atomic",
]

"""The bottom layer: the plugin registry, the usage error, atomic file io and strict JSON reads.

Every other package may import this one; it imports none of them.
"""

from common._errors import UsageError
from common._io import atomic_path, file_sha256, read_json, read_json_object, write_atomic, write_json_atomic
from common._paths import RunId, check_run_id, check_writable_dir, check_writable_file
from common._registry import PluginConfig, Registry, RegistryError, first_error_line

__all__ = [
    "PluginConfig",
    "Registry",
    "RegistryError",
    "RunId",
    "UsageError",
    "atomic_path",
    "check_run_id",
    "check_writable_dir",
    "check_writable_file",
    "file_sha256",
    "first_error_line",
    "read_json",
    "read_json_object",
    "write_atomic",
    "write_json_atomic",
]

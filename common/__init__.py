"""The bottom layer: the plugin registry, the usage error, atomic file io and strict JSON reads.

Every other package may import this one; it imports none of them. Its pydantic pieces
(``PluginConfig``, ``RunId``) load on first use, so a CLI parser importing ``common`` stays light.
"""

from typing import TYPE_CHECKING

from common._errors import UsageError
from common._io import atomic_path, file_sha256, read_json, read_json_object, write_atomic, write_json_atomic
from common._lazy import lazy_exports
from common._paths import check_run_id, check_writable_dir, check_writable_file
from common._registry import Registry, RegistryError, first_error_line

if TYPE_CHECKING:
    from common._models import PluginConfig, RunId

__getattr__ = lazy_exports(__name__, {"common._models": ["PluginConfig", "RunId"]})

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
    "lazy_exports",
    "read_json",
    "read_json_object",
    "write_atomic",
    "write_json_atomic",
]

"""The bottom layer: the plugin registry, the usage error, atomic file io, strict JSON reads, secrets
handling and the (optionally TLS + authenticated) metrics exporter.

Every other package may import this one; it imports none of them. Its pydantic pieces
(``PluginConfig``, ``RunId``, ``BackendSpec``, ``read_model``) load on first use, so a CLI parser
importing ``common`` stays light.
"""

from typing import TYPE_CHECKING

from common._errors import UsageError
from common._grpc_env import quiet_grpc_logs
from common._io import atomic_path, file_sha256, read_json, read_json_object, write_atomic, write_json_atomic
from common._lazy import lazy_exports
from common._paths import check_run_id, check_writable_dir, check_writable_file
from common._registry import Registry, RegistryError, first_error_line
from common._secrets import (
    read_secret,
    read_secret_file,
    refuse_secret_flag,
    scrub,
    scrub_url,
    secret_file_arg,
)

if TYPE_CHECKING:
    from common._exporter import ExporterSecurity, MetricsHttpServer, authorized, serve_registry, server_ssl_context
    from common._models import BackendSpec, PluginConfig, RunId, read_model

__getattr__ = lazy_exports(
    __name__,
    {
        "common._models": ["BackendSpec", "PluginConfig", "RunId", "read_model"],
        "common._exporter": [
            "ExporterSecurity",
            "MetricsHttpServer",
            "authorized",
            "serve_registry",
            "server_ssl_context",
        ],
    },
)

__all__ = [
    "BackendSpec",
    "ExporterSecurity",
    "MetricsHttpServer",
    "PluginConfig",
    "Registry",
    "RegistryError",
    "RunId",
    "UsageError",
    "atomic_path",
    "authorized",
    "check_run_id",
    "check_writable_dir",
    "check_writable_file",
    "file_sha256",
    "first_error_line",
    "lazy_exports",
    "quiet_grpc_logs",
    "read_json",
    "read_json_object",
    "read_model",
    "read_secret",
    "read_secret_file",
    "refuse_secret_flag",
    "scrub",
    "scrub_url",
    "secret_file_arg",
    "serve_registry",
    "server_ssl_context",
    "write_atomic",
    "write_json_atomic",
]

"""System under test: the gRPC server, the backend contract and registry, and the backends."""

from typing import TYPE_CHECKING

from sut._artifact import ArtifactManifest, FaultFlags, TimingModel
from sut._backend import (
    Backend,
    BackendConfig,
    BackendError,
    ContextOverflowError,
    GenerateRequest,
    GenerationEnd,
    InvalidRequestError,
    OverloadedError,
    UpstreamError,
    backends,
)

# Built-in backends register lazily: naming them here imports nothing heavy (torch, httpx).
backends.register_lazy("sim", "sut._sim:SimBackend")
backends.register_lazy("transformers", "sut._hf:TransformersBackend")
backends.register_lazy("openai", "sut._openai:OpenAIBackend")

if TYPE_CHECKING:
    from sut._embedded import (
        EmbeddedServer,
        ServerProcess,
        SutStartError,
        create_backend,
        spawn_server,
        start_embedded,
        wait_serving,
    )
    from sut._metrics import SutMetrics
    from sut._server import FinalTokens, SutServer
    from sut._sim import SIM_PRESETS, SimBackend, SimConfig, analytic_capacity_qps


def __getattr__(name: str) -> object:
    # The server side pulls in grpc and the dataset; import it only when asked for.
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'sut' has no attribute '{name}'")


_LAZY: dict[str, tuple[str, str]] = {
    "start_embedded": ("sut._embedded", "start_embedded"),
    "spawn_server": ("sut._embedded", "spawn_server"),
    "wait_serving": ("sut._embedded", "wait_serving"),
    "create_backend": ("sut._embedded", "create_backend"),
    "EmbeddedServer": ("sut._embedded", "EmbeddedServer"),
    "ServerProcess": ("sut._embedded", "ServerProcess"),
    "SutStartError": ("sut._embedded", "SutStartError"),
    "SutServer": ("sut._server", "SutServer"),
    "FinalTokens": ("sut._server", "FinalTokens"),
    "SimBackend": ("sut._sim", "SimBackend"),
    "SimConfig": ("sut._sim", "SimConfig"),
    "SIM_PRESETS": ("sut._sim", "SIM_PRESETS"),
    "analytic_capacity_qps": ("sut._sim", "analytic_capacity_qps"),
    "SutMetrics": ("sut._metrics", "SutMetrics"),
}

__all__ = [
    "SIM_PRESETS",
    "ArtifactManifest",
    "Backend",
    "BackendConfig",
    "BackendError",
    "ContextOverflowError",
    "EmbeddedServer",
    "FaultFlags",
    "FinalTokens",
    "GenerateRequest",
    "GenerationEnd",
    "InvalidRequestError",
    "OverloadedError",
    "ServerProcess",
    "SimBackend",
    "SimConfig",
    "SutMetrics",
    "SutServer",
    "SutStartError",
    "TimingModel",
    "UpstreamError",
    "analytic_capacity_qps",
    "backends",
    "create_backend",
    "spawn_server",
    "start_embedded",
    "wait_serving",
]

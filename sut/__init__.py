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
    add_backend_arguments,
    backend_options_from_args,
    backends,
)

# Built-in backends register lazily: naming them here imports nothing heavy (torch, httpx).
backends.register_lazy("sim", "sut._sim:SimBackend")
backends.register_lazy("transformers", "sut._hf:TransformersBackend")
backends.register_lazy("openai", "sut._openai:OpenAIBackend")

if TYPE_CHECKING:
    from sut._cli import add_parser as add_serve_parser
    from sut._cli import backend_config_from_serve_args, read_config_option
    from sut._embedded import (
        EmbeddedServer,
        ServerProcess,
        SutStartError,
        create_backend,
        spawn_server,
        start_embedded,
        wait_serving,
    )
    from sut._hf_engine import generate_all
    from sut._hf_model import byte_pieces, chat_prompt_ids, load_model
    from sut._metrics import SutMetrics
    from sut._openai import add_openai_arguments, openai_config_from_args
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
    "generate_all": ("sut._hf_engine", "generate_all"),
    "byte_pieces": ("sut._hf_model", "byte_pieces"),
    "chat_prompt_ids": ("sut._hf_model", "chat_prompt_ids"),
    "load_model": ("sut._hf_model", "load_model"),
    "add_openai_arguments": ("sut._openai", "add_openai_arguments"),
    "openai_config_from_args": ("sut._openai", "openai_config_from_args"),
    "add_serve_parser": ("sut._cli", "add_parser"),
    "backend_config_from_serve_args": ("sut._cli", "backend_config_from_serve_args"),
    "read_config_option": ("sut._cli", "read_config_option"),
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
    "add_backend_arguments",
    "add_openai_arguments",
    "add_serve_parser",
    "analytic_capacity_qps",
    "backend_config_from_serve_args",
    "backend_options_from_args",
    "backends",
    "byte_pieces",
    "chat_prompt_ids",
    "create_backend",
    "generate_all",
    "load_model",
    "openai_config_from_args",
    "read_config_option",
    "spawn_server",
    "start_embedded",
    "wait_serving",
]

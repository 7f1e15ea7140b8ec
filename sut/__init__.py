"""System under test: the gRPC server, the backend contract and registry, and the backends."""

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

__all__ = [
    "ArtifactManifest",
    "Backend",
    "BackendConfig",
    "BackendError",
    "ContextOverflowError",
    "FaultFlags",
    "GenerateRequest",
    "GenerationEnd",
    "InvalidRequestError",
    "OverloadedError",
    "TimingModel",
    "UpstreamError",
    "backends",
]

"""The backend registry, the built-in backends' registrations, and the per-backend CLI flags.

A backend class (see :class:`sut._backend.Backend`) may define ``add_arguments(parser)`` and
``options_from_args(args)``; the built-in backends register lazily with those hooks named by path,
so listing backends or building ``lpuperf serve/run``'s parser imports none of sim (grpc, numpy),
transformers (torch) or openai's client (httpx), nor pydantic.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from common import Registry

if TYPE_CHECKING:
    from common import BackendSpec
    from sut._backend import Backend

backends: Registry[Backend] = Registry("backend")
backends.register_lazy("sim", "sut._sim:SimBackend", hooks={})
backends.register_lazy("transformers", "sut._hf:TransformersBackend", hooks={})
backends.register_lazy(
    "openai",
    "sut._openai:OpenAIBackend",
    hooks={
        "add_arguments": "sut._openai_options:add_openai_arguments",
        "options_from_args": "sut._openai_options:openai_config_from_args",
    },
)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every registered backend's own CLI flags (its ``add_arguments`` hook)."""
    for name in backends.names():
        hook = backends.hook(name, "add_arguments")
        if hook is not None:
            hook(parser)


def backend_options_from_args(kind: str, args: argparse.Namespace) -> BackendSpec:
    """The config fields backend ``kind`` takes from its own CLI flags (``options_from_args``), else {}."""
    hook = backends.hook(kind, "options_from_args")
    return dict(hook(args)) if hook is not None else {}

"""System under test: the gRPC server, the backend contract and registry, and the backends.

Every name is imported on first use (:func:`common.lazy_exports`): ``lpuperf serve --help`` and the
other parsers import ``sut`` for a flag or two, and must not pull in grpc, numpy or a backend.
"""

from typing import TYPE_CHECKING

from common import lazy_exports

if TYPE_CHECKING:
    from sut._artifact import (
        ArtifactManifest,
        FaultFlags,
        PowerModel,
        PrefixCacheSettings,
        TimingModel,
        ToolCallSettings,
    )
    from sut._backend import (
        AnswersAtOnce,
        Backend,
        BackendConfig,
        BackendError,
        ContextOverflowError,
        GenerateRequest,
        GenerationEnd,
        InvalidRequestError,
        OverloadedError,
        PrefixCacheStats,
        RendersChat,
        ReportsBusyTime,
        ReportsPrefixCache,
        ScoreRequest,
        ScoresContinuations,
        TokenScores,
        UpstreamError,
    )
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
    from sut._http_prompt import render_plain
    from sut._metrics import SutMetrics
    from sut._openai import _ByteEncoder as ByteEncoder
    from sut._openai_options import add_openai_arguments, openai_config_from_args
    from sut._plugins import add_backend_arguments, backend_options_from_args, backends
    from sut._security import AUTH_TOKEN_ENV, ServerSecurity, bearer_matches
    from sut._server import _SERVER_OPTIONS as SERVER_OPTIONS
    from sut._server import FinalTokens, SutServer, manifest_message
    from sut._sim import SIM_PRESETS, SimBackend, SimConfig, analytic_capacity_qps

__getattr__ = lazy_exports(
    __name__,
    {
        "sut._artifact": [
            "ArtifactManifest",
            "FaultFlags",
            "PowerModel",
            "PrefixCacheSettings",
            "TimingModel",
            "ToolCallSettings",
        ],
        "sut._backend": [
            "AnswersAtOnce",
            "RendersChat",
            "ScoreRequest",
            "ScoresContinuations",
            "TokenScores",
            "Backend",
            "BackendConfig",
            "BackendError",
            "ContextOverflowError",
            "GenerateRequest",
            "GenerationEnd",
            "InvalidRequestError",
            "OverloadedError",
            "PrefixCacheStats",
            "ReportsBusyTime",
            "ReportsPrefixCache",
            "UpstreamError",
        ],
        "sut._cli": ["add_serve_parser=add_parser", "backend_config_from_serve_args", "read_config_option"],
        "sut._embedded": [
            "EmbeddedServer",
            "ServerProcess",
            "SutStartError",
            "create_backend",
            "spawn_server",
            "start_embedded",
            "wait_serving",
        ],
        "sut._hf_engine": ["generate_all"],
        "sut._hf_model": ["byte_pieces", "chat_prompt_ids", "load_model"],
        "sut._metrics": ["SutMetrics"],
        "sut._openai_options": ["add_openai_arguments", "openai_config_from_args"],
        "sut._plugins": ["add_backend_arguments", "backend_options_from_args", "backends"],
        "sut._security": ["AUTH_TOKEN_ENV", "ServerSecurity", "bearer_matches"],
        "sut._server": ["FinalTokens", "SutServer", "SERVER_OPTIONS=_SERVER_OPTIONS", "manifest_message"],
        "sut._http_prompt": ["render_plain"],
        "sut._openai": ["ByteEncoder=_ByteEncoder"],
        "sut._sim": ["SIM_PRESETS", "SimBackend", "SimConfig", "analytic_capacity_qps"],
    },
)

__all__ = [
    "AUTH_TOKEN_ENV",
    "SERVER_OPTIONS",
    "SIM_PRESETS",
    "AnswersAtOnce",
    "ArtifactManifest",
    "Backend",
    "BackendConfig",
    "BackendError",
    "ByteEncoder",
    "ContextOverflowError",
    "EmbeddedServer",
    "FaultFlags",
    "FinalTokens",
    "GenerateRequest",
    "GenerationEnd",
    "InvalidRequestError",
    "OverloadedError",
    "PowerModel",
    "PrefixCacheSettings",
    "PrefixCacheStats",
    "RendersChat",
    "ReportsBusyTime",
    "ReportsPrefixCache",
    "ScoreRequest",
    "ScoresContinuations",
    "ServerProcess",
    "ServerSecurity",
    "SimBackend",
    "SimConfig",
    "SutMetrics",
    "SutServer",
    "SutStartError",
    "TimingModel",
    "TokenScores",
    "ToolCallSettings",
    "UpstreamError",
    "add_backend_arguments",
    "add_openai_arguments",
    "add_serve_parser",
    "analytic_capacity_qps",
    "backend_config_from_serve_args",
    "backend_options_from_args",
    "backends",
    "bearer_matches",
    "byte_pieces",
    "chat_prompt_ids",
    "create_backend",
    "generate_all",
    "load_model",
    "manifest_message",
    "openai_config_from_args",
    "read_config_option",
    "render_plain",
    "spawn_server",
    "start_embedded",
    "wait_serving",
]

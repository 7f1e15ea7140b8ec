"""The openai backend's options: endpoint presets, environment variable names and its CLI flags.

Nothing here imports pydantic or httpx: ``lpuperf serve/run`` build their parsers from these flags
(the backend registry names them as the backend's hooks) without loading the backend itself.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TypedDict

from sut._reasoning_stream import REASONING_FORMATS

if TYPE_CHECKING:
    from common import BackendSpec

GROQ_BASE_URL = "https://api.groq.com/openai/v1"
ENV_BASE_URL = "LPUPERF_OPENAI_BASE_URL"
ENV_MODEL = "LPUPERF_OPENAI_MODEL"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
GROQ_KEY_ENV = "GROQ_API_KEY"


class EndpointPreset(TypedDict, total=False):
    """What a preset fills in when the config leaves it unset: URL, key variable, API flavour, default
    model, whether the key is required, and whether the server understands our ``return_token_ids``
    extension."""

    base_url: str
    api_key_env: str
    api: str
    model: str
    require_key: bool
    request_token_ids: bool


_PRESETS: dict[str, EndpointPreset] = {
    "groq": {
        "base_url": GROQ_BASE_URL,
        "api_key_env": GROQ_KEY_ENV,
        "api": "chat",
        "model": "llama-3.1-8b-instant",
        "require_key": True,
        "request_token_ids": False,
    },
}


def add_openai_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``--backend openai``; values left unset fall back to the preset, then the environment."""
    g = parser.add_argument_group("openai backend (--backend openai)")

    def add(flag: str, **kwargs: Any) -> None:
        # Another backend may already define a flag of the same meaning (--model, --tokenizer): share it.
        if flag not in parser._option_string_actions:
            g.add_argument(flag, **kwargs)

    add("--preset", choices=sorted(_PRESETS), default="", help="endpoint preset (groq: GroqCloud, GROQ_API_KEY)")
    add("--base-url", default="", help=f"upstream OpenAI-compatible URL ending in /v1 (env {ENV_BASE_URL})")
    add("--model", default="", help=f"upstream model name (env {ENV_MODEL}; default: first of GET /models)")
    add("--api-key-env", default="", help=f"env var holding the API key (default {DEFAULT_KEY_ENV})")
    add("--api", choices=["completions", "chat"], default="", help="upstream API (default completions)")
    add("--tokenizer", default="auto", help="auto | dataset | none | HF tokenizer dir (maps text to ids)")
    add("--timeout-s", type=float, default=60.0, help="upstream read timeout in seconds (per event)")
    add(
        "--reasoning-format",
        choices=REASONING_FORMATS,
        default="",
        help="where the endpoint streams reasoning: auto (reasoning_content/reasoning deltas, or text opening "
        "with <think> or <|channel|>), think (R1: text up to the first </think>), harmony (gpt-oss channels), "
        "fields (deltas only), none (all answer); default: the --benchmark's style (deepseek-r1: think, "
        "gpt-oss-120b: harmony), else auto",
    )
    add(
        "--ca-bundle",
        default="",
        help="PEM CA bundle that verifies an https upstream (default: the system trust store)",
    )


def openai_config_from_args(args: argparse.Namespace) -> BackendSpec:
    """The backend config dict for parsed CLI args (``preset`` comes from ``--preset`` when it names one)."""
    preset = getattr(args, "preset", "") or ""
    cfg: BackendSpec = {
        "kind": "openai",
        "preset": preset if preset in _PRESETS else "",
    }
    for field in ("base_url", "model", "api_key_env", "api", "tokenizer", "timeout_s", "ca_bundle", "reasoning_format"):
        value = getattr(args, field, None)
        if value not in (None, ""):
            cfg[field] = value
    if "reasoning_format" not in cfg:
        style = _benchmark_reasoning_style(getattr(args, "benchmark", None))
        if style:
            cfg["reasoning_format"] = style
    dataset = getattr(args, "dataset", None)
    if dataset:
        cfg["dataset"] = dataset
    return cfg


def _benchmark_reasoning_style(name: object) -> str:
    """How a named benchmark's outputs mark their reasoning (deepseek-r1: ``think``, since R1's template opens
    ``<think>`` in the prompt and ``auto`` would read its output as all answer; gpt-oss-120b: ``harmony``);
    "" for any other. Both formats still read reasoning deltas, so a server that splits itself is read right."""
    if not isinstance(name, str) or not name:
        return ""
    from scenarios import BenchmarkError, get_benchmark  # args already parsed: the profiles load only now

    try:
        return get_benchmark(name).reasoning_style or ""
    except BenchmarkError:
        return ""  # the run names an unknown benchmark itself

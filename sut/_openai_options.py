"""The openai backend's options: endpoint presets, environment variable names and its CLI flags.

Nothing here imports pydantic or httpx: ``lpuperf serve/run`` build their parsers from these flags
(the backend registry names them as the backend's hooks) without loading the backend itself.
"""

from __future__ import annotations

import argparse
from typing import Any

GROQ_BASE_URL = "https://api.groq.com/openai/v1"
ENV_BASE_URL = "LPUPERF_OPENAI_BASE_URL"
ENV_MODEL = "LPUPERF_OPENAI_MODEL"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
GROQ_KEY_ENV = "GROQ_API_KEY"
# What a preset fills in when the config leaves it unset: URL, key variable, API flavour, whether the
# key is required, and whether the server understands our ``return_token_ids`` extension.
_PRESETS: dict[str, dict[str, Any]] = {
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
    flags: list[tuple[str, dict[str, Any]]] = [
        (
            "--preset",
            {"choices": sorted(_PRESETS), "default": "", "help": "endpoint preset (groq: GroqCloud, GROQ_API_KEY)"},
        ),
        ("--base-url", {"default": "", "help": f"upstream OpenAI-compatible URL ending in /v1 (env {ENV_BASE_URL})"}),
        ("--model", {"default": "", "help": f"upstream model name (env {ENV_MODEL}; default: first of GET /models)"}),
        ("--api-key-env", {"default": "", "help": f"env var holding the API key (default {DEFAULT_KEY_ENV})"}),
        ("--api", {"choices": ["completions", "chat"], "default": "", "help": "upstream API (default completions)"}),
        ("--tokenizer", {"default": "auto", "help": "auto | dataset | none | HF tokenizer dir (maps text to ids)"}),
        ("--timeout-s", {"type": float, "default": 60.0, "help": "upstream read timeout in seconds (per event)"}),
        (
            "--ca-bundle",
            {"default": "", "help": "PEM CA bundle that verifies an https upstream (default: the system trust store)"},
        ),
    ]
    for flag, kwargs in flags:
        # Another backend may already define a flag of the same meaning (--model, --tokenizer): share it.
        if flag not in parser._option_string_actions:
            g.add_argument(flag, **kwargs)


def openai_config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The backend config dict for parsed CLI args (``preset`` comes from ``--preset`` when it names one)."""
    preset = getattr(args, "preset", "") or ""
    cfg: dict[str, Any] = {
        "kind": "openai",
        "preset": preset if preset in _PRESETS else "",
    }
    for field in ("base_url", "model", "api_key_env", "api", "tokenizer", "timeout_s", "ca_bundle"):
        value = getattr(args, field, None)
        if value not in (None, ""):
            cfg[field] = value
    dataset = getattr(args, "dataset", None)
    if dataset:
        cfg["dataset"] = dataset
    return cfg

"""Tool calls: which prompts the sim answers with one, and how a tool call looks in OpenAI's API.

The sim decides per request, only when the request offers a tool (``allow_tool_call``): a keyed hash of
the artifact's ``tool_calls.seed``, the request's seed and its prompt ids, read as a fraction in [0, 1),
below ``tool_calls.rate``. The same prompt and seed always get the same decision, on any machine, so a
run is reproducible; over many distinct prompts the share of tool calls is close to the rate.

On the HTTP front a tool-call answer is one function call to the first tool the request offered, its
arguments a JSON object ``{"query": "<the answer's text>"}``, streamed as OpenAI streams arguments (the
object's opening with the first text, the text in pieces, the closing last), so the concatenated
arguments always parse. Our relay offers upstreams one small function, :data:`RELAY_TOOLS`.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import JsonValue

from sut._artifact import ToolCallSettings

__all__ = [
    "ARGUMENTS_CLOSE",
    "ARGUMENTS_OPEN",
    "RELAY_TOOLS",
    "RELAY_TOOL_NAME",
    "arguments_text",
    "calls_tool",
    "escaped",
    "tool_call_id",
]

RELAY_TOOL_NAME = "lookup"
# What the relay (and the harness's HTTP transport) sends as ``tools`` when a request allows a tool call.
RELAY_TOOLS: list[JsonValue] = [
    {
        "type": "function",
        "function": {
            "name": RELAY_TOOL_NAME,
            "description": "Look up a fact the answer needs.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "what to look up"}},
                "required": ["query"],
            },
        },
    }
]
ARGUMENTS_OPEN = '{"query": "'
ARGUMENTS_CLOSE = '"}'
_U64 = 2**64


def calls_tool(settings: ToolCallSettings, prompt: bytes, request_seed: int) -> bool:
    """Whether a request that allows a tool call gets one: deterministic in (settings.seed, seed, prompt)."""
    if settings.rate <= 0:
        return False
    head = (settings.seed % _U64).to_bytes(8, "little") + (request_seed % _U64).to_bytes(8, "little")
    digest = hashlib.blake2b(b"tool-call" + head + prompt, digest_size=8).digest()
    return int.from_bytes(digest, "little") / _U64 < settings.rate


def escaped(text: str) -> str:
    """``text`` as the inside of a JSON string: pieces escaped one by one concatenate to the whole, escaped."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def arguments_text(text: str) -> str:
    """A whole tool call's arguments (a JSON object) for the answer's text."""
    return ARGUMENTS_OPEN + escaped(text) + ARGUMENTS_CLOSE


def tool_call_id(request_id: str) -> str:
    """The call's id, as OpenAI spells them (``call_...``); unique per request."""
    return "call_" + request_id[:24]

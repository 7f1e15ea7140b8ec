"""The relay's reader of one upstream SSE response: raw bytes in, token ids with their reasoning split out.

Fed one network read at a time (``feed``): the complete ``data:`` events in it become one hand-over, its
ids with how many of them (leading) are reasoning. Events that arrived together (a server ahead of the
relay) so go to the gRPC stream as one message; under light load every event is its own read.

Ids are the server's when it sends them (``return_token_ids``), else the configured tokenizer's over each
event's text; reasoning and answer text are tokenized apart, so the boundary between them is exact in ids
(``sut/_reasoning_stream.py`` splits the text). Tokens whose side is not known yet (no text has said
whether the stream reasons) are held back until an event decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sut._backend import UpstreamError
from sut._openai_probe import error_message
from sut._reasoning_stream import ReasoningFormat, ReasoningStream, choice_texts, count_reasoning_ids


class SseReader:
    """One upstream response's events: ids, reasoning split, finish reason, usage and the id method."""

    __slots__ = (
        "_encode",
        "_held",
        "_scrub",
        "_server_ids",
        "_tail",
        "_tokenizer",
        "done",
        "finish",
        "last_id",
        "method",
        "n_reasoning",
        "n_streamed",
        "reasoning",
        "tool_call",
        "usage_cached",
        "usage_reasoning",
        "usage_tokens",
    )

    def __init__(
        self,
        *,
        encode: Callable[[str], list[int]] | None,
        tokenizer_name: str,
        server_ids: bool,
        reasoning_format: ReasoningFormat,
        scrub: Callable[[str], str],
    ) -> None:
        self._encode = encode
        self._tokenizer = f"tokenizer {tokenizer_name}"
        self._server_ids = server_ids
        self._scrub = scrub
        self._tail = b""  # an event line not yet ended by a newline
        self._held: list[int] = []  # server ids whose side (reasoning or answer) is not known yet
        self.reasoning = ReasoningStream(reasoning_format)
        self.done = False  # [DONE] seen
        self.finish = ""
        self.method = ""  # "server" | "tokenizer NAME": how the first ids were obtained
        self.usage_tokens: int | None = None
        self.usage_reasoning: int | None = None  # usage.completion_tokens_details.reasoning_tokens
        self.usage_cached: int | None = None  # usage.prompt_tokens_details.cached_tokens
        self.tool_call = False  # a delta.tool_calls or a tool-call finish reason: the answer is a tool call
        self.n_streamed = 0
        self.n_reasoning = 0
        self.last_id = -1

    @property
    def total_reasoning(self) -> int:
        """The output's reasoning tokens: the upstream's own count when its usage states one (OpenAI's
        ``completion_tokens_details.reasoning_tokens``, also for reasoning it never streams), else the
        reasoning ids streamed; 0 for ``reasoning_format: none``."""
        if self.reasoning.format == "none":
            return 0
        return self.usage_reasoning or self.n_reasoning

    def feed(self, data: bytes) -> tuple[list[int], int]:
        """One network read: the ids of the events it completes and how many of them (leading) are reasoning."""
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        got: list[int] = []
        n_r = 0
        for raw_line in lines:
            if not raw_line.startswith(b"data:"):
                continue  # blank separators, ": keep-alive" comments, event: lines
            payload = raw_line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                break
            ids, r = self._event(payload)
            if r and n_r == len(got):  # reasoning only ever leads: none follows an answer id
                n_r += r
            got += ids
        return self._count(got, n_r)

    def close(self) -> tuple[list[int], int]:
        """End of the body: an event line without its final newline, then anything held back (answer)."""
        got: list[int] = []
        n_r = 0
        tail, self._tail = self._tail, b""
        if not self.done and tail.startswith(b"data:") and tail[5:].strip() != b"[DONE]":
            got, n_r = self._event(tail[5:].strip())
        split = self.reasoning.close()
        if self._held:
            got = self._held + got  # never decided: plain answer, as before reasoning existed
            self._held = []
        elif split.answer:  # text held at the start that never opened a marker
            got += self._text_ids(split.answer)
        return self._count(got, n_r)

    def _count(self, got: list[int], n_r: int) -> tuple[list[int], int]:
        if got:
            self.n_streamed += len(got)
            self.n_reasoning += n_r
            self.last_id = got[-1]
        return got, n_r

    def _event(self, payload: bytes) -> tuple[list[int], int]:
        """One SSE ``data:`` payload: its ids and how many of them (leading) are reasoning."""
        try:
            event = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = payload.decode("utf-8", errors="replace")
            raise UpstreamError("bad-stream", f"not JSON: {self._scrub(text)}") from None
        if not isinstance(event, dict):
            raise UpstreamError("bad-stream", f"not a JSON object: {self._scrub(str(event))}")
        if "error" in event:
            raise UpstreamError("stream-error", error_message(json.dumps(event), self._scrub))
        # GroqCloud has also reported usage under x_groq on the last chunk.
        usage = event.get("usage") or (event.get("x_groq") or {}).get("usage")
        if usage:
            self._usage(usage)
        out: list[int] = []
        n_r = 0
        for choice in event.get("choices") or ():
            ids, r = self._choice(choice)
            if r and n_r == len(out):
                n_r += r
            out += ids
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
                # A completions stream has no tool_calls delta: its finish reason alone says the text was one.
                self.tool_call = self.tool_call or self.finish in ("tool_calls", "function_call")
        return out, n_r

    def _usage(self, usage: dict[str, Any]) -> None:
        if usage.get("completion_tokens") is not None:
            self.usage_tokens = int(usage["completion_tokens"])
        details = usage.get("completion_tokens_details")
        if isinstance(details, dict) and details.get("reasoning_tokens") is not None:
            self.usage_reasoning = int(details["reasoning_tokens"])
        prompt = usage.get("prompt_tokens_details")
        if isinstance(prompt, dict) and prompt.get("cached_tokens") is not None:
            self.usage_cached = int(prompt["cached_tokens"])

    def _choice(self, choice: dict[str, Any]) -> tuple[list[int], int]:
        server_ids = choice.get("token_ids") if self._server_ids else None
        if self.reasoning.answer_started and isinstance(server_ids, list):
            return [_token_id(t) for t in server_ids], 0  # past the boundary: all answer, the text unread
        reasoning, content = choice_texts(choice)
        if not content and not reasoning and not self.tool_call:
            self._note_tool_call(choice)  # only text-less events can be tool calls: text events pay nothing
        for value in (reasoning, content):
            if value is not None and not isinstance(value, str):
                raise UpstreamError("bad-stream", f"choice text is not a string: {self._scrub(json.dumps(value))}")
        stream = self.reasoning
        split = stream.feed(content or "", reasoning)  # type: ignore[arg-type]
        if isinstance(server_ids, list):
            self.method = self.method or "server"
            ids = [_token_id(t) for t in server_ids]
            if stream.undecided:
                self._held += ids  # its side is decided by a later event (or the end: answer)
                return [], 0
            n_r = count_reasoning_ids(ids, split, stream.in_answer, self._encode)
            if self._held:
                held, self._held = self._held, []
                lead_reasoning = n_r > 0 if ids else bool(split.reasoning)
                return held + ids, n_r + len(held) if lead_reasoning else n_r
            return ids, n_r
        if not split.reasoning and not split.answer:
            return [], 0
        # Apart, so that no token spans the boundary: the reasoning's ids end exactly where its text does.
        r_ids = self._text_ids(split.reasoning) if split.reasoning else []
        return (r_ids + self._text_ids(split.answer) if split.answer else r_ids), len(r_ids)

    def _note_tool_call(self, choice: dict[str, Any]) -> None:
        """A ``delta.tool_calls`` starts a tool call, which ends any reasoning. Its arguments are never
        tokenized (no per-token work): without the server's ids a tool call counts through its usage alone.
        One that follows answer text is known by its finish reason instead."""
        delta = choice.get("delta")
        if isinstance(delta, dict) and delta.get("tool_calls"):
            self.tool_call = True
            self.reasoning.answer_by_tool_call()

    def _text_ids(self, text: str) -> list[int]:
        if self._encode is None:
            raise UpstreamError("no-ids", "upstream returned text without token ids and no tokenizer is configured")
        self.method = self.method or self._tokenizer
        return self._encode(text)


def _token_id(value: object) -> int:
    """A server-sent token id (a number, or its digits as a string)."""
    if isinstance(value, int | float | str):
        return int(value)
    raise UpstreamError("bad-stream", f"token id is not a number (a JSON {type(value).__name__})")

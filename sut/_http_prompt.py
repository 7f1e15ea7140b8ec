"""What the backend gets from an HTTP request: the prompt's token ids (and its text), and answers as text.

* Completions: token ids reach the backend verbatim (checked against the vocabulary); text maps to a dataset
  sample's ids when it equals that sample's prompt (so the sim finds its reference answer), else through
  the tokenizer (the dataset's byte encoder, or the backend's own tokenizer).
* Chat: the whole conversation. A backend with its model's chat template (sut ``RendersChat``: the
  transformers backend) renders it to ids itself; for any other the front renders it as plain text
  (:func:`render_plain`, documented in docs/protocol.md), which then maps to ids as a text prompt does.

Long prompts and conversations are rendered and tokenized on the front's worker thread: the event loop
is shared with the gRPC server and must never stand still for one request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from sut._backend import Backend, InvalidRequestError, RendersChat
from sut._http_body import ChatBody, HttpError, HttpLimits
from sut._http_render import ReasoningMarkup, TextDecoder

if TYPE_CHECKING:
    from scenarios.dataset import Dataset

__all__ = ["ANSWER_CUE", "Prompts", "render_plain"]

_T = TypeVar("_T")
# The plain rendering's last block, which opens the answer.
ANSWER_CUE = "assistant:"
# Conversations with more messages than this are rendered on the worker thread, whatever their length.
_INLINE_MESSAGES = 16


class Offload(Protocol):
    """Runs ``fn(*args)`` on the front's worker thread."""

    def __call__(self, fn: Callable[..., _T], /, *args: Any) -> Awaitable[_T]: ...


def render_plain(messages: Sequence[Mapping[str, str]]) -> str:
    """A conversation as plain text, for backends without a chat template (docs/protocol.md).

    One user message is its text, unchanged: a dataset prompt keeps its sample's ids and a relay's
    one-message chat reaches the backend verbatim. Any other conversation is one ``role: content`` block
    per message, blocks separated by a blank line, then a last block ``assistant:`` that opens the answer.
    """
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join([*(f"{m['role']}: {m['content']}" for m in messages), ANSWER_CUE])


class Prompts:
    """The front's text <-> ids: dataset prompt lookup, tokenizer, chat rendering and answer decoding."""

    def __init__(
        self,
        backend: Backend,
        dataset: Dataset | None,
        decode: Callable[[Sequence[int]], str] | None,
        encode: Callable[[str], list[int]] | None,
        limits: HttpLimits,
        offload: Offload,
    ) -> None:
        self.decode = decode
        self.encode = encode
        self._limits = limits
        self._offload = offload
        self._vocab_size = backend.manifest.vocab_size
        self._render_chat = backend.render_chat if isinstance(backend, RendersChat) else None
        self._pieces: dict[int, bytes] | None = None
        self._special: dict[int, str] | None = None
        # The reasoning markers of the dataset's vocabulary, left out of the chat API's reasoning_content.
        self.markup: ReasoningMarkup | None = None
        self._prompt_ids: dict[str, np.ndarray] = {}
        if dataset is not None:
            # Exact prompt -> ids lookup first: a dataset prompt must reach the backend as the very ids
            # the harness would send over gRPC, or the sim could not find its reference output.
            self._prompt_ids = {p: ids for p, ids in zip(dataset.prompts, dataset.input_ids, strict=True)}
            if dataset.decoder is not None and decode is None:
                self._pieces = dataset.decoder.pieces
                self._special = dataset.decoder.special
                self.decode = dataset.decoder.decode
            if dataset.decoder is not None and dataset.has_reasoning:
                self.markup = ReasoningMarkup.from_ids(dataset.decoder.token_id)
            if encode is None and dataset.decoder is not None:
                from sut._openai import _ByteEncoder  # the relay backend's module: only when a dataset needs it

                self.encode = _ByteEncoder(dataset.decoder.pieces).encode

    def text_decoder(self) -> TextDecoder:
        """A fresh id -> text delta decoder for one response."""
        return TextDecoder(self.decode, self._pieces, self._special)

    async def completion(self, prompt: str | list[int]) -> tuple[str, np.ndarray]:
        """Text (if any) and ids of a completions prompt; raises HttpError naming the field."""
        if isinstance(prompt, list):
            ids = np.asarray(prompt, dtype=np.int32)  # in range: the body model checked 0..2^31-1
            if self._vocab_size and int(ids.max()) >= self._vocab_size:
                i = int(np.argmax(ids))
                msg = f"token id {int(ids[i])} is outside the vocabulary (vocab_size {self._vocab_size})"
                raise HttpError(400, f"field 'prompt[{i}]': {msg}", "invalid_request", f"prompt[{i}]")
            return "", ids
        return await self._text(prompt, "prompt")

    async def chat(self, body: ChatBody) -> tuple[str, np.ndarray]:
        """Text (plain rendering only) and ids of the whole conversation; raises HttpError naming the field."""
        body.check_last_message()
        heavy = len(body.messages) > _INLINE_MESSAGES or body.text_chars() > self._limits.inline_encode_chars
        if self._render_chat is not None:
            ids = await self._offload(self._templated, body) if heavy else self._templated(body)
            if ids is not None:
                return "", ids
        text = await self._offload(_plain, body) if heavy else _plain(body)
        return await self._text(text, "messages" if len(body.messages) > 1 else "messages[0].content")

    def _templated(self, body: ChatBody) -> np.ndarray | None:
        assert self._render_chat is not None
        try:
            ids = self._render_chat(body.conversation())
        except InvalidRequestError as exc:
            raise HttpError(400, f"field 'messages': {exc}", "invalid_request", "messages") from None
        if ids is None:
            return None
        if not ids:
            raise HttpError(
                400, "field 'messages': the chat template rendered no tokens", "invalid_request", "messages"
            )
        return np.asarray(ids, dtype=np.int32)

    async def _text(self, text: str, field: str) -> tuple[str, np.ndarray]:
        known = self._prompt_ids.get(text)
        if known is not None:
            return text, known
        encode = self.encode
        if encode is None:
            raise HttpError(
                400, f"field '{field}': this SUT has no tokenizer for text; send token ids", "invalid_request", field
            )
        long = len(text) > self._limits.inline_encode_chars
        ids = await self._offload(_encoded, encode, text) if long else _encoded(encode, text)
        if not ids.size:
            msg = f"field '{field}': text maps to no tokens of this SUT's vocabulary"
            raise HttpError(400, msg, "invalid_request", field)
        return text, ids


def _encoded(encode: Callable[[str], list[int]], text: str) -> np.ndarray:
    return np.asarray(encode(text), dtype=np.int32)


def _plain(body: ChatBody) -> str:
    return render_plain(body.conversation())

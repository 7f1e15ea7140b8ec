"""The openai relay's SSE reader over scripted network reads: events split across reads, several events
in one read, CRLF, comments, usage, [DONE], bad JSON and in-band errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from sut import GenerateRequest, GenerationEnd, UpstreamError
from sut._openai import OpenAIBackend, OpenAIConfig


def _event(ids: list[int], finish: str | None = None, usage: int | None = None) -> bytes:
    body: dict[str, Any] = {"choices": [{"index": 0, "text": "x" * len(ids), "token_ids": ids}]}
    if finish is not None:
        body["choices"][0]["finish_reason"] = finish
    if usage is not None:
        body = {"choices": [], "usage": {"completion_tokens": usage}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def _reads(pieces: list[bytes]) -> AsyncIterator[bytes]:
    """A response body delivered in the given pieces, one network read each."""
    for p in pieces:
        yield p
        await asyncio.sleep(0)


def _run(pieces: list[bytes]) -> list[Any]:
    cfg = OpenAIConfig.model_validate(
        {"kind": "openai", "base_url": "http://upstream.test/v1", "model": "m", "dataset": "synthetic:4:1"}
    )
    backend = OpenAIBackend(cfg, env={})

    async def main() -> list[Any]:
        req = GenerateRequest(
            request_id="q", input_ids=np.array([5, 6], dtype=np.int32), max_new_tokens=16, prompt_text="p"
        )
        return [item async for item in backend._relay(_reads(pieces), req)]

    return asyncio.run(main())


def test_each_read_is_one_hand_over_and_lines_may_straddle_reads() -> None:
    first = _event([11])
    rest = _event([12, 13]) + _event([14]) + _event([15], finish="length")
    cut = len(rest) // 2
    items = _run([first, rest[:cut], rest[cut:] + _event([], usage=5) + b"data: [DONE]\n\n"])
    lists = [list(i) for i in items if not isinstance(i, GenerationEnd)]
    end = items[-1]
    assert isinstance(end, GenerationEnd)
    assert [t for part in lists for t in part] == [11, 12, 13, 14, 15]
    assert lists[0] == [11]  # the first event's read goes out on its own
    assert len(lists) <= 3  # later events coalesce per read, never one message per event
    assert end.n_tokens == 5 and end.finish_reason == "length"


def test_crlf_comments_and_a_body_without_done() -> None:
    body = b": keep-alive\r\n\r\n" + _event([1]).replace(b"\n", b"\r\n") + _event([2], finish="stop")
    items = _run([body, _event([], usage=2).rstrip(b"\n")])  # the last event has no trailing newline
    ids = [t for i in items if not isinstance(i, GenerationEnd) for t in i]
    assert ids == [1, 2]
    end = items[-1]
    assert isinstance(end, GenerationEnd) and end.n_tokens == 2 and end.finish_reason == "eos"


@pytest.mark.parametrize(
    ("piece", "status"),
    [(b"data: {not json\n\n", "bad-stream"), (b'data: {"error": {"message": "boom"}}\n\n', "stream-error")],
)
def test_bad_events_are_upstream_errors(piece: bytes, status: str) -> None:
    with pytest.raises(UpstreamError) as err:
        _run([_event([1]), piece])
    assert err.value.status == status

"""The relay's SSE reader with reasoning: per network read, the ids and how many of them (leading) are
reasoning, from reasoning deltas, think text and harmony text, with server ids or a tokenizer."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from pydantic import ValidationError

from sut import UpstreamError
from sut._openai import OpenAIConfig, _ByteEncoder
from sut._openai_options import add_openai_arguments, openai_config_from_args
from sut._openai_sse import SseReader


def _bytes_encode(text: str) -> list[int]:
    """A tokenizer with one id per UTF-8 byte: every count below is a byte count."""
    return list(text.encode())


def _reader(fmt: str = "auto", server_ids: bool = False, encode: Any = _bytes_encode) -> SseReader:
    return SseReader(encode=encode, tokenizer_name="bytes", server_ids=server_ids, reasoning_format=fmt, scrub=str)  # type: ignore[arg-type]


def _chat(content: str | None = None, *, reasoning: str | None = None, key: str = "reasoning", **extra: Any) -> bytes:
    delta: dict[str, Any] = {}
    if reasoning is not None:
        delta[key] = reasoning
    if content is not None:
        delta["content"] = content
    choice: dict[str, Any] = {"index": 0, "delta": delta, **extra}
    return b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"


def _text(text: str, **extra: Any) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "text": text, **extra}]}).encode() + b"\n\n"


def _feed_all(reader: SseReader, reads: list[bytes]) -> list[tuple[list[int], int]]:
    out = [reader.feed(r) for r in reads]
    out.append(reader.close())
    return [o for o in out if o[0]]


@pytest.mark.parametrize("key", ["reasoning", "reasoning_content"])
def test_reasoning_deltas_with_a_tokenizer_are_leading_reasoning_ids(key: str) -> None:
    reader = _reader()
    reads = [_chat(reasoning="Hmm ", key=key), _chat(reasoning="é.", key=key), _chat("", key=key), _chat("Ans")]
    out = _feed_all(reader, reads)
    assert out == [(list(b"Hmm "), 4), (list("é.".encode()), 3), (list(b"Ans"), 0)]
    assert reader.n_reasoning == 7 and reader.n_streamed == 10 and reader.method == "tokenizer bytes"


def test_one_read_holding_the_reasoning_tail_and_the_answer_head() -> None:
    reader = _reader()
    ids, n_r = reader.feed(_chat(reasoning="ab") + _chat(reasoning="c", key="reasoning_content") + _chat("XY"))
    assert ids == list(b"abcXY") and n_r == 3


def test_reasoning_and_answer_are_tokenized_apart() -> None:
    # "ab" is one piece: tokenizing the event's text as one would put a token across the boundary.
    encode = _ByteEncoder({1: b"a", 2: b"b", 3: b"ab", 4: b"<", 5: b"/think>"}).encode
    reader = _reader("fields", encode=encode)
    assert reader.feed(_chat("b", reasoning="a")) == ([1, 2], 1)
    think = _reader("think", encode=encode)
    assert think.feed(_text("a</think>b")) == ([1, 4, 5, 2], 3)


def test_think_text_boundary_is_exact_in_ids_however_the_marker_is_cut() -> None:
    text = "why</think>\n\nbecause"
    for cut in range(1, len(text)):
        reader = _reader("think")
        out = _feed_all(reader, [_text(text[:cut]), _text(text[cut:]) + b"data: [DONE]\n\n"])
        ids = [i for part, _ in out for i in part]
        assert ids == list(text.encode()) and reader.n_reasoning == len("why</think>"), cut
        assert reader.done


def test_harmony_text_with_server_ids_one_per_token() -> None:
    tokens = ["<|channel|>", "analysis", "<|message|>", "x", "<|end|>", "<|start|>", "assistant"]
    tokens += ["<|channel|>", "final", "<|message|>", "4", "<|return|>"]
    reader = _reader("harmony", server_ids=True)
    out = _feed_all(reader, [_text(t, token_ids=[100 + i]) for i, t in enumerate(tokens)])
    assert [n_r for _, n_r in out] == [1] * 10 + [0, 0]
    assert reader.n_reasoning == 10 and reader.method == "server"


def test_server_ids_of_an_undecided_start_are_held_until_text_decides() -> None:
    reader = _reader("auto", server_ids=True)
    assert reader.feed(_text("<", token_ids=[1])) == ([], 0)  # may open <think>: held, side unknown
    assert reader.feed(_text("think>", token_ids=[2])) == ([1, 2], 2)
    assert reader.feed(_text("r</think>A", token_ids=[3, 4, 5])) == ([3, 4, 5], 2)  # the cut, by bytes
    plain = _reader("auto", server_ids=True)
    assert plain.feed(_text("<", token_ids=[1])) == ([], 0)
    assert plain.feed(_text("b>", token_ids=[2])) == ([1, 2], 0)  # not a marker: answer, both ids
    ended = _reader("fields", server_ids=True)
    assert ended.feed(_chat("", token_ids=[7])) == ([], 0)  # no text: held until something says its side
    assert ended.close() == ([7], 0)


def test_markup_ids_in_an_empty_reasoning_field_are_reasoning_at_once() -> None:
    """A server that strips reasoning markup (harmony headers, </think>) sends its ids with an empty reasoning
    field: they are reasoning and go out at once (the first token's time), never held back."""
    reader = _reader("auto", server_ids=True)
    assert reader.feed(_chat(reasoning="", key="reasoning_content", token_ids=[200005])) == ([200005], 1)
    assert reader.feed(_chat(reasoning="x", key="reasoning_content", token_ids=[5])) == ([5], 1)
    assert reader.feed(_chat(reasoning="", key="reasoning_content", token_ids=[200008])) == ([200008], 1)
    assert reader.feed(_chat("A", token_ids=[6])) == ([6], 0)
    assert reader.feed(_chat("", token_ids=[200002])) == ([200002], 0)  # after the answer: answer


def test_text_held_to_the_end_of_a_tokenized_stream_is_answer() -> None:
    reader = _reader("auto")
    assert reader.feed(_text("<|")) == ([], 0)
    assert reader.close() == (list(b"<|"), 0)


def test_a_mixed_event_with_server_ids_is_cut_by_the_tokenizer() -> None:
    reader = _reader("think", server_ids=True)
    assert reader.feed(_text("ab</think>c", token_ids=[1, 2, 3])) == ([1, 2, 3], 2)  # capped: one answer id


def test_usage_reasoning_and_finish_are_read() -> None:
    reader = _reader()
    reader.feed(_chat(reasoning="r") + _chat("a", finish_reason="stop"))
    usage = {"completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 6}}
    reader.feed(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\ndata: [DONE]\n\n")
    assert (reader.usage_tokens, reader.usage_reasoning, reader.finish, reader.done) == (9, 6, "stop", True)


def test_none_format_counts_reasoning_fields_as_answer() -> None:
    reader = _reader("none")
    assert _feed_all(reader, [_chat(reasoning="r"), _chat("a")]) == [([114], 0), ([97], 0)]


@pytest.mark.parametrize(
    "piece",
    [b'data: {"choices": [{"delta": {"reasoning": 5}}]}\n\n', b'data: {"choices": [{"text": ["x"]}]}\n\n'],
)
def test_a_non_string_text_is_a_bad_stream(piece: bytes) -> None:
    with pytest.raises(UpstreamError) as err:
        _reader().feed(piece)
    assert err.value.status == "bad-stream"


def test_text_without_ids_or_tokenizer_is_refused() -> None:
    with pytest.raises(UpstreamError) as err:
        _reader(encode=None).feed(_chat(reasoning="r"))
    assert err.value.status == "no-ids"


def test_the_flag_and_the_benchmarks_style_set_the_format() -> None:
    parser = argparse.ArgumentParser()
    add_openai_arguments(parser)
    parser.add_argument("--benchmark", default="embedded")
    cfg = openai_config_from_args(parser.parse_args(["--reasoning-format", "fields", "--benchmark", "deepseek-r1"]))
    assert cfg["reasoning_format"] == "fields"  # the flag wins
    assert openai_config_from_args(parser.parse_args(["--benchmark", "deepseek-r1"]))["reasoning_format"] == "think"
    assert openai_config_from_args(parser.parse_args(["--benchmark", "gpt-oss-120b"]))["reasoning_format"] == "harmony"
    assert "reasoning_format" not in openai_config_from_args(parser.parse_args([]))  # the config's default: auto
    assert OpenAIConfig(base_url="http://h/v1").reasoning_format == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["--reasoning-format", "xml"])
    with pytest.raises(ValidationError, match="reasoning_format"):
        OpenAIConfig(base_url="http://h/v1", reasoning_format="xml")  # type: ignore[arg-type]

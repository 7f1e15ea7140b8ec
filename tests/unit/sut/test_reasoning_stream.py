"""The reasoning/answer parser over adversarial event splits: markers cut anywhere, ``</think>`` without
``<think>``, harmony without a final channel, empty deltas, both reasoning fields, late reasoning, unicode."""

from __future__ import annotations

from typing import Any

import pytest

from sut._reasoning_stream import (
    REASONING_FORMATS,
    EventSplit,
    ReasoningStream,
    choice_texts,
    count_reasoning_ids,
)

Event = str | tuple[str | None, str]  # content, or (reasoning field, content)


def _run(fmt: str, events: list[Event]) -> tuple[str, str, list[int]]:
    """(reasoning, answer, indexes of the events whose split says the answer started); close() is last."""
    stream = ReasoningStream(fmt)  # type: ignore[arg-type]
    splits: list[EventSplit] = []
    for e in events:
        splits.append(stream.feed(e[1], e[0]) if isinstance(e, tuple) else stream.feed(e))
    splits.append(stream.close())
    started = [i for i, s in enumerate(splits) if s.answer_started]
    return "".join(s.reasoning for s in splits), "".join(s.answer for s in splits), started


def _cuts(text: str) -> list[list[str]]:
    """Every split of ``text`` into two events, and one event per character."""
    return [[text[:k], text[k:]] for k in range(len(text) + 1)] + [list(text)]


def _event_at(events: list[str], pos: int) -> int:
    """Index of the event holding character ``pos`` of the joined text."""
    for i, e in enumerate(events):
        if pos < len(e):
            return i
        pos -= len(e)
    raise AssertionError("past the end")


R1 = "Let me think. 2+2 is 4.</think>\n\nThe answer is 4."
R1_REASONING, R1_ANSWER = R1.split("</think>")
HARMONY = (
    "<|channel|>analysis<|message|>User asks 2+2. Easy.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>It is 4.<|return|>"
)
HARMONY_CUT = HARMONY.index("It is 4.")


@pytest.mark.parametrize("events", _cuts(R1))
def test_think_close_without_open_splits_at_the_first_close_however_cut(events: list[str]) -> None:
    reasoning, answer, started = _run("think", events)
    assert reasoning == R1_REASONING + "</think>" and answer == R1_ANSWER
    assert started == [_event_at(events, len(R1_REASONING) + len("</think>"))]


@pytest.mark.parametrize("events", _cuts("<think>" + R1))
def test_auto_reads_an_explicit_think_opening_however_cut(events: list[str]) -> None:
    reasoning, answer, started = _run("auto", events)
    assert reasoning == "<think>" + R1_REASONING + "</think>" and answer == R1_ANSWER
    assert started == [_event_at(events, len("<think>" + R1_REASONING + "</think>"))]


def test_auto_does_not_guess_a_close_without_its_opening() -> None:
    assert _run("auto", [R1[:10], R1[10:]]) == ("", R1, [0])  # think-style output needs reasoning_format think


def test_think_later_think_tags_are_answer_and_no_close_means_all_reasoning() -> None:
    assert _run("think", ["a</think>b", "</think>c"]) == ("a</think>", "b</think>c", [0])
    assert _run("think", ["thinking", " forever", ""]) == ("thinking forever", "", [])


@pytest.mark.parametrize("fmt", ["harmony", "auto"])
@pytest.mark.parametrize("events", _cuts(HARMONY))
def test_harmony_final_channel_however_cut(fmt: str, events: list[str]) -> None:
    reasoning, answer, started = _run(fmt, events)
    assert reasoning == HARMONY[:HARMONY_CUT] and answer == "It is 4.<|return|>"
    assert started == [_event_at(events, HARMONY_CUT)]


def test_harmony_without_a_final_channel_is_all_reasoning() -> None:
    text = "<|channel|>analysis<|message|>hmm<|end|><|start|>assistant<|channel|>commentary to=f<|message|>x"
    assert _run("harmony", [text[:30], text[30:]]) == (text, "", [])


def test_harmony_header_extras_and_a_non_final_channel_named_like_final() -> None:
    text = "<|channel|>finale<|message|>no<|end|><|channel|>final <|constrain|>json<|message|>{}<|return|>"
    reasoning, answer, _ = _run("harmony", [text])
    assert answer == "{}<|return|>" and reasoning == text[: text.index("{}")]


def test_harmony_runaway_header_is_given_up_but_later_channels_are_read() -> None:
    text = "<|channel|>" + "x" * 1000 + "<|channel|>final<|message|>A"
    assert _run("harmony", [text[:500], text[500:]])[1] == "A"


@pytest.mark.parametrize("fmt", ["auto", "fields", "think", "harmony"])
def test_reasoning_fields_are_reasoning_and_content_the_answer(fmt: str) -> None:
    events: list[Event] = [("", ""), ("Hmm, ", ""), ("so 4.", ""), ("", ""), ("", "It is"), ("", " 4.")]
    assert _run(fmt, events) == ("Hmm, so 4.", "It is 4.", [4])


def test_reasoning_and_content_in_one_event_keep_their_order() -> None:
    assert _run("fields", [("think", ""), ("ing.", "Ans"), ("", "wer")]) == ("thinking.", "Answer", [1])


def test_an_empty_reasoning_field_is_a_reasoning_event() -> None:
    s = ReasoningStream("auto")
    assert s.feed("", "") == EventSplit("", "", False)
    assert not s.undecided and not s.in_answer  # its text-less tokens are reasoning, not held
    assert s.feed("A", None) == EventSplit("", "A", True)


def test_reasoning_after_the_answer_started_is_answer() -> None:
    # The wire's reasoning always precedes the answer: a late reasoning delta is kept, in order, as answer.
    assert _run("fields", [("r", ""), ("", "a"), ("late", ""), ("", "b")]) == ("r", "alateb", [1])


def test_none_reads_everything_as_answer() -> None:
    assert _run("none", [("r", ""), "<think>x</think>y"]) == ("", "r<think>x</think>y", [0])


def test_fields_never_parse_text() -> None:
    assert _run("fields", ["<think>x</think>y"]) == ("", "<think>x</think>y", [0])


def test_auto_holds_only_a_possible_opening_and_releases_it() -> None:
    s = ReasoningStream("auto")
    assert s.feed("<") == EventSplit("", "", False) and s.undecided
    assert s.feed("b>bold</b>") == EventSplit("", "<b>bold</b>", True) and not s.undecided
    assert _run("auto", ["<|", "chan"]) == ("", "<|chan", [2])  # held to the end: close() releases it
    assert _run("auto", [" <think>x</think>"]) == ("", " <think>x</think>", [0])  # the very start only


def test_text_held_at_the_start_precedes_a_reasoning_field() -> None:
    assert _run("auto", ["<th", ("r", ""), ("", "a")]) == ("<thr", "a", [2])


def test_empty_events_change_nothing() -> None:
    s = ReasoningStream("think")
    assert s.feed("") == EventSplit("", "", False) and s.feed("", "") == EventSplit("", "", False)
    assert not s.in_answer and not s.undecided


def test_unicode_around_the_markers() -> None:
    text = "思考中…🤔</think>答案是四 ✓"
    for events in _cuts(text):
        assert _run("think", events)[:2] == ("思考中…🤔</think>", "答案是四 ✓")
    h = "<|channel|>analysis<|message|>é<|end|><|channel|>final<|message|>ü"
    for events in _cuts(h):
        assert _run("harmony", events)[1] == "ü"


def test_in_answer_turns_at_the_boundary_before_answer_text() -> None:
    s = ReasoningStream("think")
    assert s.feed("x</think>") == EventSplit("x</think>", "", False)
    assert s.in_answer and not s.answer_started
    assert s.feed("A") == EventSplit("", "A", True) and s.answer_started


def test_bad_format_is_refused() -> None:
    assert set(REASONING_FORMATS) == {"auto", "none", "think", "harmony", "fields"}
    with pytest.raises(ValueError, match="reasoning_format"):
        ReasoningStream("xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"delta": {"reasoning_content": "a", "reasoning": "a", "content": None}}, ("a", None)),
        ({"delta": {"reasoning_content": "rc", "reasoning": "r"}}, ("rc", None)),  # reasoning_content wins
        ({"delta": {"reasoning": "r", "content": "c"}}, ("r", "c")),  # vLLM >= 0.11
        ({"delta": {"reasoning_content": None, "reasoning": "r"}}, ("r", None)),
        ({"delta": {}}, (None, None)),
        ({"delta": {"reasoning_content": "", "content": None}}, ("", None)),  # present, empty: a reasoning event
        ({"delta": {"reasoning_content": None, "content": "c"}}, (None, "c")),  # DeepSeek's null: absent
        ({"text": "t"}, (None, "t")),
    ],
)
def test_choice_texts_reads_both_reasoning_keys(choice: dict[str, Any], expected: tuple[Any, Any]) -> None:
    assert choice_texts(choice) == expected


def test_count_reasoning_ids_per_event() -> None:
    r, a, both = EventSplit("x", "", False), EventSplit("", "y", True), EventSplit("ab", "cd", True)
    assert count_reasoning_ids([1, 2], r, True, None) == 2
    assert count_reasoning_ids([1, 2], a, True, None) == 0
    assert count_reasoning_ids([1], EventSplit("", "", False), False, None) == 1  # text-less: the stream's side
    assert count_reasoning_ids([1], EventSplit("", "", False), True, None) == 0
    assert count_reasoning_ids([1, 2, 3, 4], both, True, None) == 2  # by bytes without a tokenizer
    assert count_reasoning_ids([1, 2, 3, 4], both, True, lambda t: [0] * 3) == 3  # the tokenizer's cut
    assert count_reasoning_ids([1, 2], both, True, lambda t: [0] * 9) == 1  # one id stays on each side
    assert count_reasoning_ids([], both, True, None) == 0

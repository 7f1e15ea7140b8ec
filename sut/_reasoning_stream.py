"""Reasoning vs answer in an OpenAI-compatible stream: one incremental parser, fed once per SSE event.

Reasoning models stream their thinking before the answer, in one of three shapes:

* **fields**: the server splits it itself and sends reasoning in its own delta field:
  ``delta.reasoning_content`` (vLLM < 0.11, SGLang, DeepSeek's API) or ``delta.reasoning`` (vLLM >= 0.11,
  which also still sends ``reasoning_content``; when both arrive ``reasoning_content`` wins).
  ``delta.content`` is the answer.
* **think**: ``<think>…</think>`` inside the text (``delta.content`` or a completion's ``text``).
  DeepSeek-R1's chat template opens ``<think>`` in the prompt, so its output usually holds only the
  closing tag: everything before the first ``</think>`` (the tag included) is reasoning.
* **harmony** (gpt-oss): ``<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>final
  <|message|>…<|return|>``. Everything before the ``<|message|>`` that opens the ``final`` channel is
  reasoning (headers, analysis, commentary), everything after it the answer.

``reasoning_format`` (a relay / ``--transport openai-http`` option) says which to expect:

========== =================================================================================================
``auto``   reasoning fields, plus text that *opens* with an explicit ``<think>`` or ``<|channel|>`` (the
           very first characters of the text). Plain text is the answer at once, as before reasoning
           existed; a stream that sends ``</think>`` without its opening tag is all answer here.
``none``   no split: every text (reasoning fields included) is answer; reasoning tokens stay 0.
``think``  reasoning fields, else everything up to the first ``</think>`` is reasoning, opening tag or not.
           A stream that never closes its thinking is all reasoning with an empty answer.
``harmony`` reasoning fields, else harmony channels; a stream without a ``final`` channel is all reasoning.
``fields`` reasoning fields only; text is never parsed.
========== =================================================================================================

Rules every format keeps (so the wire's contract holds: reasoning tokens come before answer tokens):

* Once a reasoning field arrives the server is doing the split, so text is the answer from then on. A
  reasoning field that is present but empty still marks its event's tokens as reasoning (markup the
  server does not render, e.g. harmony headers or ``</think>``).
* Once the answer has started, everything after it is answer, a late reasoning delta included (its text
  is kept in order, never dropped).
* Markers stay in the text (they are tokens of the output the reference scores): ``</think>`` and the
  harmony headers are counted as reasoning, ``<|return|>`` (after the answer began) as answer.
* A marker split across events is found: the parser carries the few characters a marker could still
  need. Reasoning text is handed out at once (a partial closing marker is reasoning either way); only
  ``auto`` holds text back, while the very first characters of a stream could still become an opening
  marker (``<``, ``<thi``), which a plain answer almost never starts with.

Per event the work is a few comparisons, plus one ``str.find`` over the event's text (and a carried tail
of at most a marker's length) until the answer starts; after that, none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, get_args

ReasoningFormat = Literal["auto", "none", "think", "harmony", "fields"]
REASONING_FORMATS: tuple[str, ...] = get_args(ReasoningFormat)

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
HARMONY_CHANNEL = "<|channel|>"
HARMONY_MESSAGE = "<|message|>"
_OPENERS = (THINK_OPEN, HARMONY_CHANNEL)  # what ``auto`` recognises at the very start of the text
_MAX_HEADER = 256  # characters of a harmony header kept while its <|message|> is awaited

# How text (never reasoning fields) is read while the answer has not started.
_PLAIN, _DETECT, _THINK, _HARMONY = range(4)
_TEXT_MODE = {"auto": _DETECT, "none": _PLAIN, "think": _THINK, "harmony": _HARMONY, "fields": _PLAIN}


class EventSplit(NamedTuple):
    """One event's text, split: ``reasoning + answer`` is the event's text in stream order."""

    reasoning: str
    answer: str
    answer_started: bool  # this event holds the answer's first character


_NOTHING = EventSplit("", "", False)


class ReasoningStream:
    """Splits one stream's text into reasoning and answer, one :meth:`feed` per SSE event.

    ``in_answer`` turns true at the boundary (a closing marker, the first answer text, ...), possibly
    before any answer text arrived (``…</think>`` ending an event): tokens without text after it are
    answer tokens. ``answer_started`` turns true with the first answer character.
    """

    __slots__ = (
        "_carry",
        "_fields_seen",
        "_header",
        "_mode",
        "answer_started",
        "format",
        "in_answer",
    )

    def __init__(self, fmt: ReasoningFormat = "auto") -> None:
        if fmt not in _TEXT_MODE:
            raise ValueError(f"reasoning_format: expected one of {', '.join(REASONING_FORMATS)}, got {fmt!r}")
        self.format = fmt
        self._mode = _TEXT_MODE[fmt]
        self._carry = ""  # text a marker may continue (a held start, a tail, or a harmony header so far)
        self._header = False  # harmony: inside a channel header, awaiting <|message|>
        self._fields_seen = False
        self.in_answer = fmt == "none"  # no split: every token is answer from the start
        self.answer_started = False

    @property
    def undecided(self) -> bool:
        """Nothing has said yet which side text-less tokens are on (``auto``/``fields`` before the first
        text, or ``auto`` holding a start that may open a marker): a caller holds such tokens back until
        an event decides, rather than guess a side the stream could then contradict."""
        return not self.in_answer and not self._fields_seen and self._mode in (_PLAIN, _DETECT)

    def feed(self, content: str = "", reasoning: str | None = None) -> EventSplit:
        """One event: ``reasoning`` from a reasoning field (it precedes ``content`` within the event; ``""``
        when the field came empty, as for a marker token the server does not render: still a reasoning
        event), ``content`` from ``delta.content`` or a completion's ``text``."""
        if self.in_answer:
            text = reasoning + content if reasoning else content
            if not text or self.answer_started:
                return EventSplit("", text, False) if text else _NOTHING
            self.answer_started = True
            return EventSplit("", text, True)
        if reasoning is not None:
            self._fields_seen = True
            held = ""
            if self._mode == _DETECT:  # text held at the start (never handed out) preceded this reasoning
                held, self._carry = self._carry, ""
            if not content:
                return EventSplit(held + reasoning, "", False)
            return self._answer(held + reasoning, content)
        if not content:
            return _NOTHING
        if self._fields_seen:
            return self._answer("", content)
        mode = self._mode
        if mode == _PLAIN:
            return self._answer("", content)
        if mode == _THINK:
            return self._think(content)
        if mode == _HARMONY:
            return self._harmony(content)
        return self._detect(content)

    def answer_by_tool_call(self) -> None:
        """A tool call started: the reasoning (if any) is over, and every later token is answer."""
        self._carry = ""
        self.in_answer = True
        self.answer_started = True

    def close(self) -> EventSplit:
        """End of stream: text still held (a start that never became a marker) is answer."""
        held, self._carry = self._carry, ""
        if self._mode == _DETECT and held:
            return self._answer("", held)
        return _NOTHING

    # --- text modes -----------------------------------------------------------------------------
    def _answer(self, reasoning: str, answer: str) -> EventSplit:
        self.in_answer = True
        if not answer:
            return EventSplit(reasoning, "", False) if reasoning else _NOTHING
        started = not self.answer_started
        self.answer_started = True
        return EventSplit(reasoning, answer, started)

    def _detect(self, content: str) -> EventSplit:
        """``auto`` at the start of the text: an explicit opening marker, or the answer."""
        text = self._carry + content
        for marker in _OPENERS:
            if text.startswith(marker):
                self._carry = ""
                self._mode = _THINK if marker == THINK_OPEN else _HARMONY
                return self._think(text) if marker == THINK_OPEN else self._harmony(text)
        if any(marker.startswith(text) for marker in _OPENERS):
            self._carry = text  # "<th": could still open a marker; decided by the next event
            return _NOTHING
        self._carry = ""
        self._mode = _PLAIN
        return self._answer("", text)

    def _think(self, content: str) -> EventSplit:
        carry = self._carry
        text = carry + content if carry else content
        at = text.find(THINK_CLOSE)
        if at < 0:
            self._carry = text[1 - len(THINK_CLOSE) :]
            return EventSplit(content, "", False)
        self._carry = ""
        cut = at + len(THINK_CLOSE) - len(carry)  # the close ends inside this event: cut > 0
        return self._answer(content[:cut], content[cut:])

    def _harmony(self, content: str) -> EventSplit:
        carry = self._carry
        text = carry + content if carry else content
        pos = 0
        while True:
            if not self._header:
                at = text.find(HARMONY_CHANNEL, pos)
                if at < 0:
                    self._carry = text[max(pos, len(text) + 1 - len(HARMONY_CHANNEL)) :]
                    return EventSplit(content, "", False)
                pos = at + len(HARMONY_CHANNEL)
                self._header = True
            end = text.find(HARMONY_MESSAGE, pos)
            if end < 0:
                header = text[pos:]
                # A runaway header (no <|message|> in sight) is given up: scanning resumes past it.
                self._header = len(header) <= _MAX_HEADER
                self._carry = header if self._header else header[1 - len(HARMONY_CHANNEL) :]
                return EventSplit(content, "", False)
            self._header = False
            name = text[pos:end].split("<|", 1)[0].split(None, 1)
            pos = end + len(HARMONY_MESSAGE)
            if name and name[0] == "final":
                self._carry = ""
                cut = pos - len(carry)  # <|message|> ends inside this event: cut > 0
                return self._answer(content[:cut], content[cut:])


def choice_texts(choice: dict[str, object]) -> tuple[object, object]:
    """(reasoning, content) of one streamed choice, as sent (not yet checked to be strings).

    Chat: ``delta.reasoning_content`` (preferred) or ``delta.reasoning``, and ``delta.content``; a
    completion: no reasoning field, and ``text``. A reasoning field present but empty (``""``) stays
    ``""``, not None: the event is a reasoning event whose tokens render as no text (markup).
    """
    delta = choice.get("delta")
    if isinstance(delta, dict):
        first = delta.get("reasoning_content")
        reasoning = first if first else delta.get("reasoning")
        return (first if reasoning is None else reasoning), delta.get("content")
    return None, choice.get("text")


def count_reasoning_ids(
    ids: Sequence[int], split: EventSplit, in_answer: bool, encode: Callable[[str], list[int]] | None
) -> int:
    """How many of an event's server-sent ``ids`` (leading) are reasoning, given its text split and
    :attr:`ReasoningStream.in_answer` after it.

    An event of one kind is exact. An event without text (a special token the server does not render)
    belongs to the side the stream is on. An event holding both sides (several tokens that arrived in one
    event across the boundary) is cut where the tokenizer puts the reasoning text's end, or, without one,
    in proportion to the text's UTF-8 bytes, keeping at least one id on each side.
    """
    n = len(ids)
    if not split.answer:
        return n if (split.reasoning or not in_answer) else 0
    if not split.reasoning:
        return 0
    if n < 2:
        return n  # one token spanning both sides: it starts in the reasoning
    if encode is not None:
        k = len(encode(split.reasoning))
    else:
        r_bytes = len(split.reasoning.encode())
        k = round(n * r_bytes / (r_bytes + len(split.answer.encode())))
    return min(max(k, 1), n - 1)

"""Answer extraction of MLPerf's reasoning evaluators, rule for rule (deepseek-r1 and gpt-oss-120b, v6.1).

Both evaluators route a sample by the first key that is a substring of its lower-cased dataset name
and then parse the decoded output with that key's rule:

===============  ============================================  ============================================
key              deepseek-r1 (``language/deepseek-r1``)        gpt-oss-120b (``language/gpt-oss-120b``)
===============  ============================================  ============================================
gpqa / mmlu_pro  last ``ANSWER``/``FINAL ANSWER`` pattern in   the final channel (bold stripped): a letter
(mmlu: gpt-oss)  the whole text; MMLU-Pro falls back to the    at its start, else the first ``Answer: X``;
                 last standalone letter                        else the last ANSWER pattern in the whole
                                                               text; MMLU-Pro: last standalone letter of
                                                               the final channel
math500          last ``\\boxed{...}`` (brace matching) in the whole text, both
aime             last ``\\boxed{N}``, else last ``Answer: N``; an integer 0-999, both
livecodebench    first ```` ```python ```` block               final channel's last python block, else its
                                                               last plain block; else the same on the text
===============  ============================================  ============================================

The whole output is parsed, reasoning included (neither reference strips ``<think>``); the rules take
the last match, which is why a letter mentioned while reasoning does not win. The regular expressions
are the references' own patterns: their matching semantics are the specification.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

AnswerKind = Literal["choice", "math", "aime", "code"]


class UnknownDatasetError(ValueError):
    """A sample's dataset name matches none of the evaluator's routing keys (the references raise too)."""


@dataclass(frozen=True)
class Route:
    key: str  # the routing key the dataset name contains
    kind: AnswerKind
    options: str = ""  # valid letters of a multiple-choice dataset


_GPQA = Route("gpqa", "choice", "ABCD")
_MMLU_PRO = Route("mmlu_pro", "choice", "ABCDEFGHIJ")
_MATH500 = Route("math500", "math")
_AIME = Route("aime", "aime")
_LCB = Route("livecodebench", "code")
# Order matters: "mmlu_pro" before gpt-oss's plain "mmlu", and the first substring hit wins.
DEEPSEEK_R1_ROUTES = (_GPQA, _MMLU_PRO, _MATH500, _AIME, _LCB)
GPT_OSS_ROUTES = (_GPQA, _MMLU_PRO, _MATH500, _AIME, _LCB, Route("mmlu", "choice", "ABCDEFGHIJ"))


def route(dataset: str | None, routes: tuple[Route, ...]) -> Route:
    """The rule for a dataset name: the first route whose key is a substring of the lower-cased name."""
    if dataset is None or not dataset:
        raise UnknownDatasetError("no dataset name (the evaluator routes on it)")
    low = str(dataset).lower()
    for r in routes:
        if r.key in low:
            return r
    keys = ", ".join(r.key for r in routes)
    raise UnknownDatasetError(f"dataset '{dataset}' contains none of the evaluator's keys ({keys})")


def clean(text: object) -> str:
    """The references' ``validate_text_input``: None and NaN are empty, anything else ``str(x).strip()``."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    return str(text).strip()


# ---------------------------------------------------------------------------------------------------
# Multiple choice


def _answer_pattern(last: str) -> re.Pattern[str]:
    return re.compile(
        rf"\b(?:ANSWER|FINAL\s*ANSWER)\b\s*[:=]?\s*(?:\(?\s*([A-{last}])\s*\)?)(?:\s*$|[^A-Za-z])", re.IGNORECASE
    )


_ANSWER = {"D": _answer_pattern("D"), "J": _answer_pattern("J")}
_LONE_LETTER = re.compile(r"\b([A-J])\b", re.IGNORECASE)
_LEADING_LETTER = {last: re.compile(rf"^[^a-zA-Z]*([A-{last}])(?:[^a-zA-Z]|$)", re.IGNORECASE) for last in ("D", "J")}
_ANSWER_COLON = {last: re.compile(rf"\b(?:Answer|ANSWER)\s*[:.]?\s*([A-{last}])\b", re.IGNORECASE) for last in "DJ"}
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def _unescape(text: str) -> str:
    """Undo a Python list repr around the answer (``['...']``) and its escaped newlines and quotes."""
    if text.startswith(("['", '["')) and text.endswith(("']", '"]')):
        text = text[2:-2].strip()
    return _unescape_chars(text)


def _unescape_chars(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\'", "'")


def _last_match(pattern: re.Pattern[str], text: str) -> str | None:
    found = None
    for m in pattern.finditer(text):
        found = m
    return None if found is None else found.group(1).upper()


def choice_deepseek_r1(text: object, options: str) -> str | None:
    """deepseek-r1's ``parse_multiple_choice``: the last ANSWER pattern; MMLU-Pro: else the last lone letter."""
    s = clean(text)
    if not s:
        return None
    s = _unescape(s)
    last = options[-1]
    found = _last_match(_ANSWER[last], s)
    if found is None and last == "J":
        found = _last_match(_LONE_LETTER, s)
    return found


_FINAL = re.compile(r"<\|channel\|>final[^<]*<\|message\|>(.*?)(?:<\|return\|>|$)", re.DOTALL)


def final_section(text: object) -> str:
    """gpt-oss's final channel (the first one, up to ``<|return|>`` or the end), else the whole text."""
    s = clean(text)
    if not s:
        return ""
    m = _FINAL.search(s)
    return m.group(1).strip() if m else s


def choice_gpt_oss(text: object, options: str) -> str | None:
    """gpt-oss-120b's ``parse_multiple_choice``: the final channel first, the whole text as a fallback."""
    s = clean(text)
    if not s:
        return None
    last = options[-1]
    final = _unescape(_BOLD.sub(r"\1", final_section(s)))
    m = _LEADING_LETTER[last].match(final.strip())
    if m:
        return m.group(1).upper()
    m = _ANSWER_COLON[last].search(final)
    if m:
        return m.group(1).upper()
    found = _last_match(_ANSWER[last], _unescape_chars(s))
    if found is None and last == "J":
        found = _last_match(_LONE_LETTER, final)
    return found


def grade_choice(parsed: str | None, ground_truth: str | None, options: str) -> bool:
    if not parsed or not ground_truth:
        return False
    p = parsed.upper()
    return p in options and p == ground_truth.upper()


# ---------------------------------------------------------------------------------------------------
# Math, AIME


def boxed(text: object) -> str | None:
    """The content of the last ``\\boxed{`` up to its matching brace (stripped); None when unbalanced."""
    s = clean(text)
    if not s:
        return None
    start = s.rfind("\\boxed{")
    if start == -1:
        return None
    depth = 0
    begin = start + len("\\boxed{")
    for i in range(begin, len(s)):
        c = s[i]
        if c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return s[begin:i].strip()
            depth -= 1
    return None


_AIME_BOXED = re.compile(r"\\boxed{\s*(\d+)\s*}")
_AIME_ANSWER = re.compile(r"Answer:\s*(\d+)(?!\.)\b", re.IGNORECASE | re.MULTILINE)


def aime(text: object) -> int | None:
    """The last ``\\boxed{N}``, else the last ``Answer: N`` (not followed by a dot); kept when 0 <= N <= 999."""
    s = clean(text)
    if not s:
        return None
    digits = None
    for pattern in (_AIME_BOXED, _AIME_ANSWER):
        for m in pattern.finditer(s):
            digits = m.group(1)
        if digits is not None:
            break
    if digits is None:
        return None
    try:
        value = int(digits)
    except ValueError:  # more digits than Python converts
        return None
    return value if 0 <= value <= 999 else None


def grade_aime(parsed: int | None, ground_truth: str | None) -> bool:
    if parsed is None or ground_truth is None:
        return False
    try:
        return int(parsed) == int(ground_truth)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------------------
# Code

_PYTHON_BLOCK = re.compile(r"```python(.*?)```", re.DOTALL)
_ANY_BLOCK = re.compile(r"```(.*?)```", re.DOTALL)
_LANG_TAG = re.compile(r"^(?:python|py)\s*\n", re.IGNORECASE)


def code_deepseek_r1(text: object) -> str | None:
    """deepseek-r1: the first ```` ```python ```` block (a plain ```` ``` ```` block is not code)."""
    s = clean(text)
    if not s:
        return None
    m = _PYTHON_BLOCK.search(s)
    return m.group(1).strip() if m else None


def _last_block(text: str) -> str | None:
    blocks = _PYTHON_BLOCK.findall(text)
    if blocks:
        return str(blocks[-1]).strip()
    plain = _ANY_BLOCK.findall(text)
    if plain:
        return _LANG_TAG.sub("", str(plain[-1]).strip())
    return None


def code_gpt_oss(text: object) -> str | None:
    """gpt-oss-120b: the final channel's last python (else plain) block, else the same over the whole text."""
    s = clean(text)
    if not s:
        return None
    final = final_section(s)
    if final != s:
        found = _last_block(final)
        if found is not None:
            return found
    return _last_block(s)

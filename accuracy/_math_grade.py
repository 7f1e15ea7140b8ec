"""MATH answer grading, equivalent to openai/prm800k's ``grading.grader.grade_answer`` (commit 7ecc7947).

MLPerf's deepseek-r1 and gpt-oss-120b evaluators grade MATH500 with that grader. An answer is correct when

1. the Hendrycks MATH normalisation (``math_normalize.normalize_answer``) makes both strings equal, or
2. PRM800K's own normalisation makes them equal, or
3. element by element (tuples and intervals split on commas, brackets must agree): two fractions
   ``a/b`` must be equal as strings (an unreduced fraction is wrong), an integer never equals a
   non-integer, and otherwise sympy must simplify ``(truth)-(given)`` to 0.

Every rule below reproduces the reference's string operations in its order, quirks included (the units
list is applied in sequence, ``2.99999999`` counts as the integer 2, ``\\sqrt`` at the very end leaves
the Hendrycks form untouched). Step 3's sympy call is the only one that can run away, so
:class:`SympyJudge` runs it in a worker process under a time limit; a timeout grades as wrong and is
reported (:attr:`Grade.TIMEOUT`). The reference has no such limit.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pylatexenc import latex2text


class Grade(enum.Enum):
    CORRECT = "correct"
    WRONG = "wrong"
    TIMEOUT = "timeout"  # sympy ran past its limit: graded wrong, counted apart


# ---------------------------------------------------------------------------------------------------
# Hendrycks MATH normalisation (prm800k/grading/math_normalize.py)

_TEXT_WRAPPED = re.compile(r"^\\text\{(?P<text>.+?)\}$")


class _Unnormalizable(Exception):
    """The reference's normaliser raised; it then returns the stripped answer unchanged."""


def _hendrycks_sqrt(s: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}``; a ``\\sqrt`` with nothing after it makes the whole answer unnormalizable."""
    if "\\sqrt" not in s:
        return s
    head, *tails = s.split("\\sqrt")
    parts = [head]
    for tail in tails:
        if not tail:
            raise _Unnormalizable
        parts.append("\\sqrt" + tail if tail[0] == "{" else "\\sqrt{" + tail[0] + "}" + tail[1:])
    return "".join(parts)


def _hendrycks_fracs(s: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{7}`` -> ``\\frac{1}{7}``; a one-character tail leaves ``s`` as is."""
    head, *tails = s.split("\\frac")
    out = head
    for tail in tails:
        out += "\\frac"
        if not tail:
            raise _Unnormalizable
        if tail[0] == "{":
            out += tail
            continue
        if len(tail) < 2:
            return s
        a, b, rest = tail[0], tail[1], tail[2:]
        out += "{" + a + "}{" + b + "}" + rest if b != "{" else "{" + a + "}" + b + rest
    return out


def _hendrycks_slash(s: str) -> str:
    """``3/4`` -> ``\\frac{3}{4}`` only when the string is exactly two canonical integers around one slash."""
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        num, den = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    if s != f"{num}/{den}":
        return s
    return "\\frac{" + str(num) + "}{" + str(den) + "}"


def _hendrycks_strip(s: str) -> str:
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "")
    if "\\text{ " in s:  # units on the right: exactly one such marker, else the reference gives up
        pieces = s.split("\\text{ ")
        if len(pieces) != 2:
            raise _Unnormalizable
        s = pieces[0]
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _hendrycks_sqrt(s)
    s = s.replace(" ", "")
    s = _hendrycks_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _hendrycks_slash(s)


def mathd_normalize(answer: str) -> str:
    """``math_normalize.normalize_answer`` for a string answer."""
    answer = answer.strip()
    m = _TEXT_WRAPPED.search(answer)
    if m is not None:
        answer = m.group("text").strip()
    try:
        return _hendrycks_strip(answer)
    except _Unnormalizable:
        return answer


# ---------------------------------------------------------------------------------------------------
# PRM800K's own normalisation (prm800k/grading/grader.py)

_UNITS = (
    "degree",
    "cm",
    "centimeter",
    "meter",
    "mile",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "foot",
    "feet",
    "inch",
    "yard",
)
# Applied one after another, in this order: "centimeter" loses "meter" only if "cm" did not match first.
_UNIT_PATTERNS = tuple(re.compile(unit + r"(es)?(s)? *(\^[0-9]+)?") for unit in _UNITS)
_CIRC = re.compile(r"\^ *\\circ")
_THIN_SPACE_COMMA = re.compile(r",\\! *")
_MINUS_SPACE = re.compile(r"- *")
_MIXED_NUMBER = re.compile(r"([0-9]) +([0-9])")
_THOUSANDS_COMMA = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_FRACTION = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")
_BAD_REGEXES = (re.compile(r"\^[0-9]+\^"), re.compile(r"\^[0-9][0-9]+"))
_BAD_SUBSTRINGS = ("^{", "^(")
_TUPLE_CHARS = "()[]"
_LATEX_SYMBOLS = (("√", "sqrt"), ("π", "pi"), ("∞", "inf"), ("∪", "U"), ("·", "*"), ("×", "*"))
_LATEX = latex2text.LatexNodes2Text()
# pylatexenc warns on stderr about LaTeX it cannot expand (a model's odd \\frac); the grader's answer is the
# same with or without the warning, and scoring prints no library noise.
_PYLATEXENC_LOG = logging.getLogger("pylatexenc")
_PYLATEXENC_LOG.addHandler(logging.NullHandler())
_PYLATEXENC_LOG.propagate = False


def _close_to_int(x: float) -> bool:
    try:
        return abs(x - round(x)) <= 1e-7
    except (OverflowError, ValueError):  # inf, nan
        return False


def _float_or_none(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _drop_thousands_commas(s: str) -> str:
    while True:
        nxt = _THOUSANDS_COMMA.sub(r"\1\3\4", s)
        if nxt == s:
            return nxt
        s = nxt


def _is_int_text(s: str) -> bool:
    x = _float_or_none(_drop_thousands_commas(s))
    return x is not None and _close_to_int(x)


def _latex_to_text(s: str) -> str:
    s = s.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac").replace("\\frac", " \\frac")
    s = _LATEX.latex_to_text(s)
    for symbol, word in _LATEX_SYMBOLS:
        s = s.replace(symbol, word)
    return s.strip()


def prm_normalize(expr: str) -> str:
    """``grader._normalize`` for a string."""
    m = _TEXT_WRAPPED.search(expr)
    if m is not None:
        expr = m.group("text")
    expr = expr.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    expr = expr.replace(" or ", " , ").replace(" and ", " , ")
    expr = expr.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    for unit in _UNIT_PATTERNS:
        expr = unit.sub("", expr)
    expr = _CIRC.sub("", expr)
    if expr and expr[0] == "{" and expr[-1] == "}":
        expr = expr[1:-1]
    expr = _THIN_SPACE_COMMA.sub("", expr)
    x = _float_or_none(expr)
    if x is not None and _close_to_int(x):
        expr = str(round(x))
    if "\\" in expr:
        with contextlib.suppress(Exception):  # the reference keeps the LaTeX when pylatexenc fails on it
            expr = _latex_to_text(expr)
    expr = _MINUS_SPACE.sub("-", expr)
    expr = _MIXED_NUMBER.sub(r"\1+\2", expr)
    expr = expr.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _is_int_text(expr):
        # The reference truncates here (int(float)), after a check that rounds: "2.99999999" becomes "2".
        expr = str(int(float(expr.replace(",", ""))))
    return expr


def sympy_allowed(expr: str) -> bool:
    """The reference refuses sympy for more than two distinct letters and for nested or long exponents."""
    letters = {c for c in expr.replace("sqrt", "").replace("frac", "") if c.isalpha()}
    if len(letters) > 2:
        return False
    if any(bad in expr for bad in _BAD_SUBSTRINGS):
        return False
    return not any(p.search(expr) for p in _BAD_REGEXES)


def split_elements(expr: str) -> list[str]:
    """A tuple or interval ``(a,b)`` / ``[a,b)`` splits on commas (thousands commas kept); else one element."""
    expr = _drop_thousands_commas(expr)
    if not expr:
        return []
    inner = expr[1:-1]
    bracketed = len(expr) > 2 and expr[0] in _TUPLE_CHARS and expr[-1] in _TUPLE_CHARS
    if bracketed and not any(ch in inner for ch in _TUPLE_CHARS):
        return [e.strip() for e in inner.split(",")]
    return [expr]


SympyEqual = Callable[[str, str], "bool | None"]  # None: the sympy step timed out


def grade_answer(given: str | None, ground_truth: str, sympy_equal: SympyEqual) -> Grade:
    """PRM800K's ``grade_answer(given_answer, ground_truth)``, the sympy step delegated to ``sympy_equal``."""
    if given is None:
        return Grade.WRONG
    if mathd_normalize(ground_truth) == mathd_normalize(given):
        return Grade.CORRECT
    truth, answer = prm_normalize(ground_truth), prm_normalize(given)
    if truth == answer:
        return Grade.CORRECT
    if not answer:
        return Grade.WRONG
    truth_elems, given_elems = split_elements(truth), split_elements(answer)
    if len(truth_elems) > 1 and (truth[0] != answer[0] or truth[-1] != answer[-1]):
        return Grade.WRONG
    if len(truth_elems) != len(given_elems):
        return Grade.WRONG
    for t, g in zip(truth_elems, given_elems, strict=True):
        if _FRACTION.search(t) and _FRACTION.search(g):
            ok: bool | None = t == g  # unreduced fractions must not pass through sympy
        elif _is_int_text(t) != _is_int_text(g):
            ok = False  # an integer answer needs an integer, never a sympy-equal expression
        elif sympy_allowed(f"({t})-({g})"):
            ok = sympy_equal(t, g)
        else:
            ok = False
        if ok is None:
            return Grade.TIMEOUT
        if not ok:
            return Grade.WRONG
    return Grade.CORRECT


# ---------------------------------------------------------------------------------------------------
# The sympy step under a time limit

_WORKER = Path(__file__).with_name("_math_worker.py")


class SympyJudge:
    """Answers ``sympy_equal(truth, given)`` from a worker process, within ``timeout_s`` per question.

    The worker starts on first use (importing sympy takes about a second, outside the limit) and is
    killed and replaced after a timeout. Answers are cached: sympy is deterministic for a pair.
    """

    def __init__(self, timeout_s: float = 10.0, memory_mb: int = 4096, start_timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        self.memory_bytes = memory_mb << 20
        self.start_timeout_s = start_timeout_s
        self.timeouts = 0
        self._proc: subprocess.Popen[str] | None = None
        self._cache: dict[tuple[str, str], bool] = {}

    def __call__(self, truth: str, given: str) -> bool | None:
        key = (truth, given)
        if key in self._cache:
            return self._cache[key]
        proc = self._worker()
        assert proc.stdin is not None
        try:
            proc.stdin.write(json.dumps([truth, given]) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            self._kill()
            return False  # the worker died (e.g. out of memory): sympy failed, which the reference grades wrong
        line = self._read_line(proc, self.timeout_s)
        if line is None:
            self.timeouts += 1
            self._kill()
            return None
        answer = line.strip() == "true"
        self._cache[key] = answer
        return answer

    def _worker(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        proc = subprocess.Popen(
            [sys.executable, "-I", str(_WORKER), str(self.memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        self._proc = proc
        if self._read_line(proc, self.start_timeout_s) != "ready\n":
            self._kill()
            raise RuntimeError(f"the sympy worker did not start within {self.start_timeout_s:.0f} s")
        return proc

    @staticmethod
    def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str | None:
        """One line from the worker, or None when none arrives in time (or the worker died)."""
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                line = proc.stdout.readline()
                return line if line else None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        self._kill()

    def __enter__(self) -> SympyJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The MATH grader equals PRM800K's grade_answer; its sympy step is bounded by a time limit.

Every expectation in the table is what openai/prm800k's ``grading.grader.grade_answer`` (7ecc7947)
returns for the pair (checked against it by hand; see the issue-24 report).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from accuracy._math_grade import Grade, SympyJudge, grade_answer, mathd_normalize, prm_normalize, split_elements

MATH = [  # given, ground truth, correct
    ("\\frac{1}{2}", "1/2", True),
    ("1/2", "\\frac{1}{2}", True),
    ("2/4", "1/2", False),  # both fractions: string equality, so an unreduced fraction is wrong
    ("\\frac{2}{6}", "\\frac{1}{3}", False),
    ("0.5", "\\frac12", True),
    ("\\dfrac{3}{4}", "0.75", True),  # sympy: 0.75 is not an a/b fraction
    ("10", "10.0", True),
    ("10.0", "10", True),
    ("3", "3.5", False),
    ("2", "\\sqrt{4}", False),  # an integer truth needs an integer answer, never sympy
    ("\\sqrt{4}", "2", False),
    ("\\frac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}", True),
    ("x^2+2x+1", "(x+1)^2", True),
    ("(1,2)", "(1,2)", True),
    ("(1, 2)", "(1,2)", True),
    ("[1,2]", "(1,2)", False),  # a tuple's brackets must agree
    ("(2,1)", "(1,2)", False),
    ("(1,2,3)", "(1,2)", False),
    ("2 and 3", "2,3", True),
    ("\\left(1,2\\right)", "(1,2)", True),
    ("5\\text{ cm}", "5", True),
    ("5 cm", "5", True),
    ("10^\\circ", "10", True),
    ("\\$5", "5", True),
    ("50\\%", "50", True),
    ("x=5", "5", True),
    ("k = 3", "3", True),
    ("\\text{(A)}", "(A)", True),
    ("Evelyn", "\\text{Evelyn}", True),
    ("2.99999999", "2", False),  # rounded to 3 first
    ("1,002.99999999", "1002", True),  # ... but truncated when only the last step reads it as an integer
    ("1,002.99999999", "1003", False),
    ("1,000", "1000", True),
    ("1000", "1,000", True),
    ("7 3/4", "\\frac{31}{4}", True),
    ("\\pi", "3.14159", False),
    ("2\\pi", "\\pi+\\pi", True),
    ("a+b+c", "c+b+a", False),  # three letters: sympy is not asked
    ("\\infty", "\\infty", True),
    ("-\\infty", "\\infty", False),
    ("\\frac13", "\\frac{1}{3}", True),
    ("0.333", "\\frac{1}{3}", False),
    ("3\\sqrt{2}", "\\sqrt{18}", True),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", True),
    ("-1/2", "-\\frac{1}{2}", True),
    ("01/2", "1/2", False),
    ("\\sqrt", "1", False),
    ("\\frac1", "1", False),
    ("3\\text{ a}\\text{ b}", "3", False),
    ("x", "y", False),
    ("", "1", False),
]


@pytest.fixture(scope="module")
def judge() -> Iterator[SympyJudge]:
    with SympyJudge(timeout_s=60) as j:
        yield j


@pytest.mark.parametrize(("given", "truth", "correct"), MATH)
def test_grade_answer_table(judge: SympyJudge, given: str, truth: str, correct: bool) -> None:
    assert grade_answer(given, truth, judge) is (Grade.CORRECT if correct else Grade.WRONG)


def test_normalisations_spell_the_reference_forms() -> None:
    assert mathd_normalize(" \\text{ \\dfrac12 } ") == "\\frac{1}{2}"
    assert mathd_normalize("3/4") == "\\frac{3}{4}" and mathd_normalize("03/4") == "03/4"
    assert mathd_normalize("\\sqrt2x") == "\\sqrt{2}x"
    assert mathd_normalize("a \\sqrt") == "a \\sqrt"  # unnormalizable: the stripped answer as it came
    assert prm_normalize("12 centimeters") == "12"
    assert prm_normalize("3 million") == "3*10^6"
    assert prm_normalize("1,234") == "1234"
    assert split_elements("(1,2]") == ["1", "2"] and split_elements("(1,(2))") == ["(1,(2))"]
    assert split_elements("1,234,567") == ["1234567"]


def test_latex_the_parser_cannot_expand_prints_nothing() -> None:
    # pylatexenc warns about this \\frac through logging; in a plain process that would reach stderr.
    code = "from accuracy._math_grade import prm_normalize; print(prm_normalize('\\\\frac1'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stderr == "" and done.stdout.strip() == "%s/%s1"


def test_none_answer_is_wrong(judge: SympyJudge) -> None:
    assert grade_answer(None, "1", judge) is Grade.WRONG


def test_a_runaway_sympy_step_times_out_graded_wrong_and_counted() -> None:
    with SympyJudge(timeout_s=1.0) as judge:
        t0 = time.monotonic()
        # 9**9**9 passes PRM800K's guards (no letters, no '^') and makes sympy build a 370-million-digit integer.
        assert grade_answer("9**9**9", "\\frac{1}{2}", judge) is Grade.TIMEOUT
        assert time.monotonic() - t0 < 60
        assert judge.timeouts == 1
        # The killed worker is replaced: the next question is graded normally.
        assert grade_answer("x^2+2x+1", "(x+1)^2", judge) is Grade.CORRECT


def test_sympy_answers_are_cached() -> None:
    with SympyJudge(timeout_s=60) as judge:
        for _ in range(3):
            assert grade_answer("2\\pi", "\\pi+\\pi", judge) is Grade.CORRECT
        assert len(judge._cache) == 1

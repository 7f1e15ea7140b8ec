"""The reasoning reference set's problems, written by the project from templates (nothing downloaded).

Five kinds, as MLPerf v6.1's reasoning benchmarks route them (``dataset``): ``gpqa`` (4 options,
science computations), ``mmlu_pro`` (10 options, number facts), ``math500`` (boxed answers: fractions,
radicals, intervals), ``aime`` (integers 0-999) and ``livecodebench`` (tiny Python tasks with tests).
Every ground truth is computed here, so the FP32 sim can answer it and the scorers can check it.

Per problem the bank holds what the reasoning set renders (:mod:`scenarios.reasoning_set`): the
question, the reasoning sentences specific to it (``steps``, an optional ``distractor`` that names a
wrong option or value the way real models second-guess, a ``conclusion``), the final answer section
(``answer``) and, for the int8 artifact's one wrong category (``math500``), a wrong final section.
Answers are written so that both references' extraction rules take the right value: ``ANSWER: X``
as the last line of a multiple-choice answer, the last ``\\boxed{}`` for math, one ```python block.

``python -m scenarios._reasoning_bank`` rewrites ``scenarios/data/reasoning_bank.json``; a test checks
the packaged file is what this code writes.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from common import atomic_path
from scenarios.dataset import CodeTests

BANK_FORMAT = "lpuperf-reasoning-bank/1"
BANK_PATH = Path(__file__).with_name("data") / "reasoning_bank.json"
BANK_SEED = 24
# Problems per kind, in the order they appear in the set.
COUNTS = {"gpqa": 8, "mmlu_pro": 8, "math500": 10, "aime": 8, "livecodebench": 6}
# The one category the int8 artifact gets wrong on some samples (the slippage report's finding).
INT8_WRONG_DATASET = "math500"
_LETTERS = "ABCDEFGHIJ"


class ReasoningProblem(BaseModel):
    """One problem of the bank: what the renderings need to build prompt, reasoning and answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    dataset: str
    question: str
    ground_truth: str
    steps: list[str] = Field(min_length=1)
    distractor: str | None = None
    conclusion: str
    answer: str
    int8_answer: str | None = None
    tests: CodeTests | None = None


class ReasoningBank(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = BANK_FORMAT
    seed: int
    problems: list[ReasoningProblem]


# ---- multiple choice -------------------------------------------------------------------------
def _choice(
    rng: random.Random, pid: str, dataset: str, question: str, correct: str, wrong: list[str], steps: list[str]
) -> ReasoningProblem:
    n = 4 if dataset == "gpqa" else 10
    options = [correct, *wrong[: n - 1]]
    assert len(set(options)) == n, f"{pid}: options are not distinct: {options}"
    rng.shuffle(options)
    letter = _LETTERS[options.index(correct)]
    other = _LETTERS[(options.index(correct) + 1 + rng.randrange(n - 1)) % n]
    lines = "\n".join(f"{_LETTERS[i]}) {text}" for i, text in enumerate(options))
    prompt = (
        f"{question}\n\n{lines}\n\nThink it through, then end with a line of the form "
        f"'ANSWER: X', where X is the letter of the correct option."
    )
    return ReasoningProblem(
        id=pid,
        dataset=dataset,
        question=prompt,
        ground_truth=letter,
        steps=steps,
        distractor=(
            f"At first option {other} looks right. Tentative answer: {other}. That does not survive the check."
            if rng.random() < 0.5
            else None
        ),
        conclusion=f"So the value is {correct}, which is option {letter}.",
        # The final section never starts with an option letter followed by a non-letter and never says
        # "answer" before its last line: gpt-oss-120b's evaluator reads either as the chosen option.
        answer=f"The value works out to {correct}, so the correct option is {letter}.\n\nANSWER: {letter}",
    )


def _gpqa(rng: random.Random, k: int) -> ReasoningProblem:
    pid = f"gpqa-{k:02d}"
    kind = k % 8
    if kind == 0:
        t, f = rng.choice((250, 300, 320, 400)), rng.choice((2, 3))
        q = f"An ideal gas at {t} K is heated at constant pressure until its volume is {f} times larger. What is its final temperature?"
        c, w = f"{t * f} K", [f"{t // f} K" if t % f == 0 else f"{t + f} K", f"{t * (f + 1)} K", f"{t + 100} K"]
        steps = [f"At constant pressure volume is proportional to temperature, so the temperature grows by the factor {f}.",
                 f"{t} times {f} is {t * f}."]  # fmt: skip
    elif kind == 1:
        h, n = rng.choice((3, 5, 8, 12)), rng.choice((2, 3, 4))
        q = f"A radioactive sample has a half-life of {h} days. What fraction of it remains after {h * n} days?"
        c, w = f"1/{2**n}", [f"1/{2 ** (n + 1)}", f"1/{2 ** (n + 2)}", f"1/{n + 1}"]
        steps = [
            f"{h * n} days is {n} half-lives.",
            f"Each half-life halves the amount, so {n} of them leave 1/{2**n}.",
        ]
    elif kind == 2:
        m, v = rng.choice((2, 4, 6, 10)), rng.choice((3, 5, 7))
        q = f"A cart of mass {m} kg moves at {v} m/s. What is its kinetic energy?"
        e = m * v * v // 2
        c, w = f"{e} J", [f"{m * v * v} J", f"{m * v} J", f"{e + m} J"]
        steps = [
            f"Kinetic energy is one half of m v squared: {m} times {v * v} is {m * v * v}.",
            f"Half of that is {e}.",
        ]
    elif kind == 3:
        mm, n = rng.choice((18, 44, 58, 32)), rng.choice((2, 3, 5))
        q = f"How many moles are in {mm * n} g of a compound whose molar mass is {mm} g/mol?"
        c, w = f"{n} mol", [f"{n + 1} mol", f"{mm * n * mm} mol", f"{n * 2 + 1} mol"]
        steps = [f"Moles are mass over molar mass: {mm * n} over {mm}.", f"That is {n}."]
    elif kind == 4:
        v, f = rng.choice((340, 1500, 300)), rng.choice((2, 5, 10, 20))
        q = f"A wave travels at {v} m/s with a frequency of {f} Hz. What is its wavelength?"
        c, w = f"{v / f:g} m", [f"{v * f} m", f"{v / f * 2:g} m", f"{v - f} m"]
        steps = ["The wavelength is the speed divided by the frequency.", f"{v} over {f} is {v / f:g}."]
    elif kind == 5:
        a, b = rng.choice(((6, 3), (12, 6), (20, 5), (30, 15), (12, 4)))
        q = f"Two resistors of {a} ohm and {b} ohm are connected in parallel. What is the equivalent resistance?"
        r = a * b // (a + b)
        c, w = f"{r} ohm", [f"{a + b} ohm", f"{(a + b) // 2} ohm", f"{r + 1} ohm"]
        steps = [
            "For two resistors in parallel the result is the product over the sum.",
            f"{a * b} over {a + b} is {r}.",
        ]
    elif kind == 6:
        r, i = rng.choice((4, 5, 10, 20)), rng.choice((2, 3, 4))
        q = f"A {r} ohm resistor carries a current of {i} A. What power does it dissipate?"
        c, w = f"{i * i * r} W", [f"{i * r} W", f"{i * i * r * 2} W", f"{r + i} W"]
        steps = [f"Power is the current squared times the resistance: {i * i} times {r}.", f"That is {i * i * r}."]
    else:
        e = rng.choice((2, 3, 4, 5, 9))
        q = f"What is the pH of a solution whose hydrogen ion concentration is 10^-{e} mol/L?"
        c, w = f"{e}", [f"{14 - e}", f"{e + 1}", f"{e * 2}"]
        steps = [f"The pH is the negative base ten logarithm of the concentration, which is {e}."]
    return _choice(rng, pid, "gpqa", q, c, w, steps)


def _spread(rng: random.Random, correct: int, n: int, lo: int = 0) -> list[str]:
    """n-1 distinct wrong integers near ``correct`` (never below ``lo``)."""
    out: list[int] = []
    step = 1
    while len(out) < n - 1:
        for cand in (correct + step, correct - step):
            if cand >= lo and cand != correct and cand not in out and len(out) < n - 1:
                out.append(cand)
        step += rng.choice((1, 1, 2))
    return [str(x) for x in out]


def _mmlu_pro(rng: random.Random, k: int) -> ReasoningProblem:
    pid = f"mmlu_pro-{k:02d}"
    kind = k % 8
    if kind == 0:
        a, m = rng.randint(200, 999), rng.randint(11, 29)
        q, c = f"What is the remainder when {a} is divided by {m}?", a % m
        steps = [f"{m} times {a // m} is {m * (a // m)}.", f"{a} minus {m * (a // m)} leaves {c}."]
    elif kind == 1:
        g = rng.choice((6, 8, 12, 14))
        a, b = g * rng.choice((5, 7)), g * rng.choice((9, 11))
        q, c = f"What is the greatest common divisor of {a} and {b}?", math.gcd(a, b)
        steps = [f"Both {a} and {b} are multiples of {c}.", f"The quotients {a // c} and {b // c} share no factor."]
    elif kind == 2:
        a, b = rng.choice(((4, 6), (6, 8), (9, 12), (10, 15), (14, 21)))
        q, c = f"What is the least common multiple of {a} and {b}?", a * b // math.gcd(a, b)
        steps = [f"The product {a * b} divided by the common divisor {math.gcd(a, b)} gives {c}."]
    elif kind == 3:
        p, x = rng.choice((15, 25, 40, 60)), rng.choice((80, 120, 240, 360))
        q, c = f"What is {p} percent of {x}?", p * x // 100
        steps = [f"{p} percent is {p} hundredths.", f"{x} times {p} is {x * p}, over one hundred is {c}."]
    elif kind == 4:
        a, b = rng.randint(3, 20), rng.randint(30, 60)
        q, c = f"What is the sum of the integers from {a} to {b} inclusive?", (a + b) * (b - a + 1) // 2
        steps = [f"There are {b - a + 1} terms with average {(a + b) / 2:g}.", f"The sum is {c}."]
    elif kind == 5:
        n = rng.choice((36, 48, 60, 72, 84, 90))
        q, c = f"How many positive divisors does {n} have?", sum(1 for d in range(1, n + 1) if n % d == 0)
        steps = [f"Factor {n} into primes and multiply one more than each exponent.", f"That gives {c}."]
    elif kind == 6:
        vals = [rng.randint(10, 60) for _ in range(4)]
        vals.append(5 * rng.randint(10, 20) - sum(vals) % 5)  # the mean is a whole number
        q, c = f"What is the mean of {', '.join(map(str, vals))}?", sum(vals) // 5
        steps = [f"The total is {sum(vals)}.", f"Divided by five that is {c}."]
    else:
        n = rng.randint(20, 120)
        q, c = f"What is the decimal value of the binary number {n:b}?", n
        steps = [f"Add the powers of two where the binary digits are one: that gives {n}."]
    return _choice(rng, pid, "mmlu_pro", q, str(c), _spread(rng, c, 10), steps)


# ---- boxed math ------------------------------------------------------------------------------
def _tex(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    sign = "-" if x < 0 else ""
    return f"{sign}\\frac{{{abs(x.numerator)}}}{{{x.denominator}}}"


def _boxed(
    pid: str, dataset: str, question: str, truth: str, steps: list[str], wrong_seen: str | None, wrong_int8: str | None
) -> ReasoningProblem:
    final = "Putting the steps together, the result is $\\boxed{%s}$."
    return ReasoningProblem(
        id=pid,
        dataset=dataset,
        question=question,
        ground_truth=truth,
        steps=steps,
        distractor=None
        if wrong_seen is None
        else f"A first pass gives $\\boxed{{{wrong_seen}}}$, but one step was off.",
        conclusion=f"So the result is ${truth}$.",
        answer=final % truth,
        int8_answer=None if wrong_int8 is None else final % wrong_int8,
    )


def _math500(rng: random.Random, k: int) -> ReasoningProblem:
    pid = f"math500-{k:02d}"
    kind = k % 5
    boxed = "\n\nPut your final answer within \\boxed{}."
    # Half the math answers slip at int8, each answer form once (k even covers every kind); the other half
    # show a wrong boxed value in their reasoning before the right final one.
    wrong_int8 = k % 2 == 0
    seen = not wrong_int8
    if kind == 0:
        p, qd = rng.choice(((3, 4), (2, 3), (5, 6), (4, 7), (3, 8)))
        m = rng.choice((2, 3, 4, 6))
        truth = f"\\frac{{{p}}}{{{qd}}}"
        unreduced = f"\\frac{{{p * m}}}{{{qd * m}}}"  # not reduced: graded wrong (fractions compare as strings)
        q = f"Simplify the fraction ${unreduced}$ to lowest terms.{boxed}"
        steps = [f"Numerator and denominator share the factor {m}.", f"Dividing both by {m} leaves {p} over {qd}."]
        return _boxed(pid, "math500", q, truth, steps, f"\\frac{{{p}}}{{{qd + 1}}}" if seen else None,
                      unreduced if wrong_int8 else None)  # fmt: skip
    if kind == 1:
        kk, m = rng.choice(((2, 5), (3, 2), (5, 2), (4, 2), (3, 5)))
        dx, dy = _legs(kk * kk * m)
        x1, y1 = rng.randint(-3, 3), rng.randint(-3, 3)
        q = (f"Find the distance between the points $({x1}, {y1})$ and $({x1 + dx}, {y1 + dy})$. "
             f"Express your answer in simplest radical form.{boxed}")  # fmt: skip
        truth = f"{kk}\\sqrt{{{m}}}"
        steps = [f"The differences are {dx} and {dy}; their squares add to {dx * dx + dy * dy}.",
                 f"The square root of {kk * kk * m} is {kk} times the square root of {m}."]  # fmt: skip
        return _boxed(pid, "math500", q, truth, steps, f"{kk + 1}\\sqrt{{{m}}}" if seen else None,
                      f"-{truth}" if wrong_int8 else None)  # fmt: skip
    if kind == 2:
        a, b, cc = rng.randint(-4, 2), rng.randint(5, 9), rng.randint(1, 4)
        q = (f"Solve the inequality ${a + cc} < x + {cc} \\le {b + cc}$. "
             f"Express your answer in interval notation.{boxed}")  # fmt: skip
        truth = f"({a}, {b}]"
        steps = [
            f"Subtract {cc} from every part.",
            f"That leaves {a} < x <= {b}, open at the left end, closed at the right.",
        ]
        return _boxed(pid, "math500", q, truth, steps, f"({a}, {b})" if seen else None,
                      f"[{a}, {b})" if wrong_int8 else None)  # fmt: skip
    if kind == 3:
        x1, y1 = rng.randint(-5, 0), rng.randint(-5, 5)
        dx, dy = rng.choice(((3, -2), (4, -3), (5, 2), (6, -4), (7, 3)))
        slope = Fraction(dy, dx)
        q = (f"What is the slope of the line through $({x1}, {y1})$ and $({x1 + dx}, {y1 + dy})$? "
             f"Express your answer as a common fraction.{boxed}")  # fmt: skip
        truth = _tex(slope)
        steps = [f"The rise is {dy} and the run is {dx}.", f"Rise over run is {slope}."]
        return _boxed(pid, "math500", q, truth, steps, _tex(-slope) if seen else None,
                      _tex(-slope) if wrong_int8 else None)  # fmt: skip
    r, bl = rng.choice(((3, 9), (4, 8), (6, 9), (5, 10), (2, 10)))
    q = (f"A bag holds {r} red and {bl} blue marbles. One marble is drawn at random. What is the probability "
         f"that it is red? Express your answer as a common fraction.{boxed}")  # fmt: skip
    truth = _tex(Fraction(r, r + bl))
    steps = [
        f"There are {r + bl} marbles and {r} of them are red.",
        f"{r} over {r + bl} reduces to {Fraction(r, r + bl)}.",
    ]
    return _boxed(pid, "math500", q, truth, steps, f"\\frac{{{r}}}{{{bl}}}" if seen else None,
                  f"\\frac{{{r}}}{{{r + bl}}}" if wrong_int8 else None)  # fmt: skip


def _legs(square: int) -> tuple[int, int]:
    """Two positive integer legs whose squares add to ``square`` (every radicand used here has them)."""
    for dx in range(1, math.isqrt(square) + 1):
        dy = math.isqrt(square - dx * dx)
        if dy > 0 and dx * dx + dy * dy == square:
            return dx, dy
    raise ValueError(f"no integer legs for {square}")


def _aime(rng: random.Random, k: int) -> ReasoningProblem:
    pid = f"aime-{k:02d}"
    kind = k % 4
    tail = " The answer is an integer from 0 to 999; put it within \\boxed{}."
    if kind == 0:
        a, n = rng.choice((3, 7, 11, 13)), rng.randint(20, 60)
        q, c = f"Find the remainder when ${a}^{{{n}}}$ is divided by $1000$.{tail}", pow(a, n, 1000)
        steps = [f"Work with powers of {a} modulo 1000 and square repeatedly.", f"The residue comes out as {c}."]
    elif kind == 1:
        big, a, b = rng.choice((600, 800, 900)), rng.choice((3, 4, 6)), rng.choice((5, 7, 10))
        lcm = a * b // math.gcd(a, b)
        c = big // a + big // b - big // lcm
        q = f"How many positive integers not exceeding {big} are divisible by {a} or by {b}?{tail}"
        steps = [f"There are {big // a} multiples of {a} and {big // b} multiples of {b}.",
                 f"The {big // lcm} multiples of {lcm} were counted twice, which leaves {c}."]  # fmt: skip
    elif kind == 2:
        n = rng.choice((120, 180, 210, 240, 300))
        c = sum(d for d in range(1, n + 1) if n % d == 0) % 1000
        q = f"Let $S$ be the sum of the positive divisors of {n}. Find the remainder when $S$ is divided by $1000$.{tail}"
        steps = [f"The divisor sum is multiplicative over the prime powers of {n}.", f"Its remainder is {c}."]
    else:
        n = rng.randint(8, 14)
        c = math.comb(n, 3) % 1000
        q = f"In how many ways can a committee of 3 be chosen from {n} people? Give the remainder modulo $1000$.{tail}"
        steps = [f"This is {n} choose 3, which is {math.comb(n, 3)}.", f"Modulo 1000 that is {c}."]
    seen = str((c + 1) % 1000) if k % 2 == 1 else None
    final = "Collecting the count, the result is $\\boxed{%d}$."
    return ReasoningProblem(
        id=pid,
        dataset="aime",
        question=q,
        ground_truth=str(c),
        steps=steps,
        distractor=None if seen is None else f"A quick first pass gives $\\boxed{{{seen}}}$, which is off by one.",
        conclusion=f"So the count is {c}.",
        answer=final % c,
    )


# ---- code --------------------------------------------------------------------------------------
_CODE_TASKS: list[tuple[str, str | None, str, list[str], list[str], str]] = [
    ("Return the sum of the squares of the integers from 1 to n.", "sumOfSquares",
     "class Solution:\n    def sumOfSquares(self, n: int) -> int:\n        return sum(i * i for i in range(1, n + 1))",
     ["3", "10", "1"], ["14", "385", "1"], "A loop over 1 to n adding i squared is enough."),
    ("Return how many vowels (a, e, i, o, u) the lower-case string s contains.", "countVowels",
     "class Solution:\n    def countVowels(self, s: str) -> int:\n        return sum(ch in 'aeiou' for ch in s)",
     ['"banana"', '"rhythm"', '"queue"'], ["3", "0", "4"], "Count the characters that are vowels."),
    ("Return the largest sum of any non-empty contiguous subarray of nums.", "maxSubarray",
     "class Solution:\n    def maxSubarray(self, nums: list[int]) -> int:\n        best = cur = nums[0]\n"
     "        for x in nums[1:]:\n            cur = max(x, cur + x)\n            best = max(best, cur)\n        return best",
     ["[1, -2, 3, 4, -1]", "[-3, -1, -2]", "[5]"], ["7", "-1", "5"], "Keep the best sum ending at each position."),
    ("Read a line of space-separated integers from standard input and print their sum.", None,
     "print(sum(int(x) for x in input().split()))", ["1 2 3\n", "10 -4\n", "7\n"], ["6\n", "6\n", "7\n"],
     "Split the line, convert, add."),
    ("Read an integer n and print how many integers from 1 to n are divisible by 3 or 5.", None,
     "n = int(input())\nprint(sum(1 for i in range(1, n + 1) if i % 3 == 0 or i % 5 == 0))",
     ["15\n", "1\n", "30\n"], ["7\n", "0\n", "14\n"], "Count with one pass over the range."),
    ("Read a word and print YES if it reads the same backwards, otherwise NO.", None,
     "w = input().strip()\nprint('YES' if w == w[::-1] else 'NO')", ["level\n", "lpu\n", "noon\n"],
     ["YES\n", "NO\n", "YES\n"], "Compare the word with its reverse."),
]  # fmt: skip


def _livecodebench(rng: random.Random, k: int) -> ReasoningProblem:
    spec, fn_name, code, inputs, outputs, idea = _CODE_TASKS[k % len(_CODE_TASKS)]
    how = (
        f"Implement the method `{fn_name}` of `class Solution`."
        if fn_name
        else "Read from standard input and write to standard output."
    )
    example = f"For example, the input {inputs[0].strip()} gives {outputs[0].strip()}."
    return ReasoningProblem(
        id=f"livecodebench-{k:02d}",
        dataset="livecodebench",
        question=f"{spec} {how} {example}\n\nWrite the solution in Python inside one ```python code block.",
        ground_truth=f"lpuperf_lcb_{k:03d}",
        steps=[idea, "Check it against the example before writing it out."],
        conclusion="The straightforward version is fast enough for these inputs.",
        answer=f"```python\n{code}\n```",
        tests=CodeTests(inputs=inputs, outputs=outputs, fn_name=fn_name),
    )


_MAKERS: dict[str, Callable[[random.Random, int], ReasoningProblem]] = {
    "gpqa": _gpqa,
    "mmlu_pro": _mmlu_pro,
    "math500": _math500,
    "aime": _aime,
    "livecodebench": _livecodebench,
}


def build_bank(seed: int = BANK_SEED) -> ReasoningBank:
    """Every problem, in a fixed order (kinds in ``COUNTS`` order); the same seed gives the same bank."""
    rng = random.Random(seed)
    problems = [_MAKERS[kind](rng, k) for kind, n in COUNTS.items() for k in range(n)]
    return ReasoningBank(seed=seed, problems=problems)


def bank_json(bank: ReasoningBank) -> str:
    return json.dumps(bank.model_dump(), indent=1, ensure_ascii=False) + "\n"


def load_bank(path: Path = BANK_PATH) -> ReasoningBank:
    return ReasoningBank.model_validate_json(path.read_text(encoding="utf-8"))


def write_bank(path: Path = BANK_PATH) -> Path:
    with atomic_path(path, suffix=".tmp") as tmp:
        tmp.write_text(bank_json(build_bank()), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_bank(Path(sys.argv[1]) if len(sys.argv) > 1 else BANK_PATH))

"""Adversarial tables for every extraction rule of MLPerf's deepseek-r1 and gpt-oss-120b evaluators.

Each expected value is what the reference evaluator's own function returns for the text (computed
with MLPerf's ``eval_accuracy.py`` of both models at b66003e1; see the issue-24 report). The rows cover
answers in bold, several ``\\boxed{}``, nested and unbalanced braces, "Answer: (C)" vs "the answer is C",
trailing text, empty output, reasoning that names a wrong letter before the final answer, harmony text
without a final channel and deepseek output without an opening ``<think>``.
"""

from __future__ import annotations

import pytest

from accuracy import _exact_match as em

THINK = "Option A looks plausible, so Answer: A might be it. Checking again.</think>\n\n"
H_ANALYSIS = "<|channel|>analysis<|message|>The draft says Answer: A and \\boxed{7}.<|end|><|start|>assistant"
GPQA, MMLU_PRO = "ABCD", "ABCDEFGHIJ"

MC = [  # text, deepseek-r1 GPQA, deepseek-r1 MMLU-Pro, gpt-oss GPQA, gpt-oss MMLU-Pro
    ("Answer: (C)", "C", "C", "C", "C"),
    ("the answer is C", None, "C", None, "C"),
    ("The answer is (C).", None, "C", None, "C"),
    ("**Answer:** C", None, "C", "C", "C"),
    ("Answer: **C**", None, "C", "C", "C"),
    ("**C**", None, "C", "C", "C"),
    ("C", None, "C", "C", "C"),
    ("(C)", None, "C", "C", "C"),
    ("C. because", None, "C", "C", "C"),
    ("ANSWER: c", "C", "C", "C", "C"),
    ("Final Answer = B.", "B", "B", "B", "B"),
    ("FINAL ANSWER:D", "D", "D", "D", "D"),
    ("answer C,", "C", "C", "C", "C"),
    ("Answer: A\nAnswer: B", "B", "B", "A", "A"),
    ("Answer: C because the rest fails", "C", "C", "C", "C"),
    ("Answer: CB", None, None, None, None),
    ("", None, None, None, None),
    ("   ", None, None, None, None),
    (THINK + "Answer: D", "D", "D", "A", "A"),
    (
        "<think>" + THINK + "Final Answer: (B)",
        "B",
        "B",
        "A",
        "A",
    ),
    ("reasoning never closed Answer: B", "B", "B", "B", "B"),
    ("['Answer: A']", "A", "A", "A", "A"),
    ("Answer: A\\nAnswer: D", "D", "D", "A", "A"),
    ("A careful reading shows B", None, "B", "A", "A"),
    ("I think it is H", None, "H", None, "I"),
    ("Answer: (J)", None, "J", None, "J"),
    ("The last option, j", None, "J", None, "J"),
    (H_ANALYSIS + "<|channel|>final<|message|>B<|return|>", "A", "A", "B", "B"),
    (H_ANALYSIS + "<|channel|>final<|message|>**Answer: C**<|return|>", "C", "C", "C", "C"),
    (H_ANALYSIS + "<|channel|>final<|message|>A careful reading shows B<|return|>", "A", "A", "A", "A"),
    (H_ANALYSIS + "<|channel|>final<|message|>I think it is H<|return|>", "A", "A", "A", "I"),
    (H_ANALYSIS + "<|channel|>final<|message|>The answer is C.<|return|>", "A", "A", "A", "A"),
    (H_ANALYSIS + "<|channel|>final<|message|>(D) is right<|return|>", "A", "A", "D", "D"),
    (H_ANALYSIS + " no final channel, so Answer: C", "C", "C", "A", "A"),
    ("<|channel|>final 明<|message|>Answer: D<|return|>", "D", "D", "D", "D"),
    ('<|channel|>final<|constrain|>json<|message|>{"answer": "B"}<|return|>', None, "B", None, "B"),
]
BOXED = [
    ("\\boxed{42}", "42"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("\\boxed{{a}{b}}", "{a}{b}"),
    ("\\boxed{unbalanced", None),
    ("\\boxed {5}", None),
    ("\\fbox{5}", None),
    ("\\boxed{ 7 }", "7"),
    ("\\boxed{}", ""),
    ("", None),
    (
        THINK + "so \\boxed{\\dfrac{3}{4}} is final",
        "\\dfrac{3}{4}",
    ),
    (H_ANALYSIS + "<|channel|>final<|message|>\\boxed{3}<|return|>", "3"),
    ("\\boxed{\\text{(A)}} trailing text", "\\text{(A)}"),
    ("\\boxed{1}\\boxed{", None),
]
AIME = [
    ("\\boxed{42}", 42),
    ("\\boxed{42} then Answer: 41", 42),
    ("Answer: 41", 41),
    ("Answer: 12.5", None),
    ("Answer: 1234", None),
    ("\\boxed{1000}", None),
    ("\\boxed{ 007 }", 7),
    ("answer:  77", 77),
    ("Answer: 5\nAnswer: 6", 6),
    ("\\boxed{x} Answer: 9", 9),
    ("\\boxed{-5}", None),
    ("", None),
    (H_ANALYSIS + "<|channel|>final<|message|>**Answer: 204**<|return|>", 7),
    (H_ANALYSIS + "<|channel|>final<|message|>\\boxed{204}<|return|>", 204),
    ("Answer: 12abc", None),
    ("Answer:12", 12),
]
CODE = [  # text, deepseek-r1, gpt-oss
    ("```python\nprint(1)\n```", "print(1)", "print(1)"),
    ("```python\nprint(1)\n```\n```python\nprint(2)\n```", "print(1)", "print(2)"),
    ("```\nprint(3)\n```", None, "print(3)"),
    ("```py\nprint(4)\n```", None, "print(4)"),
    ("```python\nunclosed", None, None),
    ("", None, None),
    (
        THINK + "```python\nx = 1\n```",
        "x = 1",
        "x = 1",
    ),
    (
        "<|channel|>analysis<|message|>The draft says Answer: A and ```python\nbad()\n```.<|end|><|start|>assistant<|channel|>final<|message|>```python\ngood()\n```<|return|>",
        "bad()",
        "good()",
    ),
    (
        "<|channel|>analysis<|message|>The draft says Answer: A and ```python\nbad()\n```.<|end|><|start|>assistant<|channel|>final<|message|>no code<|return|>",
        "bad()",
        "bad()",
    ),
    (H_ANALYSIS + "<|channel|>final<|message|>```\nplain()\n```<|return|>", None, "plain()"),
    (H_ANALYSIS + "<|channel|>final<|message|>```py\nshort()\n```<|return|>", None, "short()"),
]


@pytest.mark.parametrize(("text", "r1_gpqa", "r1_mmlu_pro", "oss_gpqa", "oss_mmlu_pro"), MC)
def test_multiple_choice(
    text: str, r1_gpqa: str | None, r1_mmlu_pro: str | None, oss_gpqa: str | None, oss_mmlu_pro: str | None
) -> None:
    assert em.choice_deepseek_r1(text, GPQA) == r1_gpqa
    assert em.choice_deepseek_r1(text, MMLU_PRO) == r1_mmlu_pro
    assert em.choice_gpt_oss(text, GPQA) == oss_gpqa
    assert em.choice_gpt_oss(text, MMLU_PRO) == oss_mmlu_pro


@pytest.mark.parametrize(("text", "expected"), BOXED)
def test_boxed(text: str, expected: str | None) -> None:
    assert em.boxed(text) == expected


@pytest.mark.parametrize(("text", "expected"), AIME)
def test_aime(text: str, expected: int | None) -> None:
    assert em.aime(text) == expected


@pytest.mark.parametrize(("text", "r1", "oss"), CODE)
def test_code(text: str, r1: str | None, oss: str | None) -> None:
    assert em.code_deepseek_r1(text) == r1
    assert em.code_gpt_oss(text) == oss


def test_final_section_takes_the_first_final_channel_else_the_whole_text() -> None:
    two = "<|channel|>final<|message|>A<|return|><|channel|>final<|message|>B"
    assert em.final_section(two) == "A"
    assert em.final_section("<|channel|>final<|message|> open to the end ") == "open to the end"
    assert em.final_section("  no channels  ") == "no channels"
    assert em.final_section(None) == ""


@pytest.mark.parametrize(
    ("name", "r1", "oss"),
    [
        ("gpqa_diamond", "gpqa", "gpqa"),
        ("GPQA", "gpqa", "gpqa"),
        ("mmlu_pro", "mmlu_pro", "mmlu_pro"),
        ("mmlu", None, "mmlu"),  # only gpt-oss routes plain MMLU
        ("aime25", "aime", "aime"),
        ("math500", "math500", "math500"),
        ("livecodebench_v6", "livecodebench", "livecodebench"),
        ("gsm8k", None, None),
    ],
)
def test_routing_is_the_first_key_contained_in_the_lower_cased_name(name: str, r1: str | None, oss: str | None) -> None:
    for routes, expected in ((em.DEEPSEEK_R1_ROUTES, r1), (em.GPT_OSS_ROUTES, oss)):
        if expected is None:
            with pytest.raises(em.UnknownDatasetError, match=f"dataset '{name}' contains none"):
                em.route(name, routes)
        else:
            assert em.route(name, routes).key == expected


def test_grading_letters_and_aime_integers() -> None:
    assert em.grade_choice("c", "C", GPQA) and not em.grade_choice("E", "E", GPQA)
    assert not em.grade_choice(None, "A", GPQA) and not em.grade_choice("A", "", GPQA)
    assert em.grade_aime(7, " 007 ") and not em.grade_aime(7, "7.0") and not em.grade_aime(None, "7")

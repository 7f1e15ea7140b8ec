"""Exact-match scorer speed: seconds per 1,000 reasoning outputs of ~2,000 tokens, one process.

    .venv/bin/python -m bench.exact_match_speed [--outputs 1000] [--tokens 2000] [--runs 3]

Each output is a deepseek-style (``...</think>`` then the answer) or gpt-oss-style (harmony channels)
reasoning text of ``--tokens`` word pieces (about 4 characters each) followed by its answer; the datasets
are mixed as in MLPerf's sets (GPQA, MMLU-Pro, MATH500, AIME, LiveCodeBench, code not executed). The
MATH500 answers are all distinct, half of them equal to the truth only under sympy (e.g.
``3\\sqrt{2}`` vs ``\\sqrt{18}``), so the sympy worker's cost is in the figure and no cache hides it.
Reported per scorer: the median over ``--runs`` of the whole ``score()`` (routing, extraction, grading,
aggregation), and separately the same outputs without MATH500 (extraction and letter/integer grading only).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from accuracy import SampleFields, create_scorer

_WORDS = [
    "the",
    "answer",
    "follows",
    "from",
    "the",
    "second",
    "case",
    "so",
    "we",
    "check",
    "each",
    "option",
    "again",
    "and",
    "compare",
]
_DATASETS = ("gpqa_diamond", "mmlu_pro", "math500", "aime25", "livecodebench_v6")


def _reasoning(rng: random.Random, tokens: int) -> str:
    """About 4 characters per token, as a BPE vocabulary gives English text."""
    words: list[str] = []
    size = 0
    while size < 4 * tokens:
        # reasoning that names a wrong letter now and then
        words.append(f"maybe Answer: {rng.choice('ABCD')} but" if len(words) % 40 == 0 else rng.choice(_WORDS))
        size += len(words[-1]) + 1
    return " ".join(words)


def _sample(rng: random.Random, i: int, style: str, tokens: int) -> tuple[str, str, str]:
    """(dataset, ground truth, output text)."""
    dataset = _DATASETS[i % len(_DATASETS)]
    if dataset in ("gpqa_diamond", "mmlu_pro"):
        truth = rng.choice("ABCD")
        answer = f"Answer: {truth if rng.random() < 0.8 else 'A'}"
    elif dataset == "math500":
        a, b = i + 2, 2 + i % 5
        truth = f"{a}\\sqrt{{{b}}}"
        answer = f"\\boxed{{\\sqrt{{{a * a * b}}}}}" if i % 2 else f"\\boxed{{{a}\\sqrt{{{b}}}}}"
    elif dataset == "aime25":
        truth = str(i % 1000)
        answer = f"\\boxed{{{truth}}}"
    else:
        truth = f"lcb-{i}"
        answer = "```python\nprint(sum(map(int, input().split())))\n```"
    body = _reasoning(rng, tokens)
    if style == "think":
        return dataset, truth, f"{body}</think>\n\n{answer}"
    final = f"<|channel|>final<|message|>{answer}<|return|>"
    return dataset, truth, f"<|channel|>analysis<|message|>{body}<|end|><|start|>assistant{final}"


def _time(kind: str, samples: list[tuple[str, str, str]], runs: int) -> float:
    texts = [s[2] for s in samples]
    counts = [len(t) // 4 for t in texts]
    times = []
    for _ in range(runs):
        scorer = create_scorer({"kind": kind, "math_timeout_s": 30})
        t0 = time.perf_counter()
        fields = SampleFields(datasets=[s[0] for s in samples], ground_truths=[s[1] for s in samples])
        scorer.score(texts, [""] * len(texts), counts, fields)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", type=int, default=1000)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(0)
    for kind, style in (("exact_match-deepseek-r1", "think"), ("exact_match-gpt-oss-120b", "harmony")):
        samples = [_sample(rng, i, style, args.tokens) for i in range(args.outputs)]
        chars = sum(len(s[2]) for s in samples) / len(samples)
        whole = _time(kind, samples, args.runs)
        no_math = [s for s in samples if s[0] != "math500"]
        light = _time(kind, no_math, args.runs)
        per_k = 1000 / len(samples)
        print(
            f"{kind}: {whole * per_k:.2f} s per 1,000 outputs (mean {chars:.0f} chars); "
            f"without MATH500: {light * 1000 / len(no_math):.3f} s per 1,000 "
            f"({len(samples)} outputs, median of {args.runs} runs)"
        )


if __name__ == "__main__":
    main()

"""ROUGE throughput: accuracy.RougeScorer vs rouge-score 0.1.2, same 250-word pairs, one process.

    .venv/bin/python -m bench.rouge_speed [--pairs 40] [--runs 5] [--words 250]

Each run times rouge-score (rouge1/2/L/Lsum, use_stemmer=True) and ours on the same pairs,
single core, then ours on all cores (``workers=0``, process-pool start-up included, on a larger
batch so start-up is amortised as it is in a real 24k-sample evaluation). Reports the median
per-pair time of each and the ratio, and checks the scores agree.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable

from rouge_score import rouge_scorer

from accuracy import ROUGE_TYPES, RougeScorer, rouge_scores


def _vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(size)]


def make_pairs(n: int, words: int, seed: int = 0) -> list[tuple[str, str]]:
    """Summary-like pairs: Zipf-weighted words, ~18-word sentences on their own lines, 30% words changed."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    pairs = []
    for _ in range(n):
        ref = rng.choices(vocab, weights, k=words)
        cand = [rng.choices(vocab, weights)[0] if rng.random() < 0.3 else w for w in ref]

        def text(ws: list[str]) -> str:
            out: list[str] = []
            for i, w in enumerate(ws):
                out.append(w.capitalize() if i == 0 or out[-1].endswith("\n") else w)
                if rng.random() < 1 / 18:
                    out[-1] += ".\n"
            return " ".join(out).replace("\n ", "\n")

        pairs.append((text(ref), text(cand)))
    return pairs


def _time_per_pair(fn: Callable[[str, str], object], pairs: list[tuple[str, str]], repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        for target, prediction in pairs:
            fn(target, prediction)
    return (time.perf_counter() - t0) / (len(pairs) * repeat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=40)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--words", type=int, default=250)
    ap.add_argument("--batch", type=int, default=4000, help="pairs in the all-cores measurement")
    args = ap.parse_args()
    pairs = make_pairs(args.pairs, args.words)
    reference = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    ours = RougeScorer()
    for t, p in pairs[:5]:  # equal scores, and a warm stem cache as in any run past its first sample
        a, b = reference.score(t, p), ours.score(t, p)
        assert all(abs(x - y) <= 1e-9 for k in ROUGE_TYPES for x, y in zip(a[k], b[k], strict=True)), (t, p)
    big = (pairs * (args.batch // len(pairs) + 1))[: args.batch]
    refs, preds = [t for t, _ in big], [p for _, p in big]
    ref_t, ours_t, multi_t, ratios = [], [], [], []
    for run in range(args.runs):
        r = _time_per_pair(reference.score, pairs)
        o = _time_per_pair(ours.score, pairs, repeat=10)
        t0 = time.perf_counter()
        rouge_scores(preds, refs, workers=0)
        m = (time.perf_counter() - t0) / len(big)
        ref_t.append(r)
        ours_t.append(o)
        multi_t.append(m)
        ratios.append(r / o)
        print(
            f"run {run + 1}: rouge-score {r * 1e3:.2f} ms/pair, ours {o * 1e6:.0f} us/pair ({r / o:.1f}x), "
            f"all cores {m * 1e6:.0f} us/pair ({r / m:.1f}x)"
        )
    med = statistics.median
    print(
        f"median of {args.runs} runs, {args.words}-word pairs, {os.cpu_count()} cores: "
        f"rouge-score {med(ref_t) * 1e3:.2f} ms/pair; ours single core {med(ours_t) * 1e6:.0f} us/pair "
        f"= {med(ratios):.1f}x; ours all cores {med(multi_t) * 1e6:.0f} us/pair = {med(ref_t) / med(multi_t):.1f}x"
    )


if __name__ == "__main__":
    main()

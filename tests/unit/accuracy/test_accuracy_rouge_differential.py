"""Differential test: accuracy.RougeScorer against rouge-score 0.1.2 (use_stemmer=True) on 10,000+ pairs.

The generator is seeded and mixes the inputs that break naive re-implementations: unicode whose
lowercase contains ASCII (Turkish dotted I, the Kelvin sign), digits glued to letters,
punctuation-only and empty texts, words that stem together (running/runs/ran), heavy repetition
(where LCS tie-breaking decides rougeLsum's union), newline-separated sentences, and a few long texts.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from rouge_score import rouge_scorer

from accuracy import ROUGE_TYPES, RougeScorer, rouge_scores

N_PAIRS = 10_400
TOL = 1e-9

_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "running",
    "runs",
    "ran",
    "runner",
    "connection",
    "connected",
    "connecting",
    "generously",
    "general",
    "generalization",
    "happily",
    "happiness",
    "cats",
    "cat",
    "caresses",
    "ponies",
    "sky",
    "skies",
    "dying",
    "lying",
    "x9",
    "42",
    "3.14",
    "1,000",
    "e-mail",
    "don't",
    "U.S.",
    "naïve",
    "café",
    "Straße",
    "İstanbul",
    "Kelvin",
    "Kelvin",
    "ﬁne",
    "日本語",
    "Ωmega",
    "résumé",
    "2024-05-01",
    "ab12cd",
]
_PUNCT = ["", ".", ",", "!", "?", ";", "...", " -", "'s", '"', "(", ")", ":", "\n", "\n\n", "\t", " . "]


def _text(rng: random.Random, n_words: int, vocab: list[str]) -> str:
    out: list[str] = []
    for _ in range(n_words):
        w = rng.choice(vocab)
        r = rng.random()
        if r < 0.25:
            w += rng.choice(_PUNCT)
        elif r < 0.3:
            w = w.upper()
        elif r < 0.33:
            w = w.capitalize()
        out.append(w)
    sep = rng.choice([" ", " ", " ", "  ", "\n", " \n "])
    return sep.join(out) if rng.random() < 0.1 else " ".join(out)


def _pair(rng: random.Random, kind: int) -> tuple[str, str]:
    small = _WORDS[: rng.randint(3, 12)]  # small vocabularies force repeats and LCS ties
    if kind == 0:
        return "", _text(rng, rng.randint(0, 8), _WORDS)
    if kind == 1:
        return _text(rng, rng.randint(0, 8), _WORDS), ""
    if kind == 2:
        punct = "".join(rng.choice("!?.,;:-—'\"()[]{}…\n ") for _ in range(rng.randint(0, 20)))
        return punct, _text(rng, rng.randint(0, 6), _WORDS)
    if kind == 3:
        digits = " ".join(str(rng.randint(0, 10 ** rng.randint(1, 6))) for _ in range(rng.randint(1, 15)))
        return digits, digits.replace("1", "7", rng.randint(0, 2))
    if kind == 4:
        target = _text(rng, rng.randint(5, 40), small)
        words = target.split(" ")
        for i in range(len(words)):
            if rng.random() < 0.3:
                words[i] = rng.choice(small)
        return target, " ".join(words)
    # Multi-sentence texts with newlines, as after MLPerf's post-processing.
    t = "\n".join(_text(rng, rng.randint(1, 12), small) for _ in range(rng.randint(1, 6)))
    p = "\n".join(_text(rng, rng.randint(1, 12), small) for _ in range(rng.randint(1, 6)))
    return t, p


def _pairs() -> list[tuple[str, str]]:
    rng = random.Random(20240611)
    pairs = [_pair(rng, i % 6) for i in range(N_PAIRS - 4)]
    pairs.append(("", ""))
    pairs.append(("!!! ??? ...", "--- ,,,"))
    # Long texts: many sentences and repeated words.
    for n in (600, 900):
        t = _text(rng, n, _WORDS[:30]).replace(" the ", ".\nthe ")
        p = _text(rng, n, _WORDS[:30]).replace(" a ", ".\na ")
        pairs.append((t, p))
    return pairs


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    return _pairs()


def test_matches_rouge_score_on_10k_generated_pairs(pairs: list[tuple[str, str]]) -> None:
    assert len(pairs) >= 10_000
    reference = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    mine = RougeScorer()
    mismatches: list[str] = []
    nonzero = 0
    for target, prediction in pairs:
        want = reference.score(target, prediction)
        got = mine.score(target, prediction)
        for t in ROUGE_TYPES:
            w, g = want[t], got[t]
            if (
                abs(w.precision - g.precision) > TOL
                or abs(w.recall - g.recall) > TOL
                or abs(w.fmeasure - g.fmeasure) > TOL
            ):
                mismatches.append(f"{t} {target!r} | {prediction!r}: want {tuple(w)} got {tuple(g)}")
            nonzero += w.fmeasure > 0
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:3]}"
    # The generator must exercise real overlaps, not just zeros.
    assert nonzero > len(pairs)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_batch_api_equals_pairwise_and_workers_agree(pairs: list[tuple[str, str]], start_method: str) -> None:
    subset = pairs[:600]
    refs = [t for t, _ in subset]
    preds = [p for _, p in subset]
    one = rouge_scores(preds, refs, workers=1)
    two = rouge_scores(preds, refs, workers=2, chunk_size=100, start_method=start_method)
    reference = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    for t in ROUGE_TYPES:
        assert one.scores[t].shape == (600, 3)
        np.testing.assert_array_equal(one.scores[t], two.scores[t])
    want = np.array([reference.score(r, p)["rougeL"].fmeasure for r, p in zip(refs, preds, strict=True)])
    np.testing.assert_allclose(one.fmeasure("rougeL"), want, rtol=0, atol=TOL)
    assert one.means()["rougeL"] == round(float(np.mean(want)) * 100, 4)


def test_known_scores_and_length_mismatch() -> None:
    s = RougeScorer().score("The quick brown fox jumps over the lazy dog", "The quick brown dog jumps on the log.")
    assert s["rouge1"].fmeasure == pytest.approx(2 * (6 / 9) * (6 / 8) / (6 / 9 + 6 / 8))
    assert s["rougeL"].recall == pytest.approx(5 / 9)
    with pytest.raises(ValueError, match="predictions: expected 2"):
        rouge_scores(["a"], ["a", "b"])

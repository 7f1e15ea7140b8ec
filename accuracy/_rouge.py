"""ROUGE-1/2/L/Lsum, score-for-score identical to ``rouge-score`` 0.1.2 with ``use_stemmer=True``.

Tokenization follows rouge-score: lowercase, every run of characters outside ``[a-z0-9]`` is a
separator, tokens longer than 3 characters go through nltk's ``PorterStemmer()`` (its default
NLTK_EXTENSIONS mode, which is what rouge-score constructs). Tokens become int ids through a
per-scorer cache, so each distinct word is stemmed once per process.

Speed comes from three choices:

* n-gram overlap counts ints (bigrams packed into one int) with ``collections.Counter``;
* rougeL uses the bit-parallel LCS of Allison-Dix / Hyyrö: the reference is a bit vector and each
  prediction token costs one add, one subtract and a few bitwise ops on a Python int;
* rougeLsum (summary-level union LCS) runs every reference sentence at once: sentences sit in
  one int separated by guard bits that swallow carries. Union-LCS needs the *same* LCS that
  rouge-score's backtrace picks (ties prefer dropping a reference token), so the backtrace is
  replayed column by column on all sentences in lockstep (see :func:`_union_lcs_mask`).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from nltk.stem.porter import PorterStemmer

ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_VALID_RE = re.compile(r"[a-z0-9]+")
# Bigram key = first id * _PAIR + second id; ids stay far below this.
_PAIR = 1 << 32


class Score(NamedTuple):
    precision: float
    recall: float
    fmeasure: float


def _fmeasure(precision: float, recall: float) -> float:
    # Same expression and operation order as rouge_score.scoring.fmeasure, so floats match bit for bit.
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


_ZERO = Score(0.0, 0.0, 0.0)


class _Tokenizer:
    """Text -> stemmed-token ids, with a cache from raw word to id (the stemmer is the slow part)."""

    def __init__(self) -> None:
        self._stemmer = PorterStemmer()
        self._word_ids: dict[str, int] = {}
        self._stem_ids: dict[str, int] = {}
        # Words whose stem is not a valid token; rouge-score drops those. Kept as id -1 and filtered.
        self._has_invalid = False

    def _learn(self, words: list[str]) -> None:
        for w in words:
            if w in self._word_ids:
                continue
            stem = self._stemmer.stem(w) if len(w) > 3 else w
            if not _VALID_RE.fullmatch(stem):
                self._word_ids[w] = -1
                self._has_invalid = True
                continue
            sid = self._stem_ids.get(stem)
            if sid is None:
                sid = self._stem_ids[stem] = len(self._stem_ids)
            self._word_ids[w] = sid

    def ids(self, text: str) -> list[int]:
        words = _TOKEN_RE.findall(text.lower())
        try:
            out = list(map(self._word_ids.__getitem__, words))
        except KeyError:
            self._learn(words)
            out = list(map(self._word_ids.__getitem__, words))
        if self._has_invalid:
            out = [i for i in out if i >= 0]
        return out

    def sentence_ids(self, text: str) -> list[list[int]]:
        """Token ids per "\\n"-separated line (rouge-score's rougeLsum split), empty lines dropped."""
        out = []
        for line in text.split("\n"):
            if line:
                ids = self.ids(line)
                if ids:
                    out.append(ids)
        return out


# --- n-grams ---------------------------------------------------------------------------------


def _ngram_score(target: list[int], prediction: list[int]) -> Score:
    tc, pc = Counter(target), Counter(prediction)
    if len(tc) > len(pc):
        tc, pc = pc, tc
    inter = 0
    for key, count in tc.items():
        other = pc.get(key)
        if other is not None:
            inter += count if count < other else other
    precision = inter / max(len(prediction), 1)
    recall = inter / max(len(target), 1)
    return Score(precision, recall, _fmeasure(precision, recall))


def _bigrams(ids: list[int]) -> list[int]:
    return [a * _PAIR + b for a, b in itertools.pairwise(ids)]


# --- LCS -------------------------------------------------------------------------------------


def _lcs_length(target: list[int], prediction: list[int]) -> int:
    """Bit-parallel LCS length: bits are target positions; a zero bit marks one LCS increment."""
    masks: dict[int, int] = {}
    for pos, tok in enumerate(target):
        masks[tok] = masks.get(tok, 0) | (1 << pos)
    m = len(target)
    full = (1 << m) - 1
    v = full
    get = masks.get
    for tok in prediction:
        match = get(tok)
        if match:
            u = v & match
            v = (v + u) | (v - u)
    return m - (v & full).bit_count()


def _score_lcs(target: list[int], prediction: list[int]) -> Score:
    if not target or not prediction:
        return _ZERO
    lcs = _lcs_length(target, prediction)
    precision = lcs / len(prediction)
    recall = lcs / len(target)
    return Score(precision, recall, _fmeasure(precision, recall))


class _Blocks:
    """Reference sentences packed into one int: block k holds sentence k, then one guard bit."""

    def __init__(self, sentences: list[list[int]]) -> None:
        self.masks: dict[int, int] = {}
        self.starts: list[int] = []
        self.lengths: list[int] = []
        self.tokens: list[int] = []  # token per bit position, -1 on guards
        pos = 0
        masks = self.masks
        for sent in sentences:
            self.starts.append(pos)
            self.lengths.append(len(sent))
            for tok in sent:
                masks[tok] = masks.get(tok, 0) | (1 << pos)
                pos += 1
            self.tokens.extend(sent)
            self.tokens.append(-1)
            pos += 1  # guard
        self.all = 0
        for start, length in zip(self.starts, self.lengths, strict=True):
            self.all |= ((1 << length) - 1) << start
        # smear[s] = block positions q whose q + s is still inside the same block.
        self.smear: list[tuple[int, int]] = []
        shift, longest = 1, max(self.lengths)
        while shift < longest:
            keep = 0
            for start, length in zip(self.starts, self.lengths, strict=True):
                if length > shift:
                    keep |= ((1 << (length - shift)) - 1) << start
            self.smear.append((shift, keep))
            shift *= 2


def _union_lcs_mask(blocks: _Blocks, sentence: list[int]) -> int:
    """Bits of the reference positions on rouge-score's chosen LCS of every block vs ``sentence``.

    Forward: Hyyrö's column update on all blocks at once (guards absorb carries, then are cleared).
    Backward: rouge-score's backtrace from (len(ref), len(cand)): on a match go diagonal; otherwise
    move left iff L[i][j-1] > L[i-1][j], else up. Within a column that means: walk up past rows
    that are neither a match nor an LCS increment; at the first such row (the highest set bit of
    ``match | increments`` below the current row) either take the match or step left. That highest
    bit is found for all blocks at once by smearing bits downwards inside each block.
    """
    full = blocks.all
    get = blocks.masks.get
    matches = [get(tok, 0) for tok in sentence]
    columns: list[int] = []
    v = full
    for match in matches:
        if match:
            u = v & match
            v = ((v + u) | (v - u)) & full
        columns.append(v)
    if v == full:  # no block shares a token with this sentence
        return 0
    picked = 0
    allowed = full
    smear = blocks.smear
    for j in range(len(sentence) - 1, -1, -1):
        match = matches[j]
        s = (match | (full ^ columns[j])) & allowed
        if not s:
            break
        f = s
        for shift, keep in smear:
            f |= (f >> shift) & keep
        top = f & ~(f >> 1)
        hit = top & match
        picked |= hit
        allowed = f ^ hit
    return picked


def _score_lcs_summary(target_sents: list[list[int]], prediction_sents: list[list[int]]) -> Score:
    m = sum(map(len, target_sents))
    n = sum(map(len, prediction_sents))
    if not m or not n:
        return _ZERO
    blocks = _Blocks(target_sents)
    union = 0
    for sent in prediction_sents:
        union |= _union_lcs_mask(blocks, sent)
    # rouge-score clips each union token by the remaining counts on both sides; reference counts
    # never bind (union positions are distinct reference positions), so hits = sum min(U_t, C_t).
    tokens = blocks.tokens
    union_counts: Counter[int] = Counter()
    while union:
        low = union & -union
        union_counts[tokens[low.bit_length() - 1]] += 1
        union ^= low
    pred_counts: Counter[int] = Counter()
    for sent in prediction_sents:
        pred_counts.update(sent)
    hits = 0
    for tok, count in union_counts.items():
        other = pred_counts.get(tok, 0)
        hits += count if count < other else other
    recall = hits / m
    precision = hits / n
    return Score(precision, recall, _fmeasure(precision, recall))


class RougeScorer:
    """Drop-in for ``rouge_scorer.RougeScorer(ROUGE_TYPES, use_stemmer=True).score(target, prediction)``."""

    def __init__(self, rouge_types: Sequence[str] = ROUGE_TYPES) -> None:
        unknown = [t for t in rouge_types if t not in ROUGE_TYPES]
        if unknown:
            raise ValueError(f"rouge_types: unknown {unknown}; expected some of {list(ROUGE_TYPES)}")
        self.rouge_types = tuple(rouge_types)
        self._tok = _Tokenizer()

    def score(self, target: str, prediction: str) -> dict[str, Score]:
        tok = self._tok
        types = self.rouge_types
        out: dict[str, Score] = {}
        need_flat = any(t != "rougeLsum" for t in types)
        if "rougeLsum" in types:
            t_sents, p_sents = tok.sentence_ids(target), tok.sentence_ids(prediction)
            out["rougeLsum"] = _score_lcs_summary(t_sents, p_sents)
            if need_flat:
                # Lines are split on "\n", itself a separator, so the flat tokens are the concatenation.
                t_ids = [i for s in t_sents for i in s]
                p_ids = [i for s in p_sents for i in s]
        elif need_flat:
            t_ids, p_ids = tok.ids(target), tok.ids(prediction)
        if "rouge1" in types:
            out["rouge1"] = _ngram_score(t_ids, p_ids)
        if "rouge2" in types:
            out["rouge2"] = _ngram_score(_bigrams(t_ids), _bigrams(p_ids))
        if "rougeL" in types:
            out["rougeL"] = _score_lcs(t_ids, p_ids)
        return {t: out[t] for t in types}


def _score_chunk(pairs: list[tuple[str, str]]) -> list[tuple[float, ...]]:
    scorer = _worker_scorer()
    rows = []
    for target, prediction in pairs:
        s = scorer.score(target, prediction)
        rows.append(tuple(x for t in ROUGE_TYPES for x in s[t]))
    return rows


_WORKER_SCORER: RougeScorer | None = None


def _worker_scorer() -> RougeScorer:
    # One scorer per process, so the word->stem cache is reused across chunks.
    global _WORKER_SCORER
    if _WORKER_SCORER is None:
        _WORKER_SCORER = RougeScorer()
    return _WORKER_SCORER

"""Deterministic prompt tokens for traces, sessions and the shared-prefix workload.

Every generated prompt is made of *streams*: a stream is named by a 64-bit key (mixed from a seed, a
domain and the stream's own ids: a trace's hash id, a session's turn, a system prompt's index) and its
token ``j`` depends only on the key and ``j``. So a stream cut short is a prefix of the same stream cut
longer (a Mooncake block cut to ``input_length``, a system prompt of 256 tokens is the first 256 of
the one of 512), equal keys give equal tokens, and different keys give different tokens.

A stream is built 512 tokens at a time: each chunk XORs three slices of three fixed pseudo-random
tables (2**20 + 512 entries each) at offsets taken from 60 bits of the chunk's key. That is three
slices and two XORs per chunk (~2 us), where a counter-based hash over every token costs five times
more per trace line; two different keys give the same chunk only when all 60 offset bits agree (about
2**-60 per pair). The tables are made once per process from a fixed seed (12 MB: int32, as
mixed-width XORs cost a third more) and never change.

Token ids lie in the synthetic datasets' word range (``4 .. 4 + 2047``), so the sim and the synthetic
decoder accept them.
"""

from __future__ import annotations

import hashlib

import numpy as np

from scenarios.synthetic import _FIRST_WORD_ID

VOCAB_TOKENS = 2048  # synthetic_dataset's default vocabulary: ids _FIRST_WORD_ID .. _FIRST_WORD_ID + 2047
CHUNK_TOKENS = 512
_TABLE_BITS = 20
_TABLE_MASK = (1 << _TABLE_BITS) - 1
_TABLE_SEED = 0x6C707570  # fixed: the tables are part of the format, not of a run's seed
_M64 = (1 << 64) - 1

# Domains keep the streams of different kinds apart: hash id 7 and session turn 7 never coincide.
DOMAIN_BLOCK = 1  # a trace's hash id (one prefix block)
DOMAIN_LINE = 2  # a trace row without hash ids (a unique prompt)
DOMAIN_TURN = 3  # a session turn's new user tokens
DOMAIN_TOOL = 4  # a tool call's result tokens
DOMAIN_SYSTEM = 5  # a shared system prompt
DOMAIN_USER = 6  # a shared-prefix dataset's per-user tokens


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a bijection on 64-bit ints that spreads every input bit over the output."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def stream_key(*parts: int) -> int:
    """One 64-bit key from integer parts (seed, domain, ids...); each step is a bijection of the last part,
    so ``stream_key(a, b, c) == extend_key(stream_key(a, b), c)``."""
    h = 0
    for part in parts:
        h = _mix64(h ^ (part & _M64))
    return h


def extend_key(key: int, part: int) -> int:
    """The key of one more part after ``key`` (a trace's per-block keys from one prefix)."""
    return _mix64(key ^ (part & _M64))


def text_key(text: str) -> int:
    """A 64-bit integer for a string id (a session id), stable across processes and platforms."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


_TABLES: tuple[np.ndarray, ...] = ()


def _tables() -> tuple[np.ndarray, ...]:
    global _TABLES
    if not _TABLES:
        rng = np.random.default_rng(_TABLE_SEED)
        size = (1 << _TABLE_BITS) + CHUNK_TOKENS
        # One assignment: two threads racing here both build the same tables, and either result is right.
        _TABLES = tuple(rng.integers(0, VOCAB_TOKENS, size, dtype=np.int32) for _ in range(3))
    return _TABLES


def fill_stream(out: np.ndarray, start: int, key: int, n: int) -> None:
    """Write the first ``n`` tokens of stream ``key`` as word offsets into the int32 buffer
    ``out[start:start + n]`` (:func:`to_ids` shifts a filled buffer into token ids)."""
    a, b, c = _TABLES or _tables()
    for chunk in range(0, n, CHUNK_TOKENS):
        m = min(CHUNK_TOKENS, n - chunk)
        k = _mix64(key ^ chunk)
        ia, ib, ic = k & _TABLE_MASK, (k >> _TABLE_BITS) & _TABLE_MASK, (k >> 2 * _TABLE_BITS) & _TABLE_MASK
        dst = out[start + chunk : start + chunk + m]
        np.bitwise_xor(a[ia : ia + m], b[ib : ib + m], out=dst)
        dst ^= c[ic : ic + m]


def to_ids(buf: np.ndarray) -> np.ndarray:
    """A filled int32 buffer of word offsets -> token ids in the synthetic word range (in place)."""
    buf += _FIRST_WORD_ID
    return buf


def stream_tokens(key: int, n: int) -> np.ndarray:
    """The first ``n`` tokens of stream ``key`` as int32 ids."""
    if n < 0:
        raise ValueError(f"n: expected a token count >= 0, got {n}")
    buf = np.empty(n, dtype=np.int32)
    fill_stream(buf, 0, key, n)
    return to_ids(buf)


def _check_index(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name}: expected an index >= 0, got {value}")


def turn_tokens(session_id: str, turn: int, n: int, seed: int = 0) -> np.ndarray:
    """The ``n`` new user tokens of turn ``turn`` (0-based) of session ``session_id``."""
    _check_index("turn", turn)
    return stream_tokens(stream_key(seed, DOMAIN_TURN, text_key(session_id), turn), n)


def tool_result_tokens(session_id: str, turn: int, call: int, n: int, seed: int = 0) -> np.ndarray:
    """The ``n`` tokens of the result of tool call ``call`` (0-based) within turn ``turn`` of a session."""
    _check_index("turn", turn)
    _check_index("call", call)
    return stream_tokens(stream_key(seed, DOMAIN_TOOL, text_key(session_id), turn, call), n)


def system_tokens(index: int, n: int, seed: int = 0) -> np.ndarray:
    """System prompt number ``index`` (the shared-prefix dataset has several), ``n`` tokens."""
    _check_index("index", index)
    return stream_tokens(stream_key(seed, DOMAIN_SYSTEM, index), n)


def system_prompt_tokens(n: int, seed: int = 0) -> np.ndarray:
    """The shared system prompt every synthetic session starts with: system prompt 0 of the
    shared-prefix dataset with the same seed."""
    return system_tokens(0, n, seed)

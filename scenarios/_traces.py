"""Timestamped trace replay: what to send and when, streamed from a trace file of any size.

:func:`iter_trace` turns a trace (Mooncake-style JSONL, Azure's or BurstGPT's CSV) into
:class:`TraceRequest` s: an exact due time in integer ns from the first request, after the speed factor
and the rate cap, the prompt's token ids and the output length. :func:`check_trace` reads the same file
once, checks every line and sums it up (:class:`TraceSummary`), so a bad line stops a run before it
starts. Both stream: memory stays constant whatever the trace's length, except check_trace's set of seen
hash ids, which stops growing at :data:`MAX_TRACKED_IDS` (the summary then says its reuse count is a
lower bound). The formats and guarantees are in docs/traces-and-sessions.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scenarios._tokens import DOMAIN_BLOCK, DOMAIN_LINE, extend_key, fill_stream, stream_key, to_ids
from scenarios._trace_formats import (
    EXACT,
    MAX_TOKENS,
    Row,
    TraceError,
    TraceFormat,
    detect_format,
    open_trace,
    read_rows,
)

MAX_TRACKED_IDS = 1_000_000  # distinct hash ids check_trace remembers (~70 MB of Python ints at most)
_NS_PER_S = 1_000_000_000

__all__ = ["MAX_TRACKED_IDS", "TraceError", "TraceRequest", "TraceSpec", "TraceSummary", "check_trace", "iter_trace"]


class TraceSpec(BaseModel):
    """Which trace to replay and how.

    ``speed`` 2.0 replays twice as fast; ``duration_s`` stops at the first request due later than that
    (due times after speed and rate cap: the replay's own clock); ``max_rate`` (requests/s) puts each due
    time at least ``1/max_rate`` after the previous one; ``block_tokens`` is the size of one Mooncake
    hash block; ``seed`` picks the prompt tokens.
    """

    model_config = ConfigDict(extra="forbid")
    path: Path
    format: Literal["auto", "mooncake", "azure", "burstgpt"] = "auto"
    speed: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    duration_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_rate: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    block_tokens: int = Field(default=512, ge=1, le=MAX_TOKENS)
    seed: int = Field(default=0, ge=0, lt=1 << 63)


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request to send: ``due_ns`` after the replay's start (the first request is due at 0)."""

    due_ns: int
    input_ids: np.ndarray  # int32, the prompt
    output_tokens: int  # >= 1: max_new_tokens
    line: int  # 1-based line of the trace file


class TraceSummary(BaseModel):
    """What a trace holds, as replayed with its spec (requests past ``duration_s`` are not counted)."""

    model_config = ConfigDict(extra="forbid")
    path: Path
    format: TraceFormat
    n_requests: int
    skipped_rows: int = Field(description="rows with no output tokens (failed requests), not replayed")
    rows_past_duration: int = Field(description="rows after the first request due past duration_s")
    span_s: float = Field(description="due time of the last request replayed (after speed and rate cap)")
    input_tokens_mean: float
    input_tokens_max: int
    output_tokens_mean: float
    output_tokens_max: int
    prefix_blocks_total: int = Field(description="hash-id blocks over all requests (Mooncake only)")
    prefix_blocks_reused: int = Field(description="blocks whose hash id appeared on an earlier request")
    reuse_exact: bool = Field(description="False when more distinct ids came than are tracked: reused is a lower bound")


def _ratio(value: float) -> tuple[int, int]:
    """A float as the decimal it is written as (``1.1`` is 11/10, not the binary double near it)."""
    return Decimal(repr(value)).as_integer_ratio()


def _div_round(num: int, den: int) -> int:
    """``num / den`` rounded to the nearest integer, halves to even (``den > 0``)."""
    q, r = divmod(num, den)
    twice = 2 * r
    if twice > den or (twice == den and q % 2 == 1):
        q += 1
    return q


class _Timeline:
    """Source timestamps (exact ns) -> due times in integer ns.

    ``due = round((t - t_first) / speed)`` (nearest ns, halves to even), then with a rate cap
    ``due = max(due, previous_due + ceil(1e9 / max_rate))``: ceil, so no two requests are ever closer
    than ``1/max_rate``. ``past_duration(due)`` is exact: ``due > duration_s * 1e9``.
    """

    def __init__(self, spec: TraceSpec) -> None:
        self._speed = _ratio(spec.speed)
        self._unit_speed = self._speed == (1, 1)
        self._gap_ns = 0
        if spec.max_rate is not None:
            p, q = _ratio(spec.max_rate)
            self._gap_ns = -(-_NS_PER_S * q // p)
        self._limit = _ratio(spec.duration_s) if spec.duration_s is not None else None
        self._first: int | Decimal | None = None
        self._prev_due: int | None = None

    def due_ns(self, ts_ns: int | Decimal) -> int:
        if self._first is None:
            self._first = ts_ns
            due = 0
        else:
            if type(ts_ns) is int and type(self._first) is int:
                delta: int | Decimal = ts_ns - self._first
            else:
                delta = EXACT.subtract(Decimal(ts_ns), Decimal(self._first))
            if self._unit_speed and type(delta) is int:
                due = delta
            else:
                num, den = delta.as_integer_ratio()
                sp, sq = self._speed
                due = _div_round(num * sq, den * sp)
        if self._gap_ns and self._prev_due is not None:
            due = max(due, self._prev_due + self._gap_ns)
        self._prev_due = due
        return due

    def past_duration(self, due_ns: int) -> bool:
        if self._limit is None:
            return False
        p, q = self._limit
        return due_ns * q > _NS_PER_S * p


def prompt_ids(row: Row, block_tokens: int, seed: int) -> np.ndarray:
    """The prompt of a row: its hash blocks in order (the last cut to input_length), else a unique stream.

    Block ``h``'s tokens depend on (seed, h) only, so rows sharing leading hash ids share that prefix exactly.
    """
    buf = np.empty(row.input_tokens, dtype=np.int32)
    if row.hash_ids is None:
        fill_stream(buf, 0, extend_key(_prefix_key(seed, DOMAIN_LINE), row.line), row.input_tokens)
    else:
        prefix = _prefix_key(seed, DOMAIN_BLOCK)
        for i, h in enumerate(row.hash_ids):
            start = i * block_tokens
            fill_stream(buf, start, extend_key(prefix, h), min(block_tokens, row.input_tokens - start))
    return to_ids(buf)


@lru_cache(maxsize=64)
def _prefix_key(seed: int, domain: int) -> int:
    return stream_key(seed, domain)


def iter_trace(spec: TraceSpec) -> Iterator[TraceRequest]:
    """The trace's requests in order, streamed; stops at the first request due past ``duration_s``.

    Rows with no output tokens are skipped. A bad line raises :class:`TraceError` when reached, so
    run :func:`check_trace` first to refuse a bad trace before sending anything.
    """
    path = Path(spec.path)
    fmt = detect_format(path, spec.format)
    timeline = _Timeline(spec)
    sent = False
    with open_trace(path) as fh:
        for row in read_rows(path, fmt, fh, spec.block_tokens):
            if row.output_tokens == 0:
                continue
            due = timeline.due_ns(row.ts_ns)
            if timeline.past_duration(due):
                return
            sent = True
            yield TraceRequest(due, prompt_ids(row, spec.block_tokens, spec.seed), row.output_tokens, row.line)
    if not sent:
        raise _no_requests(path)


def _no_requests(path: Path) -> TraceError:
    return TraceError(f"{path}: file: expected at least one request with output tokens >= 1, got none")


@dataclass(slots=True)
class _Tally:
    n: int = 0
    skipped: int = 0
    past: int = 0
    last_due: int = 0
    in_sum: int = 0
    in_max: int = 0
    out_sum: int = 0
    out_max: int = 0
    blocks: int = 0
    reused: int = 0
    exact: bool = True

    def add(self, row: Row, due: int, seen: set[int]) -> None:
        self.n += 1
        self.last_due = due
        self.in_sum += row.input_tokens
        self.in_max = max(self.in_max, row.input_tokens)
        self.out_sum += row.output_tokens
        self.out_max = max(self.out_max, row.output_tokens)
        if row.hash_ids is not None:
            self.blocks += len(row.hash_ids)
            for h in row.hash_ids:
                if h in seen:
                    self.reused += 1
                elif len(seen) < MAX_TRACKED_IDS:
                    seen.add(h)
                else:
                    self.exact = False


def check_trace(spec: TraceSpec) -> TraceSummary:
    """Read the whole trace once, check every line and sum it up; the first bad line raises :class:`TraceError`.

    Lines past ``duration_s`` are checked too (a bad line anywhere refuses the trace) but not counted.
    """
    path = Path(spec.path)
    fmt = detect_format(path, spec.format)
    timeline = _Timeline(spec)
    tally = _Tally()
    seen: set[int] = set()
    with open_trace(path) as fh:
        for row in read_rows(path, fmt, fh, spec.block_tokens):
            if tally.past:
                tally.past += 1
            elif row.output_tokens == 0:
                tally.skipped += 1
            else:
                due = timeline.due_ns(row.ts_ns)
                if timeline.past_duration(due):
                    tally.past = 1
                else:
                    tally.add(row, due, seen)
    if tally.n == 0:
        raise _no_requests(path)
    return TraceSummary(
        path=path,
        format=fmt,
        n_requests=tally.n,
        skipped_rows=tally.skipped,
        rows_past_duration=tally.past,
        span_s=tally.last_due / _NS_PER_S,
        input_tokens_mean=tally.in_sum / tally.n,
        input_tokens_max=tally.in_max,
        output_tokens_mean=tally.out_sum / tally.n,
        output_tokens_max=tally.out_max,
        prefix_blocks_total=tally.blocks,
        prefix_blocks_reused=tally.reused,
        reuse_exact=tally.exact,
    )

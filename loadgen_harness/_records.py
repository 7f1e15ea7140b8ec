"""Per-query records: column chunks on the hot path, ``queries.npz`` on disk, success-only figures.

The bridge writes one row per issued sample into plain 1-D numpy columns (one store per field, no
per-query objects). Rows live in fixed-size chunks appended on demand, so memory follows what the
run really issued, never the plan: a plan of 1e9 queries that the SUT answers at 500/s costs what
500/s costs, and nothing is ever copied to grow. The chunk size is a power of two between 1,024
and 65,536 rows sized from the expected count (at most ~6 MB per chunk). ``save`` streams the chunks
into the structured array of ``queries.npz`` one at a time, so saving adds one chunk, not a second
copy of the run. Times are int64 ns: harness times are relative to the run start on the harness
clock; ``sut_*`` times are the SUT's own clock as it reported them. -1 = not reached.

Inter-token latency (ITL) here is what the harness sees of the stream: ``last_msg_ns`` is when the
last streamed message arrived and ``max_gap_ns`` the longest wait between two consecutive messages
of the query (-1 with a single message). A message may carry several tokens (the SUT's chunk size),
so per-token ITL is the mean over a query: (last message - first message) / (tokens after the first
message). Per-message gaps are only compared against a running maximum on the hot path.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common import atomic_path
from loadgen_harness._results import (
    Goodput,
    InterTokenLatency,
    LatencyLimits,
    Percentiles,
    ReasoningStats,
    SuccessStats,
    TokenStats,
)

QUERY_RECORD_DTYPE = np.dtype(
    [
        ("sample_index", np.int64),
        ("issue_ns", np.int64),
        ("first_token_ns", np.int64),
        ("done_ns", np.int64),
        ("n_tokens", np.int64),
        ("n_streamed", np.int64),
        ("n_chunks", np.int64),
        ("first_chunk_tokens", np.int64),
        ("status", np.int64),
        ("sut_arrival_ns", np.int64),
        ("sut_first_token_ns", np.int64),
        ("sut_last_token_ns", np.int64),
        ("stream_matches_output", np.bool_),
        # Index into results.json's ``replicas`` of the replica that served the query, -1 = unknown.
        ("replica", np.int32),
        ("last_msg_ns", np.int64),
        ("max_gap_ns", np.int64),
        # Reasoning models: the output's leading reasoning tokens (0: none), and when its first answer
        # token arrived (harness clock; -1: the answer never started).
        ("n_reasoning", np.int64),
        ("first_answer_ns", np.int64),
        # When the request actually left the harness (harness clock). ``issue_ns`` is when it was due: a load
        # shape's schedule time, or LoadGen's issue callback; latency counts from there, send - due is the
        # client's dispatch lag. -1: never sent (failed before the call).
        ("sent_ns", np.int64),
        # Multi-turn and agentic sessions: the session's index in the run (-1: not a session), the turn
        # (the user's message index), and the tool step (0: the user's message; k: after the k-th tool result).
        ("session", np.int64),
        ("turn", np.int32),
        ("tool_step", np.int32),
        # The final message's finish reason (proto FinishReason: 1 EOS, 2 length, 4 tool call; 0: none).
        ("finish_reason", np.int32),
        # Leading prompt tokens the SUT served from its prefix cache (0: none, or no cache).
        ("cached_tokens", np.int64),
        # The prompt's length in tokens, where the sender knew it (load shapes); -1 otherwise.
        ("n_prompt", np.int64),
    ]
)
QUERIES_FILE = "queries.npz"
_FIELDS: tuple[str, ...] = tuple(QUERY_RECORD_DTYPE.names or ())
# The columns of queries.npz files written before the ITL columns existed (they are read and upgraded).
_V1_FIELDS = _FIELDS[: _FIELDS.index("stream_matches_output") + 1]
# Columns that start at 0 rather than -1 ("none" rather than "not reached"), in new rows and old files.
_ZERO_FIELDS = frozenset({"n_reasoning", "tool_step", "finish_reason", "cached_tokens"})
MIN_CHUNK_ROWS = 1024
MAX_CHUNK_ROWS = 65536


class RecordChunk:
    """One block of rows: a column array per field (``chunk.done_ns[j] = ...`` on the hot path)."""

    __slots__ = (
        "cached_tokens",
        "done_ns",
        "finish_reason",
        "first_answer_ns",
        "first_chunk_tokens",
        "first_token_ns",
        "issue_ns",
        "last_msg_ns",
        "max_gap_ns",
        "n_chunks",
        "n_prompt",
        "n_reasoning",
        "n_streamed",
        "n_tokens",
        "replica",
        "sample_index",
        "sent_ns",
        "session",
        "status",
        "stream_matches_output",
        "sut_arrival_ns",
        "sut_first_token_ns",
        "sut_last_token_ns",
        "tool_step",
        "turn",
    )
    sample_index: np.ndarray
    issue_ns: np.ndarray
    first_token_ns: np.ndarray
    done_ns: np.ndarray
    n_tokens: np.ndarray
    n_streamed: np.ndarray
    n_chunks: np.ndarray
    first_chunk_tokens: np.ndarray
    status: np.ndarray
    sut_arrival_ns: np.ndarray
    sut_first_token_ns: np.ndarray
    sut_last_token_ns: np.ndarray
    stream_matches_output: np.ndarray
    replica: np.ndarray
    last_msg_ns: np.ndarray
    max_gap_ns: np.ndarray
    n_reasoning: np.ndarray
    first_answer_ns: np.ndarray
    sent_ns: np.ndarray
    session: np.ndarray
    turn: np.ndarray
    tool_step: np.ndarray
    finish_reason: np.ndarray
    cached_tokens: np.ndarray
    n_prompt: np.ndarray

    def __init__(self, rows: int) -> None:
        for name in _FIELDS:
            dt = QUERY_RECORD_DTYPE.fields[name][0]  # type: ignore[index]
            zero = dt == np.bool_ or name in _ZERO_FIELDS
            setattr(self, name, np.zeros(rows, dtype=dt) if zero else np.full(rows, -1, dtype=dt))

    def column(self, name: str) -> np.ndarray:
        col: np.ndarray = getattr(self, name)
        return col


assert set(RecordChunk.__slots__) == set(_FIELDS), "RecordChunk's columns must be QUERY_RECORD_DTYPE's fields"


class _Column:
    """One field across every chunk, indexed by global row (for writers that hold a row number)."""

    __slots__ = ("_name", "_rec")

    def __init__(self, rec: QueryRecords, name: str) -> None:
        self._rec = rec
        self._name = name

    def __getitem__(self, row: int) -> Any:
        chunk, j = self._rec.locate(row)
        return chunk.column(self._name)[j]

    def __setitem__(self, row: int, value: Any) -> None:
        chunk, j = self._rec.locate(row)
        chunk.column(self._name)[j] = value

    def __len__(self) -> int:
        return self._rec.n


class QueryRecords:
    """Chunked column store for per-query records; ``slot_ref()`` hands out rows in issue order.

    The bridge uses ``slot_ref`` (the row's chunk and index within it). ``slot`` returns a global
    row number instead, usable with the ``rec.<field>[row]`` column views.
    """

    sample_index: _Column
    issue_ns: _Column
    first_token_ns: _Column
    done_ns: _Column
    n_tokens: _Column
    n_streamed: _Column
    n_chunks: _Column
    first_chunk_tokens: _Column
    status: _Column
    sut_arrival_ns: _Column
    sut_first_token_ns: _Column
    sut_last_token_ns: _Column
    stream_matches_output: _Column
    replica: _Column
    last_msg_ns: _Column
    max_gap_ns: _Column
    n_reasoning: _Column
    first_answer_ns: _Column
    sent_ns: _Column
    session: _Column
    turn: _Column
    tool_step: _Column
    finish_reason: _Column
    cached_tokens: _Column
    n_prompt: _Column

    def __init__(self, capacity: int = 1024) -> None:
        """``capacity``: the expected row count; it only sizes the chunks, nothing is preallocated for it."""
        rows = 1 << max(0, int(capacity) - 1).bit_length()
        self.chunk_rows = min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, rows))
        self._shift = self.chunk_rows.bit_length() - 1
        self._mask = self.chunk_rows - 1
        self.n = 0
        self._chunks: list[RecordChunk] = []
        self._new_chunk: type[RecordChunk] = RecordChunk  # what a subclass stores its rows in
        for name in _FIELDS:
            setattr(self, name, _Column(self, name))

    @property
    def capacity(self) -> int:
        """Rows allocated so far (a whole number of chunks)."""
        return len(self._chunks) * self.chunk_rows

    @property
    def nbytes(self) -> int:
        return self.capacity * QUERY_RECORD_DTYPE.itemsize

    def slot_ref(self, sample_index: int, issue_ns: int) -> tuple[RecordChunk, int]:
        """A new row holding (sample_index, issue_ns): its chunk and index within the chunk."""
        i = self.n
        j = i & self._mask
        if j == 0:
            self._chunks.append(self._new_chunk(self.chunk_rows))
        chunk = self._chunks[-1]
        self.n = i + 1
        chunk.sample_index[j] = sample_index
        chunk.issue_ns[j] = issue_ns
        return chunk, j

    def slot(self, sample_index: int, issue_ns: int) -> int:
        """Like ``slot_ref`` but returns the global row number."""
        self.slot_ref(sample_index, issue_ns)
        return self.n - 1

    def locate(self, row: int) -> tuple[RecordChunk, int]:
        if not 0 <= row < self.n:
            raise IndexError(f"row {row} out of range (0..{self.n - 1})")
        return self._chunks[row >> self._shift], row & self._mask

    def column(self, name: str) -> np.ndarray:
        """One field of every row as a new contiguous array."""
        if name not in _FIELDS:
            raise KeyError(name)
        out = np.empty(self.n, dtype=QUERY_RECORD_DTYPE.fields[name][0])  # type: ignore[index]
        for start, chunk in self._spans():
            rows = min(self.chunk_rows, self.n - start)
            out[start : start + rows] = chunk.column(name)[:rows]
        return out

    def _spans(self) -> Iterator[tuple[int, RecordChunk]]:
        n_chunks = (self.n + self.chunk_rows - 1) >> self._shift
        for k in range(n_chunks):
            yield k * self.chunk_rows, self._chunks[k]

    def _chunk_arrays(self) -> Iterator[np.ndarray]:
        """Structured arrays of QUERY_RECORD_DTYPE, one chunk at a time (the last one trimmed)."""
        for start, chunk in self._spans():
            rows = min(self.chunk_rows, self.n - start)
            arr = np.empty(rows, dtype=QUERY_RECORD_DTYPE)
            for name in _FIELDS:
                arr[name] = chunk.column(name)[:rows]
            yield arr

    def to_array(self) -> np.ndarray:
        out = np.empty(self.n, dtype=QUERY_RECORD_DTYPE)
        start = 0
        for arr in self._chunk_arrays():
            out[start : start + arr.size] = arr
            start += arr.size
        return out

    def save(self, directory: str | Path) -> Path:
        """Write ``queries.npz`` atomically, streaming one chunk at a time (what ``np.load`` reads back)."""
        path = Path(directory) / QUERIES_FILE
        header = {
            "descr": np.lib.format.dtype_to_descr(QUERY_RECORD_DTYPE),
            "fortran_order": False,
            "shape": (self.n,),
        }
        with (
            atomic_path(path, suffix=".tmp.npz") as tmp,
            zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf,
            zf.open("records.npy", "w", force_zip64=True) as fh,
        ):
            np.lib.format.write_array_header_1_0(fh, header)
            for arr in self._chunk_arrays():
                fh.write(arr.tobytes())
        return path

    def success_stats(self) -> SuccessStats:
        return success_stats({name: self.column(name) for name in _STATS_FIELDS})

    def goodput(self, limits: LatencyLimits | None) -> Goodput | None:
        return goodput(self.columns(_STATS_FIELDS), limits)

    def inter_token_latency(self) -> InterTokenLatency | None:
        return inter_token_latency(self.columns(_ITL_FIELDS))

    def reasoning_stats(self) -> ReasoningStats | None:
        return reasoning_stats(self.columns(_REASONING_FIELDS))

    def columns(self, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Some fields of every row, each as a new contiguous array."""
        return {name: self.column(name) for name in names}


def load_query_records(path: str | Path) -> np.ndarray:
    """Load the structured per-query array from a run directory or a ``queries.npz`` path."""
    p = Path(path)
    if p.is_dir():
        p = p / QUERIES_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{p}: per-query records not found")
    with np.load(p, allow_pickle=False) as z:
        if "records" not in z:
            raise ValueError(f"{p}: field 'records': expected a structured array")
        arr = z["records"]
    if arr.dtype != QUERY_RECORD_DTYPE:
        names = arr.dtype.names or ()
        if not names or not set(names) <= set(_FIELDS) or not set(_FIELDS[: len(_V1_FIELDS)]) <= set(names):
            raise ValueError(f"{p}: field 'records': unexpected dtype {arr.dtype}")
        # Records written before later columns: those read as "not reached" (reasoning tokens as none).
        upgraded = np.full(arr.shape, -1, dtype=QUERY_RECORD_DTYPE)
        for name in _ZERO_FIELDS:
            upgraded[name] = 0
        for name in names:
            upgraded[name] = arr[name]
        arr = upgraded
    return arr


# ---- figures over successful queries only ----

_STATS_FIELDS = ("issue_ns", "first_token_ns", "done_ns", "n_tokens", "status")


def _pcts(values_ns: np.ndarray) -> Percentiles:
    if values_ns.size == 0:
        return Percentiles()
    # "higher" picks a recorded value at or above the rank, as LoadGen's sorted[n * p] does.
    p50, p90, p99 = np.percentile(values_ns, [50, 90, 99], method="higher") / 1e6
    return Percentiles(p50=round(float(p50), 4), p90=round(float(p90), 4), p99=round(float(p99), 4))


def success_stats(records: Mapping[str, np.ndarray] | np.ndarray, window_s: float | None = None) -> SuccessStats:
    """Rates and latency percentiles over the queries that succeeded (status 0), from per-query records.

    A failed query is completed to LoadGen at once, so LoadGen's own rates count it as done and its
    percentiles count its (short) time as a latency. Here the window is the same as LoadGen's (first
    issue to last completion, every query), but only successful queries count towards the rate, the
    tokens and the percentiles. Latencies are from the harness's issue time, TPOT is
    (done - first token) / (tokens - 1) as LoadGen computes it. ``window_s`` replaces the window (a
    replica's part of a run is rated over the whole run's window, so the replicas' rates add up).
    """
    issue = np.asarray(records["issue_ns"], dtype=np.int64)
    first = np.asarray(records["first_token_ns"], dtype=np.int64)
    done = np.asarray(records["done_ns"], dtype=np.int64)
    n_tok = np.asarray(records["n_tokens"], dtype=np.int64)
    status = np.asarray(records["status"], dtype=np.int64)
    finished = done >= 0
    ok = finished & (status == 0) & (issue >= 0) & (done >= issue)
    n_ok = int(ok.sum())
    n_failed = int((finished & (status != 0)).sum())
    if window_s is None and finished.any() and (issue >= 0).any():
        window_s = float(done[finished].max() - issue[issue >= 0].min()) / 1e9
    rate_ok = window_s is not None and window_s > 0
    has_first = ok & (first >= issue) & (first <= done)
    multi = has_first & (n_tok > 1)
    tpot = (done[multi] - first[multi]) / (n_tok[multi] - 1)
    return SuccessStats(
        n_queries=n_ok,
        n_failed=n_failed,
        window_s=None if window_s is None else round(window_s, 6),
        qps=round(n_ok / window_s, 4) if rate_ok and window_s else None,
        tokens_per_second=round(float(n_tok[ok].sum()) / window_s, 4) if rate_ok and window_s else None,
        ttft_ms=_pcts(first[has_first] - issue[has_first]),
        tpot_ms=_pcts(tpot),
        latency_ms=_pcts(done[ok] - issue[ok]),
    )


# ---- goodput and inter-token latency, over the same records ----

_ITL_FIELDS = ("first_token_ns", "status", "n_streamed", "first_chunk_tokens", "last_msg_ns", "max_gap_ns")


def goodput(records: Mapping[str, np.ndarray] | np.ndarray, limits: LatencyLimits | None) -> Goodput | None:
    """Queries that succeeded within every per-query limit, as a share of all finished queries and a rate.

    A query is good when it succeeded and its TTFT <= the TTFT limit and its TPOT <= the TPOT limit
    (a run judged on end-to-end latency: latency <= that limit). A query of one token has no TPOT and
    meets that limit. The window is :func:`success_stats`' (LoadGen's), so goodput QPS <= successful QPS.
    None when the run has no per-query limit (Offline, SingleStream, MultiStream).
    """
    if limits is None or (limits.ttft_ms is None and limits.tpot_ms is None and limits.latency_ms is None):
        return None
    issue = np.asarray(records["issue_ns"], dtype=np.int64)
    first = np.asarray(records["first_token_ns"], dtype=np.int64)
    done = np.asarray(records["done_ns"], dtype=np.int64)
    n_tok = np.asarray(records["n_tokens"], dtype=np.int64)
    status = np.asarray(records["status"], dtype=np.int64)
    finished = done >= 0
    good = finished & (status == 0) & (issue >= 0) & (done >= issue)
    if limits.ttft_ms is not None:
        good &= (first >= issue) & (first - issue <= limits.ttft_ms * 1e6)
    if limits.tpot_ms is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            tpot = np.where(n_tok > 1, (done - first) / np.maximum(n_tok - 1, 1), 0.0)
        good &= tpot <= limits.tpot_ms * 1e6
    if limits.latency_ms is not None:
        good &= done - issue <= limits.latency_ms * 1e6
    n_done = int(finished.sum())
    n_good = int(good.sum())
    window_s = None
    if finished.any() and (issue >= 0).any():
        window_s = float(done[finished].max() - issue[issue >= 0].min()) / 1e9
    return Goodput(
        n_good_queries=n_good,
        n_queries=n_done,
        fraction=round(n_good / n_done, 6) if n_done else None,
        qps=round(n_good / window_s, 4) if window_s else None,
        ttft_limit_ms=limits.ttft_ms,
        tpot_limit_ms=limits.tpot_ms,
        latency_limit_ms=limits.latency_ms,
    )


def inter_token_latency(records: Mapping[str, np.ndarray] | np.ndarray) -> InterTokenLatency | None:
    """Per-query ITL (mean time per token after the first message) and longest stream gap, over successful queries."""
    first = np.asarray(records["first_token_ns"], dtype=np.int64)
    last = np.asarray(records["last_msg_ns"], dtype=np.int64)
    status = np.asarray(records["status"], dtype=np.int64)
    after_first = np.asarray(records["n_streamed"], dtype=np.int64) - np.asarray(
        records["first_chunk_tokens"], dtype=np.int64
    )
    gap = np.asarray(records["max_gap_ns"], dtype=np.int64)
    ok = (status == 0) & (first >= 0) & (last >= first) & (after_first > 0)
    if not ok.any():
        return None
    itl = (last[ok] - first[ok]) / after_first[ok]
    gaps = gap[ok & (gap >= 0)]
    return InterTokenLatency(n_queries=int(ok.sum()), itl_ms=_pcts(itl), max_gap_ms=_pcts(gaps))


_REASONING_FIELDS = ("issue_ns", "done_ns", "n_tokens", "status", "n_reasoning", "first_answer_ns")


def _token_stats(counts: np.ndarray) -> TokenStats:
    if counts.size == 0:
        return TokenStats()
    p50, p90, p99 = np.percentile(counts, [50, 90, 99], method="higher")
    return TokenStats(
        mean=round(float(counts.mean()), 4), p50=float(p50), p90=float(p90), p99=float(p99), max=int(counts.max())
    )


def reasoning_stats(records: Mapping[str, np.ndarray] | np.ndarray) -> ReasoningStats | None:
    """Reasoning and answer tokens and the time to the first answer token, over successful queries.

    None when no query (successful or not) carried a reasoning token: a model without reasoning has
    no such figures, and TTFA would only repeat TTFT.
    """
    n_reason = np.asarray(records["n_reasoning"], dtype=np.int64)
    if not (n_reason > 0).any():
        return None
    issue = np.asarray(records["issue_ns"], dtype=np.int64)
    done = np.asarray(records["done_ns"], dtype=np.int64)
    n_tok = np.asarray(records["n_tokens"], dtype=np.int64)
    answer_at = np.asarray(records["first_answer_ns"], dtype=np.int64)
    ok = (done >= 0) & (np.asarray(records["status"], dtype=np.int64) == 0) & (issue >= 0)
    reasoning = np.clip(n_reason[ok], 0, None)
    answer = np.clip(n_tok[ok] - reasoning, 0, None)
    answered = ok & (answer_at >= issue) & (answer_at >= 0)
    total = int(n_tok[ok].clip(0).sum())
    return ReasoningStats(
        n_queries=int(ok.sum()),
        n_with_reasoning=int((reasoning > 0).sum()),
        n_without_answer=int((ok & ~answered).sum()),
        reasoning_tokens=_token_stats(reasoning),
        answer_tokens=_token_stats(answer),
        reasoning_fraction=round(float(reasoning.sum()) / total, 6) if total else None,
        ttfa_ms=_pcts(answer_at[answered] - issue[answered]),
    )

"""Per-query records: preallocated column arrays on the hot path, ``queries.npz`` on disk.

The bridge writes one slot per issued sample into plain 1-D numpy columns (one store per field,
no per-query objects), grows them by doubling when a run issues more than expected, and saves a
structured array at the end. Times are int64 ns: harness times are relative to the run start on
the harness clock; ``sut_*`` times are the SUT's own clock as it reported them. -1 = not reached.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    ]
)
QUERIES_FILE = "queries.npz"


class QueryRecords:
    """Column store for per-query records; ``slot()`` hands out rows in issue order."""

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

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self._alloc(max(16, capacity))

    def _alloc(self, cap: int) -> None:
        old = {name: getattr(self, name) for name in QUERY_RECORD_DTYPE.names or ()} if self.n else {}
        for name in QUERY_RECORD_DTYPE.names or ():
            dt = QUERY_RECORD_DTYPE.fields[name][0]  # type: ignore[index]
            col = np.zeros(cap, dtype=dt) if dt == np.bool_ else np.full(cap, -1, dtype=dt)
            if name in old:
                col[: self.n] = old[name][: self.n]
            setattr(self, name, col)
        self.capacity = cap

    def slot(self, sample_index: int, issue_ns: int) -> int:
        i = self.n
        if i >= self.capacity:
            self._alloc(self.capacity * 2)
        self.n = i + 1
        self.sample_index[i] = sample_index
        self.issue_ns[i] = issue_ns
        return i

    def to_array(self) -> np.ndarray:
        out = np.empty(self.n, dtype=QUERY_RECORD_DTYPE)
        for name in QUERY_RECORD_DTYPE.names or ():
            out[name] = getattr(self, name)[: self.n]
        return out

    def save(self, directory: str | Path) -> Path:
        """Write ``queries.npz`` atomically."""
        d = Path(directory)
        path = d / QUERIES_FILE
        tmp = d / (QUERIES_FILE + ".tmp.npz")
        np.savez_compressed(tmp, records=self.to_array())
        tmp.replace(path)
        return path


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
        raise ValueError(f"{p}: field 'records': unexpected dtype {arr.dtype}")
    return arr

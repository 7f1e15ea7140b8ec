"""What the run's process and its worker processes say to each other: fixed-width records, never pickles.

Each worker has one duplex pipe (``multiprocessing.Pipe``) to the run's process, and every message is one
``send_bytes`` frame whose first byte says what it is:

* run -> worker: ``T`` + the run's clock origin (CLOCK_MONOTONIC ns: one clock for every process on the
  host), sent once all workers are ready; ``Q`` + issued queries (``ISSUE_DTYPE`` records: LoadGen's id, the sample index, the issue
  time on the run's clock); ``X``: cancel everything in flight, its results are no longer wanted.
* worker -> run: ``O`` ready / ``E`` + one line: could not start; ``F`` + (id, first token id): the first
  token arrived; ``D`` + (id, first token reported, failure status) + the query's whole row of
  ``QUERY_RECORD_DTYPE`` + its output token ids: the query is done; ``R`` + (index, id): a replica id the
  worker saw for the first time.

Rows travel as the bytes of one ``QUERY_RECORD_DTYPE`` record, so the worker writes its per-query record
where ``StreamClient`` always writes it (a ``RecordChunk``'s columns), and the run's process copies those
bytes into its own records with one slice assignment: :class:`RowChunk` keeps a chunk's columns as views
of one structured array. Only the start-up spec (:class:`WorkerSpec`) is more: JSON, once per worker.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from loadgen_harness._records import _FIELDS, _ZERO_FIELDS, QUERY_RECORD_DTYPE, QueryRecords, RecordChunk
from loadgen_harness._transport import TransportSecurity

ISSUE_DTYPE = np.dtype([("qid", "<u8"), ("index", "<i8"), ("issue_ns", "<i8")])
ROW_BYTES = QUERY_RECORD_DTYPE.itemsize
ISSUE = b"Q"
CANCEL = b"X"
CLOCK = b"T"
READY = b"O"
ERROR = b"E"
FIRST = b"F"
DONE = b"D"
REPLICA = b"R"
FIRST_FMT = struct.Struct("<Qi")  # after the kind byte: LoadGen's id, the first token id
DONE_FMT = struct.Struct("<QB16s")  # LoadGen's id, first token reported (0/1), failure status ("" = ok)
REPLICA_FMT = struct.Struct("<i")  # the worker's index for the id (utf-8) that follows
CLOCK_FMT = struct.Struct("<q")
_ISSUE_ONE = struct.Struct("<cQqq")


def _blank_row() -> np.ndarray:
    row = np.zeros(1, dtype=QUERY_RECORD_DTYPE)
    for name in _FIELDS:
        if name not in _ZERO_FIELDS and QUERY_RECORD_DTYPE.fields[name][0] != np.bool_:  # type: ignore[index]
            row[name] = -1
    return row


BLANK_ROW = _blank_row()


class RowChunk(RecordChunk):
    """A RecordChunk whose columns are views of one structured array: a row is one slice of ``raw``."""

    def __init__(self, rows: int) -> None:  # not RecordChunk's: the columns are views, not arrays of their own
        self.rows = np.repeat(BLANK_ROW, rows)
        self.raw: memoryview = self.rows.view(np.uint8).data
        for name in _FIELDS:
            setattr(self, name, self.rows[name])

    def row_bytes(self, j: int) -> memoryview:
        return self.raw[j * ROW_BYTES : (j + 1) * ROW_BYTES]

    def put_row(self, j: int, data: bytes | memoryview) -> None:
        self.raw[j * ROW_BYTES : (j + 1) * ROW_BYTES] = data

    def clear_row(self, j: int) -> None:
        self.rows[j] = BLANK_ROW[0]


class RowRecords(QueryRecords):
    """The run's per-query records kept in :class:`RowChunk` s, so a worker's row lands in one copy."""

    def __init__(self, capacity: int = 1024) -> None:
        super().__init__(capacity)
        self._new_chunk = RowChunk


class WorkerSpec(BaseModel):
    """Everything a worker needs to start, sent once as its first frame (JSON: a token stays off argv)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    address: str
    dataset: str  # the dataset spec the worker loads itself (requests are built from it, never shipped)
    max_new_tokens: int
    rpc_timeout_s: float = 300.0
    ignore_eos: bool = False
    offline: bool = False
    offline_concurrency: int = 64  # this worker's share of the run's Offline pool
    transport: TransportSecurity | None = None
    http_endpoint: dict[str, Any] | None = None  # the pinned openai endpoint (--transport openai-http)
    replica_ids: tuple[str, ...] = ()


def issue_message(batch: list[tuple[int, int]], issued_ns: int) -> bytes:
    """``Q`` + one ISSUE_DTYPE record per (LoadGen id, sample index), all issued at ``issued_ns``."""
    if len(batch) == 1:  # Server's common case, without building an array
        qid, idx = batch[0]
        return _ISSUE_ONE.pack(ISSUE, qid, idx, issued_ns)
    arr = np.empty(len(batch), dtype=ISSUE_DTYPE)
    arr["qid"] = [q for q, _ in batch]
    arr["index"] = [i for _, i in batch]
    arr["issue_ns"] = issued_ns
    return ISSUE + arr.tobytes()


def parse_issue(msg: bytes) -> list[tuple[int, int, int]]:
    """(LoadGen id, sample index, issue time) of each query in a ``Q`` message."""
    issued: list[tuple[int, int, int]] = np.frombuffer(msg, dtype=ISSUE_DTYPE, offset=1).tolist()
    return issued


def status_text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("ascii", "replace")

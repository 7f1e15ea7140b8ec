"""What the run's process and its worker processes say to each other: fixed-width records, never pickles.

Each worker has one end of a socket pair to the run's process (:class:`Channel`: length-prefixed frames, read
in large chunks so one system call takes every completion that arrived), and each frame's first byte says
what it is:

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

import contextlib
import ctypes
import socket
import struct
import threading
import time
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


_LEN = struct.Struct("<I")
_RECV_BYTES = 1 << 20


class Channel:
    """Length-prefixed frames over one end of a socket pair, read in large chunks.

    One ``recv`` takes every frame that has arrived (many completions per system call under load). Sending is
    safe from several threads; reading is one thread's (the run's reader takes it over as a ``FrameReader``).
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self.sock = sock
        self._buf = bytearray()
        # One buffer for every read: ``recv(1 MiB)`` would allocate (mmap, fault in, unmap) a fresh MiB per call.
        self._landing = memoryview(bytearray(_RECV_BYTES))
        self._frames: list[bytes] = []  # read, not yet returned
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, msg: bytes) -> None:
        with self._lock:
            self.sock.sendall(_LEN.pack(len(msg)) + msg)

    def send_parts(self, parts: tuple[bytes | memoryview, ...], size: int) -> None:
        """One frame made of ``parts`` (``size`` bytes in all), written with one ``sendmsg``: no copy joins them."""
        with self._lock:
            sent = self.sock.sendmsg([_LEN.pack(size), *parts])
            if sent < 4 + size:  # a signal cut the write short: the rest, joined
                self.sock.sendall((_LEN.pack(size) + b"".join(bytes(memoryview(p)) for p in parts))[sent:])

    def receive(self) -> list[bytes]:
        """The frames complete after one read (blocking until something arrives); EOFError when closed."""
        if not self._frames:
            self._read()
        frames, self._frames = self._frames, []
        return frames

    def receive_one(self, timeout_s: float) -> bytes | None:
        """The next frame within ``timeout_s`` (start-up only), None on timeout or EOF."""
        deadline = time.monotonic() + timeout_s
        while not self._frames:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                self._read()
            except (EOFError, OSError):  # socket.timeout is an OSError
                return None
            finally:
                self.sock.settimeout(None)
        return self._frames.pop(0)

    def _read(self) -> None:
        got = self.sock.recv_into(self._landing)
        if not got:
            raise EOFError
        buf = self._buf
        buf += self._landing[:got]
        at, end = 0, len(buf)
        with memoryview(buf) as view:
            while end - at >= 4:
                (n,) = _LEN.unpack_from(buf, at)
                if end - at - 4 < n:
                    break
                self._frames.append(view[at + 4 : at + 4 + n].tobytes())
                at += 4 + n
        del buf[:at]

    def frame_reader(self) -> FrameReader:
        """This channel's reading from now on done in place (the run's reader thread): what was read is kept."""
        pending = b"".join(_LEN.pack(len(f)) + f for f in self._frames) + bytes(self._buf)
        self._frames.clear()
        self._buf.clear()
        return FrameReader(self.sock, pending)

    def shutdown(self) -> None:
        """Both directions end: a thread blocked in ``recv`` here returns (closing alone would not wake it)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.shutdown()
        with contextlib.suppress(OSError):
            self.sock.close()


class FrameReader:
    """Frames read into one fixed buffer and handled where they landed: no object per frame.

    ``read`` blocks for the next ``recv`` and returns the (start, end) of each complete frame in ``buf``; they
    stay valid until the next ``read``, and ``address`` is where ``buf`` starts, so a consumer hands LoadGen a
    pointer into a frame instead of a copy. A partial frame is moved to the front for the next read; one larger
    than the buffer grows it.
    """

    def __init__(self, sock: socket.socket, pending: bytes = b"", size: int = _RECV_BYTES) -> None:
        self.sock = sock
        self._start = 0  # [_start, _end): read, not yet returned as a frame
        self._end = 0
        self._use(bytearray(max(size, 2 * len(pending))))
        self.buf[: len(pending)] = pending
        self._pending = len(pending)

    def _use(self, buf: bytearray) -> None:
        self.buf = buf
        self.view = memoryview(buf)
        self.address: int = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))

    def read(self) -> list[tuple[int, int]]:
        """(start, end) of every frame complete after one read; EOFError when the socket has ended."""
        start, end = self._start, self._end
        if start:  # a partial frame (the spans returned last time are done with): to the front
            self.view[: end - start] = bytes(self.view[start:end])
            end -= start
            start = 0
        whole = _LEN.unpack_from(self.buf)[0] + 4 if end >= 4 else 0
        if whole > len(self.buf):  # the partial frame will not fit: a buffer it fits in
            bigger = bytearray(2 * whole)
            bigger[:end] = self.view[:end]
            self._use(bigger)
        if self._pending:  # what the channel had read before: frames without a read
            end, self._pending = self._pending, 0
        else:
            got = self.sock.recv_into(self.view[end:])
            if not got:
                raise EOFError
            end += got
        buf, spans = self.buf, []
        while end - start >= 4:
            (n,) = _LEN.unpack_from(buf, start)
            if end - start - 4 < n:
                break
            spans.append((start + 4, start + 4 + n))
            start += 4 + n
        if start == end:
            start = end = 0
        self._start, self._end = start, end
        return spans

"""One worker process of ``lpuperf run --workers N``: its own event loop and channel, streaming the queries
the run's process hands it and sending back what LoadGen needs and the query's record.

The worker is a :class:`StreamClient` like the one-process bridge, so a query's stream is read by the same
code and its record has the same columns; only what a completion means differs. It never calls LoadGen
(LoadGen lives in the run's process alone; a worker is ``python -m loadgen_harness._worker_proc FD``): the first token goes back at once (``F``) so LoadGen's TTFT is
the stream's, and the finished query goes back as its row and output tokens (``D``). Its rows live in a
small ring of :class:`RowChunk` rows reused as queries finish, so a worker's memory follows what is in flight.

Requests are built here from the dataset the worker loads itself, once per sample and then kept: only
(id, sample index, issue time) crosses the socket. The worker has a process group of its own and ignores
SIGINT (the run's process decides how the run ends), and exits when its socket closes or its parent
changes, so it never outlives the run's process.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import sys
import threading
from typing import Any

import numpy as np

from loadgen_harness._bridge import _varint, serialise_requests
from loadgen_harness._records import RecordChunk
from loadgen_harness._stream_client import StreamClient
from loadgen_harness._worker_wire import (
    CANCEL,
    CLOCK,
    CLOCK_FMT,
    DONE,
    DONE_FMT,
    ERROR,
    FIRST,
    FIRST_FMT,
    ISSUE,
    READY,
    REPLICA,
    REPLICA_FMT,
    ROW_BYTES,
    Channel,
    RowChunk,
    WorkerSpec,
    parse_issue,
)
from scenarios import Dataset

_START_TIMEOUT_S = 60.0  # the spec is the run's first frame, sent as soon as the worker starts
_RING_ROWS = 256  # rows added to the ring at a time: a worker holds what it has in flight, in these steps


class WorkerClient(StreamClient):
    """Streams the queries of one worker; every completion is sent back over ``chan``."""

    def __init__(self, spec: WorkerSpec, chan: Channel, dataset: Dataset) -> None:
        opener = None
        if spec.http_endpoint is not None:
            from loadgen_harness._http_transport import HttpCalls

            endpoint = spec.http_endpoint

            async def opener() -> tuple[Any, Any]:
                return await HttpCalls.open(endpoint)  # type: ignore[arg-type]

        self.spec = spec
        self.chan = chan
        self.dataset = dataset
        self.offline = spec.offline
        self.gone = threading.Event()  # the run's process closed the pipe (or died): time to exit
        self._requests: dict[int, bytes] = {}
        self._free: list[tuple[RowChunk, int]] = []
        self._outcome: tuple[np.ndarray, bool] = (np.zeros(0, np.int32), False)  # the last query's (tokens, first sent)
        self._offline_q: collections.deque[tuple[int, int, int]] = collections.deque()
        self._pool = 0
        self._n_initial_replicas = len(spec.replica_ids)
        super().__init__(
            spec.address,
            rpc_timeout_s=spec.rpc_timeout_s,
            transport=spec.transport,
            replica_ids=spec.replica_ids,
            opener=opener,
        )
        self._loop.call_soon_threadsafe(self._loop.add_reader, chan.fileno(), self._on_readable)

    # ---- the pipe (loop thread) ----

    def _on_readable(self) -> None:
        try:
            for msg in self.chan.receive():
                kind = msg[:1]
                if kind == ISSUE:
                    self._take(parse_issue(msg))
                elif kind == CLOCK:  # the run's origin: the rows are comparable with every other worker's
                    (self.t0_ns,) = CLOCK_FMT.unpack_from(msg, 1)
                elif kind == CANCEL:
                    self._stop_all("CANCELLED")
        except (EOFError, OSError):
            self._loop.remove_reader(self.chan.fileno())
            self.gone.set()

    # Frames go out as they happen, one write each: the first token cannot wait (it is LoadGen's TTFT), and
    # queueing frames for the end of a loop iteration costs an iteration of its own (bench/RESULTS.md).
    def _send(self, msg: bytes) -> None:
        try:
            self.chan.send(msg)
        except OSError:  # the run's process is gone: nothing more is wanted
            self.gone.set()

    def _send_parts(self, parts: tuple[bytes | memoryview, ...], size: int) -> None:
        try:
            self.chan.send_parts(parts, size)
        except OSError:
            self.gone.set()

    def _take(self, issued: list[tuple[int, int, int]]) -> None:
        if self.offline:
            self._offline_q.extend(issued)
            while self._pool < self.spec.offline_concurrency and self._pool < len(self._offline_q):
                self._pool += 1
                self._spawn(self._offline_worker())
            return
        for qid, idx, issued_ns in issued:
            self._spawn(self._query(qid, idx, issued_ns))

    async def _offline_worker(self) -> None:
        q = self._offline_q
        try:
            while q and self._stop_status is None:
                await self._query(*q.popleft())
        finally:
            self._pool -= 1

    def _query(self, qid: int, idx: int, issued_ns: int) -> Any:
        """The stream of one query (a coroutine: ``_stream``'s own, no wrapper to resume at every message);
        its row and tokens go back from ``_finished`` or ``_fail``."""
        chunk, j = self._row(qid, idx, issued_ns)
        rid = str(qid).encode()
        return self._stream(qid, self._request(idx) + b"\x0a" + _varint(len(rid)) + rid, issued_ns, chunk, j)

    def _done(self, qid: int, chunk: RowChunk, j: int, status: str) -> None:
        """``D``: the finished row and its output tokens, in one write; the row is then free for another query."""
        tokens, first_sent = self._outcome
        head = DONE + DONE_FMT.pack(qid, first_sent, status.encode("ascii", "replace")[:16])
        self._send_parts((head, chunk.row_bytes(j), tokens.data), len(head) + ROW_BYTES + tokens.nbytes)
        chunk.clear_row(j)
        self._free.append((chunk, j))

    def _row(self, qid: int, idx: int, issued_ns: int) -> tuple[RowChunk, int]:
        if not self._free:
            ring = RowChunk(_RING_ROWS)
            self._free.extend((ring, j) for j in range(_RING_ROWS - 1, -1, -1))
        chunk, j = self._free.pop()
        chunk.sample_index[j] = idx
        chunk.issue_ns[j] = issued_ns
        self._pending[qid] = (chunk, j)
        return chunk, j

    def _request(self, idx: int) -> bytes:
        """Sample ``idx``'s GenerateRequest without its id, built the first time it is sent."""
        req = self._requests.get(idx)
        if req is None:
            ds = self.dataset
            ids = np.ascontiguousarray(ds.input_ids[idx], dtype=np.int32)
            req = serialise_requests(
                [ids], [ds.prompts[idx]], [self.spec.max_new_tokens], ds.eos_token_id, self.spec.ignore_eos
            )[0]
            self._requests[idx] = req
        return req

    # ---- what a completion means: a message to the run's process ----

    def _first_token(self, qid: int, ids: Any) -> bool:
        if self.offline:
            return False
        self._send(FIRST + FIRST_FMT.pack(qid, int(ids[0])))
        return True

    def _answered(self, qid: int, out: np.ndarray, n_tokens: int, first_sent: bool) -> None:
        self._outcome = (out, first_sent)  # sent by ``_finished``, once the row is complete

    def _finished(self, qid: int, chunk: RecordChunk, j: int) -> None:
        self._done(qid, chunk, j, "")  # type: ignore[arg-type]  # a worker's rows are RowChunks

    def _failed(self, qid: int, data: np.ndarray, first_sent: bool) -> None:
        self._outcome = (data, first_sent)

    def _fail(self, qid: int, tokens: list[int], first_sent: bool, status: str, code: int, replica: int = -1) -> None:
        ref = self._pending.get(qid)
        super()._fail(qid, tokens, first_sent, status, code, replica)
        if ref is not None:  # the status name travels with the row (the row keeps only the code)
            self._done(qid, ref[0], ref[1], status)  # type: ignore[arg-type]

    def _replica(self, replica_id: str) -> int:
        n = len(self.replica_ids)
        r = super()._replica(replica_id)
        if len(self.replica_ids) > n:  # first seen here: the run's process learns the id before the row
            self._send(REPLICA + REPLICA_FMT.pack(r) + replica_id.encode())
        return r


def worker_main(chan: Channel) -> None:
    """A worker process: read its spec (the first frame), report ready or why not, serve until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    index = "?"
    try:
        spec = WorkerSpec.model_validate_json(chan.receive_one(_START_TIMEOUT_S) or b"")
        index = str(spec.index)
        from scenarios import resolve_dataset

        client = WorkerClient(spec, chan, resolve_dataset(spec.dataset))
    except Exception as exc:  # one line back to the run's process, which refuses the run with it
        with contextlib.suppress(OSError):
            chan.send(ERROR + f"worker {index}: {type(exc).__name__}: {exc}".splitlines()[0].encode())
        return
    chan.send(READY)
    parent = os.getppid()
    while not client.gone.wait(1.0) and os.getppid() == parent:  # EOF, or the run's process is gone
        pass
    client.close(timeout_s=5.0)


if __name__ == "__main__":  # started by _workers with its socket's fd
    worker_main(Channel(socket.socket(fileno=int(sys.argv[1]))))

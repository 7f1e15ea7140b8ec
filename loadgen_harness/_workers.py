"""``lpuperf run --workers N``: one LoadGen, N worker processes streaming its queries.

LoadGen stays in the run's process (MLPerf's rule, and LoadGen must never be called from a child). Its
issue callback hands each query to a worker (``pick_worker``: fill one up to ``FILL_DEPTH`` outstanding,
then the next), as one fixed-width record over that worker's pipe (``_worker_wire``); each worker streams it on its own event loop and channel
(``_worker_proc``). One reader thread per worker takes its messages where they landed (``FrameReader``): a
first token becomes LoadGen's ``FirstTokenComplete`` at once, a finished query's row is copied into the run's
records with one slice assignment and becomes ``QuerySamplesComplete`` with its output tokens (so the
accuracy log is the same).

Guarantees, as with one process (``_bridge.Bridge``): every issued query is completed exactly once (it is
in ``_pending`` from issue to completion, and each completion path pops it under ``_lock``); the records
have the same columns and clock (workers timestamp on the run's CLOCK_MONOTONIC origin); the harness
metrics see every issue and completion; an interrupt fails everything outstanding and every later query
on arrival; an overload stop works as the bridge's. A worker that dies (killed, crashed) has its
outstanding queries completed as failed (``WORKER_EXITED``) and the run goes on with the others. With
none left, a Server run holds what LoadGen still issues until it crosses its outstanding-query limit and
flushes, then fails it all (the run stops early, as on overload); other scenarios fail each later query
on arrival. Either way results.json says which worker, when and how
many queries (``validity_reasons``). Workers are new interpreters (never forks: LoadGen's threads live
here) and are gone before ``close`` returns.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from loadgen_harness._bridge import OVERLOADED, Overload
from loadgen_harness._results import RunResult
from loadgen_harness._run_config import RunError
from loadgen_harness._stream_client import EMPTY, STOPPED_CODE
from loadgen_harness._worker_wire import (
    CANCEL,
    CLOCK,
    CLOCK_FMT,
    DONE,
    DONE_FMT,
    ERROR,
    FIRST,
    FIRST_FMT,
    READY,
    REPLICA,
    REPLICA_FMT,
    ROW_BYTES,
    Channel,
    FrameReader,
    RowChunk,
    RowRecords,
    WorkerSpec,
    issue_message,
    status_text,
)

WORKER_EXITED = "WORKER_EXITED"
_INTERRUPTED = "INTERRUPTED"
_UNKNOWN_CODE = 2  # gRPC's UNKNOWN: the query's stream ended with its worker
_START_TIMEOUT_S = 120.0  # spawning imports grpc and loads the dataset: seconds, far less than this
_STOP_TIMEOUT_S = 5.0
_DONE_AT = 1 + DONE_FMT.size  # a D frame: kind, DONE_FMT, the row, then the output token ids
_TOKENS_AT = _DONE_AT + ROW_BYTES
_QID = struct.Struct("<Q")
_FIRST_TOKEN_AT = 1 + _QID.size  # an F frame: kind, LoadGen's id, the first token id (FIRST_FMT)
_FIRST_LEN = 1 + FIRST_FMT.size
_DONE_BYTE, _FIRST_BYTE, _REPLICA_BYTE = DONE[0], FIRST[0], REPLICA[0]
# A worker takes queries until this many are outstanding before the next one gets any: a busy worker's
# wake-ups carry several frames, and an idle one costs nothing (bench/RESULTS.md, "Worker processes").
FILL_DEPTH = 8


@dataclass(frozen=True)
class LostWorker:
    """A worker that ended before the run did."""

    index: int
    pid: int
    exit_code: int | None  # negative: the signal that ended it
    at_ns: int  # on the run's clock
    failed_queries: int

    def reason(self) -> str:
        how = f"signal {-self.exit_code}" if self.exit_code is not None and self.exit_code < 0 else self.exit_code
        return (
            f"worker {self.index} (pid {self.pid}) exited ({how}) at {self.at_ns / 1e9:.1f} s: its "
            f"{self.failed_queries} outstanding queries completed as failed ({WORKER_EXITED})"
        )


class _Worker:
    """One worker process (``python -m loadgen_harness._worker_proc FD``) and its end of their socket pair."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.index = spec.index
        mine, theirs = socket.socketpair()
        self.chan = Channel(mine)
        try:
            fd = theirs.fileno()
            # Its own interpreter, never a fork of this one (LoadGen's threads live here), and no __main__ re-run.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "loadgen_harness._worker_proc", str(fd)],
                pass_fds=(fd,),
                # Its own process group: a terminal's Ctrl-C reaches only the run's process, which stops the
                # workers itself (a worker interrupted mid-import would only print a traceback).
                process_group=0,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        finally:
            theirs.close()  # only the worker holds its end: its death is EOF here
        self.chan.send(spec.model_dump_json().encode())
        self.outstanding = 0
        self.alive = True
        self.replicas: dict[int, int] = {}  # the worker's index of a replica id it found -> the run's

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, msg: bytes) -> bool:
        try:
            self.chan.send(msg)
            return True
        except OSError:
            return False


class WorkerBridge:
    """LoadGen's SUT when the run has worker processes; the interface of ``Bridge`` (``run_test``, the run)."""

    def __init__(
        self,
        specs: list[WorkerSpec],
        *,
        offline: bool,
        expected_queries: int = 1024,
        metrics: Any = None,
        max_in_flight: int | None = None,
    ) -> None:
        import mlperf_loadgen as lg

        self._lg = lg
        self.offline = offline
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.t0_ns = time.monotonic_ns()  # until the workers are ready; the run's clock starts then
        self.records = RowRecords(expected_queries)
        self.replica_ids: list[str] = list(specs[0].replica_ids)
        self._replica_index = {rid: i for i, rid in enumerate(self.replica_ids)}
        self.issued = 0
        self.completed = 0
        self.errors = 0
        self.errors_by_status: dict[str, int] = {}
        self.interrupted: str | None = None
        self.overload: Overload | None = None
        self.stopped_ns: int | None = None
        self.lost: list[LostWorker] = []
        self._stop_status: str | None = None
        self._all_lost = False  # every worker died
        self._lg_open = True
        self._closing = False
        self._lock = threading.Lock()
        # LoadGen id -> [chunk, row, worker, first token reported]
        self._pending: dict[int, list[Any]] = {}
        self.workers: list[_Worker] = []
        try:
            for spec in specs:
                self.workers.append(_Worker(spec))
            self._await_ready()
            self.t0_ns = time.monotonic_ns()
            for w in self.workers:
                w.send(CLOCK + CLOCK_FMT.pack(self.t0_ns))
        except BaseException:
            self._stop_workers()
            raise
        # One reader per worker, blocked in its socket's recv: a frame costs one wake-up and one system call
        # (a selector over all of them costs an epoll_wait and a recv per wake-up, and its Python on top).
        self._readers = [
            threading.Thread(target=self._read, args=(w,), name=f"lpuperf-worker-{w.index}", daemon=True)
            for w in self.workers
        ]
        for reader in self._readers:
            reader.start()

    @property
    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    @property
    def outstanding(self) -> int:
        return max(0, self.issued - self.completed)

    def _await_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        for w in self.workers:
            left = max(0.0, deadline - time.monotonic())
            msg = w.chan.receive_one(left) or b""
            if msg[:1] == ERROR:
                raise RunError(msg[1:].decode(errors="replace"))
            if msg != READY:
                code = w.proc.poll()
                why = f"exited while starting (exit code {code})" if code is not None else "did not start"
                raise RunError(f"workers: worker {w.index} {why} within {_START_TIMEOUT_S:.0f} s")

    # ---- LoadGen callbacks (LoadGen's threads): never raise ----

    def issue(self, samples: list[Any]) -> None:
        try:
            if not self._lg_open:
                return
            t = time.monotonic_ns() - self.t0_ns
            batch = [(s.id, s.index) for s in samples]
            self.issued += len(batch)
            limit = self.max_in_flight
            over = limit is not None and self.issued - self.completed > limit
            if over and self.overload is None and not self._all_lost:  # no workers left is no overload
                self.overload = Overload(t, self.issued - self.completed, limit or 0)
            self._dispatch(batch, t)
        except Exception:
            return

    def flush(self) -> None:
        try:
            if self._lg_open and (self.overload is not None or self._all_lost):
                self._stop_all(OVERLOADED if self.overload is not None else WORKER_EXITED)
        except Exception:
            return

    def _dispatch(self, batch: list[tuple[int, int]], t: int) -> None:
        if self.metrics is not None:
            self.metrics.issued(len(batch))
        per_worker: dict[int, list[tuple[int, int]]] = {}
        with self._lock:  # a worker is marked dead under the lock: no query is routed to it after its scan
            live = [w for w in self.workers if w.alive]
            stopped = self._stop_status is not None or (not live and self.max_in_flight is None)
            # Held until LoadGen flushes: past the in-flight limit, or with no worker left in a Server run
            # (LoadGen then crosses its own limit at once and stops issuing), instead of failing its schedule.
            held = not stopped and (self.overload is not None or not live)
            for qid, idx in batch:
                chunk, j = self.records.slot_ref(idx, t)
                if stopped or held:
                    self._pending[qid] = [chunk, j, None, False]
                    continue
                w = pick_worker(live)
                w.outstanding += 1
                self._pending[qid] = [chunk, j, w, False]
                per_worker.setdefault(w.index, []).append((qid, idx))
        if stopped:
            self._fail([qid for qid, _ in batch], self._stop_status or WORKER_EXITED, STOPPED_CODE)
        for index, queries in per_worker.items():
            self.workers[index].send(issue_message(queries, t))  # a dead worker's queries fail with it

    # ---- control (any thread) ----

    def interrupt(self, reason: str) -> None:
        if self.interrupted is None:
            self.interrupted = reason
            self.stopped_ns = time.monotonic_ns() - self.t0_ns
            self._stop_all(_INTERRUPTED)

    def loadgen_done(self) -> None:
        self._lg_open = False

    def abandon(self) -> None:
        self._lg_open = False

    def _stop_all(self, status: str) -> None:
        """Every outstanding query fails with ``status`` now, and every later one on arrival."""
        with self._lock:
            if self._stop_status is None:
                self._stop_status = status
                if self.stopped_ns is None:
                    self.stopped_ns = time.monotonic_ns() - self.t0_ns
            qids = list(self._pending)
        for w in self.workers:
            if w.alive:
                w.send(CANCEL)
        self._fail(qids, self._stop_status or status, STOPPED_CODE)

    def _fail(self, qids: list[int], status: str, code: int) -> int:
        """Complete queries as failed with no tokens (the ones their worker had are lost with the stop);
        returns how many were still outstanding."""
        done_ns = time.monotonic_ns() - self.t0_ns
        failed: list[tuple[int, bool]] = []
        with self._lock:
            for qid in qids:
                entry = self._pending.pop(qid, None)
                if entry is None:
                    continue
                chunk, j, w, first_sent = entry
                if w is not None:
                    w.outstanding -= 1
                chunk.done_ns[j] = done_ns
                chunk.status[j] = code
                chunk.n_streamed[j] = 0
                chunk.n_tokens[j] = 2
                failed.append((qid, first_sent))
                self._count(status)
        if not failed or not self._lg_open:
            return len(failed)
        lg, ptr = self._lg, EMPTY.ctypes.data
        if not self.offline:
            lg.FirstTokenComplete([lg.QuerySampleResponse(q, ptr, 0) for q, sent in failed if not sent])
        lg.QuerySamplesComplete([lg.QuerySampleResponse(q, ptr, 0, 2) for q, _ in failed])
        return len(failed)

    def _count(self, status: str) -> None:
        """(under ``_lock``) One more completed query; ``status``: its failure, "" when it succeeded."""
        self.completed += 1
        if status:
            self.errors += 1
            self.errors_by_status[status] = self.errors_by_status.get(status, 0) + 1
            if self.metrics is not None:
                self.metrics.failed(status)

    # ---- the workers' messages (reader thread) ----

    def _read(self, w: _Worker) -> None:
        """(worker ``w``'s reader thread) Its frames until its socket ends: its death, or ``close``'s shutdown.

        Frames are handled where they landed (``FrameReader``): LoadGen gets pointers into them, nothing is
        allocated per frame. This thread sleeps between frames, so each wake-up runs cold: the less Python
        per frame, the less it costs (bench/RESULTS.md, "Worker processes")."""
        try:
            self._read_frames(w)
        except Exception:  # a frame this process cannot handle: that worker is stopped, its queries failed
            w.proc.kill()
        self._lose(w)

    def _read_frames(self, w: _Worker) -> None:
        reader = w.chan.frame_reader()
        first_token, done = self._on_first, self._on_done
        while True:
            try:
                spans = reader.read()  # every frame that arrived, in one read
            except (EOFError, OSError):
                return
            buf = reader.buf
            for start, end in spans:
                kind = buf[start]
                if kind == _DONE_BYTE:
                    done(w, reader, start, end)
                elif kind == _FIRST_BYTE:
                    first_token(reader, start, end)
                elif kind == _REPLICA_BYTE:
                    (local,) = REPLICA_FMT.unpack_from(buf, start + 1)
                    name = bytes(buf[start + 1 + REPLICA_FMT.size : end]).decode(errors="replace")
                    with self._lock:  # two workers may meet the same new replica at once
                        w.replicas[local] = self._replica(name)

    def _on_first(self, reader: FrameReader, start: int, end: int) -> None:
        """``F``: LoadGen's first token, now; its 4 bytes are handed over where they landed."""
        if end - start != _FIRST_LEN:
            raise ValueError(f"a first-token frame of {end - start} bytes, not {_FIRST_LEN}")
        (qid,) = _QID.unpack_from(reader.buf, start + 1)
        # Under the lock: a stop failing this query either sees the first token reported or reports it itself.
        with self._lock:
            entry = self._pending.get(qid)
            if entry is None or not self._lg_open:
                return
            entry[3] = True
            lg = self._lg
            lg.FirstTokenComplete([lg.QuerySampleResponse(qid, reader.address + start + _FIRST_TOKEN_AT, 4)])

    def _on_done(self, w: _Worker, reader: FrameReader, start: int, end: int) -> None:
        """``D``: the query's row into the run's records, then LoadGen's completion with its output tokens."""
        tokens_at = start + _TOKENS_AT
        nbytes = end - tokens_at
        # Checked before the query leaves ``_pending``: a frame that fails here leaves it to its worker's loss.
        if nbytes < 0 or nbytes % 4:
            raise ValueError(f"a done frame of {end - start} bytes: not a row and whole token ids")
        qid, first_sent, raw_status = DONE_FMT.unpack_from(reader.buf, start + 1)
        status = status_text(raw_status) if raw_status[0] else ""
        with self._lock:
            entry = self._pending.pop(qid, None)
            if entry is None:
                return  # already failed by a stop
            chunk: RowChunk = entry[0]
            j: int = entry[1]
            w.outstanding -= 1
            chunk.put_row(j, reader.view[start + _DONE_AT : tokens_at])
            if w.replicas:
                local = int(chunk.replica[j])
                chunk.replica[j] = w.replicas.get(local, local)
            self._count(status)
            n_tokens = int(chunk.n_tokens[j])
            if self.metrics is not None and not status:  # under the lock: each worker's reader calls it
                m = self.metrics
                m.completed(int(chunk.issue_ns[j]), int(chunk.first_token_ns[j]), int(chunk.done_ns[j]), n_tokens)
        if not self._lg_open:
            return
        lg = self._lg
        ptr = reader.address + tokens_at if nbytes else EMPTY.ctypes.data
        if not self.offline and not first_sent:
            lg.FirstTokenComplete([lg.QuerySampleResponse(qid, ptr, min(4, nbytes))])
        lg.QuerySamplesComplete([lg.QuerySampleResponse(qid, ptr, nbytes, n_tokens)])

    def _replica(self, replica_id: str) -> int:
        r = self._replica_index.get(replica_id)
        if r is None:
            r = self._replica_index[replica_id] = len(self.replica_ids)
            self.replica_ids.append(replica_id)
        return r

    def _lose(self, w: _Worker) -> None:
        """A worker's pipe closed: unless the run is closing, it died; its outstanding queries fail."""
        if self._closing:
            w.alive = False
            return
        at_ns = time.monotonic_ns() - self.t0_ns
        with self._lock:
            w.alive = False
            mine = [qid for qid, entry in self._pending.items() if entry[2] is w]
            if not any(x.alive for x in self.workers):
                self._all_lost = True
                self.stopped_ns = self.stopped_ns or at_ns
                if self.max_in_flight is None:  # no outstanding limit to stop LoadGen: fail the rest on arrival
                    self._stop_status = self._stop_status or WORKER_EXITED
        n_failed = self._fail(mine, WORKER_EXITED, _UNKNOWN_CODE)
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=1.0)  # its exit status, for the reason
        self.lost.append(LostWorker(w.index, w.pid, w.proc.poll(), at_ns, n_failed))

    # ---- the end ----

    def annotate(self, res: RunResult) -> None:
        """results.json: how many workers streamed the run, and every one that died, first among the reasons."""
        res.settings["harness_workers"] = len(self.workers)
        for lost in reversed(self.lost):
            res.valid = False
            res.validity_reasons.insert(0, lost.reason())

    def quiesce(self, timeout_s: float = 10.0) -> None:
        """Fail whatever is still outstanding (nothing, after a test LoadGen ended): the records are final."""
        with self._lock:
            if self._stop_status is None:
                self._stop_status = _INTERRUPTED if self.interrupted is not None else "CANCELLED"
            qids = list(self._pending)
        if qids:
            self._fail(qids, self._stop_status, STOPPED_CODE)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the reader and every worker, each step bounded: no worker outlives this call."""
        self.quiesce(timeout_s)
        self._closing = True
        for w in self.workers:
            w.chan.shutdown()  # its reader's recv returns (EOF), and the worker reads EOF: it exits
        deadline = time.monotonic() + timeout_s
        for reader in self._readers:
            reader.join(timeout=max(0.0, deadline - time.monotonic()))
        self._stop_workers()

    def _stop_workers(self) -> None:
        self._closing = True
        for w in self.workers:
            w.chan.close()  # the worker's EOF: it closes its channel and exits
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for w in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.proc.wait(timeout=_STOP_TIMEOUT_S)


class _Loaded(Protocol):
    outstanding: int


_W = TypeVar("_W", bound=_Loaded)


def _by_outstanding(w: _Loaded) -> int:
    return w.outstanding


def pick_worker(live: list[_W], depth: int = FILL_DEPTH) -> _W:
    """The first live worker with fewer than ``depth`` outstanding, else the one with the fewest: fill, then spread.

    A worker that falls behind (CPU-bound, or its SUT slow) piles up outstanding queries and so spills the next
    ones to the following worker; an Offline issue, or a slow SUT's many in flight, ends up spread evenly."""
    for w in live:
        if w.outstanding < depth:
            return w
    return min(live, key=_by_outstanding)


def worker_specs(
    n_workers: int,
    *,
    address: str,
    dataset: str,
    max_new_tokens: int,
    offline: bool,
    offline_concurrency: int,
    **common: Any,
) -> list[WorkerSpec]:
    """One spec per worker; the Offline pool is shared out between them."""
    share = max(1, offline_concurrency // n_workers)
    return [
        WorkerSpec(
            index=i,
            address=address,
            dataset=dataset,
            max_new_tokens=max_new_tokens,
            offline=offline,
            offline_concurrency=share,
            **common,
        )
        for i in range(n_workers)
    ]

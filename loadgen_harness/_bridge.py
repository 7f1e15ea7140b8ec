"""The LoadGen <-> gRPC bridge: the QSL over a dataset, and LoadGen's issue callback feeding a grpc.aio
client on a uvloop thread.

The QSL: "loaded" means a sample's int32 prompt array and its serialised GenerateRequest are resident,
so the issue path does no conversion or allocation beyond the request id.

Hot-path design (the per-token path decides the harness's ceiling):

* The issue callback only copies (id, index) pairs and hands the whole batch to the loop with one
  ``call_soon_threadsafe``. There is no client-side queue: in Server mode LoadGen measures latency
  from the *scheduled* issue time, and a queue here would hide the SUT's delay from it.
* Requests are serialised once per sample at load time; per query only the request id is appended
  (concatenated protobuf messages merge, so ``base + field(1)`` is a valid GenerateRequest).
* The first streamed message goes to ``FirstTokenComplete`` at once (not in Offline); the rest are
  only appended to a list. ``QuerySamplesComplete`` gets the final chunk's ``output_ids`` when the
  SUT sent them, else the concatenated stream. Both buffers live in locals until the call returns.
* Every issued sample is completed exactly once, whatever happens to its RPC or the run: it sits in
  ``_pending`` from issue to completion, and each completion path pops it first (see ``_fail``).
* Each query writes its row of the per-query records through the row's own chunk (``_records``).
* Offline is one query holding every sample; it alone is issued through a bounded pool of workers,
  because opening thousands of streams at once only makes the SUT and the client thrash; no
  latency is measured there, so a client-side limit cannot hide anything.
* What is in flight is bounded (``max_in_flight``, LoadGen's own outstanding-query limit in a Server
  run): a SUT that falls that far behind stops the run early (:class:`Overload`) instead of
  growing the harness without limit.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from loadgen_harness._fleet import FLEET_CHANNEL_OPTIONS
from loadgen_harness._records import QueryRecords, RecordChunk
from loadgen_harness._transport import TransportSecurity, open_aio_channel
from proto import inference_pb2
from scenarios import Dataset

_GENERATE = "/lpuperf.v1.Inference/Generate"
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
    *FLEET_CHANNEL_OPTIONS,  # gRPC's round_robin over the target's replicas (one for a single address)
]
_EMPTY = np.zeros(1, dtype=np.int32)
# A query failed by an interrupt: counted under this status, recorded with gRPC's CANCELLED code.
_INTERRUPTED = "INTERRUPTED"
_INTERRUPTED_CODE = 1
# A query failed because the run stopped early on overload (see Overload); also CANCELLED's code.
OVERLOADED = "OVERLOADED"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def serialise_requests(
    input_ids: Sequence[np.ndarray],
    prompts: Sequence[str] | None,
    max_new_tokens: Sequence[int],
    eos_token_id: int,
    ignore_eos: bool = False,
) -> list[bytes]:
    """One serialised GenerateRequest per sample, without request_id (appended per query).

    ``ignore_eos`` asks for exactly ``max_new_tokens`` (min_new_tokens = max_new_tokens): a fixed
    output length, for load tests that compare with tools that do the same; never for accuracy.
    """
    out: list[bytes] = []
    for i, ids in enumerate(input_ids):
        req = inference_pb2.GenerateRequest(
            input_ids=ids.tolist(),
            prompt_text=prompts[i] if prompts is not None else "",
            max_new_tokens=int(max_new_tokens[i]),
            min_new_tokens=int(max_new_tokens[i]) if ignore_eos else 0,
            eos_token_id=eos_token_id,
        )
        out.append(req.SerializeToString())
    return out


class DatasetQSL:
    """Owns the LoadGen QSL handle; ``requests[i]`` is sample i's request bytes while loaded."""

    def __init__(
        self, dataset: Dataset, max_new_tokens: int, perf_count: int | None = None, ignore_eos: bool = False
    ) -> None:
        import mlperf_loadgen as lg

        self.dataset = dataset
        self.max_new_tokens = max_new_tokens
        self.ignore_eos = ignore_eos
        self.total_count = len(dataset)
        self.perf_count = min(perf_count or self.total_count, self.total_count)
        self.requests: list[bytes] = [b""] * self.total_count
        self.resident: dict[int, np.ndarray] = {}
        self._lg = lg
        self.handle: Any = lg.ConstructQSL(self.total_count, self.perf_count, self._load, self._unload)

    def _load(self, indices: list[int]) -> None:
        ids = [np.ascontiguousarray(self.dataset.input_ids[i], dtype=np.int32) for i in indices]
        prompts = [self.dataset.prompts[i] for i in indices]
        max_new = [self.max_new_tokens] * len(ids)
        reqs = serialise_requests(ids, prompts, max_new, self.dataset.eos_token_id, self.ignore_eos)
        for i, arr, req in zip(indices, ids, reqs, strict=True):
            self.resident[i] = arr
            self.requests[i] = req

    def _unload(self, indices: list[int]) -> None:
        for i in indices:
            self.resident.pop(i, None)
            self.requests[i] = b""

    def destroy(self) -> None:
        if self.handle is not None:
            self._lg.DestroyQSL(self.handle)
            self.handle = None


@dataclass(frozen=True)
class Overload:
    """When LoadGen's outstanding queries crossed the run's in-flight limit (the run then ends early)."""

    at_ns: int  # on the run's clock (queries.npz's)
    outstanding: int
    limit: int


class Bridge:
    """Owns the uvloop thread, the channel and the per-query records for one run.

    Interrupt (``interrupt``, from the thread that got the signal): every query in flight is
    cancelled and completed as failed, each exactly once, and so is every query LoadGen issues
    afterwards, on arrival.

    Overload (``max_in_flight``, equal to LoadGen's ``server_max_async_queries``): once more queries are
    outstanding than that, LoadGen stops issuing and would wait for every one of them, however far
    behind the SUT is. The bridge holds what still arrives (so LoadGen crosses its limit at once), and
    when LoadGen flushes it cancels and fails everything outstanding, so the test ends now
    (``overload`` says when and at how many).

    ``loadgen_done`` / ``abandon`` close the gate to LoadGen: after them no call reaches it (a
    completion after its test returned would crash the process).
    """

    def __init__(
        self,
        address: str,
        requests: list[bytes],
        *,
        offline: bool,
        offline_concurrency: int = 64,
        rpc_timeout_s: float = 300.0,
        expected_queries: int = 1024,
        metrics: Any = None,
        max_in_flight: int | None = None,
        transport: TransportSecurity | None = None,
        replica_ids: Sequence[str] = (),
        opener: Callable[[], Awaitable[tuple[Any, Any]]] | None = None,
    ) -> None:
        import mlperf_loadgen as lg
        import uvloop

        self._lg = lg
        self.address = address
        self.transport = transport
        # Replica id (final chunk, or a failed stream's first chunk) -> records' replica index. Ids seen only
        # in streams (a pod that joined a dns target mid-run) are appended. A SUT that sends no id is
        # the replica when there is one, else unknown (-1).
        self.replica_ids: list[str] = list(replica_ids)
        self._replica_index: dict[str, int] = {rid: i for i, rid in enumerate(self.replica_ids)}
        self._replica_index.setdefault("", 0 if len(self.replica_ids) == 1 else -1)
        self.requests = requests
        self.offline = offline
        self.offline_concurrency = max(1, offline_concurrency)
        self.rpc_timeout_s = rpc_timeout_s
        self.records = QueryRecords(expected_queries)
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.issued = 0  # samples LoadGen handed over (its issue thread); outstanding = issued - completed
        self.completed = 0
        self.errors = 0
        self.errors_by_status: dict[str, int] = {}
        self.interrupted: str | None = None
        self.overload: Overload | None = None
        # The status queries get when the run is being stopped (interrupt or overload); None while it runs.
        self._stop_status: str | None = None
        self.stopped_ns: int | None = None  # when that began, on the run's clock
        self.t0_ns = time.monotonic_ns()
        # Queries issued by LoadGen and not yet completed to it: qid -> (chunk, row). A completion
        # pops its entry first, so each query is completed exactly once whichever path gets there.
        self._pending: dict[int, tuple[RecordChunk, int]] = {}
        self._held: list[int] = []
        self._lg_open = True
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lpuperf-grpc", daemon=True)
        self._thread.start()
        self._channel: Any = None  # grpc.aio.Channel, or what ``opener`` gave (anything with ``async close()``)
        self._call: Any = None
        self._metadata: tuple[tuple[str, str], ...] | None = None  # the token, sent with every call
        self._opener = opener
        self._tasks: set[asyncio.Task[None]] = set()
        self._offline_q: collections.deque[tuple[int, int]] = collections.deque()
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(timeout=30)

    async def _open(self) -> None:
        if self._opener is not None:  # another transport (loadgen_harness._http_transport): same per-query path
            self._channel, self._call = await self._opener()
            return
        # TLS is the channel's; the token is one metadata tuple passed with each call (no Python in grpc's threads).
        self._channel, self._metadata = open_aio_channel(self.address, self.transport, options=_CHANNEL_OPTIONS)
        self._call = self._channel.unary_stream(
            _GENERATE,
            request_serializer=None,  # requests are pre-serialised bytes
            response_deserializer=inference_pb2.GenerateChunk.FromString,
        )

    @property
    def outstanding(self) -> int:
        """Samples LoadGen issued that are not completed yet (approximate from another thread)."""
        return max(0, self.issued - self.completed)

    # ---- LoadGen callbacks (LoadGen's threads) ----

    def issue(self, samples: list[Any]) -> None:
        # An exception here would unwind through LoadGen's C++ and abort the process: never raise.
        try:
            if not self._lg_open:
                return  # abandoned: the process is on its way out
            t = time.monotonic_ns() - self.t0_ns
            batch = [(s.id, s.index) for s in samples]
            self.issued += len(batch)
            limit = self.max_in_flight
            if limit is not None and self.overload is None and self.issued - self.completed > limit:
                self.overload = Overload(t, self.issued - self.completed, limit)
            self._loop.call_soon_threadsafe(self._dispatch, batch, t)
        except Exception:
            return

    def flush(self) -> None:
        """LoadGen issues nothing more: after an overload, stop everything outstanding so its test ends now."""
        try:
            if self._lg_open and self.overload is not None:
                self._loop.call_soon_threadsafe(self._stop_all, OVERLOADED)
        except Exception:
            return

    # ---- control (any thread) ----

    def interrupt(self, reason: str) -> None:
        """Stop new work: fail everything outstanding, and every later query on arrival."""
        if self.interrupted is None:
            self.interrupted = reason
            self.stopped_ns = time.monotonic_ns() - self.t0_ns  # the signal's time: later health changes are ours
            self._loop.call_soon_threadsafe(self._stop_all, _INTERRUPTED)

    def loadgen_done(self) -> None:
        """LoadGen's test returned: from now on nothing may reach LoadGen."""
        self._lg_open = False

    def abandon(self) -> None:
        """Give up on LoadGen's test (it keeps running until the process exits): stop calling it."""
        self._lg_open = False

    # ---- loop thread ----

    def _register(self, qid: int, idx: int, issued_ns: int) -> tuple[RecordChunk, int]:
        ref = self.records.slot_ref(idx, issued_ns)
        self._pending[qid] = ref
        return ref

    def _dispatch(self, batch: list[tuple[int, int]], issued_ns: int) -> None:
        if self.metrics is not None:
            self.metrics.issued(len(batch))
        if self._stop_status is not None or self.overload is not None:
            for qid, idx in batch:
                self._register(qid, idx, issued_ns)
            qids = [qid for qid, _ in batch]
            if self._stop_status is not None:
                self._fail_many(qids, self._stop_status, _INTERRUPTED_CODE)
            else:  # overloaded: held until LoadGen stops issuing (it is over its limit, so at once)
                self._held.extend(qids)
            return
        if self.offline and len(batch) > self.offline_concurrency:
            self._offline_q.extend(batch)
            for _ in range(self.offline_concurrency):
                self._spawn(self._offline_worker(issued_ns))
            return
        for qid, idx in batch:
            # Registered before the task exists: a task cancelled before its first step never runs
            # its own handler, and its query is then completed from ``_pending``.
            chunk, j = self._register(qid, idx, issued_ns)
            self._spawn(self._one(qid, idx, issued_ns, chunk, j))

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _offline_worker(self, issued_ns: int) -> None:
        q = self._offline_q
        while q and self._stop_status is None:
            qid, idx = q.popleft()
            chunk, j = self._register(qid, idx, issued_ns)
            await self._one(qid, idx, issued_ns, chunk, j)

    def _stop_all(self, status: str) -> None:
        """(loop) From now on every query fails with ``status``: those outstanding now, and later ones on arrival."""
        if self._stop_status is None:
            self._stop_status = status
            if self.stopped_ns is None:
                self.stopped_ns = time.monotonic_ns() - self.t0_ns
            self._spawn(self._cancel_outstanding())

    async def _cancel_outstanding(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for t in tasks:
            t.cancel()  # each stream's task completes its own query as it unwinds
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_leftovers(self._stop_status or "CANCELLED", _INTERRUPTED_CODE)

    def _fail_leftovers(self, status: str, code: int) -> None:
        """Fail what no task will complete: queued Offline samples, held queries and queries whose task
        never ran (a task cancelled before its first step never runs its handler)."""
        t = time.monotonic_ns() - self.t0_ns
        while self._offline_q:
            qid, idx = self._offline_q.popleft()
            self._register(qid, idx, t)
        self._held.clear()
        self._fail_many(list(self._pending), status, code)

    async def _one(self, qid: int, idx: int, issued_ns: int, chunk: RecordChunk, j: int) -> None:
        lg = self._lg
        now = time.monotonic_ns
        t0 = self.t0_ns
        rid = str(qid).encode()
        req = self.requests[idx] + b"\x0a" + _varint(len(rid)) + rid
        tokens: list[int] = []
        n_chunks = 0
        first_sent = False
        first_ns = -1
        last: Any = None
        replica = ""  # the first chunk's replica id: a stream that fails after it is still attributed
        # ITL costs one clock read and one comparison per message: only the longest gap is kept.
        prev_ns = 0
        max_gap = -1
        # Reasoning: each message says how many of its tokens are reasoning (they come first); read only
        # until the first answer token, so a model without reasoning pays one comparison per message.
        answer_ns = -1
        n_reason = 0
        try:
            call = self._call(req, timeout=self.rpc_timeout_s, metadata=self._metadata)
            async for msg in call:
                t = now()
                ids = msg.token_ids
                if n_chunks == 0:
                    first_ns = t - t0
                    chunk.first_token_ns[j] = first_ns
                    chunk.first_chunk_tokens[j] = len(ids)
                    chunk.sut_arrival_ns[j] = msg.sut_arrival_ns
                    chunk.sut_first_token_ns[j] = msg.sut_first_token_ns
                    replica = msg.replica_id
                    if not self.offline and len(ids) and self._lg_open:
                        first = np.array(ids[:1], dtype=np.int32)
                        lg.FirstTokenComplete([lg.QuerySampleResponse(qid, first.ctypes.data, 4)])
                        first_sent = True
                elif t - prev_ns > max_gap:
                    max_gap = t - prev_ns
                if answer_ns < 0:
                    r = msg.reasoning_tokens
                    n_reason += r
                    if r < len(ids):
                        answer_ns = t - t0
                prev_ns = t
                n_chunks += 1
                tokens.extend(ids)
                last = msg
        except asyncio.CancelledError:
            self._fail(qid, tokens, first_sent, self._stop_status or "CANCELLED", 1)
            raise
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            self._fail(qid, tokens, first_sent, code.name, int(code.value[0]), self._replica(replica))
            return
        except Exception:  # a broken stream must still complete the query
            self._fail(qid, tokens, first_sent, "UNKNOWN", 2, self._replica(replica))
            return
        if last is None or (not tokens and not (last is not None and len(last.output_ids))):
            self._fail(qid, tokens, first_sent, "EMPTY_RESPONSE", 2)
            return
        if self._pending.pop(qid, None) is None:
            return  # already completed (failed) by an interrupt
        streamed = np.array(tokens, dtype=np.int32)
        out = np.array(last.output_ids, dtype=np.int32) if len(last.output_ids) else streamed
        n_tokens = int(last.n_tokens) if last.n_tokens > 0 else len(out)
        if self._lg_open:
            if not self.offline and not first_sent:
                # The first message had no tokens: report the first answered token as the first token.
                lg.FirstTokenComplete([lg.QuerySampleResponse(qid, out.ctypes.data, 4)])
            lg.QuerySamplesComplete([lg.QuerySampleResponse(qid, out.ctypes.data, out.nbytes, n_tokens)])
        done = now() - t0
        chunk.done_ns[j] = done
        chunk.n_tokens[j] = n_tokens
        chunk.n_streamed[j] = streamed.size
        chunk.n_chunks[j] = n_chunks
        chunk.status[j] = 0
        chunk.replica[j] = self._replica(last.replica_id)
        chunk.sut_last_token_ns[j] = last.sut_last_token_ns
        chunk.last_msg_ns[j] = prev_ns - t0
        chunk.max_gap_ns[j] = max_gap
        chunk.stream_matches_output[j] = out is streamed or bool(np.array_equal(out, streamed))
        if n_reason or last.n_reasoning_tokens:
            chunk.n_reasoning[j] = last.n_reasoning_tokens or n_reason
        chunk.first_answer_ns[j] = answer_ns
        self.completed += 1
        if self.metrics is not None:
            self.metrics.completed(issued_ns, first_ns, done, n_tokens)

    def _replica(self, replica_id: str) -> int:
        """The records' index of a replica id (once per query); an id first seen here is appended."""
        r = self._replica_index.get(replica_id)
        if r is None:
            r = self._replica_index[replica_id] = len(self.replica_ids)
            self.replica_ids.append(replica_id)
        return r

    def _fail(self, qid: int, tokens: list[int], first_sent: bool, status: str, code: int, replica: int = -1) -> None:
        """Complete a failed query so LoadGen never waits on it (nothing if it was completed already).

        With token latencies LoadGen divides by ``n_tokens - 1`` for TPOT and logs an error for
        ``n_tokens <= 1``; a run whose detail log holds errors is rejected by the submission checker
        regardless of the failure's cause. So a failed query reports the tokens it did receive as
        its data (possibly none) with ``n_tokens = max(2, received)``: LoadGen logs no spurious
        error, and the failure is counted here (results.json n_errors / errors_by_status), which
        marks the run not valid. The bytes LoadGen records stay honest: no token is invented.
        """
        ref = self._pending.pop(qid, None)
        if ref is None:
            return
        chunk, j = ref
        lg = self._lg
        data = np.array(tokens, dtype=np.int32) if tokens else _EMPTY[:0]
        ptr = data.ctypes.data if data.size else _EMPTY.ctypes.data
        try:
            if self._lg_open:
                if not self.offline and not first_sent:
                    lg.FirstTokenComplete([lg.QuerySampleResponse(qid, ptr, min(4, data.nbytes))])
                lg.QuerySamplesComplete([lg.QuerySampleResponse(qid, ptr, data.nbytes, max(2, data.size))])
        finally:
            self._record_failure(chunk, j, len(tokens), status, code, replica)

    def _fail_many(self, qids: list[int], status: str, code: int) -> None:
        """Complete queries that received nothing as failed, in one LoadGen call (interrupts fail thousands)."""
        refs = [(qid, ref) for qid in qids if (ref := self._pending.pop(qid, None)) is not None]
        if not refs:
            return
        lg = self._lg
        try:
            if self._lg_open:
                ptr = _EMPTY.ctypes.data
                if not self.offline:
                    lg.FirstTokenComplete([lg.QuerySampleResponse(qid, ptr, 0) for qid, _ in refs])
                lg.QuerySamplesComplete([lg.QuerySampleResponse(qid, ptr, 0, 2) for qid, _ in refs])
        finally:
            for _, (chunk, j) in refs:
                self._record_failure(chunk, j, 0, status, code)

    def _record_failure(
        self, chunk: RecordChunk, j: int, n_received: int, status: str, code: int, replica: int = -1
    ) -> None:
        chunk.done_ns[j] = time.monotonic_ns() - self.t0_ns
        chunk.replica[j] = replica
        chunk.status[j] = code
        chunk.n_streamed[j] = n_received
        chunk.n_tokens[j] = max(2, n_received)
        self.completed += 1
        self.errors += 1
        self.errors_by_status[status] = self.errors_by_status.get(status, 0) + 1
        if self.metrics is not None:
            self.metrics.failed(status)

    # ---- lifecycle ----

    def quiesce(self, timeout_s: float = 10.0) -> None:
        """Cancel anything still running and fail what is left (sent to LoadGen only while its test runs),
        so the records are final: called before results are written. Bounded by ``timeout_s``."""
        if not self._loop.is_running():
            return

        async def _settle() -> None:
            if self._stop_status is None:
                self._stop_status = _INTERRUPTED if self.interrupted is not None else "CANCELLED"
            await self._cancel_outstanding()

        with contextlib.suppress(concurrent.futures.TimeoutError):
            asyncio.run_coroutine_threadsafe(_settle(), self._loop).result(timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Quiesce, close the channel and stop the loop, each step bounded: results are written by then,
        and a channel that will not close must not keep the process from exiting."""
        if self._loop.is_running():
            self.quiesce(timeout_s)
            if self._channel is not None:
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    asyncio.run_coroutine_threadsafe(self._channel.close(), self._loop).result(timeout=timeout_s)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=timeout_s)
        if not self._thread.is_alive():  # a loop still running cannot be closed; the daemon thread dies with us
            self._loop.close()

"""One query's stream from a SUT into the per-query records, on a uvloop thread: what every load shape shares.

A :class:`StreamClient` owns the event loop thread, the channel (gRPC, or what an ``opener`` gives: the
OpenAI-compatible HTTP transport) and the records. ``_stream`` sends one request and reads its stream:
the first message's time and the replica it names, one clock read and one comparison per later message
(the longest gap), the reasoning count until the first answer token, and nothing per token. What a
finished, first-token or failed query means is a subclass's business, through four hooks:

* ``_first_token(qid, ids)``: the first message carried tokens; True when it was reported (LoadGen's
  ``FirstTokenComplete``);
* ``_answered(qid, out, n_tokens, first_sent)``: the query succeeded (``out``: the SUT's output ids);
* ``_failed(qid, data, first_sent)`` / ``_failed_many(qids)``: it failed, with the tokens it received.

The LoadGen bridge (``_bridge.Bridge``) reports each to LoadGen; the schedulers beside it
(``_loads``) wake whoever waits for the query. Every registered query is completed exactly once: it sits
in ``_pending`` from registration to completion and each completion path pops it first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
import numpy as np

from loadgen_harness._fleet import FLEET_CHANNEL_OPTIONS
from loadgen_harness._records import QueryRecords, RecordChunk
from loadgen_harness._transport import TransportSecurity, open_aio_channel
from proto import inference_pb2

GENERATE = "/lpuperf.v1.Inference/Generate"
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
    *FLEET_CHANNEL_OPTIONS,  # gRPC's round_robin over the target's replicas (one for a single address)
]
EMPTY = np.zeros(1, dtype=np.int32)
# A query the client itself stopped (an interrupt, an overload stop) is recorded with gRPC's CANCELLED code.
STOPPED_CODE = 1
_TOOL_CALL = int(inference_pb2.FINISH_REASON_TOOL_CALL)


def _counted_tool_call(last: Any) -> bool:
    """A tool call whose server sent no token ids (only its usage count): an answer, not an empty response."""
    return bool(last.finish_reason == _TOOL_CALL and last.n_tokens > 0)


class StreamClient:
    """The loop thread, the channel and the records of one run; subclasses say what a completion means."""

    def __init__(
        self,
        address: str,
        *,
        rpc_timeout_s: float = 300.0,
        expected_queries: int = 1024,
        metrics: Any = None,
        transport: TransportSecurity | None = None,
        replica_ids: Sequence[str] = (),
        opener: Callable[[], Awaitable[tuple[Any, Any]]] | None = None,
    ) -> None:
        import uvloop

        self.address = address
        self.transport = transport
        # Replica id (final chunk, or a failed stream's first chunk) -> records' replica index. Ids seen only
        # in streams (a pod that joined a dns target mid-run) are appended. A SUT that sends no id is
        # the replica when there is one, else unknown (-1).
        self.replica_ids: list[str] = list(replica_ids)
        self._replica_index: dict[str, int] = {rid: i for i, rid in enumerate(self.replica_ids)}
        self._replica_index.setdefault("", 0 if len(self.replica_ids) == 1 else -1)
        self.rpc_timeout_s = rpc_timeout_s
        self.records = QueryRecords(expected_queries)
        self.metrics = metrics
        self.completed = 0
        self.errors = 0
        self.errors_by_status: dict[str, int] = {}
        # The status queries get when the run is being stopped; None while it runs.
        self._stop_status: str | None = None
        self.stopped_ns: int | None = None  # when the stop began, on the run's clock
        self.t0_ns = time.monotonic_ns()
        # Registered and not yet completed: qid -> (chunk, row). A completion pops its entry first.
        self._pending: dict[int, tuple[RecordChunk, int]] = {}
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lpuperf-grpc", daemon=True)
        self._thread.start()
        self._channel: Any = None  # grpc.aio.Channel, or what ``opener`` gave (anything with ``async close()``)
        self._call: Any = None
        self._metadata: tuple[tuple[str, str], ...] | None = None  # the token, sent with every call
        self._opener = opener
        self._tasks: set[asyncio.Task[None]] = set()
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(timeout=30)

    async def _open(self) -> None:
        if self._opener is not None:  # another transport (loadgen_harness._http_transport): same per-query path
            self._channel, self._call = await self._opener()
            return
        # TLS is the channel's; the token is one metadata tuple passed with each call (no Python in grpc's threads).
        self._channel, self._metadata = open_aio_channel(self.address, self.transport, options=CHANNEL_OPTIONS)
        self._call = self._channel.unary_stream(
            GENERATE,
            request_serializer=None,  # requests are pre-serialised bytes
            response_deserializer=inference_pb2.GenerateChunk.FromString,
        )

    # ---- what a completion means (subclasses) ----

    def _first_token(self, qid: int, ids: Any) -> bool:
        return False

    def _answered(self, qid: int, out: np.ndarray, n_tokens: int, first_sent: bool) -> None:
        return None

    def _finished(self, qid: int, chunk: RecordChunk, j: int) -> None:
        """An answered query's row is complete (after ``_answered``, which LoadGen's completion cannot wait for)."""
        return None

    def _failed(self, qid: int, data: np.ndarray, first_sent: bool) -> None:
        return None

    def _failed_many(self, qids: list[int]) -> None:
        return None

    # ---- loop thread ----

    def _register(self, qid: int, idx: int, issued_ns: int) -> tuple[RecordChunk, int]:
        ref = self.records.slot_ref(idx, issued_ns)
        self._pending[qid] = ref
        return ref

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
        self._fail_leftovers(self._stop_status or "CANCELLED", STOPPED_CODE)

    def _fail_leftovers(self, status: str, code: int) -> None:
        """Fail what no task will complete (a task cancelled before its first step never runs its handler)."""
        self._fail_many(list(self._pending), status, code)

    async def _stream(self, qid: int, req: bytes, issued_ns: int, chunk: RecordChunk, j: int, call: Any = None) -> None:
        """Send ``req`` (a serialised GenerateRequest with its request id) and record its stream in row ``j``.

        ``call``: another channel's Generate (a session pinned to one replica); None = the run's channel.
        """
        now = time.monotonic_ns
        t0 = self.t0_ns
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
            chunk.sent_ns[j] = now() - t0
            stream = (call or self._call)(req, timeout=self.rpc_timeout_s, metadata=self._metadata)
            async for msg in stream:
                t = now()
                ids = msg.token_ids
                if n_chunks == 0:
                    first_ns = t - t0
                    chunk.first_token_ns[j] = first_ns
                    chunk.first_chunk_tokens[j] = len(ids)
                    chunk.sut_arrival_ns[j] = msg.sut_arrival_ns
                    chunk.sut_first_token_ns[j] = msg.sut_first_token_ns
                    replica = msg.replica_id
                    if len(ids):
                        first_sent = self._first_token(qid, ids)
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
            self._fail(qid, tokens, first_sent, self._stop_status or "CANCELLED", STOPPED_CODE)
            raise
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            self._fail(qid, tokens, first_sent, code.name, int(code.value[0]), self._replica(replica))
            return
        except Exception:  # a broken stream must still complete the query
            self._fail(qid, tokens, first_sent, "UNKNOWN", 2, self._replica(replica))
            return
        if last is None or (not tokens and not len(last.output_ids) and not _counted_tool_call(last)):
            self._fail(qid, tokens, first_sent, "EMPTY_RESPONSE", 2)
            return
        if self._pending.pop(qid, None) is None:
            return  # already completed (failed) by a stop
        streamed = np.array(tokens, dtype=np.int32)
        out = np.array(last.output_ids, dtype=np.int32) if len(last.output_ids) else streamed
        n_tokens = int(last.n_tokens) if last.n_tokens > 0 else len(out)
        chunk.finish_reason[j] = last.finish_reason
        chunk.cached_tokens[j] = last.cached_prompt_tokens
        self._answered(qid, out, n_tokens, first_sent)
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
        self._finished(qid, chunk, j)

    def _replica(self, replica_id: str) -> int:
        """The records' index of a replica id (once per query); an id first seen here is appended."""
        r = self._replica_index.get(replica_id)
        if r is None:
            r = self._replica_index[replica_id] = len(self.replica_ids)
            self.replica_ids.append(replica_id)
        return r

    def _fail(self, qid: int, tokens: list[int], first_sent: bool, status: str, code: int, replica: int = -1) -> None:
        """Complete a failed query (nothing if it was completed already), with the tokens it did receive."""
        ref = self._pending.pop(qid, None)
        if ref is None:
            return
        chunk, j = ref
        data = np.array(tokens, dtype=np.int32) if tokens else EMPTY[:0]
        try:
            self._failed(qid, data, first_sent)
        finally:
            self._record_failure(chunk, j, len(tokens), status, code, replica)

    def _fail_many(self, qids: list[int], status: str, code: int) -> None:
        """Complete queries that received nothing as failed, at once (a stop fails thousands)."""
        refs = [(qid, ref) for qid in qids if (ref := self._pending.pop(qid, None)) is not None]
        if not refs:
            return
        try:
            self._failed_many([qid for qid, _ in refs])
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

    def _settle_status(self) -> str:
        """The status queries still running at the end get (a subclass names its interrupt)."""
        return "CANCELLED"

    def quiesce(self, timeout_s: float = 10.0) -> None:
        """Cancel anything still running and fail what is left, so the records are final: called before
        results are written. Bounded by ``timeout_s``."""
        if not self._loop.is_running():
            return

        async def _settle() -> None:
            if self._stop_status is None:
                self._stop_status = self._settle_status()
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

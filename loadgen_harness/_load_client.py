"""The client of a run beside LoadGen: the shared stream client, answering the shape that sent each query.

``send`` (loop thread) registers the query's row at once (its due time as ``issue_ns``, its session, turn
and prompt length), appends a request id and starts its stream; the returned future resolves with a
:class:`Reply` when the query completes, however it completes (answered, failed, stopped), exactly once,
because every completion path of :class:`StreamClient` goes through the hooks below.

What is in flight is bounded: a send that would put more than ``max_in_flight`` queries in flight stops
the run as overloaded (an open loop against a SUT that cannot keep up), as a LoadGen Server run does.
Sessions on a fleet are pinned: with ``pin_addresses`` the client opens one channel per replica besides the
balanced one, and a query naming a pin goes over that replica's channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from loadgen_harness._bridge import OVERLOADED, Overload, _varint
from loadgen_harness._load_shapes import Query, Reply
from loadgen_harness._records import RecordChunk
from loadgen_harness._stream_client import EMPTY, GENERATE, STOPPED_CODE, StreamClient
from loadgen_harness._transport import open_aio_channel
from proto import inference_pb2

INTERRUPTED = "INTERRUPTED"
TOOL_CALL = int(inference_pb2.FINISH_REASON_TOOL_CALL)
_Waiter = tuple["asyncio.Future[Reply]", RecordChunk, int]


class LoadClient(StreamClient):
    """A :class:`~loadgen_harness._load_shapes.Sender` over the run's channel (and one channel per pinned replica)."""

    def __init__(self, address: str, *, max_in_flight: int, pin_addresses: Sequence[str] = (), **client: Any) -> None:
        """``client``: :class:`StreamClient`'s options (rpc_timeout_s, metrics, transport, replica_ids, opener)."""
        self.max_in_flight = max_in_flight
        self.interrupted: str | None = None
        self.overload: Overload | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._next_qid = 0
        self._pin_addresses = list(pin_addresses) if client.get("opener") is None else []
        self._pinned: list[Any] = []
        self._pinned_channels: list[Any] = []
        self.drive_task: asyncio.Task[None] | None = None
        super().__init__(address, **client)

    async def _open(self) -> None:
        await super()._open()
        for addr in self._pin_addresses:
            channel, _ = open_aio_channel(addr, self.transport)
            self._pinned_channels.append(channel)
            self._pinned.append(
                channel.unary_stream(
                    GENERATE, request_serializer=None, response_deserializer=inference_pb2.GenerateChunk.FromString
                )
            )

    # ---- Sender (loop thread) ----

    @property
    def stopping(self) -> bool:
        return self._stop_status is not None

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def pins(self) -> int:
        return max(1, len(self._pinned))

    def send(self, query: Query) -> asyncio.Future[Reply]:
        qid = self._next_qid
        self._next_qid = qid + 1
        fut: asyncio.Future[Reply] = self._loop.create_future()
        chunk, j = self._register(qid, query.sample_index, query.due_ns)
        chunk.session[j] = query.session
        chunk.turn[j] = query.turn
        chunk.tool_step[j] = query.tool_step
        chunk.n_prompt[j] = query.n_prompt
        self._waiters[qid] = (fut, chunk, j)
        if self.metrics is not None:
            self.metrics.issued(1)
        if self._stop_status is None and len(self._pending) > self.max_in_flight:
            self.overload = Overload(query.due_ns, len(self._pending) - 1, self.max_in_flight)
            self._stop_all(OVERLOADED)
        if self._stop_status is not None:
            self._fail_many([qid], self._stop_status, STOPPED_CODE)
            return fut
        rid = b"q%d" % qid
        req = query.request + b"\x0a" + _varint(len(rid)) + rid
        call = self._pinned[query.pin % len(self._pinned)] if query.pin >= 0 and self._pinned else None
        self._spawn(self._stream(qid, req, query.due_ns, chunk, j, call))
        return fut

    # ---- completions ----

    def _answered(self, qid: int, out: np.ndarray, n_tokens: int, first_sent: bool) -> None:
        waiter = self._waiters.pop(qid, None)
        if waiter is not None:
            fut, chunk, j = waiter
            if not fut.done():
                fut.set_result(Reply(True, out, int(chunk.finish_reason[j]) == TOOL_CALL))

    def _failed(self, qid: int, data: np.ndarray, first_sent: bool) -> None:
        self._resolve_failed(qid, data)

    def _failed_many(self, qids: list[int]) -> None:
        for qid in qids:
            self._resolve_failed(qid, EMPTY[:0])

    def _resolve_failed(self, qid: int, data: np.ndarray) -> None:
        waiter = self._waiters.pop(qid, None)
        if waiter is not None and not waiter[0].done():
            waiter[0].set_result(Reply(False, data))

    # ---- control ----

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def interrupt(self, reason: str) -> None:
        """(any thread) Stop sending and fail everything in flight now."""
        if self.interrupted is None:
            self.interrupted = reason
            self.stopped_ns = time.monotonic_ns() - self.t0_ns
            self._loop.call_soon_threadsafe(self._interrupt_on_loop)

    def _interrupt_on_loop(self) -> None:
        self._stop_all(INTERRUPTED)
        if self.drive_task is not None:
            self.drive_task.cancel()

    def loadgen_done(self) -> None:
        """No LoadGen to close off (the interrupt protocol of ``run_test``)."""

    def abandon(self) -> None:
        if self.drive_task is not None:
            self._loop.call_soon_threadsafe(self.drive_task.cancel)

    def _settle_status(self) -> str:
        return INTERRUPTED if self.interrupted is not None else "CANCELLED"

    async def drained(self, timeout_s: float) -> None:
        """Wait until nothing is in flight (the shape stopped sending), at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def close(self, timeout_s: float = 10.0) -> None:
        if self._pinned_channels and self._loop.is_running():
            channels, self._pinned_channels = self._pinned_channels, []

            async def _close_pinned() -> None:
                for ch in channels:
                    await ch.close()

            fut = asyncio.run_coroutine_threadsafe(_close_pinned(), self._loop)
            with contextlib.suppress(Exception):  # a pinned channel that will not close must not keep us here
                fut.result(timeout=timeout_s)
        super().close(timeout_s)

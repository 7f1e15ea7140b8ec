"""Virtual time for load-shape tests: an asyncio loop whose clock jumps to the next timer instead of waiting.

``run_virtual(coro)`` runs a coroutine on :class:`VirtualTimeLoop`; :class:`VirtualClock` is the shapes'
``Clock`` on it, in exact integer nanoseconds (a wake-up sets the clock to the time it asked for, so
schedules are compared exactly, never through float sums). :class:`FakeSut` is a ``Sender`` that answers
each query after a service time of the test's choosing, on the same clock, and records every send.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen_harness import Query, Reply
from proto import inference_pb2


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Never blocks: a wait for ``timeout`` seconds moves the loop's clock instead."""

    def __init__(self, real_limit_s: float) -> None:
        super().__init__()
        self.advance: Callable[[float], None] = lambda dt: None
        self.deadline = time.monotonic() + real_limit_s

    def select(self, timeout: float | None = None) -> list[Any]:
        if time.monotonic() > self.deadline:
            raise RuntimeError("virtual time: the test ran past its real-time limit")
        if timeout is None:
            raise RuntimeError("virtual time: nothing is scheduled and nothing is ready (the test would hang)")
        if timeout > 0:
            self.advance(timeout)
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, real_limit_s: float = 60.0) -> None:
        selector = _JumpingSelector(real_limit_s)
        super().__init__(selector)
        self._virtual_s = 0.0
        selector.advance = self._advance

    def _advance(self, dt: float) -> None:
        self._virtual_s += dt

    def time(self) -> float:
        return self._virtual_s


def run_virtual(coro: Coroutine[Any, Any, Any], real_limit_s: float = 60.0) -> Any:
    """Run ``coro`` to its end in virtual time (bounded in real time, so a bug cannot hang the suite)."""
    loop = VirtualTimeLoop(real_limit_s)
    try:
        return loop.run_until_complete(coro)
    finally:
        pending = asyncio.all_tasks(loop)  # answers the coroutine did not wait for (an open loop's last sends)
        for task in pending:
            task.cancel()

        async def settle() -> None:
            await asyncio.gather(*pending, return_exceptions=True)

        if pending:
            loop.run_until_complete(settle())
        loop.close()


class VirtualClock:
    """A shape's Clock in exact ns: ``sleep_until(t)`` wakes with ``now_ns() == t`` (or later, never earlier)."""

    def __init__(self) -> None:
        self.now = 0

    def now_ns(self) -> int:
        return self.now

    async def sleep_until(self, t_ns: int) -> None:
        if t_ns > self.now:
            await asyncio.sleep((t_ns - self.now) / 1e9)
            self.now = max(self.now, t_ns)


@dataclass
class Sent:
    query: Query
    sent_ns: int
    prompt: np.ndarray
    allow_tool_call: bool
    index: int
    done_ns: int = -1
    answer: np.ndarray | None = None


class FakeSut:
    """A Sender answering each query ``service_ns(query)`` after its send with ``answer_tokens`` tokens."""

    def __init__(
        self,
        clock: VirtualClock,
        service_ns: Callable[[Query], int],
        *,
        answer_tokens: int = 4,
        tool_call: Callable[[Sent], bool] = lambda s: False,
    ) -> None:
        self.clock = clock
        self.service_ns = service_ns
        self.answer_tokens = answer_tokens
        self.tool_call = tool_call
        self.sent: list[Sent] = []
        self._in_flight = 0
        self.max_in_flight = 0
        self.stopping = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def send(self, query: Query) -> asyncio.Task[Reply]:
        req = inference_pb2.GenerateRequest.FromString(query.request)
        prompt = np.array(req.input_ids, dtype=np.int32)
        sent = Sent(query, self.clock.now_ns(), prompt, req.allow_tool_call, len(self.sent))
        self.sent.append(sent)
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        return asyncio.get_running_loop().create_task(self._answer(sent))

    async def _answer(self, sent: Sent) -> Reply:
        await self.clock.sleep_until(sent.sent_ns + self.service_ns(sent.query))
        self._in_flight -= 1
        sent.done_ns = self.clock.now_ns()
        start = 1000 + 10 * sent.index
        sent.answer = np.arange(start, start + self.answer_tokens, dtype=np.int32)
        return Reply(True, sent.answer, sent.allow_tool_call and self.tool_call(sent))

"""Clocks for the sim's scheduler: the event loop's own time, or a virtual one for exact tests.

The scheduler only ever asks two things of time: what it is now, and to sleep for a while. With the
:class:`LoopClock` that is ``loop.time()`` and ``asyncio.sleep``. With the :class:`VirtualClock`
nobody really waits: :meth:`VirtualClock.run` drives coroutines as a discrete-event simulation,
letting every runnable task settle, then jumping straight to the earliest pending deadline. The same
inputs then give bit-identical timestamps on an idle laptop and on a saturated CI box.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on this clock's own time line."""
        ...

    def sleep(self, delay: float) -> Awaitable[None]:
        """Resume ``delay`` seconds later on this clock (at once, after yielding, when ``delay`` <= 0)."""
        ...


class LoopClock:
    """Real time: the running event loop's monotonic clock."""

    __slots__ = ("now", "sleep")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Bound methods stored once: the scheduler calls these every step.
        self.now = loop.time
        self.sleep = asyncio.sleep


class VirtualClock:
    """Discrete-event time: sleeps complete in deadline order, instantly and deterministically.

    Only :meth:`run` advances time. Between two advances it yields to the event loop ``settle``
    times so every task woken by the previous deadline runs until it waits again. Sleeps due at the
    same instant wake together, resumed in the order they were requested.
    """

    def __init__(self, start: float = 0.0, settle: int = 32) -> None:
        self._now = float(start)
        self._settle = settle
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, delay: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self._now + max(0.0, delay), next(self._order), fut))
        await fut

    async def run(self, *coros: Coroutine[Any, Any, T], max_events: int = 1_000_000) -> list[T]:
        """Run ``coros`` to completion in virtual time; return their results in order.

        Raises RuntimeError when they wait on something no timer will ever wake (a deadlock in the
        code under test) or when more than ``max_events`` deadlines pass (a runaway schedule).
        """
        tasks = [asyncio.ensure_future(c) for c in coros]
        try:
            for _ in range(max_events):
                for _ in range(self._settle):
                    await asyncio.sleep(0)
                if all(t.done() for t in tasks):
                    return [t.result() for t in tasks]
                for t in tasks:  # a failure first, not the deadlock it may leave behind
                    if t.done() and not t.cancelled() and t.exception() is not None:
                        return [t.result()]
                while self._heap and self._heap[0][2].cancelled():
                    heapq.heappop(self._heap)
                if not self._heap:
                    raise RuntimeError(f"virtual clock at {self._now:.6f} s: tasks wait but no timer is pending")
                # Everything due at the earliest deadline wakes together (in request order), so
                # simultaneous arrivals are simultaneous for the code under test too.
                deadline = self._heap[0][0]
                self._now = max(self._now, deadline)
                while self._heap and self._heap[0][0] == deadline:
                    fut = heapq.heappop(self._heap)[2]
                    if not fut.cancelled():
                        fut.set_result(None)
            raise RuntimeError(f"virtual clock: more than {max_events} deadlines without finishing")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

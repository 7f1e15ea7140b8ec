"""Frames between the run's process and a worker through shared memory, with a doorbell only when needed.

Each direction is one single-producer single-consumer :class:`Ring` of length-prefixed frames in a shared
mapping (one ``memfd`` per worker, handed to the worker with its socket). A producer copies its frames in,
then publishes them by advancing ``tail``; a consumer copies everything between ``head`` and ``tail`` out in
one go and advances ``head``. Nothing is pickled: the frames are the same fixed-width records as before.

The socket stays, for two things only: a one-byte doorbell, and EOF (a process that dies closes it).
A producer rings only when the consumer said it is about to sleep. The protocol cannot lose a wake-up:

* consumer, before blocking: ``sleeping = 1``, fence, look at the ring once more; anything there: drain it
  instead of blocking. Otherwise block on the socket until a doorbell (or EOF).
* producer, after publishing: fence, read ``sleeping``; if set, clear it and write the doorbell.

The fences order each side's store before its load (the Dekker pattern): either the consumer's last look
sees the new frames, or the producer sees the flag and rings. A fence is an uncontended lock's acquire and
release (atomic read-modify-write instructions: a full barrier on x86-64). At high rates the consumer is
awake, the flag is clear and a frame costs no system call and wakes nobody.

A frame is visible only once ``tail`` moves past it, so a producer killed mid-write leaves no half frame:
the consumer drains what was published, then acts on the EOF.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import threading
import time

HEADER_BYTES = 256  # tail, head and the sleeping flag on cache lines of their own
_TAIL_AT, _HEAD_AT, _SLEEPING_AT = 0, 64, 128
_LEN = struct.Struct("<I")
DOORBELL = b"\x01"
_FULL_WAIT_S = 0.0005


def fence(lock: threading.Lock) -> None:
    """A full memory barrier between the caller's stores and its later loads (see the module's protocol)."""
    with lock:
        pass


class RingFull(OSError):
    """The consumer took nothing for too long (or the frame can never fit): treated as the peer being gone."""


class Ring:
    """One direction of frames in ``buf`` (a shared mapping): ``HEADER_BYTES`` then ``size`` bytes of data."""

    def __init__(self, buf: memoryview, size: int) -> None:
        if len(buf) != HEADER_BYTES + size:
            raise ValueError(f"ring: {len(buf)} bytes for a {size}-byte ring")
        self.size = size
        self._words = buf[:HEADER_BYTES].cast("Q")  # aligned 8-byte loads and stores
        self._data = buf[HEADER_BYTES:]
        self._fence = threading.Lock()

    # ---- shared state ----

    @property
    def sleeping(self) -> bool:
        return bool(self._words[_SLEEPING_AT // 8])

    @sleeping.setter
    def sleeping(self, value: bool) -> None:
        self._words[_SLEEPING_AT // 8] = int(value)

    def pending(self) -> bool:
        """Frames published and not yet taken."""
        return self._words[_TAIL_AT // 8] != self._words[_HEAD_AT // 8]

    # ---- producer ----

    def put(self, data: bytes | bytearray, *, timeout_s: float = 30.0) -> bool:
        """Append ``data`` (whole length-prefixed frames) and publish it; True when the consumer must be woken.

        A full ring waits (bounded) for the consumer; ``RingFull`` when it never makes room."""
        n = len(data)
        if n > self.size:
            raise RingFull(f"ring: a {n}-byte write cannot fit a {self.size}-byte ring")
        words = self._words
        tail = words[_TAIL_AT // 8]
        if tail + n - words[_HEAD_AT // 8] > self.size:
            self._wait_room(tail, n, timeout_s)
        at = tail % self.size
        first = min(n, self.size - at)
        self._data[at : at + first] = data[:first]
        if first < n:  # wraps: the rest goes to the start
            self._data[: n - first] = data[first:]
        fence(self._fence)  # the frames before the tail that publishes them
        words[_TAIL_AT // 8] = tail + n
        fence(self._fence)  # the tail before the flag's load
        if words[_SLEEPING_AT // 8]:
            words[_SLEEPING_AT // 8] = 0  # one doorbell per sleep: the consumer re-checks before sleeping again
            return True
        return False

    def _wait_room(self, tail: int, n: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while tail + n - self._words[_HEAD_AT // 8] > self.size:
            if time.monotonic() > deadline:
                raise RingFull(f"ring: no room for {n} bytes within {timeout_s:.0f} s")
            time.sleep(_FULL_WAIT_S)

    # ---- consumer ----

    def take(self) -> list[bytes]:
        """Every frame published since the last call, in order (copied out: the space is reused at once)."""
        words = self._words
        head, tail = words[_HEAD_AT // 8], words[_TAIL_AT // 8]
        if head == tail:
            return []
        fence(self._fence)  # the tail's load before the frames' loads
        n = tail - head
        at = head % self.size
        first = min(n, self.size - at)
        raw = bytes(self._data[at : at + first])
        if first < n:
            raw += self._data[: n - first]
        words[_HEAD_AT // 8] = tail
        frames: list[bytes] = []
        pos = 0
        while pos < n:
            (length,) = _LEN.unpack_from(raw, pos)
            frames.append(raw[pos + 4 : pos + 4 + length])
            pos += 4 + length
        return frames

    def about_to_sleep(self) -> bool:
        """Say so to the producer, then look once more: True when it is safe to block (nothing arrived)."""
        self._words[_SLEEPING_AT // 8] = 1
        fence(self._fence)  # the flag before the last look
        if self.pending():
            self._words[_SLEEPING_AT // 8] = 0
            return False
        return True


def frames(*msgs: bytes) -> bytes:
    """Length-prefixed frames, ready for ``Ring.put``."""
    return b"".join(_LEN.pack(len(m)) + m for m in msgs)


class RingPair:
    """A worker's two rings in one shared mapping: ``to_worker`` (run -> worker) then ``to_run``."""

    def __init__(self, fd: int, to_worker_bytes: int, to_run_bytes: int) -> None:
        self.fd = fd
        self.to_worker_bytes = to_worker_bytes
        self.to_run_bytes = to_run_bytes
        total = 2 * HEADER_BYTES + to_worker_bytes + to_run_bytes
        if os.fstat(fd).st_size < total:
            os.ftruncate(fd, total)
        self._map = mmap.mmap(fd, total)
        view = memoryview(self._map)
        split = HEADER_BYTES + to_worker_bytes
        self.to_worker = Ring(view[:split], to_worker_bytes)
        self.to_run = Ring(view[split:], to_run_bytes)

    @classmethod
    def create(cls, to_worker_bytes: int, to_run_bytes: int) -> RingPair:
        """A new anonymous mapping (the run's side); its fd is inheritable for the worker's ``pass_fds``."""
        fd = os.memfd_create("lpuperf-worker-rings", 0)
        pair = cls(fd, to_worker_bytes, to_run_bytes)
        pair.to_worker.sleeping = True  # neither side looks before its first doorbell
        pair.to_run.sleeping = True
        return pair

    def argv(self) -> list[str]:
        """How the worker finds the mapping: its fd and the two sizes."""
        return [str(self.fd), str(self.to_worker_bytes), str(self.to_run_bytes)]

    def close(self) -> None:
        """The fd only: the mapping stays until the process ends (views of it may still be held)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)

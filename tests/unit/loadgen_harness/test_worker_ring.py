"""The shared-memory rings between a run's process and its workers (``_worker_ring``): frames come out whole
and in order across many wrap-arounds; the doorbell protocol loses no wake-up under a producer/consumer
race (and a producer that ignores the sleeping flag is caught losing them); a producer SIGKILLed with
frames in the ring leaves exactly the frames it published, whatever it was writing when it died."""

from __future__ import annotations

import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from loadgen_harness._worker_ring import DOORBELL, HEADER_BYTES, Ring, RingFull, RingPair, frames


def _ring(size: int) -> Ring:
    return Ring(memoryview(bytearray(HEADER_BYTES + size)), size)


def test_frames_survive_many_wrap_arounds_whole_and_in_order() -> None:
    ring = _ring(97)  # odd size: frames and length prefixes straddle the end in every position
    rng = random.Random(7)
    sent: list[bytes] = []
    got: list[bytes] = []
    unread = 0
    for i in range(3000):
        batch = [bytes([i % 251]) * rng.randrange(0, 30) for _ in range(rng.randrange(1, 3))]
        data = frames(*batch)
        if unread + len(data) > ring.size or rng.random() < 0.4:  # sometimes several puts per take
            got.extend(ring.take())
            unread = 0
        ring.put(data, timeout_s=1.0)
        unread += len(data)
        sent.extend(batch)
    got.extend(ring.take())
    assert got == sent
    assert not ring.pending()


def test_a_full_ring_waits_for_room_then_gives_up() -> None:
    ring = _ring(64)
    ring.put(frames(b"x" * 50))  # 54 bytes of 64
    with pytest.raises(RingFull, match="no room"):
        ring.put(frames(b"y" * 20), timeout_s=0.05)
    with pytest.raises(RingFull, match="cannot fit"):
        ring.put(frames(b"z" * 100))
    assert ring.take() == [b"x" * 50]
    ring.put(frames(b"y" * 20))  # room again: the wait ends at once
    assert ring.take() == [b"y" * 20]


def test_the_producer_rings_only_for_a_consumer_about_to_sleep() -> None:
    ring = _ring(1024)
    assert ring.put(frames(b"a")) is False  # the consumer never said it sleeps
    assert ring.about_to_sleep() is False  # a frame is there: drain instead of sleeping
    assert ring.take() == [b"a"]
    assert ring.about_to_sleep() is True
    assert ring.put(frames(b"b")) is True  # asleep: one doorbell
    assert ring.put(frames(b"c")) is False  # already rung: no second one
    assert ring.take() == [b"b", b"c"]


class _DeafProducer(Ring):
    """A planted fault: publishes without ever looking at the sleeping flag."""

    def put(self, data: bytes | bytearray, *, timeout_s: float = 30.0) -> bool:
        super().put(data, timeout_s=timeout_s)
        return False


def _race(ring: Ring, n_frames: int, wake_timeout_s: float) -> tuple[list[bytes], int, int]:
    """A producer thread and a consumer thread over one ring and a socket pair's doorbell, both bounded.

    Returns (frames received, doorbells rung, lost wake-ups: blocked waits that timed out with frames there)."""
    prod_end, cons_end = socket.socketpair()
    rung = [0]
    got: list[bytes] = []
    lost = 0
    rng = random.Random(3)
    pauses = [rng.random() < 0.02 for _ in range(n_frames)]  # now and then the consumer falls asleep

    def produce() -> None:
        time.sleep(0.01)  # the consumer is asleep before the first frame: it must be woken
        for i in range(n_frames):
            if ring.put(frames(i.to_bytes(4, "little"))):
                rung[0] += 1
                prod_end.send(DOORBELL)
            if pauses[i]:
                time.sleep(0.001)

    producer = threading.Thread(target=produce, daemon=True)
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as sel:
        sel.register(cons_end, selectors.EVENT_READ)
        producer.start()
        while len(got) < n_frames and time.monotonic() < deadline:
            msgs = ring.take()
            if msgs:
                got.extend(msgs)
                continue
            if not ring.about_to_sleep():
                continue
            if sel.select(timeout=wake_timeout_s):
                cons_end.recv(4096)
            elif ring.pending():
                lost += 1  # frames were there and nobody rang
            ring.sleeping = False
    producer.join(timeout=10)
    prod_end.close()
    cons_end.close()
    return got, rung[0], lost


def test_no_wake_up_is_lost_in_a_producer_consumer_race() -> None:
    n = 20_000
    got, rung, lost = _race(_ring(4096), n, wake_timeout_s=5.0)
    assert lost == 0
    assert [int.from_bytes(f, "little") for f in got] == list(range(n))
    assert 0 < rung < n  # some frames woke a sleeping consumer; the others cost no doorbell


def test_a_producer_that_ignores_the_flag_is_caught_losing_wake_ups() -> None:
    size = 4096
    ring = _DeafProducer(memoryview(bytearray(HEADER_BYTES + size)), size)
    got, rung, lost = _race(ring, 300, wake_timeout_s=0.05)
    assert rung == 0 and lost > 0
    assert len(got) == 300  # the consumer's timeout found them late: delivered, but every one a stall


_CHILD = textwrap.dedent(
    """
    import sys, time
    from loadgen_harness._worker_ring import RingPair, frames
    rings = RingPair(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    ring = rings.to_run
    for i in range(500):
        ring.put(frames(b"D" + i.to_bytes(4, "little") + bytes(i % 300)))
    # Mid-write when killed: bytes copied past the tail, never published.
    at = ring._words[0] % ring.size
    ring._data[at : at + 16] = b"\\xff" * 16
    sys.stdout.write("ready\\n")
    sys.stdout.flush()
    time.sleep(60)
    """
)


def test_a_producer_killed_with_frames_in_the_ring_leaves_exactly_what_it_published() -> None:
    rings = RingPair.create(1 << 16, 1 << 20)
    mine, theirs = socket.socketpair()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *rings.argv()],
        pass_fds=(rings.fd, theirs.fileno()),
        stdout=subprocess.PIPE,
        cwd=os.getcwd(),
    )
    theirs.close()
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        mine.settimeout(10)
        assert mine.recv(16) == b""  # its death is EOF on the socket
        got = rings.to_run.take()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        mine.close()
        rings.close()
    assert [f[:5] for f in got] == [b"D" + i.to_bytes(4, "little") for i in range(500)]
    assert [len(f) for f in got] == [5 + i % 300 for i in range(500)]
    assert rings.to_run.take() == []

"""The frames and rows that cross between a run's process and its workers (``_worker_wire``), over a real
socket pair: frames split across reads and many frames in one read come out whole and in order; a row
written through a RowChunk's columns is one slice of bytes that lands exactly in another chunk; queries
fill one worker up to FILL_DEPTH outstanding before the next gets any, then go to the fewest outstanding."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import numpy as np
import pytest

from loadgen_harness._records import QUERY_RECORD_DTYPE, QueryRecords
from loadgen_harness._worker_wire import (
    ISSUE,
    ROW_BYTES,
    Channel,
    RowChunk,
    RowRecords,
    issue_message,
    parse_issue,
)
from loadgen_harness._workers import FILL_DEPTH, pick_worker


@pytest.fixture()
def pair() -> tuple[Channel, Channel]:
    a, b = socket.socketpair()
    return Channel(a), Channel(b)


def test_frames_arrive_whole_in_order_whatever_the_reads(pair: tuple[Channel, Channel]) -> None:
    left, right = pair
    frames = [bytes([i % 251]) * (i * 37 % 500) for i in range(200)]  # 50 KB: within the socket buffer
    for f in frames[:100]:
        assert left.queue(f) is (f is frames[0])
    left.flush()  # one write carrying a hundred frames
    for f in frames[100:]:
        left.send(f)
    got: list[bytes] = []
    for _ in range(1000):
        if len(got) == len(frames):
            break
        got += right.receive()
    assert got == frames


def test_a_frame_split_across_writes_waits_for_its_tail(pair: tuple[Channel, Channel]) -> None:
    left, right = pair
    body = b"D" + bytes(range(200))
    wire = struct.pack("<I", len(body)) + body
    left.sock.sendall(wire[:3])  # not even the whole length prefix
    assert right.receive_one(0.05) is None
    left.sock.sendall(wire[3:50])
    assert right.receive_one(0.05) is None
    left.sock.sendall(wire[50:])
    assert right.receive_one(5.0) == body


def test_a_closed_peer_is_eof(pair: tuple[Channel, Channel]) -> None:
    left, right = pair
    left.send(b"last")
    left.close()
    assert right.receive() == [b"last"]
    with pytest.raises(EOFError):
        right.receive()


def test_issue_records_round_trip() -> None:
    one = issue_message([(2**63 + 5, 7)], 123)
    assert one[:1] == ISSUE and parse_issue(one) == [(2**63 + 5, 7, 123)]
    many = issue_message([(1, 10), (2, 20), (3, 30)], -1)
    assert parse_issue(many) == [(1, 10, -1), (2, 20, -1), (3, 30, -1)]


def test_a_row_written_through_columns_lands_exactly_in_the_records() -> None:
    ring = RowChunk(4)
    ring.sample_index[2] = 9
    ring.done_ns[2] = 1234
    ring.replica[2] = 3
    ring.stream_matches_output[2] = True
    ring.finish_reason[2] = 1
    data = bytes(ring.row_bytes(2))
    assert len(data) == ROW_BYTES == QUERY_RECORD_DTYPE.itemsize
    rec = RowRecords(8)
    chunk, j = rec.slot_ref(9, 55)
    assert isinstance(chunk, RowChunk)
    chunk.put_row(j, data)
    arr = rec.to_array()
    assert arr.size == 1 and arr[0]["done_ns"] == 1234 and arr[0]["replica"] == 3 and arr[0]["finish_reason"] == 1
    assert arr[0]["first_token_ns"] == -1 and arr[0]["n_reasoning"] == 0  # untouched columns keep their defaults
    ring.clear_row(2)
    assert bytes(ring.row_bytes(2)) == bytes(ring.row_bytes(0))  # a reused ring row starts blank
    # The same defaults as the one-process records' rows.
    plain = QueryRecords(8)
    plain.slot_ref(0, 0)
    blank = RowRecords(8)
    blank.slot_ref(0, 0)
    assert np.array_equal(plain.to_array(), blank.to_array())


@dataclass
class _Load:
    index: int
    outstanding: int = 0


def test_routing_fills_one_worker_then_spills_then_spreads() -> None:
    live = [_Load(0), _Load(1), _Load(2)]
    picked: list[int] = []
    for _ in range(3 * FILL_DEPTH + 6):  # nothing completes: a worker that is behind
        w = pick_worker(live)
        w.outstanding += 1
        picked.append(w.index)
    assert picked[:FILL_DEPTH] == [0] * FILL_DEPTH  # an idle worker costs nothing: one takes all it can
    assert picked[FILL_DEPTH : 2 * FILL_DEPTH] == [1] * FILL_DEPTH
    assert picked[2 * FILL_DEPTH : 3 * FILL_DEPTH] == [2] * FILL_DEPTH
    assert sorted(picked[3 * FILL_DEPTH :]) == [0, 0, 1, 1, 2, 2]  # all full: the fewest outstanding
    live[0].outstanding = 0  # worker 0 caught up: it takes the next one again
    assert pick_worker(live) is live[0]

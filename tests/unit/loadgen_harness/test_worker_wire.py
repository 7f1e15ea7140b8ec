"""The frames and rows that cross between a run's process and its workers (``_worker_wire``), over a real
socket pair: frames split across reads and many frames in one read come out whole and in order; a row
written through a RowChunk's columns is one slice of bytes that lands exactly in another chunk; queries
fill one worker up to FILL_DEPTH outstanding before the next gets any, then go to the fewest outstanding."""

from __future__ import annotations

import ctypes
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
    FrameReader,
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
    left.sock.sendall(b"".join(struct.pack("<I", len(f)) + f for f in frames[:100]))  # a hundred in one write
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


def _read_all(reader: FrameReader, n: int) -> list[bytes]:
    got: list[bytes] = []
    for _ in range(1000):
        if len(got) >= n:
            break
        got += [bytes(reader.buf[a:b]) for a, b in reader.read()]  # copied before the next read reuses the buffer
    return got


def test_a_frame_reader_hands_frames_where_they_landed(pair: tuple[Channel, Channel]) -> None:
    left, right = pair
    frames = [bytes([i % 251]) * (i * 37 % 500) for i in range(200)]
    left.sock.sendall(b"".join(struct.pack("<I", len(f)) + f for f in frames[:100]))
    for f in frames[100:]:
        left.send(f)
    reader = right.frame_reader()
    assert _read_all(reader, len(frames)) == frames
    # ``address`` is where ``buf`` starts: a pointer into a frame reads its bytes
    left.send(b"F" + struct.pack("<Qi", 7, -3))
    ((start, end),) = reader.read()
    assert ctypes.string_at(reader.address + start, end - start) == b"F" + struct.pack("<Qi", 7, -3)


def test_a_frame_reader_joins_a_frame_split_across_reads_and_grows_for_a_large_one(
    pair: tuple[Channel, Channel],
) -> None:
    left, right = pair
    reader = FrameReader(right.sock, size=64)
    small, large = b"s" * 40, bytes(range(256)) * 40  # 10 KB: far past the 64-byte buffer
    wire = b"".join(struct.pack("<I", len(f)) + f for f in (small, large, small))
    got: list[bytes] = []
    for at in range(0, len(wire), 50):  # in 50-byte writes, each read as it comes
        left.sock.sendall(wire[at : at + 50])
        got += [bytes(reader.buf[a:b]) for a, b in reader.read()]
    assert got == [small, large, small]
    assert len(reader.buf) >= len(large) + 4


def test_a_frame_reader_keeps_what_the_channel_read_first(pair: tuple[Channel, Channel]) -> None:
    left, right = pair
    left.send(b"ready")
    left.send(b"first")
    left.sock.sendall(struct.pack("<I", 6) + b"sec")  # half a frame
    assert right.receive_one(5.0) == b"ready"
    for _ in range(100):  # the rest arrives in the channel's buffer before the reader takes over
        if right._frames and right._buf:
            break
        right._read()
    reader = right.frame_reader()
    left.sock.sendall(b"ond")
    assert _read_all(reader, 2) == [b"first", b"second"]
    left.close()
    with pytest.raises(EOFError):
        reader.read()


def test_send_parts_is_one_frame(pair: tuple[Channel, Channel]) -> None:
    left, right = pair
    tokens = np.arange(5, dtype=np.int32)
    left.send_parts((b"D", memoryview(b"row"), tokens.data), 1 + 3 + tokens.nbytes)
    assert right.receive() == [b"Drow" + tokens.tobytes()]


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

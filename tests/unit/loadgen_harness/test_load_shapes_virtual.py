"""The load shapes' schedules in virtual time, with exact expectations (no wall clock anywhere)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import LoadContext, LoadError, Query, SampleSet, load_shapes, parse_load
from loadgen_harness._load_requests import request_bytes
from loadgen_harness._load_shapes import make_shape
from scenarios import TraceSpec, iter_trace, system_prompt_tokens, tool_result_tokens, turn_tokens
from tests.unit.loadgen_harness.virtual_time import FakeSut, VirtualClock, run_virtual

MS = 1_000_000
S = 1_000_000_000


def _samples(n: int = 5) -> SampleSet:
    ids = [np.arange(10 + i, dtype=np.int32) for i in range(n)]
    return SampleSet([request_bytes(x, 8, 2) for x in ids], [x.size for x in ids])


def _ctx(sut: FakeSut, clock: VirtualClock, **kw: object) -> LoadContext:
    base: dict[str, object] = {
        "clock": clock,
        "sender": sut,
        "samples": _samples(),
        "duration_s": None,
        "max_requests": None,
        "max_new_tokens": 8,
        "eos_token_id": 2,
        "max_context_tokens": 1 << 20,
    }
    base.update(kw)
    return LoadContext(**base)  # type: ignore[arg-type]


def _drive(spec: str, sut: FakeSut, clock: VirtualClock, **kw: object) -> LoadContext:
    ctx = _ctx(sut, clock, **kw)
    shape = make_shape(parse_load(spec))
    shape.check()
    run_virtual(shape.drive(ctx))
    return ctx


# ---- concurrency ----


def test_a_concurrency_of_n_keeps_exactly_n_in_flight_and_sends_the_moment_a_slot_frees() -> None:
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 30 * MS)
    _drive("concurrency:4", sut, clock, duration_s=0.1)
    assert sut.max_in_flight == 4
    # Each worker sends at 0, 30, 60 and 90 ms (due < 100 ms): 16 requests, each sent exactly when due.
    assert sorted(s.query.due_ns for s in sut.sent) == sorted([k * 30 * MS for k in range(4)] * 4)
    assert all(s.sent_ns == s.query.due_ns for s in sut.sent)
    assert [s.query.sample_index for s in sut.sent[:7]] == [0, 1, 2, 3, 4, 0, 1]  # round-robin over the dataset


def test_concurrency_never_exceeds_n_with_uneven_service_times_and_stops_at_the_request_count() -> None:
    clock = VirtualClock()
    times = iter([7, 3, 11, 5, 2, 13, 1, 17, 4, 9] * 20)
    sut = FakeSut(clock, lambda q: next(times) * MS)
    _drive("concurrency:3:requests=50", sut, clock)
    assert len(sut.sent) == 50
    assert sut.max_in_flight == 3
    # Closed loop: every send after the first three is due the moment an answer came back.
    done = sorted(s.done_ns for s in sut.sent)
    assert all(s.query.due_ns in done for s in sut.sent[3:])


def test_ramp_up_starts_worker_k_at_k_over_n_of_the_ramp() -> None:
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 10 * S)
    _drive("concurrency:4:ramp=2", sut, clock, duration_s=1.9)
    assert [s.query.due_ns for s in sut.sent] == [0, 500 * MS, 1000 * MS, 1500 * MS]


# ---- rate ----


def test_constant_rate_sends_at_exact_multiples_of_the_gap() -> None:
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 1 * S)  # answers slower than arrivals: an open loop does not wait
    _drive("rate:3:constant", sut, clock, duration_s=2.0)
    assert [s.query.due_ns for s in sut.sent] == [round(i * S / 3) for i in range(6)]
    assert [s.sent_ns for s in sut.sent] == [s.query.due_ns for s in sut.sent]
    assert sut.max_in_flight == 3


def test_poisson_rate_reproduces_its_seeded_gaps() -> None:
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 5 * MS)
    _drive("rate:50:poisson:seed=7,requests=200", sut, clock)
    rng = np.random.default_rng(7)
    expected = [0]
    for _ in range(199):
        expected.append(expected[-1] + round(rng.exponential(S / 50)))
    assert [s.query.due_ns for s in sut.sent] == expected
    gaps = np.diff(expected) / S
    assert 0.015 < gaps.mean() < 0.025  # about 1/50 s


def test_a_stopping_sender_ends_the_open_loop() -> None:
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 1 * MS)
    ctx = _ctx(sut, clock, duration_s=10.0)
    shape = make_shape(parse_load("rate:100:constant"))

    async def stop_later() -> None:
        await clock.sleep_until(95 * MS)
        sut.stopping = True

    async def both() -> None:
        import asyncio

        await asyncio.gather(shape.drive(ctx), stop_later())

    run_virtual(both())
    assert len(sut.sent) == 10  # 0..90 ms; the 100 ms arrival finds the run stopping


# ---- trace ----


def _mooncake(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_trace_due_times_are_reproduced_to_the_microsecond(tmp_path: Path) -> None:
    rows = [
        {"timestamp": 0, "input_length": 20, "output_length": 5, "hash_ids": [1, 5]},
        {"timestamp": 1.001, "input_length": 30, "output_length": 7, "hash_ids": [1, 2]},
        {"timestamp": 2.5, "input_length": 10, "output_length": 3, "hash_ids": [3]},
        {"timestamp": 2500.123, "input_length": 40, "output_length": 9, "hash_ids": [1, 2, 7]},
    ]
    trace = _mooncake(tmp_path / "t.jsonl", rows)
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 1 * MS)
    _drive(f"trace:{trace}:block=16,speed=2", sut, clock)
    # Mooncake timestamps are milliseconds; speed 2 halves every gap.
    assert [s.query.due_ns for s in sut.sent] == [0, 500_500, 1_250_000, 1_250_061_500]
    assert all(abs(s.sent_ns - s.query.due_ns) < 1_000 for s in sut.sent)
    # The trace's prompts and output lengths, sent as recorded (exactly that many tokens asked for).
    want = list(iter_trace(TraceSpec(path=trace, block_tokens=16, speed=2)))
    assert [s.prompt.tolist() for s in sut.sent] == [w.input_ids.tolist() for w in want]
    assert np.array_equal(sut.sent[1].prompt[:16], sut.sent[0].prompt[:16])  # hash id 1: one shared block
    assert np.array_equal(sut.sent[3].prompt[:30], sut.sent[1].prompt[:30])


def test_a_trace_prompt_that_would_overflow_the_context_is_cut_at_its_end_and_counted(tmp_path: Path) -> None:
    trace = _mooncake(tmp_path / "t.jsonl", [{"timestamp": 0, "input_length": 100, "output_length": 20}])
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 1 * MS)
    ctx = _drive(f"trace:{trace}", sut, clock, max_context_tokens=64)
    assert sut.sent[0].prompt.size == 44 and ctx.counters["clipped_to_context"] == 1


def test_a_bad_trace_line_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    trace = tmp_path / "bad.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 5, "output_length": 2}\n{"timestamp": 1, "input_length": -3}\n')
    with pytest.raises(Exception, match=r"bad\.jsonl:2"):
        make_shape(parse_load(f"trace:{trace}")).check()


# ---- sessions ----


def test_sessions_keep_turn_order_history_and_think_time() -> None:
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 40 * MS, answer_tokens=3)
    spec = "sessions:synthetic:sessions=3,turns=3,input_tokens=5,output_tokens=4,think_time_s=0.25,system_tokens=8"
    ctx = _drive(spec + ",concurrency=2", sut, clock)
    assert ctx.counters["sessions"] == 3 and len(sut.sent) == 9
    system = system_prompt_tokens(8)
    for k in range(3):
        mine = [s for s in sut.sent if s.query.session == k]
        assert [s.query.turn for s in mine] == [0, 1, 2]
        history = system
        for t, s in enumerate(mine):
            expected = np.concatenate((history, turn_tokens(f"s{k}", t, 5)))
            assert s.prompt.tolist() == expected.tolist()  # everything said so far, then the new turn
            if t:
                assert s.query.due_ns == mine[t - 1].done_ns + 250 * MS  # think time after the answer
            assert s.answer is not None
            history = np.concatenate((expected, s.answer))  # the answer the SUT actually gave
    # Two sessions at once: the third starts when the first ends.
    first_end = max(s.done_ns for s in sut.sent if s.query.session == 0)
    third = next(s for s in sut.sent if s.query.session == 2)
    assert third.query.due_ns == first_end + 250 * MS


def test_agentic_turns_send_tool_results_after_the_tool_latency_until_the_model_answers() -> None:
    clock = VirtualClock()
    # The model calls a tool on the user's message and on the first tool result, then answers.
    sut = FakeSut(clock, lambda q: 20 * MS, tool_call=lambda s: s.query.tool_step < 2)
    spec = "sessions:synthetic:sessions=1,turns=2,input_tokens=4,output_tokens=4,think_time_s=1,agentic=true"
    _drive(spec + ",tool_latency_s=0.5,tool_result_tokens=6,max_tool_calls=3", sut, clock)
    steps = [(s.query.turn, s.query.tool_step) for s in sut.sent]
    assert steps == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    for prev, s in zip(sut.sent, sut.sent[1:], strict=False):
        if s.query.tool_step:
            assert s.query.due_ns == prev.done_ns + 500 * MS
            result = tool_result_tokens("s0", s.query.turn, s.query.tool_step - 1, 6)
            assert s.prompt[-6:].tolist() == result.tolist()
            assert s.prompt[: prev.prompt.size].tolist() == prev.prompt.tolist()
    assert all(s.allow_tool_call for s in sut.sent)


def test_tool_calls_stop_at_the_turns_limit() -> None:
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 1 * MS, tool_call=lambda s: True)  # a model that never stops calling
    _drive("sessions:synthetic:sessions=1,turns=1,agentic=true,max_tool_calls=2,think_time_s=0", sut, clock)
    assert [s.query.tool_step for s in sut.sent] == [0, 1, 2]
    assert [s.allow_tool_call for s in sut.sent] == [True, True, False]  # the last request offers no tool


def test_sessions_are_pinned_round_robin_and_cut_at_the_context_limit() -> None:
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: 1 * MS, answer_tokens=10)
    spec = "sessions:synthetic:sessions=4,turns=5,input_tokens=20,output_tokens=10,think_time_s=0"
    ctx = _drive(spec, sut, clock, pins=3, max_context_tokens=100)
    assert {s.query.session: s.query.pin for s in sut.sent} == {0: 0, 1: 1, 2: 2, 3: 0}
    # Turn prompts grow by 30 tokens (20 new + a 10-token answer): 20, 50, 80; 110 + 10 would not fit.
    assert max(s.query.turn for s in sut.sent) == 2 and ctx.counters["cut_at_context"] == 4


def test_sessions_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="file not found"):
        make_shape(parse_load(f"sessions:{tmp_path / 'none.jsonl'}")).check()


def test_every_registered_shape_parses_its_documented_example() -> None:
    assert set(load_shapes.names()) == {"concurrency", "rate", "trace", "sessions"}
    with pytest.raises(LoadError, match="field 'concurrency'"):
        parse_load("concurrency:0")
    with pytest.raises(LoadError, match="unknown load shape"):
        parse_load("burst:5")
    assert isinstance(Query(b"", 0), Query)

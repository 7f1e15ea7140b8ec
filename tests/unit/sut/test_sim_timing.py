"""The sim's timing model: prefill, absolute-deadline steps, batching, capacity.

The schedule is checked in virtual time with exact asserts: a VirtualClock runs the scheduler as a
discrete-event simulation, so the numbers do not depend on how busy the machine is. Timings are
dyadic fractions (1/16, 1/64, ...) so every sum the scheduler forms is exact in binary floating point.
One real-time test over gRPC keeps only loose sanity bounds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset
from sut._clock import VirtualClock

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)
STEP = 1 / 16
PF = 1 / 64


@dataclass
class Trace:
    arrival: float
    times: list[float]  # clock time each token was handed to the stream
    tokens: list[int]


class _LateClock(VirtualClock):
    """A loaded machine: every sleep wakes ``late`` seconds after its deadline."""

    def __init__(self, late: float) -> None:
        super().__init__()
        self.late = late

    async def sleep(self, delay: float) -> None:
        await super().sleep(max(0.0, delay) + self.late)


def _simulate(plan: list[tuple[float, int, int]], clock: VirtualClock | None = None, **cfg: Any) -> list[Trace]:
    """Run ``(arrival_s, sample_index, max_new)`` requests against the sim in virtual time."""
    clock = clock or VirtualClock()

    async def main() -> list[Trace]:
        timing = {"prefill_base_s": 0.0, "prefill_per_token_s": 0.0, **cfg}  # only what a test sets
        sim = sut.SimBackend(sut.SimConfig(dataset=DATASET, **timing), clock=clock)
        await sim.start()

        async def one(at: float, idx: int, max_new: int) -> Trace:
            await clock.sleep(at)
            trace = Trace(clock.now(), [], [])
            req = sut.GenerateRequest(request_id=f"r{idx}", input_ids=DS.input_ids[idx], max_new_tokens=max_new)
            async for item in sim.generate(req):
                if not isinstance(item, sut.GenerationEnd):
                    trace.times.extend([clock.now()] * len(item))
                    trace.tokens.extend(item)
            return trace

        try:
            return await clock.run(*(one(*p) for p in plan))
        finally:
            await sim.stop()

    return asyncio.run(main())


def test_prefill_base_plus_per_token_then_one_token_per_step() -> None:
    idx, n = 7, 40  # 126 prompt tokens
    (a,) = _simulate([(0.0, idx, n)], decode_step_s=STEP, prefill_base_s=PF, prefill_per_token_s=1 / 1024)
    prefill = PF + 126 / 1024
    assert a.tokens == DS.reference_ids[idx][:n].tolist()
    assert a.times == [prefill + k * STEP for k in range(n)]


def test_absolute_deadlines_do_not_accumulate_lateness() -> None:
    # Every wake-up is 1/256 s late (a busy CPU); the k-th token is still only 1/256 s late, not k/256
    # as it would be if each step slept a relative step_s from when it woke.
    late, n = 1 / 256, 30
    (a,) = _simulate([(0.0, 0, n)], clock=_LateClock(late), decode_step_s=STEP, prefill_base_s=PF)
    assert a.arrival == late  # the test's own sleep to the arrival was late as well
    assert a.times == [a.arrival + PF + k * STEP + late for k in range(n)]


def test_joining_request_waits_for_the_next_step_boundary() -> None:
    # Continuous batching: b arrives mid-step (at 2/64), joins at the boundary (5/64), and its prefill
    # (1/64) lengthens that step for everyone.
    a, b = _simulate([(0.0, 0, 5), (2 / 64, 1, 4)], max_batch=4, decode_step_s=STEP, prefill_base_s=PF)
    assert a.times == [1 / 64, 5 / 64, 10 / 64, 14 / 64, 18 / 64]
    assert b.times == [6 / 64, 10 / 64, 14 / 64, 18 / 64]
    assert b.times[0] - b.arrival == 4 / 64
    assert (a.tokens, b.tokens) == (DS.reference_ids[0][:5].tolist(), DS.reference_ids[1][:4].tolist())


def test_third_request_waits_a_full_sequence_when_the_batch_is_full() -> None:
    n = 6
    a, b, c = _simulate([(0.0, 0, n), (1 / 32, 1, n), (3 / 64, 2, n)], max_batch=2, decode_step_s=STEP)
    assert a.times == [k * STEP for k in range(n)]
    assert b.times == [(k + 1) * STEP for k in range(n)]
    # c finds both slots taken and joins in the very step a's last token is emitted.
    assert c.times == [(k + n - 1) * STEP for k in range(n)]
    assert c.times[0] == a.times[-1]
    assert c.tokens == DS.reference_ids[2][:n].tolist()


def test_joiners_prefill_back_to_back_in_fifo_order() -> None:
    # Three requests arrive together: their prefills run one after another before the first tokens,
    # and all three first tokens come at the end of the combined prefill.
    pfs = [PF + len(DS.input_ids[i]) / 1024 for i in (7, 4, 11)]
    a, b, c = _simulate(
        [(0.0, 7, 3), (0.0, 4, 3), (0.0, 11, 3)],
        max_batch=8,
        decode_step_s=STEP,
        prefill_base_s=PF,
        prefill_per_token_s=1 / 1024,
    )
    first = pfs[0] + pfs[1] + pfs[2]
    for tr in (a, b, c):
        assert tr.times == [first, first + STEP, first + 2 * STEP]


def test_same_arrivals_give_the_same_tokens_and_times() -> None:
    plan = [(0.0, 0, 4), (0.075, 1, 4), (0.085, 2, 4), (0.190, 3, 4)]
    cfg = {"max_batch": 2, "decode_step_s": STEP, "prefill_base_s": PF}
    assert _simulate(plan, **cfg) == _simulate(plan, **cfg)


def test_analytic_capacity_formula_matches_the_simulated_rate_exactly() -> None:
    max_new, batch, step, pf = 6, 4, 1 / 64, 1 / 512
    manifest = sut.ArtifactManifest(
        artifact_id="cap",
        backend="sim",
        model="m",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=batch,
        timing=sut.TimingModel(prefill_base_s=pf, prefill_per_token_s=0.0, decode_step_s=step),
    )
    qps = sut.analytic_capacity_qps(manifest, DS, max_new_tokens=max_new)
    # Every output is truncated to 6 tokens -> 5 steps each: qps = 4 / (5 * step + 4 * pf).
    assert qps == pytest.approx(batch / (5 * step + batch * pf), rel=1e-12)
    instant = manifest.model_copy(
        update={"timing": sut.TimingModel(prefill_base_s=0, prefill_per_token_s=0, decode_step_s=0)}
    )
    assert sut.analytic_capacity_qps(instant, DS) == float("inf")
    # Saturate: 48 requests at once, 4 slots. Each round admits 4 (4 prefills), decodes 5 steps, and
    # frees all 4 slots together, so completions come in bursts of 4 every 4 * pf + 5 * step.
    n = 48
    res = _simulate(
        [(0.0, i % len(DS), max_new) for i in range(n)],
        max_batch=batch,
        decode_step_s=step,
        prefill_base_s=pf,
        prefill_per_token_s=0.0,
    )
    ends = sorted(r.times[-1] for r in res)
    round_s = batch * pf + 5 * step
    assert ends == [(i // batch + 1) * round_s for i in range(n)]
    assert (n - batch) / (ends[-1] - ends[batch - 1]) == pytest.approx(qps, rel=1e-12)


def test_virtual_clock_reports_a_deadlock_instead_of_hanging() -> None:
    async def main() -> None:
        clock = VirtualClock()
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await clock.run(never)

    with pytest.raises(RuntimeError, match="no timer is pending"):
        asyncio.run(main())


def test_real_time_schedule_is_sane_over_grpc() -> None:
    # Wall clock on a possibly loaded box: lower bounds are firm (the sim never emits early), upper
    # bounds are loose. The exact schedule is the virtual-time tests' job.
    step, n, idx = 0.02, 20, 0
    prefill = sut.TimingModel(prefill_base_s=0.01, prefill_per_token_s=0.0001).prefill_s(len(DS.input_ids[idx]))
    server = sut.start_embedded(
        {
            "kind": "sim",
            "dataset": DATASET,
            "chunk_size": 1,
            "decode_step_s": step,
            "prefill_base_s": 0.01,
            "prefill_per_token_s": 0.0001,
        }
    )
    try:
        with grpc.insecure_channel(server.address) as ch:
            req = pb.GenerateRequest(input_ids=DS.input_ids[idx].tolist(), max_new_tokens=n, eos_token_id=-1)
            t0 = time.monotonic()
            chunks = list(pb_grpc.InferenceStub(ch).Generate(req, timeout=60))
            wall = time.monotonic() - t0
    finally:
        server.stop()
    tokens = [t for c in chunks for t in c.token_ids]
    assert tokens == DS.reference_ids[idx][:n].tolist()
    ttft = (chunks[0].sut_first_token_ns - chunks[0].sut_arrival_ns) / 1e9
    decode = (chunks[-1].sut_last_token_ns - chunks[0].sut_first_token_ns) / 1e9
    total = (chunks[-1].sut_last_token_ns - chunks[0].sut_arrival_ns) / 1e9
    assert prefill - 0.003 <= ttft < prefill + 2.0
    # The server stamps a token when its handler takes it over, never before the sim emits it; so arrival
    # to last token has a firm lower bound. First to last has none: on a loaded box the handler can take
    # the first token over later than the last (seen: 0.3764 s for a 0.38 s schedule under stress-ng).
    assert total >= prefill + (n - 1) * step - 0.003
    assert decode < (n - 1) * step + 5.0
    assert wall >= prefill + (n - 1) * step - 0.01

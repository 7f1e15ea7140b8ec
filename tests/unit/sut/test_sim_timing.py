"""The sim's timing model over real gRPC: prefill, absolute-deadline steps, batching, determinism."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import numpy as np
import pytest

import sut
from proto import inference_pb2 as pb
from proto import inference_pb2_grpc as pb_grpc
from scenarios import resolve_dataset

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)


def _start(**cfg: Any) -> Any:
    return sut.start_embedded({"kind": "sim", "dataset": DATASET, "chunk_size": 1, **cfg})


async def _request(stub: pb_grpc.InferenceStub, ids: np.ndarray, max_new: int, t0: float) -> dict[str, Any]:
    """One stream; client receive times (s since t0) of every token, plus the SUT's timestamps."""
    req = pb.GenerateRequest(input_ids=ids.tolist(), max_new_tokens=max_new, eos_token_id=-1)
    times: list[float] = []
    tokens: list[int] = []
    first: Any = None
    last: Any = None
    async for chunk in stub.Generate(req, timeout=60):
        now = time.monotonic() - t0
        if first is None:
            first = chunk
        last = chunk
        times.extend([now] * len(chunk.token_ids))
        tokens.extend(chunk.token_ids)
    assert first is not None and last is not None
    return {
        "times": times,
        "tokens": tokens,
        "ttft_sut": (first.sut_first_token_ns - first.sut_arrival_ns) / 1e9,
        "decode_sut": (last.sut_last_token_ns - first.sut_first_token_ns) / 1e9,
        "arrival_ns": first.sut_arrival_ns,
        "first_ns": first.sut_first_token_ns,
        "last_ns": last.sut_last_token_ns,
    }


async def _batch(address: str, plan: list[tuple[float, int, int]]) -> list[dict[str, Any]]:
    """Send ``(delay_s, sample_index, max_new)`` requests at fixed offsets from a common start."""
    async with grpc.aio.insecure_channel(address) as ch:
        stub = pb_grpc.InferenceStub(ch)
        await ch.channel_ready()
        # Warm the connection and the server's first-call paths so the plan's first arrival is on time.
        await _request(stub, DS.input_ids[0], 1, time.monotonic())
        await asyncio.sleep(0.05)
        t0 = time.monotonic()

        async def one(delay: float, idx: int, max_new: int) -> dict[str, Any]:
            await asyncio.sleep(delay)
            return await _request(stub, DS.input_ids[idx], max_new, t0)

        return list(await asyncio.gather(*(one(*p) for p in plan)))


def test_prefill_then_fixed_steps_without_drift() -> None:
    step, n = 0.02, 40
    timing = sut.TimingModel(prefill_base_s=0.01, prefill_per_token_s=0.0001)
    idx = int(np.argmax([len(r) for r in DS.reference_ids]))
    server = _start(
        decode_step_s=step, prefill_base_s=timing.prefill_base_s, prefill_per_token_s=timing.prefill_per_token_s
    )
    try:
        (res,) = asyncio.run(_batch(server.address, [(0.0, idx, n)]))
    finally:
        server.stop()
    prefill = timing.prefill_s(len(DS.input_ids[idx]))
    assert res["tokens"] == DS.reference_ids[idx][:n].tolist()
    assert res["ttft_sut"] == pytest.approx(prefill, abs=0.006)
    # n tokens: the first at the end of prefill, then one per step. Absolute deadlines mean the
    # total is (n - 1) steps however late each wake-up was; per-step sleeps would add up the lateness.
    assert res["decode_sut"] == pytest.approx((n - 1) * step, abs=0.012)
    gaps = np.diff(res["times"])
    assert float(np.median(gaps)) == pytest.approx(step, abs=0.005)


def test_third_request_waits_a_full_sequence_when_the_batch_is_full() -> None:
    # 50 ms steps; every arrival is 20+ ms from a step boundary so scheduling jitter on a busy
    # machine cannot move it into another step.
    step, n = 0.05, 6
    server = _start(max_batch=2, decode_step_s=step, prefill_base_s=0.0, prefill_per_token_s=0.0)
    try:
        a, b, c = asyncio.run(_batch(server.address, [(0.0, 0, n), (0.020, 1, n), (0.030, 2, n)]))
    finally:
        server.stop()
    # a starts at once; b joins at the next boundary (50 ms); c finds the batch full and joins when
    # a has finished its n - 1 decode steps (250 ms), i.e. it waits one full sequence.
    assert a["ttft_sut"] < 0.02
    assert b["ttft_sut"] == pytest.approx(step - 0.020, abs=0.015)
    assert c["ttft_sut"] == pytest.approx((n - 1) * step - 0.030, abs=0.015)
    # On the SUT clock c's first token comes in the very step a's last one did.
    assert (c["first_ns"] - a["last_ns"]) / 1e9 == pytest.approx(0.0, abs=0.01)
    assert c["tokens"] == DS.reference_ids[2][:n].tolist()


def test_joining_request_waits_for_the_next_step_boundary() -> None:
    # Continuous batching: a request arriving mid-step joins at the next boundary, then its prefill
    # (10 ms here) extends that step for everyone.
    step, pf = 0.05, 0.01
    server = _start(max_batch=4, decode_step_s=step, prefill_base_s=pf, prefill_per_token_s=0.0)
    try:
        a, b = asyncio.run(_batch(server.address, [(0.0, 0, 5), (0.030, 1, 4)]))
    finally:
        server.stop()
    # a: prefill ends at 10 ms, step 1 at 60 ms. b arrives at 30 ms, joins at 60, first token at 70.
    assert a["ttft_sut"] == pytest.approx(pf, abs=0.01)
    assert b["ttft_sut"] == pytest.approx(pf + step + pf - 0.030, abs=0.015)
    # a's token gaps: one step, except the step b joined, which is longer by b's prefill.
    gaps = np.diff(a["times"])
    assert float(np.max(gaps)) == pytest.approx(step + pf, abs=0.015)
    assert float(np.min(gaps)) == pytest.approx(step, abs=0.015)


def test_same_arrivals_give_same_tokens_and_service_times() -> None:
    # 50 ms steps, 5 ms prefills, batch of 2; arrivals are 20+ ms from step boundaries, so both runs
    # follow the same schedule: b joins at 105 ms, c waits for a (160 ms), d waits for b (265 ms).
    plan = [(0.0, 0, 4), (0.075, 1, 4), (0.085, 2, 4), (0.190, 3, 4)]
    runs = []
    for _ in range(2):
        server = _start(max_batch=2, decode_step_s=0.05, prefill_base_s=0.005, prefill_per_token_s=0.0)
        try:
            runs.append(asyncio.run(_batch(server.address, plan)))
        finally:
            server.stop()
    # Times on the SUT clock relative to the first arrival: client jitter moves an arrival a few ms
    # but, inside its step, not the step boundary it joins at, so emission times must repeat.
    bases = [r[0]["arrival_ns"] for r in runs]
    for r1, r2 in zip(*runs, strict=True):
        assert r1["tokens"] == r2["tokens"]
        for key in ("first_ns", "last_ns"):
            assert (r1[key] - bases[0]) / 1e9 == pytest.approx((r2[key] - bases[1]) / 1e9, abs=0.01)
    # The schedule is the modelled one, not trivially empty: c queued behind a full batch.
    assert (runs[0][2]["first_ns"] - bases[0]) / 1e9 == pytest.approx(0.165, abs=0.015)
    assert (runs[0][3]["first_ns"] - bases[0]) / 1e9 == pytest.approx(0.270, abs=0.015)


def test_analytic_capacity_formula_and_measured_throughput() -> None:
    max_new, batch, step = 6, 4, 0.01
    manifest = sut.ArtifactManifest(
        artifact_id="cap",
        backend="sim",
        model="m",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=batch,
        timing=sut.TimingModel(prefill_base_s=0.002, prefill_per_token_s=0.0, decode_step_s=step),
    )
    qps = sut.analytic_capacity_qps(manifest, DS, max_new_tokens=max_new)
    # Every output is truncated to 6 tokens -> 5 steps each: qps = 4 / (5 * 0.01 + 4 * 0.002).
    assert qps == pytest.approx(batch / (5 * step + batch * 0.002))
    instant = manifest.model_copy(
        update={"timing": sut.TimingModel(prefill_base_s=0, prefill_per_token_s=0, decode_step_s=0)}
    )
    assert sut.analytic_capacity_qps(instant, DS) == float("inf")
    # Saturate the sim with more requests than slots and compare the completion rate.
    n = 48
    server = _start(max_batch=batch, decode_step_s=step, prefill_base_s=0.002, prefill_per_token_s=0.0)
    try:
        res = asyncio.run(_batch(server.address, [(0.0, i % len(DS), max_new) for i in range(n)]))
    finally:
        server.stop()
    ends = sorted(r["times"][-1] for r in res)
    # Steady state: completions between the first and last batch boundary.
    measured = (n - batch) / (ends[-1] - ends[batch - 1])
    assert measured == pytest.approx(qps, rel=0.1)

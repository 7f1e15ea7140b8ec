"""The capacity plan's discrete-event simulation against the sim LPU itself.

The sim backend runs in virtual time (sut's VirtualClock) on Poisson arrivals; the DES must give the
same first-token and completion times for every request, and its saturated throughput must be the
sim's analytic capacity. A planted fault (a scheduler that forgets the prefill) is caught.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import sut
from scenarios import resolve_dataset
from sut._clock import VirtualClock
from workflows._plan_des import full_batch_capacity_qps, round_robin_arrivals, simulate_batcher

DATASET = "synthetic:64:9"
DS = resolve_dataset(DATASET)
STEP = 1 / 64
PF_BASE = 1 / 256
PF_TOKEN = 1 / 65536
MAX_NEW = 12


def _sim_times(arrivals: np.ndarray, idx: list[int], max_batch: int) -> tuple[np.ndarray, np.ndarray]:
    clock = VirtualClock()

    async def main() -> list[tuple[float, float]]:
        cfg = sut.SimConfig(
            dataset=DATASET,
            decode_step_s=STEP,
            prefill_base_s=PF_BASE,
            prefill_per_token_s=PF_TOKEN,
            max_batch=max_batch,
        )
        sim = sut.SimBackend(cfg, clock=clock)
        await sim.start()

        async def one(at: float, i: int) -> tuple[float, float]:
            await clock.sleep(at)
            req = sut.GenerateRequest(request_id=str(i), input_ids=DS.input_ids[i], max_new_tokens=MAX_NEW)
            first = -1.0
            async for item in sim.generate(req):
                if not isinstance(item, sut.GenerationEnd) and len(item) and first < 0:
                    first = clock.now()
            return first, clock.now()

        try:
            return await clock.run(*(one(float(a), i) for a, i in zip(arrivals, idx, strict=True)))
        finally:
            await sim.stop()

    out = asyncio.run(main())
    return np.array([f for f, _ in out]), np.array([d for _, d in out])


def _mix(idx: list[int]) -> tuple[np.ndarray, np.ndarray]:
    prefill = np.array([PF_BASE + PF_TOKEN * DS.input_ids[i].size for i in idx])
    n_out = np.array([min(MAX_NEW, DS.reference_ids[i].size) for i in idx])
    return prefill, n_out


@pytest.mark.parametrize(("qps", "replicas", "max_batch"), [(20.0, 1, 4), (60.0, 3, 4), (45.0, 1, 8)])
def test_des_reproduces_the_sim_schedule(qps: float, replicas: int, max_batch: int) -> None:
    n = 150
    arrivals = round_robin_arrivals(qps, replicas, n, seed=3)
    idx = [int(i) for i in np.random.default_rng(5).integers(0, len(DS), n)]
    prefill, n_out = _mix(idx)
    first, done = simulate_batcher(arrivals, prefill, n_out, STEP, max_batch)
    sim_first, sim_done = _sim_times(arrivals, idx, max_batch)
    assert np.allclose(first, sim_first, atol=1e-9) and np.allclose(done, sim_done, atol=1e-9)
    assert (first - arrivals).max() > 2 * STEP  # the load queued: the comparison covered waiting, not only service
    # Planted fault: a scheduler without prefill is caught by the same comparison.
    f2, _ = simulate_batcher(arrivals, prefill * 0, n_out, STEP, max_batch)
    assert not np.allclose(f2, sim_first, atol=1e-6)


def test_saturated_des_runs_at_the_sims_analytic_capacity() -> None:
    n = 4000
    idx = [int(i) for i in np.random.default_rng(1).integers(0, len(DS), n)]
    prefill, n_out = _mix(idx)
    capacity = full_batch_capacity_qps(prefill, n_out, STEP, 8)
    _first, done = simulate_batcher(np.zeros(n), prefill, n_out, STEP, 8)  # everything queued at once
    throughput = (n - 400) / (done[-1] - done[399])
    assert throughput == pytest.approx(capacity, rel=0.03)
    manifest = sut.ArtifactManifest(
        artifact_id="t",
        backend="sim",
        model="m",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=8,
        timing=sut.TimingModel(prefill_base_s=PF_BASE, prefill_per_token_s=PF_TOKEN, decode_step_s=STEP),
    )
    analytic = sut.analytic_capacity_qps(manifest, DS, MAX_NEW)  # the dataset's mix, each sample once
    uniform_prefill, uniform_out = _mix(list(range(len(DS))))
    assert full_batch_capacity_qps(uniform_prefill, uniform_out, STEP, 8) == pytest.approx(analytic, rel=1e-9)


def test_round_robin_split_is_smoother_than_poisson_at_the_same_rate() -> None:
    one = np.diff(round_robin_arrivals(10.0, 1, 20000, seed=1))
    rr = np.diff(round_robin_arrivals(30.0, 3, 20000, seed=1))
    assert np.mean(one) == pytest.approx(0.1, rel=0.03) and np.mean(rr) == pytest.approx(0.1, rel=0.03)
    assert np.std(rr) / np.mean(rr) == pytest.approx(1 / np.sqrt(3), rel=0.05)  # Erlang-3: CV 1/sqrt(3)
    assert np.std(one) / np.mean(one) == pytest.approx(1.0, rel=0.05)

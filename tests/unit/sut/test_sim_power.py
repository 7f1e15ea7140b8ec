"""The sim's power model: busy time follows the schedule exactly (virtual time), and the SUT's power gauge and
energy counter are the artifact's power model applied to it."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import sut
from scenarios import resolve_dataset
from sut._clock import VirtualClock
from sut._metrics import PowerCollector

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)
STEP = 1 / 16
PF = 1 / 64
POWER = sut.PowerModel(chips=4, busy_watts_per_chip=300.0, idle_watts_per_chip=100.0)


def _busy_after(n_tokens: int) -> tuple[float, float]:
    """(busy seconds, virtual time at the end) after one request of ``n_tokens`` on an idle sim."""
    clock = VirtualClock()

    async def main() -> tuple[float, float]:
        sim = sut.SimBackend(sut.SimConfig(dataset=DATASET, decode_step_s=STEP, prefill_base_s=PF), clock=clock)
        await sim.start()

        async def one() -> None:
            req = sut.GenerateRequest(request_id="r", input_ids=DS.input_ids[0], max_new_tokens=n_tokens)
            async for _ in sim.generate(req):
                pass

        try:
            await clock.run(one())
            return sim.busy_seconds(), clock.now()
        finally:
            await sim.stop()

    return asyncio.run(main())


def test_busy_time_is_the_scheduled_prefill_and_steps() -> None:
    n = 9
    busy, end = _busy_after(n)
    # The first token after the prompt's prefill (the sim's own timing model), each other one a decode step.
    timing = sut.SimBackend(sut.SimConfig(dataset=DATASET, decode_step_s=STEP, prefill_base_s=PF)).manifest.timing
    assert timing is not None
    expected = timing.prefill_s(int(DS.input_ids[0].size)) + (n - 1) * STEP
    assert busy == pytest.approx(expected, abs=1e-9)
    assert end == pytest.approx(expected, abs=1e-9)  # idle before and after: busy all along


class _Busy:
    def __init__(self) -> None:
        self.busy = 0.0

    def busy_seconds(self) -> float:
        return self.busy


def _scrape(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_power_collector_applies_the_model_to_busy_time() -> None:
    now = [10.0]
    backend = _Busy()
    registry = CollectorRegistry()
    registry.register(PowerCollector(POWER, backend, clock=lambda: now[0]))
    now[0] = 12.0  # 2 s, 0.5 s of it busy
    backend.busy = 0.5
    got = _scrape(registry)
    assert got["lpuperf_sut_energy_joules_total"] == pytest.approx(4 * (100 * 2 + 200 * 0.5))
    assert got["lpuperf_sut_busy_seconds_total"] == pytest.approx(0.5)
    assert got["lpuperf_sut_power_watts"] == pytest.approx(4 * (100 * 2 + 200 * 0.5) / 2)
    now[0] = 13.0  # the next second fully busy: the gauge is that second's draw, not the average since start
    backend.busy = 1.5
    got = _scrape(registry)
    assert got["lpuperf_sut_power_watts"] == pytest.approx(4 * 300.0)
    now[0] = 14.0  # busy time beyond the wall clock (a schedule ahead of time) is capped at the elapsed time
    backend.busy = 99.0
    got = _scrape(registry)
    assert got["lpuperf_sut_energy_joules_total"] == pytest.approx(4 * 300.0 * 4)


def test_sim_presets_carry_a_power_model() -> None:
    for name in ("sim-fp32", "sim-bf16", "sim-int8", "sim-instant"):
        m = sut.SimBackend(sut.SimConfig(artifact=name, dataset=DATASET)).manifest
        assert m.power is not None and m.power.busy_watts_per_chip > m.power.idle_watts_per_chip
    fp32 = sut.SimBackend(sut.SimConfig(artifact="sim-fp32", dataset=DATASET)).manifest.power
    int8 = sut.SimBackend(sut.SimConfig(artifact="sim-int8", dataset=DATASET)).manifest.power
    assert fp32 is not None and int8 is not None and int8.busy_watts_per_chip < fp32.busy_watts_per_chip

"""The sim backend on its own event loop: lifecycle errors never leave a stream waiting."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import sut
from scenarios import resolve_dataset

DATASET = "synthetic:16:3"
DS = resolve_dataset(DATASET)


def _request(idx: int, max_new: int = 1000) -> sut.GenerateRequest:
    return sut.GenerateRequest(request_id=f"r{idx}", input_ids=DS.input_ids[idx], max_new_tokens=max_new)


def _backend(**cfg: object) -> sut.SimBackend:
    backend = sut.backends.create({"kind": "sim", "dataset": DATASET, **cfg})
    assert isinstance(backend, sut.SimBackend)
    return backend


def test_stop_mid_stream_raises_instead_of_hanging() -> None:
    async def scenario() -> tuple[list[int], str]:
        backend = _backend(decode_step_s=0.01, prefill_base_s=0.0, prefill_per_token_s=0.0)
        await backend.start()
        got: list[int] = []

        async def consume() -> None:
            async for item in backend.generate(_request(0)):
                if isinstance(item, sut.GenerationEnd):
                    continue
                got.extend(item)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        assert backend.active_batch() == 1 and backend.queue_depth() == 0
        await backend.stop()
        try:
            await asyncio.wait_for(task, timeout=5)
        except sut.OverloadedError as exc:
            return got, str(exc)
        return got, ""

    got, error = asyncio.run(scenario())
    assert 0 < len(got) < len(DS.reference_ids[0])
    assert "stopped" in error


def test_generate_before_start_is_refused_and_after_start_served() -> None:
    async def scenario() -> tuple[str, list[int]]:
        backend = _backend(decode_step_s=0.001, prefill_base_s=0.0, prefill_per_token_s=0.0)
        refused = ""
        try:
            async for _ in backend.generate(_request(1, 4)):
                pass
        except sut.OverloadedError as exc:
            refused = str(exc)
        await backend.start()
        out: list[int] = []
        async for item in backend.generate(_request(1, 4)):
            if not isinstance(item, sut.GenerationEnd):
                out.extend(item)
        await backend.stop()
        return refused, out

    refused, out = asyncio.run(scenario())
    assert "not running" in refused
    assert out == DS.reference_ids[1][:4].tolist()


def test_queue_depth_counts_requests_waiting_for_a_slot() -> None:
    async def scenario() -> tuple[int, int]:
        backend = _backend(max_batch=1, decode_step_s=0.02, prefill_base_s=0.0, prefill_per_token_s=0.0)
        await backend.start()

        async def drain(idx: int) -> None:
            async for _ in backend.generate(_request(idx, 5)):
                pass

        tasks = [asyncio.ensure_future(drain(i)) for i in range(3)]
        await asyncio.sleep(0.03)
        seen = (backend.active_batch(), backend.queue_depth())
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        await backend.stop()
        return seen

    assert asyncio.run(scenario()) == (1, 2)


def test_manifest_presets() -> None:
    reasoning = {"sim-reasoning", "sim-reasoning-int8"}  # they answer the reasoning set: test_sim_reasoning.py
    assert set(sut.SIM_PRESETS) == {"sim-fp32", "sim-bf16", "sim-int8", "sim-instant", "sim-ctx16k", *reasoning}
    for name in set(sut.SIM_PRESETS) - reasoning:
        m = _backend(artifact=name).manifest
        assert m.artifact_id == name and m.target == "sim-lpu" and m.checksum.startswith("sha256:")
        assert m.eos_token_id == DS.eos_token_id and m.toolchain_version.startswith("lpuperf-sim/")
    assert _backend(artifact="sim-bf16").manifest.precision == "bf16"
    assert _backend(artifact="sim-int8").manifest.precision == "int8"
    # A different config is a different artifact: the checksum covers the content.
    assert _backend(max_batch=3).manifest.checksum != _backend().manifest.checksum
    with pytest.raises(ValueError, match="artifact 'nope'"):
        _backend(artifact="nope")
    assert np.isfinite(sut.analytic_capacity_qps(_backend().manifest, DS))

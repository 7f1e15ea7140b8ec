"""The sim's planted batch-dependent fault: a request that joins a batch larger than one gets one answer
token changed; alone it answers as the clean sim does, and the clean sim answers alike in any batch."""

from __future__ import annotations

import asyncio

import numpy as np

from sut import FaultFlags, FinalTokens, GenerateRequest, SimBackend, SimConfig

TIMED = {"prefill_base_s": 0.001, "prefill_per_token_s": 0.0, "decode_step_s": 0.001}


def _request(backend: SimBackend, i: int) -> GenerateRequest:
    ids = np.asarray(backend.dataset.input_ids[i], dtype=np.int32)
    return GenerateRequest(request_id=str(i), input_ids=ids, max_new_tokens=512)


async def _answer(backend: SimBackend, i: int) -> list[int]:
    out: list[int] = []
    async for part in backend.generate(_request(backend, i)):
        if isinstance(part, FinalTokens | list | tuple):
            out.extend(int(t) for t in part)
    return out


async def _alone_then_together(faulty: bool) -> tuple[list[int], list[list[int]]]:
    backend = SimBackend(SimConfig(artifact="sim-fp32", faults=FaultFlags(batch_dependent_output=faulty), **TIMED))
    await backend.start()
    try:
        alone = await asyncio.wait_for(_answer(backend, 1), 30)
        together = await asyncio.wait_for(asyncio.gather(_answer(backend, 0), _answer(backend, 1)), 30)
    finally:
        await backend.stop()
    return alone, list(together)


def test_a_batch_of_two_changes_the_faulty_sims_answer_and_not_the_clean_ones() -> None:
    alone, (_, second) = asyncio.run(_alone_then_together(faulty=True))
    clean_alone, (_, clean_second) = asyncio.run(_alone_then_together(faulty=False))
    assert alone == clean_alone  # alone, the faulty artifact answers as the clean one
    assert second != alone and len(second) == len(alone)
    assert sum(a != b for a, b in zip(second, alone, strict=True)) == 1
    assert clean_second == clean_alone

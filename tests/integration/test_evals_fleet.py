"""The eval client against a fleet target: two embedded SUT processes behind one ``a+b`` target, requests
balanced over both replicas (each reply names its replica), answers as one SUT's."""

from __future__ import annotations

import asyncio

import pytest

from evals import EvalSut, GenerationSettings
from tests.evals_tasks import embedded_samples, sim_answers

pytestmark = pytest.mark.integration


def test_eval_requests_to_a_fleet_reach_every_replica() -> None:
    import sut

    samples = embedded_samples(4, ("qa",))
    with (
        sut.spawn_server(["--artifact", "sim-instant"], timeout_s=120) as a,  # type: ignore[attr-defined]
        sut.spawn_server(["--artifact", "sim-instant"], timeout_s=120) as b,  # type: ignore[attr-defined]
    ):
        fleet = EvalSut(f"{a.address}+{b.address}")
        try:

            async def ask_all() -> list[tuple[str, str]]:
                settings = GenerationSettings(max_new_tokens=256)
                replies = [await fleet.generate(s.prompt, settings) for s in samples for _ in range(2)]
                await fleet.close_channels()
                return [(r.text, r.replica_id) for r in replies]

            got = asyncio.run(asyncio.wait_for(ask_all(), 60))
        finally:
            fleet.close()
    answers = sim_answers(samples)
    assert [t for t, _ in got] == [a for a in answers for _ in range(2)]
    assert {r for _, r in got} == {a.address, b.address}

"""Sampling values over HTTP: out of the API's range, non-finite or of the wrong type is a 400 naming the
field (and the range); in range but not honoured by the SUT is a 400 saying so; the defaults pass."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

import sut
from sut._http import start_http_front

DATASET = "synthetic:12:5"
PATHS = ("/v1/completions", "/v1/chat/completions")

# (field, the value as JSON text, what the message must say). Every one of these is a 400 naming the field.
REFUSED = [
    ("temperature", "1e308", "less than or equal to 2"),
    ("temperature", "2.5", "less than or equal to 2"),
    ("temperature", "-0.5", "greater than or equal to 0"),
    ("temperature", "NaN", "finite"),
    ("temperature", "1e999", "finite"),
    ("temperature", "true", "valid number"),
    ("top_p", "0", "greater than 0"),
    ("top_p", "1.5", "less than or equal to 1"),
    ("top_p", "-Infinity", "finite"),
    ("max_tokens", "-1", "greater than or equal to 1"),
    ("max_tokens", "2147483648", "less than or equal to 2147483647"),
    ("max_tokens", "1e308", "valid integer"),
    ("min_tokens", "-3", "greater than or equal to 0"),
    ("n", "2", "n=1"),
    ("n", "0", "n=1"),
    ("seed", "1.5", "valid integer"),
    ("presence_penalty", "3", "[-2, 2]"),
    ("presence_penalty", "-2.5", "[-2, 2]"),
    ("presence_penalty", "NaN", "[-2, 2]"),
    ("presence_penalty", "false", "[-2, 2]"),
    ("presence_penalty", "1", "not supported"),
    ("frequency_penalty", "1e999", "[-2, 2]"),
    ("frequency_penalty", '"high"', "[-2, 2]"),
    ("frequency_penalty", "-2", "not supported"),
    ("repetition_penalty", "0", "> 0"),
    ("repetition_penalty", "true", "> 0"),
    ("repetition_penalty", "1.2", "not supported"),
    ("top_logprobs", "-1", "[0, 20]"),
    ("top_logprobs", "21", "[0, 20]"),
    ("top_k", "-5", ">= -1"),
    ("top_k", "2.5", "integer"),
    ("top_k", "40", "not supported"),
    ("min_p", "1.5", "[0, 1]"),
    ("min_p", "0.1", "not supported"),
]
# Values that leave sampling as it is: accepted.
ACCEPTED = [
    ("temperature", "0"),
    ("temperature", "2"),
    ("top_p", "1"),
    ("n", "1"),
    ("presence_penalty", "0"),
    ("frequency_penalty", "0.0"),
    ("repetition_penalty", "1"),
    ("top_logprobs", "0"),
    ("top_k", "-1"),
    ("top_k", "0"),
    ("min_p", "0"),
    ("seed", "-1"),
]


async def _answers(path: str, cases: list[tuple[str, str]]) -> list[tuple[int, dict[str, Any]]]:
    sim: Any = sut.backends.create({"kind": "sim", "artifact": "sim-instant", "dataset": DATASET})
    await sim.start()
    front = await start_http_front(sim, "127.0.0.1", 0)
    prompt = json.dumps(sim.dataset.prompts[0])
    head = f'{{"messages": [{{"role": "user", "content": {prompt}}}]' if "chat" in path else f'{{"prompt": {prompt}'
    out = []
    try:
        async with httpx.AsyncClient(base_url=f"http://{front.address}", timeout=20.0) as client:
            for field, raw in cases:
                extra = "" if field == "max_tokens" else ', "max_tokens": 2'
                body = f'{head}{extra}, "{field}": {raw}}}'
                resp = await client.post(path, content=body, headers={"Content-Type": "application/json"})
                out.append((resp.status_code, resp.json()))
    finally:
        await front.stop()
        await sim.stop()
    return out


@pytest.mark.parametrize("path", PATHS)
def test_out_of_range_sampling_values_are_400_naming_the_field(path: str) -> None:
    answers = asyncio.run(_answers(path, [(f, raw) for f, raw, _ in REFUSED]))
    wrong = []
    for (field, raw, says), (status, body) in zip(REFUSED, answers, strict=True):
        err = body.get("error") or {}
        message = str(err.get("message", ""))
        if status != 400 or err.get("param") != field or f"'{field}'" not in message or says not in message:
            wrong.append(f"{field}={raw}: {status} {message or body}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", PATHS)
def test_sampling_values_that_change_nothing_are_accepted(path: str) -> None:
    answers = asyncio.run(_answers(path, ACCEPTED))
    pairs = zip(ACCEPTED, answers, strict=True)
    wrong = [f"{f}={raw}: {status} {body}" for (f, raw), (status, body) in pairs if status != 200]
    assert not wrong, "\n".join(wrong)

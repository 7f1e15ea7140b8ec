"""The HTTP front's fault flag grammar: 429 | 503 | slow:SECONDS, optionally @N or @FRACTION."""

from __future__ import annotations

import random

import pytest

from sut._http import HttpFault, parse_http_fault


@pytest.mark.parametrize(
    ("spec", "kind", "seconds", "every", "rate"),
    [
        ("429", "429", 0.0, 1, None),
        ("503@3", "503", 0.0, 3, None),
        ("slow:2.5", "slow", 2.5, 1, None),
        ("slow:0.1@2", "slow", 0.1, 2, None),
        ("429@0.25", "429", 0.0, 1, 0.25),
    ],
)
def test_valid_specs(spec: str, kind: str, seconds: float, every: int, rate: float | None) -> None:
    f = parse_http_fault(spec)
    assert (f.kind, f.seconds, f.every, f.rate) == (kind, seconds, every, rate)


@pytest.mark.parametrize("spec", ["500", "slow", "429:3", "slow:x", "429@0", "429@1.5", "503@-2", ""])
def test_invalid_specs_name_the_flag(spec: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_http_fault(spec)
    assert "--http-fault" in str(err.value) and "expected" in str(err.value)


def test_every_nth_hits_exactly_those_requests() -> None:
    f = HttpFault(kind="429", every=3)
    rng = random.Random(0)
    assert [n for n in range(1, 10) if f.applies(n, rng)] == [3, 6, 9]


def test_rate_is_seeded_and_roughly_that_fraction() -> None:
    f = HttpFault(kind="503", rate=0.25)
    rng_a, rng_b = random.Random(7), random.Random(7)
    hits_a = [f.applies(n, rng_a) for n in range(1, 60)]
    hits_b = [f.applies(n, rng_b) for n in range(1, 60)]
    assert hits_a == hits_b and any(hits_a) and not all(hits_a)
    rng = random.Random(1)
    share = sum(f.applies(n, rng) for n in range(1, 4001)) / 4000
    assert 0.2 < share < 0.3

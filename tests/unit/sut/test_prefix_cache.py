"""The sim's prefix cache: exact hit/miss arithmetic, LRU eviction, prefill charged for the uncached tokens only.

The cache is checked two ways: hand-worked scenarios with exact numbers, and long random workloads against an
independent model of the same rules that keys blocks by their whole prefix (a tuple) instead of chained hashes.
Planted faults (a cache that never evicts, one that miscounts) must fail that check. The timing effect is
checked in virtual time (exact, whatever the machine's load), as tests/unit/sut/test_sim_timing.py does.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

import sut
from sut._artifact import PrefixCacheSettings
from sut._clock import VirtualClock
from sut._prefix_cache import PrefixCache, block_keys

DATASET = "synthetic:16:3"
PF = 1 / 64
PER_TOKEN = 1 / 1024
STEP = 1 / 16


def _ids(*tokens: int) -> np.ndarray:
    return np.array(tokens, dtype=np.int32)


def _cache(capacity: int, block: int) -> PrefixCache:
    return PrefixCache(PrefixCacheSettings(capacity_tokens=capacity, block_tokens=block))


# ---- the cache itself --------------------------------------------------------------------------------


def test_keys_chain_every_token_before_them() -> None:
    a = block_keys(_ids(*range(1, 11)), 4)  # 10 tokens: two full blocks, the partial third has no key
    b = block_keys(_ids(9, 2, 3, 4, 5, 6, 7, 8), 4)  # differs in the first token only
    c = block_keys(_ids(1, 2, 3, 4, 5, 6, 7, 8, 99), 4)
    assert len(a) == 2 and len(b) == 2
    assert a[1] != b[1]  # the same tokens 5..8 after a different first block: a different key
    assert c == a  # a partial block never changes the full blocks' keys


def test_hits_misses_and_lru_eviction_exact() -> None:
    cache = _cache(capacity=12, block=4)  # three blocks
    p1 = _ids(*range(1, 11))  # blocks A=1..4, AB=..8, and 2 tokens of a partial block
    assert cache.admit(p1) == 0
    assert (cache.hit_tokens, cache.miss_tokens, len(cache), cache.inserted_blocks) == (0, 10, 2, 2)
    assert cache.admit(p1) == 8  # both full blocks; the partial block is prefilled
    # Whole blocks only: 8 tokens, both cached, still prefill the last block (its last token starts the answer).
    assert cache.admit(_ids(*range(1, 9))) == 4
    p3 = _ids(1, 2, 3, 4, 20, 21, 22, 23, 24, 25, 26, 27, 28)  # A, then AX and AXY of its own
    assert cache.admit(p3) == 4
    # Four blocks for three places: the least recently used (AB, last touched before p3 admitted) goes.
    assert (len(cache), cache.evicted_blocks) == (3, 1)
    assert cache.admit(p1) == 4  # AB was evicted: only A hits
    # p1 re-inserted AB; p3's tail block AXY was the least recently used (a prompt's tail goes before its head).
    assert cache.evicted_blocks == 2
    assert cache.admit(p3) == 8  # A and AX survive, AXY must be prefilled again
    st = cache.stats()
    assert (st.hit_tokens, st.miss_tokens) == (8 + 4 + 4 + 4 + 8, 10 + 2 + 4 + 9 + 6 + 5)
    assert (st.lookups_hit, st.lookups_miss) == (5, 1)
    assert (st.used_tokens, st.capacity_tokens, st.block_tokens) == (12, 12, 4)
    assert st.inserted_blocks - st.evicted_blocks == len(cache)


def test_a_long_prompt_keeps_its_head_when_it_overflows_the_cache() -> None:
    cache = _cache(capacity=8, block=4)  # two blocks
    long = _ids(*range(1, 26))  # six full blocks
    assert cache.admit(long) == 0
    assert (len(cache), cache.evicted_blocks) == (2, 4)
    assert cache.admit(long) == 8  # the head (first two blocks) was kept, the tail evicted


class _PrefixModel:
    """The cache's rules again, keyed by each block's whole prefix (no hashing, no chaining)."""

    def __init__(self, capacity_blocks: int, block: int) -> None:
        self.cap, self.block = capacity_blocks, block
        self.lru: OrderedDict[tuple[int, ...], None] = OrderedDict()
        self.evicted = 0

    def admit(self, prompt: list[int]) -> int:
        b, n = self.block, len(prompt)
        prefixes = [tuple(prompt[: (i + 1) * b]) for i in range(n // b)]
        hit = 0
        while hit < (n - 1) // b and prefixes[hit] in self.lru:
            hit += 1
        for key in reversed(prefixes):
            self.lru[key] = None
            self.lru.move_to_end(key)
        while len(self.lru) > self.cap:
            self.lru.popitem(last=False)
            self.evicted += 1
        return hit * b


def _check_against_model(cache_type: type[PrefixCache], seed: int = 7) -> None:
    """K system prompts x users, random lengths, a cache too small for all: every admission exact."""
    rng = random.Random(seed)
    block, cap_blocks = 8, 24
    cache = cache_type(PrefixCacheSettings(capacity_tokens=cap_blocks * block, block_tokens=block))
    model = _PrefixModel(cap_blocks, block)
    systems = [[rng.randrange(1, 500) for _ in range(rng.randrange(8, 60))] for _ in range(5)]
    users = [[rng.randrange(1, 500) for _ in range(rng.randrange(1, 40))] for _ in range(12)]
    hit = miss = 0
    for _ in range(600):
        prompt = rng.choice(systems) + rng.choice(users) + [rng.randrange(1, 500) for _ in range(rng.randrange(0, 9))]
        want = model.admit(prompt)
        assert cache.admit(np.array(prompt, dtype=np.int32)) == want
        hit, miss = hit + want, miss + len(prompt) - want
    st = cache.stats()
    assert (st.hit_tokens, st.miss_tokens) == (hit, miss)
    assert st.evicted_blocks == model.evicted > 0 and len(cache) == len(model.lru)
    assert 0 < hit < miss + hit  # the workload both hits and misses


def test_random_workloads_match_the_prefix_model_exactly() -> None:
    for seed in (1, 2, 3):
        _check_against_model(PrefixCache, seed)


class _NeverEvicts(PrefixCache):
    def admit(self, input_ids: np.ndarray) -> int:
        self.capacity_blocks = 1 << 30
        return super().admit(input_ids)


class _CountsTheLastBlock(PrefixCache):
    """Forgets that the prompt's last token is always computed: counts a fully cached prompt as all cached."""

    def admit(self, input_ids: np.ndarray) -> int:
        cached = super().admit(input_ids)
        n = int(input_ids.size)
        whole = n - n % self.block_tokens
        return whole if n % self.block_tokens == 0 and cached == whole - self.block_tokens else cached


@pytest.mark.parametrize("planted", [_NeverEvicts, _CountsTheLastBlock])
def test_planted_cache_faults_fail_the_exact_check(planted: type[PrefixCache]) -> None:
    with pytest.raises(AssertionError):
        for seed in (1, 2, 3):
            _check_against_model(planted, seed)


# ---- the sim: manifest, config, prefill charged for uncached tokens --------------------------------------


def test_the_cache_is_off_by_default_and_stated_in_the_manifest_when_on() -> None:
    plain = sut.SimBackend(sut.SimConfig(dataset=DATASET))
    assert plain.manifest.prefix_cache is None and plain.prefix_cache_stats() is None
    on = sut.SimBackend(sut.SimConfig(dataset=DATASET, prefix_cache_tokens=4096))
    assert on.manifest.prefix_cache == PrefixCacheSettings(capacity_tokens=4096, block_tokens=64)
    assert on.manifest.checksum != plain.manifest.checksum
    small = sut.SimBackend(sut.SimConfig(dataset=DATASET, prefix_cache_tokens=100, prefix_block_tokens=16))
    assert small.manifest.prefix_cache == PrefixCacheSettings(capacity_tokens=100, block_tokens=16)
    stats = small.prefix_cache_stats()
    assert stats is not None and stats.capacity_tokens == 96  # whole blocks


@pytest.mark.parametrize(
    ("cfg", "needle"),
    [
        ({"prefix_cache_tokens": 32}, "prefix_cache_tokens: 32 tokens hold no block of 64 tokens"),
        ({"prefix_block_tokens": 16}, "prefix_block_tokens: expected together with prefix_cache_tokens"),
        ({"prefix_cache_tokens": -1}, "prefix_cache_tokens"),
        ({"prefix_cache_tokens": 128, "prefix_block_tokens": 0}, "prefix_block_tokens"),
    ],
)
def test_bad_cache_configs_are_one_line_naming_the_field(cfg: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)) as err:  # a RegistryError is a ValueError too
        sut.backends.create({"kind": "sim", "dataset": DATASET, **cfg})
    assert "\n" not in str(err.value)


def _first_token_times(plan: list[tuple[float, np.ndarray]], **cfg: Any) -> tuple[list[float], list[int]]:
    """(first-token time - arrival, cached prompt tokens) per request, in virtual time."""
    clock = VirtualClock()

    async def main() -> list[tuple[float, int]]:
        config = sut.SimConfig(
            dataset=DATASET,
            prefill_base_s=PF,
            prefill_per_token_s=PER_TOKEN,
            decode_step_s=STEP,
            max_batch=8,
            **cfg,
        )
        sim = sut.SimBackend(config, clock=clock)
        await sim.start()

        async def one(at: float, ids: np.ndarray) -> tuple[float, int]:
            await clock.sleep(at)
            arrival, first = clock.now(), -1.0
            req = sut.GenerateRequest(request_id="r", input_ids=ids, max_new_tokens=4)
            cached = -1
            async for item in sim.generate(req):
                if isinstance(item, sut.GenerationEnd):
                    cached = -1 if item.cached_prompt_tokens is None else item.cached_prompt_tokens
                elif first < 0:
                    first = clock.now()
            return first - arrival, cached

        try:
            return await clock.run(*(one(at, ids) for at, ids in plan))
        finally:
            await sim.stop()

    out = asyncio.run(main())
    return [t for t, _ in out], [c for _, c in out]


SYSTEM = list(range(100, 164))  # a 64-token shared prefix: four blocks of 16


def _prompt(user: int, n: int = 30) -> np.ndarray:
    return np.array(SYSTEM + [1000 + user * 50 + k for k in range(n)], dtype=np.int32)


def test_a_shared_prefix_skips_its_prefill_exactly() -> None:
    plan = [(0.0, _prompt(0)), (2.0, _prompt(1))]  # b arrives after a finished
    ttft, cached = _first_token_times(plan, prefix_cache_tokens=1024, prefix_block_tokens=16)
    assert cached == [0, 64]
    assert ttft == [PF + 94 * PER_TOKEN, PF + 30 * PER_TOKEN]
    off, none = _first_token_times(plan)
    assert none == [-1, -1]  # no cache: nothing reported
    assert off == [PF + 94 * PER_TOKEN] * 2


def test_joiners_meet_the_cache_in_fifo_order_within_a_step() -> None:
    # Together: the first prefills everything, the second finds the system prompt the first just cached, and
    # both first tokens come after the combined prefill.
    ttft, cached = _first_token_times(
        [(0.0, _prompt(0)), (0.0, _prompt(1))], prefix_cache_tokens=1024, prefix_block_tokens=16
    )
    assert cached == [0, 64]
    assert ttft == [2 * PF + (94 + 30) * PER_TOKEN] * 2


def test_ttft_falls_as_the_hit_rate_rises() -> None:
    # 24 requests, one a second (each alone in the sim), over K system prompts: fewer prompts, more hits.
    rng = random.Random(5)
    means = []
    for k in (24, 4, 1):
        systems = [[rng.randrange(2000, 3000) for _ in range(128)] for _ in range(k)]
        plan = [(float(i), np.array(systems[i % k] + [5000 + i] * 20, dtype=np.int32)) for i in range(24)]
        ttft, cached = _first_token_times(plan, prefix_cache_tokens=8192, prefix_block_tokens=16)
        assert ttft == [PF + (148 - c) * PER_TOKEN for c in cached]  # exactly the uncached tokens charged
        means.append(sum(ttft) / len(ttft))
    assert means[0] > means[1] > means[2]

"""Prefix-cache hits of load runs against ``lpuperf serve --prefix-cache-tokens``.

A Mooncake trace whose requests share leading hash ids is replayed against a sim with a prefix cache of
the trace's block size: the hits reported (per query in queries.npz, in ``results.prefix_cache``, by the
SUT's own counters) are exactly what the trace's shared blocks predict once whole-block rounding is
applied, and near the share of reused blocks the trace checker counts. The same trace against a sim
without the cache, or a trace of distinct hash ids against one with it, hits nothing. The shared-prefix
dataset under a closed loop hits its system prompts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sut
from scenarios import TraceSpec, check_trace
from tests.integration._load_runs import (
    DATASET,
    MAX_NEW,
    SUT_ARGS,
    check_load_run,
    expected_prefix_hits,
    mooncake_rows,
    run_load,
    write_jsonl,
)
from tests.integration.test_openai_relay import _free_port
from tests.integration.test_sim_prefix_cache import _counters

pytestmark = pytest.mark.integration

BLOCK = 16
CACHE_ARGS = ["--prefix-cache-tokens", "65536", "--prefix-block-tokens", str(BLOCK)]
# Six whole blocks and a partial one; the first four blocks are the group's (three groups), the rest own.
INPUT_LENGTH = 6 * BLOCK + 5


class CacheSut:
    def __init__(self, server: sut.ServerProcess, metrics_port: int) -> None:
        self.server = server
        self.address = server.address
        self.metrics_port = metrics_port


@pytest.fixture
def cache_sut() -> Iterator[CacheSut]:
    """A fresh sim with a prefix cache (cold for each test) and its metrics port."""
    port = _free_port()
    with sut.spawn_server([*SUT_ARGS, *CACHE_ARGS, "--metrics-port", str(port)], timeout_s=90) as server:
        yield CacheSut(server, port)


def _trace(tmp: Path, name: str, *, shared: int) -> tuple[Path, list[dict[str, Any]]]:
    rows = mooncake_rows(40, gap_ms=50, input_length=INPUT_LENGTH, block=BLOCK, shared=shared, groups=3)
    return write_jsonl(tmp / f"{name}.jsonl", rows), rows


def _run_trace(tmp: Path, capsys: pytest.CaptureFixture[str], address: str, trace: Path) -> Any:
    spec = f"trace:{trace}:block={BLOCK}"
    run = run_load(tmp, capsys, trace.stem, spec, "--sut", address, "--dataset", DATASET)
    check_load_run(run, "Trace", spec)
    return run


def _sut_hit_tokens(port: int, want: int) -> float:
    """The SUT's hit-token counter, once it reads ``want`` (its book-keeping may trail the last answer)."""
    name = "lpuperf_sut_prefix_cache_hit_tokens_total"
    got = 0.0
    for _ in range(50):
        got = _counters(port).get(name, 0.0)
        if got == want:
            break
        time.sleep(0.1)
    return got


def test_shared_hash_ids_hit_the_sims_prefix_cache(
    cache_sut: CacheSut, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace, rows = _trace(tmp_path, "shared", shared=4)
    run = _run_trace(tmp_path, capsys, cache_sut.address, trace)
    cache, rec = run.res.prefix_cache, run.rec
    expected = expected_prefix_hits(rows, BLOCK)
    assert sum(expected) == (40 - 3) * 4 * BLOCK  # each group's first request misses, the rest hit four blocks
    # Per query, in results.json and by the SUT's own counter: exactly what the shared blocks predict.
    assert rec["cached_tokens"].tolist() == expected
    assert cache is not None and cache.cached_tokens == sum(expected) > 0, cache
    assert cache.prompt_tokens == 40 * INPUT_LENGTH and cache.n_queries == 40
    assert cache.queries_with_hit == 37 and cache.hit_fraction == pytest.approx(sum(expected) / (40 * INPUT_LENGTH))
    assert _sut_hit_tokens(cache_sut.metrics_port, sum(expected)) == sum(expected)
    # Near the trace checker's count of reused blocks (each a whole block here; at most a block a query apart).
    summary = check_trace(TraceSpec(path=trace, block_tokens=BLOCK))
    assert summary.prefix_blocks_reused == 37 * 4 and summary.reuse_exact
    predicted = summary.prefix_blocks_reused * BLOCK / cache.prompt_tokens
    assert abs(cache.hit_fraction - predicted) <= BLOCK / INPUT_LENGTH, (cache.hit_fraction, predicted)
    assert f"prefix cache {cache.hit_fraction:.1%} of prompt tokens served from the SUT's cache" in run.out


def test_distinct_hash_ids_never_hit(cache_sut: CacheSut, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace, rows = _trace(tmp_path, "distinct", shared=0)
    assert sum(expected_prefix_hits(rows, BLOCK)) == 0
    run = _run_trace(tmp_path, capsys, cache_sut.address, trace)
    cache = run.res.prefix_cache
    assert cache is None or (cache.cached_tokens == 0 and cache.queries_with_hit == 0), cache
    assert (run.rec["cached_tokens"] == 0).all() and "prefix cache" not in run.out
    assert _sut_hit_tokens(cache_sut.metrics_port, 0) == 0


def test_without_the_cache_nothing_hits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace, _ = _trace(tmp_path, "shared", shared=4)
    with sut.spawn_server(SUT_ARGS, timeout_s=90) as server:
        run = _run_trace(tmp_path, capsys, server.address, trace)
    cache = run.res.prefix_cache
    assert cache is None or (cache.cached_tokens == 0 and cache.queries_with_hit == 0), cache
    assert (run.rec["cached_tokens"] == 0).all()


def test_shared_prefix_dataset_hits_under_concurrency(
    cache_sut: CacheSut, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two 64-token system prompts (four blocks each) ahead of 16 tokens of each user's own.
    dataset = "shared-prefix:systems=2,users=8,system_tokens=64,user_tokens=16,output_tokens=8"
    args = ["--sut", cache_sut.address, "--dataset", dataset, "--max-new-tokens", MAX_NEW, "--duration", "2"]
    run = run_load(tmp_path, capsys, "sp", "concurrency:4", *args)
    check_load_run(run, "Concurrency", "concurrency:4")
    cache = run.res.prefix_cache
    assert cache is not None and cache.cached_tokens > 0 and cache.hit_fraction is not None, cache
    # A prompt of 80 tokens can hit at most its first four blocks (64: its last token is always computed);
    # only the first request of each system prompt (and a few racing it) misses.
    assert 0.6 < cache.hit_fraction <= 0.8, cache
    assert cache.queries_with_hit >= cache.n_queries - 8, cache
    assert int(run.rec["cached_tokens"].max()) == 64
    assert _sut_hit_tokens(cache_sut.metrics_port, cache.cached_tokens) == cache.cached_tokens

"""--shard I/N in virtual time: the shards of a load together send exactly the whole load (or, for Poisson
arrivals, a Poisson stream of the whole rate), and bad splits are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from common import UsageError
from loadgen_harness import LoadContext, ShardSpec, parse_load, parse_shard, parse_start_at
from loadgen_harness._load_shapes import make_shape
from tests.unit.loadgen_harness.test_load_shapes_virtual import _ctx
from tests.unit.loadgen_harness.virtual_time import FakeSut, Sent, VirtualClock, run_virtual

MS = 1_000_000
S = 1_000_000_000


def _sent(spec: str, part: ShardSpec | None, service_ns: int = 5 * MS, **kw: object) -> tuple[list[Sent], LoadContext]:
    clock = VirtualClock()
    sut = FakeSut(clock, lambda q: service_ns)
    ctx = _ctx(sut, clock, **kw)
    shape = make_shape(parse_load(spec))
    if part is not None:
        shape.shard(part)
    shape.check()
    run_virtual(shape.drive(ctx))
    return sut.sent, ctx


def _shards(spec: str, n: int, **kw: object) -> list[list[Sent]]:
    return [_sent(spec, ShardSpec(index=i, count=n), **kw)[0] for i in range(n)]


def _due_and_sample(sent: list[Sent]) -> list[tuple[int, int]]:
    return sorted((s.query.due_ns, s.query.sample_index) for s in sent)


def test_constant_rate_shards_interleave_into_exactly_the_whole_schedule() -> None:
    whole, _ = _sent("rate:30:constant", None, duration_s=1.0)
    parts = _shards("rate:30:constant", 3, duration_s=1.0)
    assert [len(p) for p in parts] == [10, 10, 10]
    union = [x for p in parts for x in _due_and_sample(p)]
    assert sorted(union) == _due_and_sample(whole)  # every due time and every sample, once


def test_poisson_shards_are_independent_and_superpose_to_a_poisson_stream_of_the_whole_rate() -> None:
    rate, n = 200.0, 4
    parts = _shards(f"rate:{rate:g}:seed=11", n, duration_s=30.0)
    again = _shards(f"rate:{rate:g}:seed=11", n, duration_s=30.0)
    assert [[s.query.due_ns for s in p] for p in parts] == [[s.query.due_ns for s in p] for p in again]  # reproducible
    dues = np.sort(np.array([s.query.due_ns for p in parts for s in p])) / S
    assert len(set(dues.tolist())) == dues.size  # independent streams: no two shards share an arrival
    assert abs(dues.size - rate * 30) < 5 * np.sqrt(rate * 30)  # a count within 5 sigma of R x T
    gaps = np.diff(dues)
    assert stats.kstest(gaps, "expon", args=(0, 1 / rate)).pvalue > 1e-3  # gaps exponential at the whole rate


def test_the_same_seed_in_every_shard_is_caught_by_the_superposition_check() -> None:
    """The planted fault: N copies of one R/N stream (not independent) are not a Poisson stream of R."""
    rate, n = 200.0, 4
    one, _ = _sent(f"rate:{rate / n:g}:seed=11", ShardSpec(index=0, count=1), duration_s=30.0)
    dues = np.sort(np.array([s.query.due_ns for s in one for _ in range(n)])) / S
    assert stats.kstest(np.diff(dues), "expon", args=(0, 1 / rate)).pvalue < 1e-6


def test_concurrency_is_split_with_the_remainder_to_the_first_shards_and_keeps_the_whole_ramp() -> None:
    whole, _ = _sent("concurrency:7:ramp=7", None, service_ns=10 * S, duration_s=6.5)
    parts = _shards("concurrency:7:ramp=7", 3, service_ns=10 * S, duration_s=6.5)
    assert [len(p) for p in parts] == [3, 2, 2]  # 7 workers: 3 + 2 + 2, each sent its first request
    assert sorted(s.query.due_ns for p in parts for s in p) == sorted(s.query.due_ns for s in whole)


def test_request_counts_split_and_a_shard_left_nothing_is_refused() -> None:
    parts = _shards("rate:50:constant:requests=10", 3)
    assert [len(p) for p in parts] == [4, 3, 3]
    with pytest.raises(UsageError, match=r"--shard 2/3: concurrency 2 is fewer than the 3 shards"):
        make_shape(parse_load("concurrency:2")).shard(ShardSpec(index=2, count=3))


def _mooncake(path: Path, n: int) -> Path:
    rows = [{"timestamp": 37 * k, "input_length": 8 + k, "output_length": 2 + k % 3} for k in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_trace_shards_replay_their_lines_at_the_traces_own_times(tmp_path: Path) -> None:
    trace = _mooncake(tmp_path / "t.jsonl", 11)
    whole, _ = _sent(f"trace:{trace}", None)
    parts = _shards(f"trace:{trace}", 3)
    assert [len(p) for p in parts] == [4, 4, 3]
    assert [s.query.sample_index for s in parts[1]] == [whole[k].query.sample_index for k in (1, 4, 7, 10)]
    key = [(s.query.due_ns, s.prompt.tolist()) for p in parts for s in p]
    assert sorted(key) == sorted((s.query.due_ns, s.prompt.tolist()) for s in whole)


def test_session_shards_run_sessions_k_mod_n_and_together_every_turn() -> None:
    spec = "sessions:synthetic:sessions=7,turns=3,input_tokens=4,output_tokens=3,concurrency=3"
    whole, _ = _sent(spec, None, service_ns=20 * MS)
    parts = _shards(spec, 3, service_ns=20 * MS)
    assert {s.query.session for s in parts[1]} == {1, 4}
    union = sorted((s.query.session, s.query.turn, s.prompt.size) for p in parts for s in p)
    assert union == sorted((s.query.session, s.query.turn, s.prompt.size) for s in whole)


@pytest.mark.parametrize(
    ("text", "needle"),
    [("3/3", "must be below 3"), ("1", "expected I/N"), ("a/3", "expected I/N"), ("0/0", "expected 1..1024")],
)
def test_bad_shard_values_are_one_line(text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_shard(text)


def test_start_at_reads_iso_and_epoch_and_refuses_zoneless_or_far_times() -> None:
    now = 1_800_000_000.0
    assert parse_start_at("1800000060", now_s=now) == 1_800_000_060 * S
    assert parse_start_at("2027-01-15T08:00:00Z", now_s=now) == parse_start_at("2027-01-15T09:00:00+01:00", now_s=now)
    with pytest.raises(UsageError, match="no time zone"):
        parse_start_at("2027-01-15T08:00:00", now_s=now)
    with pytest.raises(UsageError, match="h ahead"):
        parse_start_at(str(now + 3 * 86400), now_s=now)
    with pytest.raises(UsageError, match="expected an ISO 8601"):
        parse_start_at("tomorrow", now_s=now)

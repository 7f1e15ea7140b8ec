"""Sessions over a 3-replica fleet: each conversation stays on one replica, and the conversations spread.

Three ``lpuperf serve --replica-id`` processes on loopback driven as one fleet (``--sut a,b,c``), and
``lpuperf run --replicas 3`` spawning its own: every request of a session, its tool steps included, is
served by one replica (queries.npz's ``replica`` is constant per session, and the replica that answered
says so by its id), and the sessions are spread over all three.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import sut
from tests.integration._load_runs import (
    DATASET,
    MAX_NEW,
    SUT_ARGS,
    LoadRun,
    check_load_run,
    check_session_rows,
    run_load,
    sessions_file,
    synthetic_rows,
    write_jsonl,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet() -> Iterator[list[sut.ServerProcess]]:
    procs: list[sut.ServerProcess] = []
    try:
        for i in range(3):
            procs.append(sut.spawn_server([*SUT_ARGS, "--replica-id", f"r{i}"], timeout_s=90))
        yield procs
    finally:
        for p in procs:
            p.kill()


def _check_pinned(run: LoadRun, n_sessions: int) -> dict[int, int]:
    """Each session's one replica {session: replica index}; every replica served some."""
    rec, res = run.rec, run.res
    assert res.fleet is not None and len(res.fleet.replicas) == 3, res.fleet
    assert (rec["replica"] >= 0).all(), np.unique(rec["replica"])
    pinned: dict[int, int] = {}
    for s in range(n_sessions):
        replicas = np.unique(rec["replica"][rec["session"] == s]).tolist()
        assert len(replicas) == 1, f"session {s} went to replicas {replicas}"
        pinned[s] = replicas[0]
    assert sorted(set(pinned.values())) == [0, 1, 2], pinned
    per_replica = [list(pinned.values()).count(r) for r in range(3)]
    assert max(per_replica) - min(per_replica) <= 1, pinned  # session k on replica k mod 3
    for r, row in enumerate(res.fleet.replicas):
        assert row.n_queries == int((rec["replica"] == r).sum()) > 0, res.fleet
    return pinned


def test_sessions_are_pinned_to_one_replica_each(
    fleet: list[sut.ServerProcess], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape = "sessions=9,turns=3,input_tokens=24,output_tokens=8,think_time_s=0.1,agentic=true,tool_latency_s=0.05"
    spec = f"sessions:synthetic:concurrency=6,{shape}"
    target = ",".join(p.address for p in fleet)
    run = run_load(tmp_path, capsys, "pinned", spec, "--sut", target, "--dataset", DATASET, "--max-new-tokens", MAX_NEW)
    check_load_run(run, "Sessions", spec)
    check_session_rows(run.rec, [{**r, "tool_latency_s": 0.05} for r in synthetic_rows(9, 3, 24, 8, 0.1, 0)])
    assert (run.rec["tool_step"] > 0).any()  # tool steps too stayed where their session was
    _check_pinned(run, 9)
    assert run.res.fleet is not None and [r.replica_id for r in run.res.fleet.replicas] == ["r0", "r1", "r2"]
    assert "r0" in run.out and "r2" in run.out, run.out  # the per-replica table


def test_replicas_3_pins_the_sessions_of_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, rows = sessions_file(tmp_path)
    rows = rows + [{**r, "session_id": f"{r['session_id']}-2"} for r in rows[:2]]  # six sessions: two per replica
    write_jsonl(path, rows)
    spec = f"sessions:{path}:concurrency=6"
    args = ["--replicas", "3", "--dataset", DATASET, "--max-new-tokens", MAX_NEW]
    run = run_load(tmp_path, capsys, "spawned", spec, *args)
    check_load_run(run, "Sessions", spec)
    check_session_rows(run.rec, rows)
    _check_pinned(run, len(rows))

"""Shared by the load-shape integration tests (``test_load_shapes*.py``): a ``lpuperf run --load ...`` through
the CLI in this process, the trace and session files the tests write, and what every load run must hold.

A run here goes through ``cli.main`` (argument parsing, the run, the console summary, the exit status)
against SUT processes the tests spawn on loopback. The runs that test a shape are judged on failures only
(a benchmark without latency limits, a loose dispatch-lag bound), so a loaded machine's stalls do not turn
them invalid; the tests of the client's own timing set their bound themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadgen_harness import RunResult, load_query_records, load_results

# The SUT every load test spawns: the timed sim with 8-token tool calls, serving this dataset.
DATASET = "synthetic:32:5"
MAX_NEW = "16"
# ~35 ms a query: answers overlap, so a concurrency is reached and held; a 32-wide batch never queues.
TIMING = ["--prefill-base-s", "0.001", "--prefill-per-token-s", "0", "--decode-step-s", "0.002"]
SUT_ARGS = ["--dataset", DATASET, "--artifact", "sim-fp32", *TIMING, "--tool-call-tokens", "8"]
# The runs that test a shape rather than timing are judged on failures only: a benchmark without per-query
# latency limits, and a dispatch-lag bound (default 10 ms) far over the stalls of a loaded 2-core machine
# (seen: 1.3 s under stress-ng --cpu 4 beside three SUT processes). The timing tests set their own.
LOOSE_BENCHMARK = "llama3_1-8b-edge"
LOOSE_LAG_MS = "5000"
LOAD_NOTE = "not an MLPerf LoadGen run"
TOOL_CALL = 4  # proto FinishReason.FINISH_REASON_TOOL_CALL


@dataclass
class LoadRun:
    rc: int
    out: str
    err: str
    log_dir: Path
    res: RunResult
    rec: np.ndarray


def run_load(tmp: Path, capsys: pytest.CaptureFixture[str], run_id: str, load: str, *extra: str) -> LoadRun:
    """``lpuperf run --load LOAD [extra]`` in this process; the run's results.json and queries.npz, parsed."""
    from cli import main

    out_dir = tmp / "out"
    argv = ["run", "--load", load, "--out", str(out_dir), "--run-id", run_id, "--no-record"]
    argv += ["--metrics-linger", "0", "--max-dispatch-lag-ms", LOOSE_LAG_MS, "--benchmark", LOOSE_BENCHMARK]
    argv += extra  # a later flag wins
    rc = main(argv)
    captured = capsys.readouterr()
    found = sorted((out_dir / run_id).glob("*/performance/results.json"))
    assert len(found) == 1, f"exit {rc}: {captured.out}{captured.err}"
    log_dir = found[0].parent
    return LoadRun(rc, captured.out, captured.err, log_dir, load_results(log_dir), load_query_records(log_dir))


def check_load_run(run: LoadRun, scenario: str, spec: str, *, rc: int = 0) -> None:
    """What every load run writes: its scenario, the note, the dispatch lag, every query answered, the summary."""
    res, rec = run.res, run.rec
    why = f"exit {run.rc}, reasons {res.validity_reasons}\n{run.out}{run.err}"
    assert run.rc == rc, why
    assert res.scenario == scenario and run.log_dir.parent.name == scenario, why
    assert res.valid is (rc == 0) and res.state == "complete", why
    assert res.loadgen_valid is None and res.submittable is False
    load = res.load
    assert load is not None and load.spec == spec and load.note.startswith(LOAD_NOTE), load
    assert res.limits is None and "judged on failures and dispatch lag only" in load.validity_basis, load
    assert res.n_errors == 0 and not res.errors_by_status, res.errors_by_status
    assert rec.size == res.n_queries == load.sent_requests > 0
    assert (rec["status"] == 0).all() and (rec["done_ns"] >= rec["issue_ns"]).all()
    assert (rec["sent_ns"] >= 0).all() and (rec["first_token_ns"] >= rec["sent_ns"]).all()
    assert (rec["n_prompt"] > 0).all()
    lag = res.dispatch_lag
    assert lag is not None and lag.n_queries == rec.size, lag
    assert lag.p50_ms is not None and lag.p99_ms is not None and lag.max_ms is not None
    assert 0 <= lag.p50_ms <= lag.p99_ms <= lag.max_ms and lag.bound_ms == float(LOOSE_LAG_MS), lag
    assert lag.client_limited is res.client_limited is False, lag
    assert res.successful is not None and res.successful.n_queries == rec.size
    assert res.ttft_ms.p50 is not None and res.completed_qps is not None and res.completed_qps > 0
    # The console summary: how the run sent, and how late.
    assert f"lpuperf {scenario} performance run '{res.run_id}'" in run.out, run.out
    assert f"  load     {spec}: {LOAD_NOTE}" in run.out, run.out
    assert "  dispatch lag p50 " in run.out and f"(bound {lag.bound_ms:g} ms)" in run.out, run.out


def check_not_sessions(rec: np.ndarray) -> None:
    """Rows of a shape without sessions carry no session, turn or tool step."""
    assert (rec["session"] == -1).all() and (rec["turn"] == -1).all() and (rec["tool_step"] == 0).all()


def max_in_flight(rec: np.ndarray) -> int:
    """The most queries in flight at once on the client's clock (from due time to completion)."""
    times = np.concatenate((rec["issue_ns"], rec["done_ns"]))
    steps = np.concatenate((np.ones(rec.size, np.int64), -np.ones(rec.size, np.int64)))
    order = np.lexsort((steps, times))  # by time; at a tie a completion before a send
    return int(np.cumsum(steps[order]).max())


# ---- input files ----


def sessions_file(tmp: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Four sessions of different shapes: turn counts, think times, a system prompt, an agentic one."""

    def turn(n_in: int, n_out: int, think: float) -> dict[str, Any]:
        return {"input_tokens": n_in, "output_tokens": n_out, "think_time_s": think}

    rows: list[dict[str, Any]] = [
        {"session_id": "plain", "turns": [turn(20, 8, 0.1), turn(12, 8, 0.2), turn(30, 6, 0.1)]},
        {"session_id": "system", "turns": [turn(16, 8, 0.0), turn(8, 8, 0.3)], "system_tokens": 96},
        {"session_id": "one", "turns": [turn(40, 12, 0.2)]},
        {
            "session_id": "agent",
            "turns": [turn(24, 10, 0.1), turn(16, 10, 0.1), turn(16, 10, 0.1), turn(16, 10, 0.1)],
            "agentic": True,
            "tool_latency_s": 0.05,
            "tool_result_tokens": 20,
            "max_tool_calls": 2,
        },
    ]
    return write_jsonl(tmp / "sessions.jsonl", rows), rows


def synthetic_rows(n: int, turns: int, n_in: int, n_out: int, think: float, system: int) -> list[dict[str, Any]]:
    """The synthetic generator's sessions as session-file rows (for check_session_rows)."""
    turn = {"input_tokens": n_in, "output_tokens": n_out, "think_time_s": think}
    return [{"turns": [turn] * turns, "system_tokens": system}] * n


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def mooncake_rows(
    n: int, *, gap_ms: int, input_length: int, block: int, shared: int, groups: int
) -> list[dict[str, Any]]:
    """A Mooncake trace: request i shares its first ``shared`` hash blocks with every request of its group
    (i % groups); its other blocks are its own. Timestamps in ms, uneven gaps averaging ``gap_ms``."""
    n_blocks = -(-input_length // block)
    rows = []
    for i in range(n):
        own = [10_000 + i * n_blocks + k for k in range(n_blocks - shared)]
        hash_ids = [100 * (i % groups) + k for k in range(shared)] + own
        ts = i * gap_ms + (7 * i) % 5  # uneven, never decreasing
        rows.append({"timestamp": ts, "input_length": input_length, "output_length": 4 + i % 5, "hash_ids": hash_ids})
    return rows


def expected_prefix_hits(rows: list[dict[str, Any]], block: int) -> list[int]:
    """Per row, the prompt tokens a prefix cache of whole ``block``-token blocks (no eviction) serves when
    the rows arrive in order: its leading blocks whose whole chain of hash ids came on an earlier row, at
    most ``(input_length - 1) // block`` of them (the last prompt token is always computed)."""
    seen: set[tuple[int, ...]] = set()
    hits = []
    for row in rows:
        ids, n = row["hash_ids"], row["input_length"]
        chains = [tuple(ids[: k + 1]) for k in range(n // block)]  # a partial last block is never cached
        cached = 0
        for chain in chains[: (n - 1) // block]:
            if chain not in seen:
                break
            cached += 1
        hits.append(cached * block)
        seen.update(chains)
    return hits


def check_session_rows(rec: np.ndarray, sessions: list[dict[str, Any]]) -> None:
    """Each session's rows are its turns in order, each prompt the whole history plus the turn's new tokens.

    ``sessions``: the session file's rows (or the synthetic generator's shape as such rows), in file order.
    """
    for index, spec in enumerate(sessions):
        rows = rec[rec["session"] == index]
        assert rows.size > 0, f"session {index} sent nothing"
        rows = rows[np.argsort(rows["issue_ns"], kind="stable")]
        turns = spec["turns"]
        assert rows["turn"].tolist() == sorted(rows["turn"].tolist()), rows["turn"]
        assert set(rows["turn"].tolist()) == set(range(len(turns))), (index, rows["turn"])
        expected = spec.get("system_tokens", 0) + turns[0]["input_tokens"]
        prev = None
        for row in rows:
            turn, step = int(row["turn"]), int(row["tool_step"])
            if prev is not None:
                new = turns[turn]["input_tokens"] if step == 0 else spec.get("tool_result_tokens", 64)
                expected = int(prev["n_prompt"]) + int(prev["n_tokens"]) + new
                # The next request is due after the previous answer (plus the think or tool time).
                wait_s = turns[turn].get("think_time_s", 0) if step == 0 else spec.get("tool_latency_s", 0.5)
                assert row["issue_ns"] >= prev["done_ns"] + int(wait_s * 1e9) - 1_000_000, (index, turn, step)
                if step:  # a tool step follows the tool call of the same turn
                    assert int(prev["finish_reason"]) == TOOL_CALL and int(prev["turn"]) == turn
                    assert int(prev["tool_step"]) == step - 1
                else:
                    assert int(prev["turn"]) == turn - 1 and int(prev["finish_reason"]) != TOOL_CALL
            assert int(row["n_prompt"]) == expected, (index, turn, step, int(row["n_prompt"]), expected)
            prev = row
        assert int(rows[-1]["finish_reason"]) != TOOL_CALL  # a session ends on an answer

"""``lpuperf run --load ... --transport openai-http``: every load shape over the sim's OpenAI-compatible front.

One ``lpuperf serve --http`` process (the timed sim behind its HTTP front) serves the module; the harness
streams each query to it straight, with no SUT process of its own. The same shapes as over gRPC, the same
outputs, an agentic session whose tool calls come back through the front (finish reason, counted in
``results.sessions.tool_calls``) and are followed by the tool's result, and a shared-prefix trace whose
prefix-cache hits the front reports in its usage.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.integration._load_runs import (
    DATASET,
    MAX_NEW,
    SUT_ARGS,
    TOOL_CALL,
    check_load_run,
    check_not_sessions,
    check_session_rows,
    expected_prefix_hits,
    max_in_flight,
    mooncake_rows,
    run_load,
    sessions_file,
    synthetic_rows,
    write_jsonl,
)
from tests.integration.test_openai_relay import Served, _serve, _stop

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = _serve(tmp_path_factory.mktemp("front"), "front", ["--backend", "sim", *SUT_ARGS])
    yield served
    _stop(served)


def _http(front: Served) -> list[str]:
    return [
        "--transport",
        "openai-http",
        "--base-url",
        front.base_url,
        "--dataset",
        DATASET,
        "--max-new-tokens",
        MAX_NEW,
    ]


def test_concurrency_over_http(front: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_load(tmp_path, capsys, "conc", "concurrency:4", "--duration", "2.5", *_http(front))
    check_load_run(run, "Concurrency", "concurrency:4")
    check_not_sessions(run.rec)
    assert max_in_flight(run.rec) == 4 and run.rec.size > 40, run.rec.size
    assert "127.0.0.1" in run.res.sut_address and run.res.artifact["backend"] == "openai"


@pytest.mark.parametrize("arrival", ["constant", "poisson"])
def test_rate_over_http(front: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], arrival: str) -> None:
    spec = f"rate:40:{arrival}"
    run = run_load(tmp_path, capsys, arrival, spec, "--duration", "2.5", *_http(front))
    check_load_run(run, "Rate", spec)
    check_not_sessions(run.rec)
    due = run.rec["issue_ns"] - run.rec["issue_ns"][0]
    if arrival == "constant":
        assert np.array_equal(due, np.arange(100, dtype=np.int64) * 25_000_000)
    else:
        assert 60 <= run.rec.size <= 140 and (np.diff(due) >= 0).all()


def test_trace_over_http(front: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = mooncake_rows(50, gap_ms=100, input_length=120, block=16, shared=3, groups=2)
    spec = f"trace:{write_jsonl(tmp_path / 'trace.jsonl', rows)}:speed=2,block=16"
    run = run_load(tmp_path, capsys, "trace", spec, *_http(front))
    check_load_run(run, "Trace", spec)
    ts_ns = np.array([r["timestamp"] for r in rows], dtype=np.int64) * 1_000_000
    assert np.array_equal(run.rec["issue_ns"] - run.rec["issue_ns"][0], (ts_ns - ts_ns[0]) // 2)
    # The recorded output lengths, as the front counted them.
    assert run.rec["n_tokens"].tolist() == [r["output_length"] for r in rows]


def test_sessions_file_over_http(front: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, rows = sessions_file(tmp_path)
    spec = f"sessions:{path}:concurrency=4"
    run = run_load(tmp_path, capsys, "sfile", spec, *_http(front))
    check_load_run(run, "Sessions", spec)
    check_session_rows(run.rec, rows)
    sess = run.res.sessions
    assert sess is not None and sess.completed_sessions == 4 and sess.n_requests == run.rec.size


def test_agentic_sessions_over_http_make_tool_calls(
    front: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape = "sessions=8,turns=3,input_tokens=24,output_tokens=8,think_time_s=0.1,agentic=true,tool_latency_s=0.05"
    spec = f"sessions:synthetic:concurrency=4,{shape},tool_result_tokens=16"
    run = run_load(tmp_path, capsys, "agent", spec, *_http(front))
    check_load_run(run, "Sessions", spec)
    rec, sess = run.rec, run.res.sessions
    rows = [{**r, "tool_latency_s": 0.05, "tool_result_tokens": 16} for r in synthetic_rows(8, 3, 24, 8, 0.1, 0)]
    check_session_rows(rec, rows)
    calls = int((rec["finish_reason"] == TOOL_CALL).sum())
    # The sim answers about half the prompts offered a tool with a call (8 x 3 turns offer at least 24).
    assert sess is not None and sess.tool_calls == calls > 0, (sess, calls)
    assert sess.completed_sessions == 8 and sess.n_requests == rec.size == 24 + int((rec["tool_step"] > 0).sum())
    # Each tool call is followed by one tool step carrying its result; at most two per turn.
    assert int((rec["tool_step"] > 0).sum()) == calls and rec["tool_step"].max() <= 2
    assert (rec["n_tokens"][rec["finish_reason"] == TOOL_CALL] == 8).all()  # --tool-call-tokens 8
    assert f"requests, {calls} tool calls;" in run.out, run.out


def test_prefix_cache_hits_over_http(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The front's usage (prompt_tokens_details.cached_tokens) reaches queries.npz and results.prefix_cache."""
    cache = ["--prefix-cache-tokens", "65536", "--prefix-block-tokens", "16"]
    served = _serve(tmp_path, "cached", ["--backend", "sim", *SUT_ARGS, *cache])
    try:
        rows = mooncake_rows(40, gap_ms=50, input_length=101, block=16, shared=4, groups=3)
        spec = f"trace:{write_jsonl(tmp_path / 'shared.jsonl', rows)}:block=16"
        run = run_load(tmp_path, capsys, "cached", spec, *_http(served))
    finally:
        _stop(served)
    check_load_run(run, "Trace", spec)
    expected = expected_prefix_hits(rows, 16)
    assert run.rec["cached_tokens"].tolist() == expected
    assert run.res.prefix_cache is not None and run.res.prefix_cache.cached_tokens == sum(expected) > 0

"""``lpuperf export`` of a run beside LoadGen: each query's send time, dispatch lag, session, turn, tool step,
finish reason, cached and prompt tokens, agreeing with results.json's figures; empty where they mean nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cli import main
from loadgen_harness import load_query_records, load_results
from loadgen_harness._records import QueryRecords
from tests.load_runs import sessions_run
from workflows._export import COLUMNS, export_records

NEW_COLUMNS = ("sent_ns", "dispatch_lag_ms", "session", "turn", "tool_step", "finish_reason", "cached_tokens",
               "n_prompt")  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sessions_run(tmp_path_factory.mktemp("load-export"))


def _int(v: str) -> int | None:
    return None if v == "" else int(v)


def test_csv_carries_how_each_query_was_sent_as_results_json_counts_it(run: Path, tmp_path: Path) -> None:
    path = export_records(run, "csv", tmp_path / "q.csv")
    assert path is not None
    rows = list(csv.DictReader(path.open()))
    assert set(NEW_COLUMNS) <= set(rows[0]) and list(rows[0]) == [c for c, _, _ in COLUMNS]
    rec = load_query_records(run)
    res = load_results(run)
    assert res.dispatch_lag is not None and res.sessions is not None and res.prefix_cache is not None
    assert len(rows) == rec.size
    assert [_int(r["session"]) for r in rows] == rec["session"].tolist()
    assert [_int(r["turn"]) for r in rows] == rec["turn"].tolist()
    assert [_int(r["tool_step"]) for r in rows] == rec["tool_step"].tolist()
    assert [_int(r["sent_ns"]) for r in rows] == rec["sent_ns"].tolist()
    assert [_int(r["n_prompt"]) for r in rows] == rec["n_prompt"].tolist()
    # Dispatch lag per query: send minus due; its p99 is results.json's.
    lag = np.array([float(r["dispatch_lag_ms"]) for r in rows if r["dispatch_lag_ms"]])
    assert lag.size == res.dispatch_lag.n_queries
    assert float(np.percentile(lag, 99, method="higher")) == pytest.approx(res.dispatch_lag.p99_ms, abs=1e-3)
    # Tool calls by finish reason; cached prompt tokens of successful queries add up to the prefix-cache figure.
    assert sum(r["finish_reason"] == "TOOL_CALL" for r in rows) == res.sessions.tool_calls > 0
    assert {r["finish_reason"] for r in rows} <= {"EOS", "LENGTH", "TOOL_CALL", "CANCELLED"}
    ok = [r for r in rows if r["status"] == "OK"]
    assert sum(int(r["cached_tokens"]) for r in ok) == res.prefix_cache.cached_tokens > 0
    assert sum(int(r["n_prompt"]) for r in ok) == res.prefix_cache.prompt_tokens


def test_jsonl_and_parquet_carry_the_same_columns(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(run), "--format", "jsonl", "-o", "-"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert all(set(NEW_COLUMNS) <= set(r) for r in rows)
    assert {r["session"] for r in rows} == {0, 1, 2, 3}
    assert all(isinstance(r["dispatch_lag_ms"], float) for r in rows)
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "q.parquet"
    assert main(["export", str(run), "--format", "parquet", "-o", str(out)]) == 0
    table = pq.read_table(out)
    assert set(NEW_COLUMNS) <= set(table.column_names)
    assert table.column("turn").to_pylist() == [r["turn"] for r in rows]


def test_a_query_outside_sessions_has_no_session_turn_or_tool_step(tmp_path: Path) -> None:
    """A LoadGen run's rows (and a query never sent): those columns are empty, not 0 or -1."""
    rec = QueryRecords(4)
    chunk, j = rec.slot_ref(7, 1_000_000)
    chunk.sent_ns[j], chunk.first_token_ns[j], chunk.done_ns[j] = 1_250_000, 5_000_000, 9_000_000
    chunk.n_tokens[j], chunk.status[j], chunk.finish_reason[j] = 3, 0, 1
    chunk, j = rec.slot_ref(8, 2_000_000)  # failed before it was sent
    chunk.done_ns[j], chunk.status[j] = 2_100_000, 14
    rec.save(tmp_path)
    path = export_records(tmp_path, "csv")
    assert path is not None
    sent, unsent = list(csv.DictReader(path.open()))
    assert (sent["session"], sent["turn"], sent["tool_step"]) == ("", "", "")
    assert float(sent["dispatch_lag_ms"]) == 0.25 and sent["finish_reason"] == "EOS"
    assert sent["cached_tokens"] == "0" and sent["n_prompt"] == ""
    assert unsent["sent_ns"] == "" and unsent["dispatch_lag_ms"] == "" and unsent["finish_reason"] == ""

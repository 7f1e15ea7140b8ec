"""``lpuperf export``: one row per query, the same figures as results.json, in CSV, JSON lines and Parquet."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cli import main
from loadgen_harness import load_query_records, success_stats
from loadgen_harness._records import QueryRecords
from workflows._export import COLUMNS, export_records


def make_run(d: Path) -> np.ndarray:
    """Five queries: three successes (one of a single token), one UNAVAILABLE failure, one never finished."""
    rec = QueryRecords(8)
    rows = [
        # issue, first, last msg, done, n_tokens, n_streamed, first chunk, chunks, max gap, status
        (0, 20_000_000, 100_000_000, 101_000_000, 9, 9, 1, 3, 50_000_000, 0),
        (10_000_000, 40_000_000, 40_000_000, 41_000_000, 1, 1, 1, 1, -1, 0),
        (20_000_000, 30_000_000, 110_000_000, 112_000_000, 5, 5, 1, 5, 30_000_000, 0),
        (30_000_000, -1, -1, 31_000_000, 2, 0, -1, 0, -1, 14),
        (40_000_000, -1, -1, -1, -1, -1, -1, -1, -1, -1),
    ]
    for i, (issue, first, last, done, n_tok, n_str, first_chunk, chunks, gap, status) in enumerate(rows):
        chunk, j = rec.slot_ref(100 + i, issue)
        chunk.first_token_ns[j], chunk.last_msg_ns[j], chunk.done_ns[j] = first, last, done
        chunk.n_tokens[j], chunk.n_streamed[j], chunk.first_chunk_tokens[j] = n_tok, n_str, first_chunk
        chunk.n_chunks[j], chunk.max_gap_ns[j], chunk.status[j] = chunks, gap, status
    d.mkdir(parents=True, exist_ok=True)
    rec.save(d)
    return rec.to_array()


def test_csv_has_one_row_per_query_with_the_results_figures(tmp_path: Path) -> None:
    records = make_run(tmp_path)
    path = export_records(tmp_path, "csv")
    assert path == tmp_path / "queries.csv"
    rows = list(csv.DictReader(path.open()))
    assert [r["query"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert list(rows[0]) == [c for c, _, _ in COLUMNS]
    first, single, third, failed, unfinished = rows
    assert first["sample_index"] == "100" and first["status"] == "OK"
    assert float(first["ttft_ms"]) == 20.0 and float(first["latency_ms"]) == 101.0
    assert float(first["tpot_ms"]) == pytest.approx(81 / 8)  # (done - first) / (n_tokens - 1)
    assert float(first["itl_ms"]) == 10.0  # 80 ms over the 8 tokens after the first message
    assert float(first["max_gap_ms"]) == 50.0
    assert single["tpot_ms"] == "" and single["itl_ms"] == "" and single["max_gap_ms"] == ""
    assert failed["status"] == "UNAVAILABLE" and failed["status_code"] == "14"
    assert failed["ttft_ms"] == failed["latency_ms"] == "" and failed["first_token_ns"] == ""
    assert unfinished["done_ns"] == "" and unfinished["latency_ms"] == "" and unfinished["status"] == "UNFINISHED"
    # The same percentiles as results.json's success figures, from the exported rows.
    stats = success_stats(records)
    ttft = [float(r["ttft_ms"]) for r in rows if r["ttft_ms"]]
    assert stats.ttft_ms.p50 == pytest.approx(float(np.percentile(ttft, 50, method="higher")))
    assert float(third["ttft_ms"]) == 10.0


def test_jsonl_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path)
    assert main(["export", str(tmp_path), "--format", "jsonl", "-o", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    rows = [json.loads(x) for x in lines]
    assert rows[0]["ttft_ms"] == 20.0 and rows[3]["ttft_ms"] is None and rows[3]["status"] == "UNAVAILABLE"
    assert main(["export", str(tmp_path), "--format", "jsonl"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "queries.jsonl")
    assert len((tmp_path / "queries.jsonl").read_text().splitlines()) == 5


def test_parquet_round_trips_with_nulls(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    make_run(tmp_path)
    out = tmp_path / "x.parquet"
    assert main(["export", str(tmp_path), "--format", "parquet", "-o", str(out)]) == 0
    table = pq.read_table(out).to_pydict()
    assert table["query"] == [0, 1, 2, 3, 4]
    assert table["ttft_ms"][:4] == [20.0, 30.0, 10.0, None]
    assert table["status"] == ["OK", "OK", "OK", "UNAVAILABLE", "UNFINISHED"] and table["status_code"][4] is None
    assert table["done_ns"][4] is None and table["sample_index"][4] == 104


def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["export", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no queries.npz" in err[0]
    assert main(["export", str(tmp_path), "--format", "xml"]) == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err
    make_run(tmp_path)
    (tmp_path / "queries.npz").write_bytes(b"not a zip")
    assert main(["export", str(tmp_path)]) == 2
    assert "cannot read per-query records" in capsys.readouterr().err
    make_run(tmp_path)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    assert main(["export", str(tmp_path), "--format", "parquet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'lpuperf[parquet]'" in err[0]
    assert not (tmp_path / "queries.parquet").exists()
    assert main(["export", str(tmp_path), "--format", "parquet", "-o", "-"]) == 2


def test_a_run_written_before_the_itl_columns_exports(tmp_path: Path) -> None:
    records = make_run(tmp_path)
    old_names = [n for n in records.dtype.names or () if n not in ("last_msg_ns", "max_gap_ns")]
    np.savez(tmp_path / "queries.npz", records=records[old_names])
    assert load_query_records(tmp_path)["last_msg_ns"][0] == -1
    rows = list(csv.DictReader(export_records(tmp_path, "csv").open()))  # type: ignore[union-attr]
    assert rows[0]["itl_ms"] == "" and float(rows[0]["ttft_ms"]) == 20.0


def test_the_status_names_are_grpcs() -> None:
    """The export names statuses from its own table (no grpc import); it is gRPC's, code for code."""
    import grpc

    from workflows._export import GRPC_STATUS_NAMES

    assert {int(code.value[0]): code.name for code in grpc.StatusCode} == GRPC_STATUS_NAMES


def test_reasoning_columns_say_when_the_answer_began_and_how_the_output_split(tmp_path: Path) -> None:
    make_run(tmp_path)
    rec = QueryRecords(8)
    records = load_query_records(tmp_path)
    for i, row in enumerate(records):
        chunk, j = rec.slot_ref(int(row["sample_index"]), int(row["issue_ns"]))
        for name in ("first_token_ns", "last_msg_ns", "done_ns", "n_tokens", "n_streamed", "status"):
            chunk.column(name)[j] = row[name]
        if i == 0:  # 9 tokens: 6 reasoning, the answer from 70 ms
            chunk.n_reasoning[j], chunk.first_answer_ns[j] = 6, 70_000_000
    rec.save(tmp_path)
    first, single, _, failed, _ = list(csv.DictReader(export_records(tmp_path, "csv").open()))
    assert float(first["ttfa_ms"]) == 70.0 and first["n_reasoning"] == "6" and first["n_answer"] == "3"
    assert single["ttfa_ms"] == "" and single["n_reasoning"] == "0" and single["n_answer"] == "1"
    assert failed["ttfa_ms"] == "" and failed["n_answer"] == ""

"""Per-request export: one row per query of a run's ``queries.npz`` as CSV, JSON lines or Parquet.

Times are the harness's (ns from the run start, monotonic clock) and the SUT's own (ns on its
clock, as it reported them); a time never reached is empty (CSV) or null. The derived figures are
those of results.json's success figures: TTFT and latency from the harness's issue time, TPOT =
(done - first token) / (tokens - 1), ITL = (last message - first message) / (tokens after the
first message), all for successful queries only (a failed query's are empty).

The columns after the SUT's times describe how each query was sent: its actual send time and dispatch
lag (send minus due time; a load shape's client sending late), its session, turn and tool step (load
sessions), how its answer ended and how much of its prompt the SUT served from its prefix cache.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, TextIO

import numpy as np

from common import UsageError

ExportFormat = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "parquet")
# Rows converted to Python values per step: bounds memory on runs of millions of queries.
_ROWS_PER_STEP = 65536

# (column, numpy dtype of the column, description) in output order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("query", "int64", "row in issue order"),
    ("sample_index", "int64", "dataset sample"),
    ("status", "str", "OK, the failure's gRPC status name, or UNFINISHED (never completed)"),
    ("status_code", "int64", "0 = OK, else the gRPC status code"),
    ("issue_ns", "int64", "harness clock, ns from the run start"),
    ("first_token_ns", "int64", "harness clock"),
    ("last_msg_ns", "int64", "harness clock: last streamed message"),
    ("done_ns", "int64", "harness clock: completed to LoadGen"),
    ("ttft_ms", "float64", "first token - issue"),
    ("tpot_ms", "float64", "(done - first token) / (n_tokens - 1)"),
    ("itl_ms", "float64", "(last message - first message) / tokens after the first message"),
    ("max_gap_ms", "float64", "longest wait between two stream messages"),
    ("latency_ms", "float64", "done - issue"),
    ("n_tokens", "int64", "output tokens reported to LoadGen"),
    ("n_streamed", "int64", "tokens received in the stream"),
    ("n_chunks", "int64", "stream messages"),
    ("first_answer_ns", "int64", "harness clock: first answer token (reasoning models; else the first token)"),
    ("ttfa_ms", "float64", "first answer token - issue (time to first answer)"),
    ("n_reasoning", "int64", "reasoning tokens at the head of the output (0: none)"),
    ("n_answer", "int64", "answer tokens: n_tokens - n_reasoning"),
    ("sut_arrival_ns", "int64", "SUT clock"),
    ("sut_first_token_ns", "int64", "SUT clock"),
    ("sut_last_token_ns", "int64", "SUT clock"),
    ("sent_ns", "int64", "harness clock: when the request was actually sent (issue_ns is when it was due)"),
    ("dispatch_lag_ms", "float64", "sent - issue: how late the client sent it"),
    ("session", "int64", "session index in the run (load sessions; empty: not part of a session)"),
    ("turn", "int64", "turn index within its session (the user's message)"),
    ("tool_step", "int64", "0: the user's message; k: the request after the k-th tool result"),
    ("finish_reason", "str", "EOS, LENGTH, CANCELLED or TOOL_CALL as the SUT's final message said; empty: none"),
    ("cached_tokens", "int64", "leading prompt tokens the SUT served from its prefix cache (0: none)"),
    ("n_prompt", "int64", "prompt tokens, where the sender knew them"),
)

# proto FinishReason (inference.proto), spelled out so exporting a run does not import the stubs; 0 = none.
FINISH_REASON_NAMES: dict[int, str] = {1: "EOS", 2: "LENGTH", 3: "CANCELLED", 4: "TOOL_CALL"}


# gRPC's status codes (fixed by its protocol; tests/unit/workflows/test_export.py checks them against grpc):
# spelled out so exporting a run does not import grpc.
GRPC_STATUS_NAMES: dict[int, str] = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}


def export_columns(records: np.ndarray) -> dict[str, np.ndarray]:
    """The export's columns (numpy arrays; NaN or -1 where a value does not exist) from per-query records."""
    issue, first, done = (records[k].astype(np.int64) for k in ("issue_ns", "first_token_ns", "done_ns"))
    n_tok = records["n_tokens"].astype(np.int64)
    status = records["status"].astype(np.int64)
    ok = (status == 0) & (issue >= 0) & (done >= issue)
    has_first = ok & (first >= issue) & (first <= done)
    nan = np.full(records.shape, np.nan)

    def where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = nan.copy()
        out[mask] = values[mask]
        return out

    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = (done - first) / np.maximum(n_tok - 1, 1) / 1e6
        last = records["last_msg_ns"].astype(np.int64)
        after_first = records["n_streamed"].astype(np.int64) - records["first_chunk_tokens"].astype(np.int64)
        itl = (last - first) / np.maximum(after_first, 1) / 1e6
    gap = records["max_gap_ns"].astype(np.int64)
    answer_at = records["first_answer_ns"].astype(np.int64)
    n_reason = records["n_reasoning"].astype(np.int64)
    names = GRPC_STATUS_NAMES
    cols = {
        "query": np.arange(records.shape[0], dtype=np.int64),
        "sample_index": records["sample_index"].astype(np.int64),
        "status": np.array(
            [
                "UNFINISHED" if d < 0 else "OK" if c == 0 else names.get(int(c), str(int(c)))
                for c, d in zip(status.tolist(), done.tolist(), strict=True)
            ],
            dtype=object,
        ),
        "status_code": status,
        "issue_ns": issue,
        "first_token_ns": first,
        "last_msg_ns": last,
        "done_ns": done,
        "ttft_ms": where(has_first, (first - issue) / 1e6),
        "tpot_ms": where(has_first & (n_tok > 1), tpot),
        "itl_ms": where(has_first & (last >= first) & (after_first > 0), itl),
        "max_gap_ms": where(ok & (gap >= 0), gap / 1e6),
        "latency_ms": where(ok, (done - issue) / 1e6),
        "n_tokens": n_tok,
        "n_streamed": records["n_streamed"].astype(np.int64),
        "n_chunks": records["n_chunks"].astype(np.int64),
        "first_answer_ns": answer_at,
        "ttfa_ms": where(ok & (answer_at >= issue) & (answer_at >= 0), (answer_at - issue) / 1e6),
        "n_reasoning": n_reason,
        "n_answer": np.where(ok, np.clip(n_tok - n_reason, 0, None), -1),
        "sut_arrival_ns": records["sut_arrival_ns"].astype(np.int64),
        "sut_first_token_ns": records["sut_first_token_ns"].astype(np.int64),
        "sut_last_token_ns": records["sut_last_token_ns"].astype(np.int64),
    }
    return cols | _sending_columns(records, issue, where)


def _sending_columns(
    records: np.ndarray, issue: np.ndarray, where: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> dict[str, np.ndarray]:
    """How each query was sent: send time and lag, session, turn, tool step, finish reason, cached prompt tokens."""
    sent = records["sent_ns"].astype(np.int64)
    session = records["session"].astype(np.int64)
    in_session = session >= 0
    reasons = records["finish_reason"].astype(np.int64).tolist()
    return {
        "sent_ns": sent,
        # Clipped at 0 as results.json's dispatch_lag figures are: a send is never earlier than due.
        "dispatch_lag_ms": where((sent >= 0) & (issue >= 0), np.clip(sent - issue, 0, None) / 1e6),
        "session": session,
        # Turn and tool step mean nothing outside a session: empty there.
        "turn": np.where(in_session, records["turn"].astype(np.int64), -1),
        "tool_step": np.where(in_session, records["tool_step"].astype(np.int64), -1),
        "finish_reason": np.array([FINISH_REASON_NAMES.get(int(c)) for c in reasons], dtype=object),
        "cached_tokens": records["cached_tokens"].astype(np.int64),
        "n_prompt": records["n_prompt"].astype(np.int64),
    }


def _rows(cols: dict[str, np.ndarray]) -> Iterator[list[object]]:
    """Rows of Python values, None where a value does not exist (-1 times and counts, NaN figures)."""
    n = len(cols["query"])
    kinds = [(name, dtype) for name, dtype, _ in COLUMNS]
    for start in range(0, n, _ROWS_PER_STEP):
        block: list[list[object]] = []
        for name, dtype in kinds:
            part = cols[name][start : start + _ROWS_PER_STEP]
            if dtype == "float64":
                block.append([None if v != v else round(float(v), 6) for v in part.tolist()])
            elif dtype == "int64" and name != "query":
                block.append([None if v < 0 else v for v in part.tolist()])
            else:
                block.append(part.tolist())
        yield from (list(r) for r in zip(*block, strict=True))


def _write_csv(cols: dict[str, np.ndarray], out: TextIO) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow([c for c, _, _ in COLUMNS])
    for row in _rows(cols):
        w.writerow(["" if v is None else v for v in row])


def _write_jsonl(cols: dict[str, np.ndarray], out: TextIO) -> None:
    names = [c for c, _, _ in COLUMNS]
    for row in _rows(cols):
        out.write(json.dumps(dict(zip(names, row, strict=True)), separators=(",", ":")) + "\n")


def _write_parquet(cols: dict[str, np.ndarray], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("--format parquet: needs pyarrow; install it with: pip install 'lpuperf[parquet]'") from None
    arrays = {}
    for name, dtype, _ in COLUMNS:
        values = cols[name]
        if dtype == "float64":
            arrays[name] = pa.array(values, mask=np.isnan(values))
        elif dtype == "int64" and name != "query":
            arrays[name] = pa.array(values, mask=values < 0)
        else:
            arrays[name] = pa.array(values.tolist() if values.dtype == object else values)
    from common import atomic_path

    with atomic_path(path, suffix=".tmp.parquet") as tmp:
        pq.write_table(pa.table(arrays), tmp)


def export_records(run_dir: str | Path, fmt: ExportFormat, out: str | Path | None = None) -> Path | None:
    """Write one row per query of ``run_dir`` in ``fmt``; ``out`` "-" is stdout (CSV, JSON lines).

    Returns the file written (default ``run_dir/queries.<fmt>``), or None for stdout.
    """
    from common import atomic_path
    from loadgen_harness import load_query_records

    d = Path(run_dir)
    if d.is_file() and d.name == "results.json":
        d = d.parent
    try:
        records = load_query_records(d)
    except FileNotFoundError:
        raise UsageError(f"{d}: no queries.npz (expected a run directory OUT/<run-id>/<scenario>/<mode>/)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{d / 'queries.npz'}: cannot read per-query records ({exc})") from None
    cols = export_columns(records)
    if fmt == "parquet":
        if out == "-":
            raise UsageError("--out -: parquet is binary; write it to a file")
        target = Path(out) if out is not None else d / "queries.parquet"
        _write_parquet(cols, target)
        return target
    write = _write_csv if fmt == "csv" else _write_jsonl
    if out == "-":
        write(cols, sys.stdout)
        return None
    target = Path(out) if out is not None else d / f"queries.{fmt}"
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        write(cols, fh)
    return target

"""Checks stricter than MLPerf's, reported apart from its lines so those stay identical to MLPerf's.

* ``strict_eos`` (accuracy log): an EOS anywhere but the last position, or more than one EOS, fails.
* From the harness's per-query records (``queries.npz``), over every query of the run:

  - ``queries_ok``: every query finished with status OK (an erroring SUT would pass the rest vacuously);
  - ``stream_matches_output``: the concatenated streamed chunks equal the token array reported to LoadGen;
  - ``token_count``: the token count the SUT reported equals the number of tokens it streamed;
  - ``first_token_alone``: the first message carried exactly one token, so TTFT is one token's time;
  - ``first_token_timing``: the SUT's first-token timestamp is not earlier than its request arrival.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from compliance._accuracy_log import LoggedSample
from compliance._checks import CheckResult, SampleFailure, make_result, skipped

STRICT_REPORT_FILE = "strict_report.json"
STRICT_EOS = "strict_eos"
QUERIES_OK = "queries_ok"
STREAM_MATCHES_OUTPUT = "stream_matches_output"
TOKEN_COUNT = "token_count"
FIRST_TOKEN_ALONE = "first_token_alone"
FIRST_TOKEN_TIMING = "first_token_timing"
RECORD_CHECKS = (QUERIES_OK, STREAM_MATCHES_OUTPUT, TOKEN_COUNT, FIRST_TOKEN_ALONE, FIRST_TOKEN_TIMING)

_DESCRIPTIONS = {
    STRICT_EOS: "strict EOS: at most one EOS, and only as the last token",
    QUERIES_OK: "every query completed with status OK",
    STREAM_MATCHES_OUTPUT: "streaming consistency: concatenated streamed chunks == token array reported to LoadGen",
    TOKEN_COUNT: "streaming consistency: SUT-reported token count == tokens streamed",
    FIRST_TOKEN_ALONE: "first-token honesty: the first message carried exactly one token",
    FIRST_TOKEN_TIMING: "first-token honesty: SUT first-token time >= SUT request arrival time",
}

_STATUS_NAMES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    13: "INTERNAL",
    14: "UNAVAILABLE",
}


def check_strict_eos(samples: list[LoggedSample], eos_token_id: int) -> list[SampleFailure]:
    out: list[SampleFailure] = []
    for s in samples:
        if s.data is None:
            out.append(SampleFailure(qsl_idx=s.qsl_idx, seq_id=s.seq_id, reason=s.data_error))
            continue
        pos = np.flatnonzero(s.data == eos_token_id).tolist()
        if len(pos) > 1 or (pos and pos[0] != len(s.data) - 1):
            out.append(
                SampleFailure(
                    qsl_idx=s.qsl_idx,
                    seq_id=s.seq_id,
                    reason=f"EOS (id {eos_token_id}) at position(s) {pos[:8]} of {len(s.data)} tokens",
                )
            )
    return out


def _fail(rec: Any, reason: str) -> SampleFailure:
    return SampleFailure(qsl_idx=int(rec["sample_index"]), reason=reason)


def check_records(records: np.ndarray) -> list[CheckResult]:
    """The per-query checks over a structured array as ``load_query_records`` returns it."""
    ok = records[records["status"] == 0]
    errored = records[records["status"] != 0]
    err_fail = [
        _fail(r, f"status {int(r['status'])} ({_STATUS_NAMES.get(int(r['status']), 'non-OK')})") for r in errored
    ]
    stream = [
        _fail(r, "streamed tokens differ from the answer reported to LoadGen")
        for r in ok
        if not r["stream_matches_output"]
    ]
    count = [
        _fail(r, f"SUT reported {int(r['n_tokens'])} tokens but streamed {int(r['n_streamed'])}")
        for r in ok
        if int(r["n_tokens"]) != int(r["n_streamed"])
    ]
    alone = [
        _fail(r, f"first message carried {int(r['first_chunk_tokens'])} tokens")
        for r in ok
        if int(r["first_chunk_tokens"]) != 1
    ]
    timing: list[SampleFailure] = []
    for r in ok:
        arrival, first = int(r["sut_arrival_ns"]), int(r["sut_first_token_ns"])
        if arrival < 0 or first < 0:
            timing.append(_fail(r, "SUT did not report its arrival and first-token timestamps"))
        elif first < arrival:
            timing.append(_fail(r, f"SUT first token at {first} ns is {(arrival - first) / 1e6:.3f} ms before arrival"))
    n_ok = len(ok)
    return [
        make_result(QUERIES_OK, _DESCRIPTIONS[QUERIES_OK], len(records), err_fail),
        make_result(STREAM_MATCHES_OUTPUT, _DESCRIPTIONS[STREAM_MATCHES_OUTPUT], n_ok, stream),
        make_result(TOKEN_COUNT, _DESCRIPTIONS[TOKEN_COUNT], n_ok, count),
        make_result(FIRST_TOKEN_ALONE, _DESCRIPTIONS[FIRST_TOKEN_ALONE], n_ok, alone),
        make_result(FIRST_TOKEN_TIMING, _DESCRIPTIONS[FIRST_TOKEN_TIMING], n_ok, timing),
    ]


class StrictReport(BaseModel):
    """The stricter checks; ``passed`` only when none failed and there was something to check."""

    eos_token_id: int
    n_samples: int = Field(ge=0, description="accuracy-log samples checked by strict_eos")
    n_queries: int = Field(ge=0, description="per-query records checked (0 when none were available)")
    checks: list[CheckResult]
    passed: bool
    message: str

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def failed_checks(self) -> set[str]:
        return {c.name for c in self.checks if not c.passed}


def strict_checks(samples: list[LoggedSample], eos_token_id: int, records: np.ndarray | None) -> StrictReport:
    """Strict EOS over the accuracy log and, when records are given, the per-query checks."""
    checks = [make_result(STRICT_EOS, _DESCRIPTIONS[STRICT_EOS], len(samples), check_strict_eos(samples, eos_token_id))]
    if records is None:
        checks += [skipped(name, _DESCRIPTIONS[name], "no per-query records (queries.npz)") for name in RECORD_CHECKS]
    else:
        checks += check_records(records)
    failed = [c for c in checks if not c.passed]
    n_queries = 0 if records is None else len(records)
    if failed:
        message = "strict FAIL: " + "; ".join(c.line() for c in failed)
    elif not samples and not n_queries:
        message = "strict FAIL: nothing to check (empty accuracy log, no per-query records)"
    else:
        ran = sum(c.status == "pass" for c in checks)
        message = f"strict PASS: {ran} checks over {len(samples)} samples and {n_queries} queries"
    return StrictReport(
        eos_token_id=eos_token_id,
        n_samples=len(samples),
        n_queries=n_queries,
        checks=checks,
        passed=not failed and bool(samples or n_queries),
        message=message,
    )

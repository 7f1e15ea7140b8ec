"""``lpuperf run --load``: every load shape through the CLI against a real ``lpuperf serve`` over gRPC.

One timed sim SUT (a subprocess on loopback, millisecond steps) serves the module. Each shape runs for
2-3 s: concurrency (never more than N in flight, and N reached), rate with constant arrivals (due times
exactly 1/R apart) and Poisson ones, a Mooncake trace the test writes (due times its timestamps, scaled,
to the nanosecond; the recorded output lengths), session files and synthetic sessions (history and order
kept, agentic tool steps). Then the client's own timing: no query is sent before it is due, a trace slow
to open still sends its first request on time, and a client made slow on purpose is flagged
client-limited (exit 1) where the same run without the plant is not.
Bad ``--load`` input is one line and exit 2 before anything runs; Ctrl-C ends a load run at once with
its results kept (exit 130).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sut
from loadgen_harness import _load_trace, load_query_records, load_results
from loadgen_harness._load_client import LoadClient
from scenarios import iter_trace
from tests.integration._load_runs import (
    DATASET,
    MAX_NEW,
    SUT_ARGS,
    TOOL_CALL,
    check_load_run,
    check_not_sessions,
    check_session_rows,
    max_in_flight,
    mooncake_rows,
    run_load,
    sessions_file,
    synthetic_rows,
    write_jsonl,
)
from tests.integration.test_interrupt_signals import _assert_left_clean, _children

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sut_address() -> Iterator[str]:
    with sut.spawn_server(SUT_ARGS, timeout_s=90) as server:
        yield server.address


def _grpc(address: str) -> list[str]:
    return ["--sut", address, "--dataset", DATASET, "--max-new-tokens", MAX_NEW]


# ---- each shape ----


def test_concurrency_keeps_n_in_flight(sut_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_load(tmp_path, capsys, "conc", "concurrency:4", "--duration", "2.5", *_grpc(sut_address))
    check_load_run(run, "Concurrency", "concurrency:4")
    check_not_sessions(run.rec)
    assert run.res.load is not None and run.res.load.concurrency == 4 and run.res.load.duration_s == 2.5
    assert max_in_flight(run.rec) == 4  # never more, and the closed loop did reach it
    # Closed loop: a worker's next query is due when its previous one ended, so the loop kept busy.
    assert run.rec.size > 40, run.rec.size
    # Sending stopped at the duration; what was in flight then finished.
    assert run.rec["issue_ns"].max() - run.rec["issue_ns"].min() < 2.5e9


@pytest.mark.parametrize("arrival", ["constant", "poisson"])
def test_rate(sut_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], arrival: str) -> None:
    spec = f"rate:40:{arrival}"
    run = run_load(tmp_path, capsys, arrival, spec, "--duration", "2.5", *_grpc(sut_address))
    check_load_run(run, "Rate", spec)
    check_not_sessions(run.rec)
    load, rec = run.res.load, run.rec
    assert load is not None and load.rate_qps == 40 and load.arrival == arrival
    assert run.res.scheduled_qps == 40
    due = rec["issue_ns"] - rec["issue_ns"][0]
    if arrival == "constant":
        # Exactly 1/R apart from the first (integer ns), and exactly R x duration of them.
        assert rec.size == 100
        assert np.array_equal(due, np.arange(rec.size, dtype=np.int64) * 25_000_000)
    else:
        gaps = np.diff(due)
        assert (gaps >= 0).all() and 60 <= rec.size <= 140, rec.size  # 100 expected; seeded, so fixed
        assert 0.6 * 25e6 < gaps.mean() < 1.4 * 25e6 and gaps.std() > 0.5 * gaps.mean()  # exponential: sd ~ mean


def test_trace_replays_mooncake_timestamps(
    sut_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = mooncake_rows(60, gap_ms=80, input_length=150, block=32, shared=2, groups=3)
    trace = write_jsonl(tmp_path / "trace.jsonl", rows)
    spec = f"trace:{trace}:speed=2,block=32"
    run = run_load(tmp_path, capsys, "trace", spec, *_grpc(sut_address))
    check_load_run(run, "Trace", spec)
    check_not_sessions(run.rec)
    load, rec = run.res.load, run.rec
    assert load is not None and load.trace == str(trace) and load.trace_format == "mooncake" and load.speed == 2
    assert load.planned_requests == load.sent_requests == len(rows) == rec.size
    # Each request due at its timestamp halved, to the nanosecond, from the first.
    ts_ns = np.array([r["timestamp"] for r in rows], dtype=np.int64) * 1_000_000
    assert np.array_equal(rec["issue_ns"] - rec["issue_ns"][0], (ts_ns - ts_ns[0]) // 2)
    # Every answer is the output length the trace recorded; every prompt its input length.
    assert rec["n_tokens"].tolist() == [r["output_length"] for r in rows]
    assert (rec["n_prompt"] == 150).all()


def test_sessions_from_a_file(sut_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, rows = sessions_file(tmp_path)
    spec = f"sessions:{path}:concurrency=2"
    run = run_load(tmp_path, capsys, "sfile", spec, *_grpc(sut_address))
    check_load_run(run, "Sessions", spec)
    check_session_rows(run.rec, rows)
    sess, load = run.res.sessions, run.res.load
    assert load is not None and load.concurrency == 2 and load.planned_requests == 4
    assert sess is not None and sess.n_sessions == sess.completed_sessions == 4 and sess.failed_sessions == 0
    assert sess.n_requests == run.rec.size and sess.tool_calls == int((run.rec["finish_reason"] == TOOL_CALL).sum())
    tool_rows = run.rec[run.rec["tool_step"] > 0]
    assert set(tool_rows["session"].tolist()) <= {3}  # only the agentic session offers a tool
    assert [t.turn for t in sess.turns] == [0, 1, 2, 3] and sess.turns[0].n_queries == 4
    assert sess.session_latency_ms.p50 is not None
    assert "  sessions 4 (4 completed, 0 failed" in run.out and "TTFT p50 by turn (ms): t0 " in run.out, run.out


def test_synthetic_sessions(sut_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = "sessions:synthetic:concurrency=3,sessions=6,turns=3,input_tokens=24,output_tokens=8,think_time_s=0.15"
    run = run_load(tmp_path, capsys, "synth", spec + ",system_tokens=64", *_grpc(sut_address))
    check_load_run(run, "Sessions", spec + ",system_tokens=64")
    check_session_rows(run.rec, synthetic_rows(6, 3, 24, 8, 0.15, 64))
    sess = run.res.sessions
    assert sess is not None and sess.n_sessions == sess.completed_sessions == 6 and sess.n_requests == 18
    assert sess.tool_calls == 0 and (run.rec["tool_step"] == 0).all()
    assert [(t.turn, t.n_queries) for t in sess.turns] == [(0, 6), (1, 6), (2, 6)]
    # The history grows turn by turn.
    means = [t.prompt_tokens_mean or 0 for t in sess.turns]
    assert means[0] == 64 + 24 and means[0] < means[1] < means[2], means
    # At most three sessions at once: no more than three requests in flight.
    assert max_in_flight(run.rec) <= 3


# ---- the client's own timing ----


def test_queries_are_never_sent_before_they_are_due(
    sut_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Latency counts from the due time: a query sent before it shortens its own latency."""
    run = run_load(tmp_path, capsys, "early", "rate:100:constant", "--duration", "2", *_grpc(sut_address))
    check_load_run(run, "Rate", "rate:100:constant")
    lag_ns = run.rec["sent_ns"] - run.rec["issue_ns"]
    early = lag_ns < 0
    assert not early.any(), f"{early.sum()} of {lag_ns.size} sent early, by up to {-lag_ns.min() / 1e6:.3f} ms"


def test_a_trace_slow_to_open_still_sends_its_first_request_on_time(
    sut_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay's clock starts when its first request is ready, not before: reading the file's head and
    making the first prompt (the token tables are built on first use, ~50-250 ms here) is no dispatch lag."""

    def slow_start(spec: Any) -> Iterator[Any]:
        time.sleep(1.0)  # a slow first read: a cold disk, a compressed trace, the first prompt's tables
        yield from iter_trace(spec)

    monkeypatch.setattr(_load_trace, "iter_trace", slow_start)
    rows = mooncake_rows(20, gap_ms=100, input_length=64, block=32, shared=0, groups=1)
    spec = f"trace:{write_jsonl(tmp_path / 'trace.jsonl', rows)}:block=32"
    run = run_load(tmp_path, capsys, "slowopen", spec, *_grpc(sut_address))
    check_load_run(run, "Trace", spec)
    lag_ms = (run.rec["sent_ns"] - run.rec["issue_ns"]) / 1e6
    assert lag_ms[0] < 500, f"the first request was sent {lag_ms[0]:.0f} ms late (the rest: max {lag_ms[1:].max():.1f})"


def _slow_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each send blocks the client's loop for 20 ms: at most ~50 sends a second, whatever is due."""
    original = LoadClient.send

    def slow_send(self: LoadClient, query: Any) -> Any:
        time.sleep(0.02)
        return original(self, query)

    monkeypatch.setattr(LoadClient, "send", slow_send)


@pytest.mark.parametrize("planted", [True, False], ids=["slow-client", "same-run-unplanted"])
def test_a_slow_client_is_flagged_client_limited(
    sut_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, planted: bool
) -> None:
    if planted:
        _slow_sends(monkeypatch)
    # 100 due a second, 50 sendable: the planted client ends ~2 s behind, four times the bound. The bound
    # leaves a loaded machine's scheduling delays (tens of ms, a rare stall of a few hundred) inside it.
    extra = ["--duration", "2", "--max-dispatch-lag-ms", "500", *_grpc(sut_address)]
    run = run_load(tmp_path, capsys, "lag", "rate:100:constant", *extra)
    res, lag = run.res, run.res.dispatch_lag
    assert lag is not None and lag.bound_ms == 500 and lag.n_queries == run.rec.size == 200, lag
    assert res.n_errors == 0
    if not planted:
        assert run.rc == 0 and res.valid and not res.client_limited and not lag.client_limited, (lag, run.out)
        assert lag.p99_ms is not None and lag.p99_ms <= 500 and "CLIENT-LIMITED" not in run.out
        return
    assert run.rc == 1, run.out
    assert res.client_limited is True and lag.client_limited is True and res.valid is False
    assert lag.p99_ms is not None and lag.p99_ms > 1000, lag  # ~2 s behind by the end
    reasons = [r for r in res.validity_reasons if r.startswith("client-limited")]
    assert len(reasons) == 1 and f"{lag.p99_ms:g} ms > 500 ms" in reasons[0], res.validity_reasons
    assert "CLIENT-LIMITED (p99 over 500 ms)" in run.out and "reason: client-limited" in run.out, run.out
    # Latency still counts from the due time: the late sends' wait is in it (no coordinated omission).
    assert res.latency_ms.p99 is not None and res.latency_ms.p99 > 1000


# ---- bad input ----


def _bad_trace(tmp: Path) -> Path:
    good = {"timestamp": 0, "input_length": 10, "output_length": 4}
    return write_jsonl(tmp / "bad.jsonl", [good, good, {**good, "input_length": "ten"}, good])


BAD_LOADS: list[tuple[list[str], str]] = [
    (["--load", "trace:{tmp}/missing.jsonl"], "missing.jsonl"),
    (["--load", "trace:{bad}"], "bad.jsonl:3: input_length"),
    (["--load", "concurrency:0"], "concurrency"),
    (["--load", "rate:abc"], "rate"),
    (["--load", "sessions:synthetic:turns=-1"], "turns"),
    (["--load", "concurrency:4", "--mode", "accuracy"], "accuracy"),
]


@pytest.mark.parametrize(("args", "named"), BAD_LOADS, ids=[" ".join(a) for a, _ in BAD_LOADS])
def test_bad_load_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], named: str) -> None:
    argv = [a.format(tmp=tmp_path, bad=_bad_trace(tmp_path)) for a in args]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cli", "run", *argv, "--out", str(out), "--run-id", "bad", "--no-record"]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    err = run.stderr.strip()
    assert run.returncode == 2, run.stdout + run.stderr
    assert len(err.splitlines()) == 1 and named in err, err
    assert "<root>" not in err and "Value error" not in err, err  # the field by name, not pydantic's wrapping
    assert "Traceback" not in run.stdout + run.stderr and not run.stdout.strip(), run.stdout
    assert not (out / "bad").exists()  # refused before anything ran


# ---- Ctrl-C ----


def _start_run(tmp: Path, load: str) -> tuple[subprocess.Popen[bytes], list[str]]:
    """``lpuperf run --load LOAD --duration 60 --progress`` on the embedded sim, in a session of its own with
    SIGINT at Python's default (a non-interactive shell may start it ignored); a thread collects its stderr,
    where the progress line shows it sending. No pre-exec hook: this process may run grpc threads."""
    reset = "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    reset += "runpy.run_module('cli', run_name='__main__', alter_sys=True)"
    cmd = [sys.executable, "-c", reset, "run", "--load", load, "--duration", "60", "--progress"]
    cmd += ["--out", str(tmp / "out"), "--run-id", "sig", "--no-record", "--metrics-linger", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    lines: list[str] = []
    assert proc.stderr is not None
    fd = proc.stderr.fileno()

    def read() -> None:
        for raw in iter(lambda: os.read(fd, 4096), b""):
            lines.append(raw.decode(errors="replace"))

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


PROGRESS = re.compile(r"([0-9.]+) s +completed +([0-9]+) ")


def _wait_until_sending(proc: subprocess.Popen[bytes], lines: list[str], at_least_s: float = 3.0) -> dict[int, str]:
    """Until the progress line shows completed queries after ``at_least_s``; the spawned SUT {pid: cmdline}."""
    deadline = time.monotonic() + 90
    sut_procs: dict[int, str] = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, "".join(lines)
        sut_procs.update({p: c for p, c in _children(proc.pid).items() if "sut" in c and "serve" in c})
        shown = PROGRESS.findall("".join(lines))  # "\r  <elapsed> s  completed <n>  rate <r>/s"
        if shown and float(shown[-1][0]) >= at_least_s and int(shown[-1][1]) > 0 and sut_procs:
            return sut_procs
        time.sleep(0.1)
    pytest.fail(f"the load run did not start sending within 90 s: {''.join(lines)[-2000:]}")


@pytest.mark.parametrize(("load", "scenario"), [("concurrency:8", "Concurrency"), ("rate:50", "Rate")])
def test_ctrl_c_ends_a_load_run_within_seconds(tmp_path: Path, load: str, scenario: str) -> None:
    proc, lines = _start_run(tmp_path, load)
    try:
        sut_procs = _wait_until_sending(proc, lines)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("lpuperf run did not exit within 60 s of SIGINT")
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    text = out.decode(errors="replace") + "".join(lines)
    assert proc.returncode == 130, text
    assert took < 12.0, f"exited {took:.1f} s after SIGINT"  # ~1 s here; loose for a loaded machine
    assert "Traceback" not in text and "INTERRUPTED by SIGINT" in text, text
    log_dir = tmp_path / "out" / "sig" / scenario / "performance"
    res = load_results(log_dir)
    assert res.state == "interrupted" and res.interrupted_by == "SIGINT" and res.valid is False
    assert res.load is not None and res.load.spec == load and res.dispatch_lag is not None
    rec = load_query_records(log_dir)
    assert rec.size == res.n_queries == res.load.sent_requests > 0
    assert (rec["done_ns"] >= 0).all()  # every query sent was completed, the stopped ones as failed
    assert (rec["status"] == 0).any() and int((rec["status"] != 0).sum()) == res.n_errors
    assert rec["issue_ns"].max() < 30e9  # sending stopped at the signal, long before the 60 s planned
    _assert_left_clean(log_dir, sut_procs)
    print(f"{load}: exited 130 {took:.1f} s after SIGINT")


def test_a_loadgen_scenario_and_a_load_shape_together_are_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "run",
            "--scenario",
            "Offline",
            "--load",
            "concurrency:2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--scenario Offline" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_a_dataset_load_whose_samples_overflow_the_context_is_refused_before_it_starts(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "cli", "run", "--load", "concurrency:2", "--max-new-tokens", "5000"]
    proc = subprocess.run(
        [*argv, "--out", str(tmp_path), "--no-record"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "context" in proc.stderr and not any(tmp_path.iterdir())

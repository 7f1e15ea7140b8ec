"""Ctrl-C and SIGTERM during ``lpuperf run``: a clean end, the results kept, nothing left behind.

Each test starts ``python -m cli run`` on the embedded sim in its own session with SIGINT restored
to the default (a non-interactive shell, or CI, may start it ignored), waits until LoadGen is
issuing, and signals the whole process group as a terminal does (so the spawned SUT gets it too).
Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from loadgen_harness import load_query_records, load_results

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# A plan far longer than the test: only the signal can end it. 16 tokens keep Server's outstanding
# limit (2 x QPS x (TTFT + 16 x TPOT) + 16) at a few seconds of arrivals, so the drain is short.
# --trace: LoadGen's trace log growing is how the test sees that issuing has begun.
RUN_ARGS = ["--dataset", "synthetic:64:7", "--qps", "40", "--duration", "600", "--max-new-tokens", "16", "--trace"]
START_TIMEOUT_S = 90.0
EXIT_TIMEOUT_S = 90.0


def _children(pid: int) -> dict[int, str]:
    """{pid: cmdline} of the direct children of ``pid``, read from /proc."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing bracket
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            out[int(entry.name)] = cmd
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture
def run_proc(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    cmd = [sys.executable, "-m", "cli", "run", "--out", str(tmp_path / "out"), "--run-id", "sig", *RUN_ARGS]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield proc, tmp_path / "out" / "sig" / "Server" / "performance"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _wait_until_issuing(proc: subprocess.Popen[bytes], log_dir: Path) -> dict[int, str]:
    """Wait until LoadGen has issued for a while; returns the spawned SUT process {pid: cmdline}."""
    deadline = time.monotonic() + START_TIMEOUT_S
    trace = log_dir / "mlperf_log_trace.json"
    first_seen: float | None = None
    sut: dict[int, str] = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        sut.update({p: c for p, c in _children(proc.pid).items() if "sut" in c and "serve" in c})
        if first_seen is None and trace.is_file() and trace.stat().st_size > 10_000:
            first_seen = time.monotonic()
        if first_seen is not None and time.monotonic() - first_seen > 2.0 and sut:
            return sut
        time.sleep(0.1)
    pytest.fail(f"LoadGen did not start issuing within {START_TIMEOUT_S:.0f} s")


def _signal_and_wait(proc: subprocess.Popen[bytes], sig: signal.Signals, times: int = 1) -> tuple[int, str, float]:
    t0 = time.monotonic()
    for i in range(times):
        if i:
            time.sleep(0.5)
        os.killpg(proc.pid, sig)
    try:
        out, _ = proc.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"lpuperf run did not exit within {EXIT_TIMEOUT_S:.0f} s of {sig.name}")
    return proc.returncode, out.decode(errors="replace"), time.monotonic() - t0


def _assert_left_clean(log_dir: Path, sut: dict[int, str]) -> None:
    for path in log_dir.iterdir():
        assert not path.name.endswith((".tmp", ".tmp.npz")), f"half-written {path.name}"
    deadline = time.monotonic() + 20  # an orphaned SUT would be reparented and keep running
    while any(_alive(pid) for pid in sut) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in sut), f"SUT process left running: {sut}"
    for cmd in sut.values():
        args = cmd.split()
        tmp_dir = Path(args[args.index("--port-file") + 1]).parent
        assert tmp_dir.name.startswith("lpuperf-sut-")
        assert not tmp_dir.exists(), f"{tmp_dir} left behind"


def _assert_records_match(log_dir: Path) -> np.ndarray:
    res = load_results(log_dir)
    rec = load_query_records(log_dir)
    assert rec.size == res.n_queries > 0
    assert (rec["done_ns"] >= 0).all()  # every issued query was completed
    assert int((rec["status"] != 0).sum()) == res.n_errors
    assert res.successful is not None and res.successful.n_queries == res.n_queries - res.n_errors
    return rec


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_the_run_cleanly(
    run_proc: tuple[subprocess.Popen[bytes], Path], sig: signal.Signals, code: int
) -> None:
    proc, log_dir = run_proc
    sut = _wait_until_issuing(proc, log_dir)
    rc, out, took = _signal_and_wait(proc, sig)
    assert rc == code, out
    assert "Segmentation" not in out and "Traceback" not in out, out
    assert f"INTERRUPTED by {sig.name}" in out
    res = load_results(log_dir)
    assert res.state == "interrupted" and res.interrupted_by == sig.name
    assert res.loadgen_finished, f"LoadGen did not end its test within the drain timeout ({took:.1f} s)"
    assert res.valid is False and res.validity_reasons[0].startswith(f"interrupted by {sig.name}")
    assert res.errors_by_status.get("INTERRUPTED", 0) > 0
    # LoadGen ended early because the held queries crossed its outstanding-query limit, not at 600 s.
    assert any("Too many outstanding queries" in r for r in res.validity_reasons), res.validity_reasons
    rec = _assert_records_match(log_dir)
    assert (rec["status"] == 0).any()  # what succeeded before the signal is kept
    summary = log_dir / "mlperf_log_summary.txt"
    assert summary.stat().st_size > 0 and "Result is : INVALID" in summary.read_text()
    assert all(p.stat().st_size > 0 for p in log_dir.iterdir()), sorted(p.name for p in log_dir.iterdir())
    _assert_left_clean(log_dir, sut)
    print(f"{sig.name}: exited {rc} {took:.1f} s after the signal")


def test_second_sigint_exits_at_once(run_proc: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, log_dir = run_proc
    sut = _wait_until_issuing(proc, log_dir)
    rc, out, took = _signal_and_wait(proc, signal.SIGINT, times=2)
    assert rc == 130, out
    assert "Segmentation" not in out and "Traceback" not in out, out
    res = load_results(log_dir)
    assert res.state == "interrupted" and res.interrupted_by == "SIGINT"
    # The first signal's drain (~3 s of arrivals) cannot end in 0.5 s: the second one abandoned it.
    assert res.loadgen_finished is False
    assert any("abandoned" in r for r in res.validity_reasons)
    _assert_records_match(log_dir)
    _assert_left_clean(log_dir, sut)
    assert took < 45, f"{took:.1f} s"

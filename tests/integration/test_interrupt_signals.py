"""Ctrl-C and SIGTERM during ``lpuperf run``: an end within seconds, the results kept, nothing left behind.

Each test starts ``python -m cli run`` on the embedded sim in its own session with SIGINT restored
to the default (a non-interactive shell, or CI, may start it ignored), waits until LoadGen is
issuing, and signals the whole process group as a terminal does. The spawned SUT runs in a session
of its own: the run stops it, and its stopping is no replica outage. Every wait is bounded.

A user presses Ctrl-C to stop now: one signal ends a Server run of the embedded benchmark's 300-token
answers in about 2 s here (it took 33 s when the harness let LoadGen drain its schedule; bench/RESULTS.md
has signal-to-exit times per scenario). The bound asserted is loose, for a loaded machine.
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
# A plan far longer than the test: only the signal can end it. The embedded benchmark's 300-token answers:
# its outstanding-query limit is ~30 s of arrivals, which the old drain waited for.
# --trace: LoadGen's trace log growing is how the test sees that issuing has begun.
RUN_ARGS = ["--dataset", "synthetic:64:7", "--qps", "40", "--duration", "600", "--trace"]
START_TIMEOUT_S = 90.0
EXIT_TIMEOUT_S = 90.0
# Signal to exit: ~2 s on an idle 2-core machine; far under the old 30+ s even when the box is loaded.
PROMPT_EXIT_S = 12.0


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


@pytest.fixture(params=["Server"])
def run_proc(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    scenario = str(request.param)
    cmd = [
        *(sys.executable, "-m", "cli", "run", "--out", str(tmp_path / "out"), "--run-id", "sig"),
        *("--scenario", scenario, *RUN_ARGS, "--db", f"sqlite:///{tmp_path / 'runs.db'}"),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield proc, tmp_path / "out" / "sig" / scenario / "performance"
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


def _assert_no_outage(log_dir: Path) -> None:
    res = load_results(log_dir)
    assert res.fleet is not None
    assert not [o for r in res.fleet.replicas for o in r.outages], "the SUT stopping with the run is no outage"
    assert res.fleet.unattributed is None, "queries the run stopped belong to no '(no replica)' row"
    assert res.fleet.stopped_queries == res.errors_by_status.get("INTERRUPTED", 0)


def _assert_recorded_interrupted(db: Path) -> None:
    from history import open_store

    with open_store(f"sqlite:///{db}", create=False) as store:
        runs = store.runs()
    assert [r.state for r in runs] == ["interrupted"], [(r.run_id, r.state) for r in runs]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_one_signal_ends_a_server_run_within_seconds(
    run_proc: tuple[subprocess.Popen[bytes], Path], sig: signal.Signals, code: int
) -> None:
    proc, log_dir = run_proc
    sut = _wait_until_issuing(proc, log_dir)
    rc, out, took = _signal_and_wait(proc, sig)
    assert rc == code, out
    assert took < PROMPT_EXIT_S, f"exited {took:.1f} s after {sig.name}"
    assert "Segmentation" not in out and "Traceback" not in out, out
    assert f"INTERRUPTED by {sig.name}" in out
    res = load_results(log_dir)
    assert res.state == "interrupted" and res.interrupted_by == sig.name
    # An interrupted run is never submittable: LoadGen's schedule (600 s) is not waited for.
    assert res.loadgen_finished is False
    assert res.valid is False and res.validity_reasons[0].startswith(f"interrupted by {sig.name}")
    assert res.errors_by_status.get("INTERRUPTED", 0) > 0
    rec = _assert_records_match(log_dir)
    assert (rec["status"] == 0).any()  # what succeeded before the signal is kept
    # Whatever LoadGen wrote stays; nothing is an empty file (its summary is never written when abandoned).
    assert (log_dir / "mlperf_log_detail.txt").stat().st_size > 0
    assert all(p.stat().st_size > 0 for p in log_dir.iterdir()), sorted(p.name for p in log_dir.iterdir())
    _assert_no_outage(log_dir)
    _assert_left_clean(log_dir, sut)
    _assert_recorded_interrupted(log_dir.parents[3] / "runs.db")
    print(f"{sig.name}: exited {rc} {took:.1f} s after the signal")


@pytest.mark.parametrize("run_proc", ["Offline"], indirect=True)
def test_an_interrupted_offline_run_ends_loadgen_and_keeps_its_logs(
    run_proc: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, log_dir = run_proc
    sut = _wait_until_issuing(proc, log_dir)
    rc, out, took = _signal_and_wait(proc, signal.SIGINT)
    assert rc == 130, out
    assert took < PROMPT_EXIT_S, f"exited {took:.1f} s after SIGINT"
    res = load_results(log_dir)
    # Offline's one query is all issued: with every sample completed as failed, LoadGen ends its test at once.
    assert res.state == "interrupted" and res.loadgen_finished is True
    summary = log_dir / "mlperf_log_summary.txt"
    assert "Result is : INVALID" in summary.read_text()
    _assert_records_match(log_dir)
    _assert_no_outage(log_dir)
    _assert_left_clean(log_dir, sut)


def test_second_sigint_exits_at_once(run_proc: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, log_dir = run_proc
    sut = _wait_until_issuing(proc, log_dir)
    rc, out, took = _signal_and_wait(proc, signal.SIGINT, times=2)
    assert rc == 130, out
    assert "Segmentation" not in out and "Traceback" not in out, out
    res = load_results(log_dir)
    assert res.state == "interrupted" and res.interrupted_by == "SIGINT"
    assert res.loadgen_finished is False
    assert any("abandoned" in r for r in res.validity_reasons)
    _assert_records_match(log_dir)
    _assert_left_clean(log_dir, sut)
    assert took < PROMPT_EXIT_S, f"{took:.1f} s"

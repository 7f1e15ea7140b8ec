"""``lpuperf sweep`` against the embedded sim: a real 3-point concurrency sweep (short points, short answers),
what it writes and prints, find-peak and plan reading it, an SLO no point meets, an auto sweep of open
loops, and Ctrl-C keeping the finished points."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import main
from loadgen_harness import load_results
from workflows._sweep import SweepResult, load_sweep

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Short answers so that a 1.5 s point holds tens of queries (a plan needs 20 from the best point).
POINT = ["--duration", "1.5", "--max-new-tokens", "16", "--dataset", "synthetic:64:0"]
LABELS = ["01-concurrency-1", "02-concurrency-2", "03-concurrency-4"]


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("sweep")
    rc, text, _ = _cli("sweep", "--load", "concurrency:1,2,4", *POINT, "--out", str(out), "--run-id", "sw")
    return out / "sw", rc, text


def test_a_concurrency_sweep_writes_every_point_and_the_best(swept: tuple[Path, int, str]) -> None:
    sweep_dir, rc, _ = swept
    assert rc == 0
    result = SweepResult.model_validate_json((sweep_dir / "sweep.json").read_text())
    assert (result.kind, result.state, result.stop_reason) == ("concurrency", "complete", "all 3 points run")
    assert [p.label for p in result.points] == LABELS
    addresses = set()
    for p, n in zip(result.points, (1, 2, 4), strict=True):
        assert (p.concurrency, p.load, p.state, p.n_errors) == (n, f"concurrency:{n}", "complete", 0)
        assert p.n_queries > 0 and (p.completed_qps or 0) > 0 and (p.output_tokens_per_s or 0) > 0
        # A closed loop of n never has more than n in flight; the drain at the end brings the mean below n.
        assert p.mean_in_flight is not None and 0.3 * n <= p.mean_in_flight <= n * 1.001
        assert p.per_user_output_tokens_per_s == pytest.approx(
            (p.output_tokens_per_s or 0) / p.mean_in_flight, rel=0.02
        )
        run = load_results(sweep_dir / p.run_dir)
        assert (run.scenario, run.load.spec if run.load else None) == ("Concurrency", p.load)
        assert p.run_dir == f"points/{p.label}/Concurrency/performance"
        addresses.add(run.sut_address)
    assert len(addresses) == 1, "one SUT for the whole sweep"
    best = result.point(result.best)
    assert best is not None and best.meets_slo and not best.client_limited
    eligible = [p for p in result.points if p.meets_slo and not p.client_limited]
    assert best.output_tokens_per_s == max(p.output_tokens_per_s or 0 for p in eligible)
    assert "TTFT 500 ms, TPOT 50 ms" in result.slo and result.ttft_limit_ms == 500.0


def test_the_sweep_page_and_console_show_the_curves_points_and_best(swept: tuple[Path, int, str]) -> None:
    sweep_dir, _, text = swept
    result = load_sweep(sweep_dir)
    page = (sweep_dir / "sweep.html").read_text()
    assert re.findall(r'<svg class="plot" id="plot-([\w-]+)"', page) == ["ttft", "tpot", "per-user", "load"]
    assert set(re.findall(r'<circle class="best" data-label="([^"]+)"', page)) == {result.best}
    assert page.count("<tr>") == 4 and "<script" not in page
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("point") and "tok/s/user" in line)
    assert [line.split()[0] for line in lines[header + 1 : header + 4]] == LABELS
    best = result.point(result.best)
    assert best is not None and f"sweep: best {best.load}: " in text
    assert f"results {sweep_dir / 'sweep.json'}, page {sweep_dir / 'sweep.html'}" in text
    assert len(re.findall(r"^recorded #\d+ in ", text, re.M)) == 3  # each point in the run store


def test_find_peak_and_plan_read_the_sweep(swept: tuple[Path, int, str], tmp_path: Path) -> None:
    sweep_dir, _, _ = swept
    best = load_sweep(sweep_dir).point(load_sweep(sweep_dir).best)
    assert best is not None
    rc, text, _ = _cli("find-peak", "--from-sweep", str(sweep_dir))
    assert rc == 0
    assert f"completed at {best.load}, the highest-throughput point meeting" in text
    assert f"logs {sweep_dir / best.run_dir}" in text and "not a LoadGen Server run" in text
    rc, text, err = _cli("plan", str(sweep_dir), "--qps", "10", "--out", str(tmp_path))
    assert rc == 0, err
    assert f"plan: from sweep {sweep_dir}: best point {best.load}" in text
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["run_dir"] == str(sweep_dir / best.run_dir)
    assert plan["limits"]["source"] == "the Concurrency run's limits (embedded)"


def test_an_slo_no_point_meets_leaves_no_best_point(tmp_path: Path) -> None:
    slo = tmp_path / "impossible.yaml"
    slo.write_text("name: impossible\nrequire_valid: false\ntpot_ms: {p99: 0.001}\n")
    rc, text, _ = _cli(
        "sweep",
        "--load",
        "concurrency:1",
        *POINT,
        "--slo",
        str(slo),
        "--out",
        str(tmp_path),
        "--run-id",
        "s",
        "--no-record",
    )
    assert rc == 1
    result = load_sweep(tmp_path / "s")
    assert result.best is None and result.slo.startswith("SLO impossible")
    assert not result.points[0].meets_slo and result.points[0].slo_violations[0].startswith("tpot_p99 ")
    assert "sweep: no best point: none of the 1 complete points meets the SLO" in text
    assert _cli("find-peak", "--from-sweep", str(tmp_path / "s"))[0] == 1
    rc, _, err = _cli("plan", str(tmp_path / "s"), "--qps", "10")
    assert rc == 2 and err.count("\n") == 1 and "no point of the sweep meets its SLO" in err


def test_an_auto_sweep_of_open_loops_steps_by_the_factor(tmp_path: Path) -> None:
    argv = ["sweep", "--auto", "rate:4", "--max-points", "2", *POINT, "--out", str(tmp_path), "--run-id", "a"]
    argv += ["--max-dispatch-lag-ms", "5000"]
    rc, text, _ = _cli(*argv, "--no-record")
    assert rc in (0, 1), text
    result = load_sweep(tmp_path / "a")
    assert result.auto and result.kind == "rate" and result.stop_reason
    assert [p.load for p in result.points] == ["rate:4", "rate:8"][: len(result.points)]
    if len(result.points) == 2 and all(p.meets_slo and not p.client_limited for p in result.points):
        # The sim is far from saturated at 8 requests/s (a loaded box may still break the SLO or the schedule).
        assert result.stop_reason == "max points (2) reached before saturation"
    assert all(p.rate_qps is not None and p.concurrency is None for p in result.points)


def test_ctrl_c_keeps_the_finished_points_and_marks_the_sweep_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cli", "sweep", "--load", "concurrency:1,2,4", "--duration", "4"]
    cmd += ["--max-new-tokens", "16", "--dataset", "synthetic:64:0", "--out", str(out), "--run-id", "c", "--no-record"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # The second point's artifact.json is written once its run reached the SUT: the first point is done.
        second = out / "c" / "points" / "02-concurrency-2" / "Concurrency" / "performance" / "artifact.json"
        deadline = time.monotonic() + 120
        while not second.is_file():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        text = proc.communicate(timeout=60)[0].decode()
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 130, text
    assert took < 15, f"{took:.1f} s from SIGINT to exit"
    result = load_sweep(out / "c")
    assert (result.state, result.interrupted_by) == ("interrupted", "SIGINT")
    states = [(p.label, p.state) for p in result.points]
    # The point running then is kept, marked interrupted (unless the signal came before its test began).
    assert states in (
        [("01-concurrency-1", "complete")],
        [("01-concurrency-1", "complete"), ("02-concurrency-2", "interrupted")],
    )
    assert result.best in (None, "01-concurrency-1")  # an interrupted point is never best
    assert "sweep: stopped: interrupted by SIGINT after 1 finished point" in text
    assert (out / "c" / "sweep.html").is_file() and "lpuperf: interrupted by SIGINT" in text

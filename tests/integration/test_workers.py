"""``lpuperf run --workers N``: one real LoadGen, queries streamed by worker processes to a real sim SUT.

The same run with two workers and with one process gives the same verdict, the same query count and the
same records (sample order, token counts, every query completed once); the accuracy log is byte-for-byte
the one process's; a worker killed mid-run (SIGKILL) has its outstanding queries completed as failed and
the run goes on with the other, saying so; Ctrl-C ends a worker run within seconds, leaving a readable run
and no worker behind. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import sut
from cli import main
from loadgen_harness import RunConfig, RunError, RunResult, load_query_records, load_results, run_benchmark
from loadgen_harness._worker_wire import WorkerSpec
from loadgen_harness._workers import WorkerBridge
from sut import ArtifactManifest, TimingModel

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATASET = "synthetic:64:7"
MAX_NEW = 16
WORKER_MODULE = "loadgen_harness._worker_proc"


def _manifest(tmp: Path, name: str, decode_step_s: float, max_batch: int = 512) -> Path:
    m = ArtifactManifest(
        artifact_id=name,
        backend="sim",
        model="embedded-sim",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=max_batch,
        timing=TimingModel(prefill_base_s=0.0, prefill_per_token_s=0.0, decode_step_s=decode_step_s),
        target="sim-lpu",
    )
    p = tmp / f"{name}.json"
    p.write_text(m.model_dump_json())
    return p


@pytest.fixture(scope="module")
def instant_sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sut.spawn_server(
        ["--artifact", str(_manifest(tmp_path_factory.mktemp("w"), "instant", 0.0)), "--dataset", DATASET]
    ) as s:
        yield s.address


@pytest.fixture(scope="module")
def timed_sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sut.spawn_server(
        ["--artifact", str(_manifest(tmp_path_factory.mktemp("w"), "timed", 0.005)), "--dataset", DATASET]
    ) as s:
        yield s.address


def _run(tmp: Path, address: str, run_id: str, **kw: Any) -> RunResult:
    return run_benchmark(
        RunConfig(
            sut=address,
            dataset=DATASET,
            out_dir=tmp,
            run_id=run_id,
            max_new_tokens=MAX_NEW,
            metrics_linger_s=0,
            **kw,
        )
    )


def _worker_pids(parent: int) -> list[int]:
    """This host's worker processes whose parent is ``parent``, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if WORKER_MODULE.encode() in cmd and int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _assert_every_query_once(res: RunResult) -> np.ndarray:
    rec = load_query_records(res.log_dir)
    assert rec.size == res.n_queries > 0
    assert (rec["done_ns"] >= 0).all()
    assert int((rec["status"] != 0).sum()) == res.n_errors
    return rec


def test_two_workers_give_one_process_verdict_count_and_records(tmp_path: Path, instant_sut: str) -> None:
    kw: dict[str, Any] = {"scenario": "Server", "qps": 200, "duration_s": 1, "min_query_count": 600}
    one = _run(tmp_path, instant_sut, "one", **kw)
    two = _run(tmp_path, instant_sut, "two", workers=2, **kw)
    assert one.valid, one.validity_reasons
    assert two.valid == one.valid and two.validity_reasons == one.validity_reasons
    assert two.n_queries == one.n_queries and two.n_errors == one.n_errors == 0
    assert two.settings["harness_workers"] == 2 and "harness_workers" not in one.settings
    a, b = _assert_every_query_once(one), _assert_every_query_once(two)
    assert a.dtype == b.dtype
    # LoadGen's own schedule (same seed): the same samples in the same order, each answered in full.
    assert np.array_equal(a["sample_index"], b["sample_index"])
    assert np.array_equal(a["n_tokens"], b["n_tokens"]) and np.array_equal(a["n_streamed"], b["n_streamed"])
    assert b["stream_matches_output"].all()
    # One clock: every worker's stream times fall between its query's issue and its end, in order.
    assert (b["issue_ns"] <= b["sent_ns"]).all() and (b["sent_ns"] <= b["first_token_ns"]).all()
    assert (b["first_token_ns"] <= b["done_ns"]).all() and (np.diff(b["issue_ns"]) >= 0).all()
    assert b["issue_ns"][0] < 5e9  # the run's clock starts when the workers are ready, not before
    assert (b["replica"] == 0).all()
    assert set(json.loads(Path(two.log_dir, "results.json").read_text())) == set(
        json.loads(Path(one.log_dir, "results.json").read_text())
    )


def _accuracy_entries(log_dir: str) -> list[tuple[int, str]]:
    entries = json.loads(Path(log_dir, "mlperf_log_accuracy.json").read_text())
    return sorted((e["qsl_idx"], e["data"]) for e in entries)


@pytest.mark.parametrize("scenario", ["Offline", "Server"])
def test_accuracy_log_equals_one_process(tmp_path: Path, instant_sut: str, scenario: str) -> None:
    kw: dict[str, Any] = {"scenario": scenario, "mode": "accuracy", "qps": 200}
    one = _run(tmp_path, instant_sut, f"one-{scenario}", **kw)
    two = _run(tmp_path, instant_sut, f"two-{scenario}", workers=2, **kw)
    assert one.n_queries == two.n_queries == 64 and two.n_errors == 0
    a, b = _accuracy_entries(one.log_dir), _accuracy_entries(two.log_dir)
    assert len(a) == 64 and a == b
    assert all(data for _, data in b)  # the tokens themselves, not empty completions


def test_a_killed_worker_fails_its_queries_and_the_run_goes_on(tmp_path: Path, timed_sut: str) -> None:
    killed: list[tuple[int, float]] = []
    stop = threading.Event()

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 60
        detail = tmp_path / "kill" / "Server" / "performance" / "mlperf_log_detail.txt"
        while not stop.is_set() and time.monotonic() < deadline:
            pids = _worker_pids(os.getpid())
            if len(pids) == 2 and detail.is_file():  # LoadGen's test has started: the workers are ready
                stop.wait(1.5)  # well into LoadGen's issuing: queries are in flight on both workers
                os.kill(pids[0], signal.SIGKILL)
                killed.append((pids[0], time.monotonic()))
                return
            stop.wait(0.05)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    try:
        res = _run(
            tmp_path, timed_sut, "kill", scenario="Server", qps=100, duration_s=5, min_query_count=400, workers=2
        )
    finally:
        stop.set()
        killer.join(timeout=10)
    assert killed, "no worker was seen to kill"
    rec = _assert_every_query_once(res)
    lost = res.errors_by_status.get("WORKER_EXITED", 0)
    assert lost >= 1 and res.n_errors == lost
    assert not res.valid
    assert res.validity_reasons[0].startswith("worker ") and f"pid {killed[0][0]}" in res.validity_reasons[0]
    assert "signal 9" in res.validity_reasons[0] and f"its {lost} outstanding" in res.validity_reasons[0]
    kill_ns = rec["done_ns"][rec["status"] != 0].max()
    assert int(((rec["status"] == 0) & (rec["issue_ns"] > kill_ns)).sum()) > 50  # the other worker went on
    assert not [p for p in _worker_pids(os.getpid()) if _alive(p)]


def test_a_frame_the_reader_cannot_handle_stops_its_worker_and_the_run_goes_on(
    tmp_path: Path, timed_sut: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader thread that died on a frame would leave LoadGen waiting forever: the worker is stopped instead."""
    handled: list[int] = []
    real = WorkerBridge._on_done

    def on_done(self: WorkerBridge, w: Any, reader: Any, start: int, end: int) -> None:
        if w.index == 0:
            if len(handled) >= 100:  # planted: well into the run, worker 0's next frame is cut inside its row
                end = start + 40
            else:
                handled.append(start)
        real(self, w, reader, start, end)

    monkeypatch.setattr(WorkerBridge, "_on_done", on_done)
    res = _run(tmp_path, timed_sut, "bad", scenario="Server", qps=100, duration_s=5, min_query_count=400, workers=2)
    rec = _assert_every_query_once(res)
    lost = res.errors_by_status.get("WORKER_EXITED", 0)
    assert len(handled) == 100 and lost >= 1 and res.n_errors == lost and not res.valid
    assert res.validity_reasons[0].startswith("worker 0 (pid ") and "signal 9" in res.validity_reasons[0]
    lost_ns = rec["done_ns"][rec["status"] != 0].max()
    assert int(((rec["status"] == 0) & (rec["issue_ns"] > lost_ns)).sum()) > 50  # worker 1 went on
    assert not [p for p in _worker_pids(os.getpid()) if _alive(p)]


def test_workers_with_a_load_shape_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--workers", "2", "--load", "concurrency:2", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "workers: 2 worker processes" in err[0], err
    assert not list(tmp_path.iterdir())


def test_ctrl_c_ends_a_worker_run_within_seconds(tmp_path: Path) -> None:
    cmd = [
        *(sys.executable, "-m", "cli", "run", "--out", str(tmp_path / "out"), "--run-id", "sig", "--workers", "2"),
        *("--dataset", DATASET, "--qps", "40", "--duration", "600", "--trace", "--metrics-linger", "0"),
        *("--max-new-tokens", str(MAX_NEW)),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    log_dir = tmp_path / "out" / "sig" / "Server" / "performance"
    try:
        deadline = time.monotonic() + 90
        workers: list[int] = []
        issuing: float | None = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            if len(workers) < 2:  # they start one after the other: on a busy machine, seconds apart
                workers = _worker_pids(proc.pid)
            trace = log_dir / "mlperf_log_trace.json"
            if issuing is None and len(workers) == 2 and trace.is_file() and trace.stat().st_size > 20_000:
                issuing = time.monotonic()
            if issuing is not None and time.monotonic() - issuing > 2.0:  # some queries answered by now
                break
            time.sleep(0.1)
        assert len(workers) == 2, "the run never started its workers and issued"
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does (the workers have a process group of their own)
        out, _ = proc.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 130, out.decode(errors="replace")[-2000:]
    assert took < 20, f"{took:.1f} s from SIGINT to exit"
    res = load_results(log_dir)
    assert res.state == "interrupted" and res.interrupted_by == "SIGINT"
    rec = _assert_every_query_once(res)
    assert int((rec["status"] == 0).sum()) > 0
    assert set(res.errors_by_status) <= {"INTERRUPTED"}
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "a worker outlived its run"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_a_fleet_run_with_workers_attributes_replicas_and_exports_metrics(tmp_path: Path) -> None:
    port = _free_port()
    finished: list[dict[str, Any]] = []
    stop = threading.Event()

    def scrape_until_finished() -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                samples = _scrape(port)
            except OSError:
                stop.wait(0.2)
                continue
            state = samples.get("lpuperf_harness_run_state", {})
            if any(dict(k).get("lpuperf_harness_run_state") == "finished" and v == 1 for k, v in state.items()):
                finished.append(samples)
                return
            stop.wait(0.2)

    scraper = threading.Thread(target=scrape_until_finished, daemon=True)
    scraper.start()
    try:
        res = run_benchmark(
            RunConfig(
                scenario="Server",
                dataset=DATASET,
                replicas=2,
                qps=100,
                duration_s=1,
                min_query_count=200,
                out_dir=tmp_path,
                run_id="fleet",
                max_new_tokens=MAX_NEW,
                workers=2,
                metrics_port=port,
                metrics_linger_s=3,
            )
        )
    finally:
        stop.set()
        scraper.join(timeout=10)
    rec = _assert_every_query_once(res)
    assert res.n_errors == 0 and res.fleet is not None and len(res.fleet.replicas) == 2
    per_replica = np.bincount(rec["replica"], minlength=2)
    assert [r.n_queries for r in res.fleet.replicas] == per_replica.tolist() and per_replica.min() > 0
    assert finished, "the run's metrics were never scraped in their finished state"
    m = finished[0]
    assert m["lpuperf_harness_queries_issued_total"][()] == res.n_queries
    assert m["lpuperf_harness_queries_completed_total"][()] == res.n_queries
    assert m["lpuperf_harness_ttft_seconds_count"][()] == res.n_queries


def test_a_hopeless_run_with_workers_stops_at_its_in_flight_limit(tmp_path: Path) -> None:
    # 2 sequences, 40 ms a token: a few QPS at most, asked for 400 QPS over 120 s.
    limit = 200
    t0 = time.monotonic()
    hopeless = _manifest(tmp_path, "hopeless", 0.04, max_batch=2)
    with sut.spawn_server(["--artifact", str(hopeless), "--dataset", DATASET]) as server:
        res = _run(
            tmp_path,
            server.address,
            "hopeless",
            scenario="Server",
            qps=400,
            duration_s=120,
            max_in_flight=limit,
            workers=2,
        )
    assert time.monotonic() - t0 < 60, "the run did not stop at its limit"
    assert res.overload is not None and res.overload.limit == limit and not res.valid
    assert res.validity_reasons[0].startswith("overloaded: the SUT completed")
    rec = _assert_every_query_once(res)
    assert res.n_queries <= limit + 16 and res.errors_by_status.get("OVERLOADED", 0) > 0
    assert int((rec["status"] == 0).sum()) == res.overload.completed_ok


def test_workers_stream_over_the_openai_http_transport(tmp_path: Path) -> None:
    port = _free_port()
    instant = _manifest(tmp_path, "instant-http", 0.0)
    with sut.spawn_server(["--artifact", str(instant), "--dataset", DATASET, "--http", str(port)]):
        res = run_benchmark(
            RunConfig(
                scenario="Server",
                dataset=DATASET,
                http_endpoint={"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1"},
                qps=100,
                duration_s=1,
                min_query_count=100,
                out_dir=tmp_path,
                run_id="http",
                max_new_tokens=MAX_NEW,
                workers=2,
                metrics_linger_s=0,
            )
        )
    rec = _assert_every_query_once(res)
    assert res.n_queries == 100 and res.n_errors == 0
    assert (rec["n_tokens"] > 0).all() and (rec["first_token_ns"] > rec["issue_ns"]).all()


def test_a_worker_that_cannot_start_refuses_the_run_in_one_line(tmp_path: Path) -> None:
    spec = WorkerSpec(index=0, address="127.0.0.1:1", dataset=str(tmp_path / "missing.jsonl"), max_new_tokens=8)
    t0 = time.monotonic()
    with pytest.raises(RunError) as err:
        WorkerBridge([spec, spec.model_copy(update={"index": 1})], offline=False)
    assert time.monotonic() - t0 < 60
    msg = str(err.value)
    assert msg.startswith("worker 0: ") and "missing.jsonl" in msg and "\n" not in msg
    assert not [p for p in _worker_pids(os.getpid()) if _alive(p)]


def test_workers_exit_when_the_run_process_is_killed(tmp_path: Path) -> None:
    cmd = [
        *(sys.executable, "-m", "cli", "run", "--out", str(tmp_path / "out"), "--run-id", "k", "--workers", "2"),
        *("--dataset", DATASET, "--qps", "40", "--duration", "600", "--max-new-tokens", str(MAX_NEW)),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        detail = tmp_path / "out" / "k" / "Server" / "performance" / "mlperf_log_detail.txt"
        deadline = time.monotonic() + 90
        workers: list[int] = []
        while time.monotonic() < deadline and not (len(workers) == 2 and detail.is_file()):
            assert proc.poll() is None
            workers = _worker_pids(proc.pid)
            time.sleep(0.1)
        assert len(workers) == 2 and detail.is_file(), "the run never started its workers"
        proc.kill()  # no handler runs: the workers learn it from their sockets
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "a worker outlived its killed run"


def test_a_server_run_whose_workers_all_die_stops_early_with_the_reason(tmp_path: Path, timed_sut: str) -> None:
    killed: list[int] = []
    stop = threading.Event()

    def kill_all_workers() -> None:
        deadline = time.monotonic() + 60
        detail = tmp_path / "all" / "Server" / "performance" / "mlperf_log_detail.txt"
        while not stop.is_set() and time.monotonic() < deadline:
            pids = _worker_pids(os.getpid())
            if len(pids) == 2 and detail.is_file():
                stop.wait(1.0)
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                killed.extend(pids)
                return
            stop.wait(0.05)

    killer = threading.Thread(target=kill_all_workers, daemon=True)
    killer.start()
    t0 = time.monotonic()
    try:
        # A 120 s schedule: only stopping early ends it within the bound below.
        res = _run(tmp_path, timed_sut, "all", scenario="Server", qps=100, duration_s=120, workers=2, max_in_flight=64)
    finally:
        stop.set()
        killer.join(timeout=10)
    assert len(killed) == 2
    assert time.monotonic() - t0 < 60, "the run went on without workers"
    rec = _assert_every_query_once(res)
    assert not res.valid and res.overload is None
    assert sorted(r.split(" (pid ")[0] for r in res.validity_reasons[:2]) == ["worker 0", "worker 1"]
    assert not any(r.startswith("overloaded") for r in res.validity_reasons)
    assert set(res.errors_by_status) == {"WORKER_EXITED"} and res.n_errors >= 64
    assert int((rec["status"] == 0).sum()) > 0


@pytest.mark.parametrize("scenario", ["Offline", "SingleStream", "MultiStream"])
def test_other_scenarios_with_workers_match_one_process(tmp_path: Path, instant_sut: str, scenario: str) -> None:
    # A short minimum duration: the count is the minimum query count, not what fits in the time.
    kw: dict[str, Any] = {"scenario": scenario, "qps": 200, "duration_s": 0.01, "min_query_count": 64}
    one = _run(tmp_path, instant_sut, f"one-{scenario}", **kw)
    two = _run(tmp_path, instant_sut, f"two-{scenario}", workers=2, **kw)
    assert two.valid == one.valid and two.n_queries == one.n_queries and two.n_errors == one.n_errors == 0
    a, b = _assert_every_query_once(one), _assert_every_query_once(two)
    assert np.array_equal(np.sort(a["sample_index"]), np.sort(b["sample_index"]))
    assert int(a["n_tokens"].sum()) == int(b["n_tokens"].sum())  # every answer in full

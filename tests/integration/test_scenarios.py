"""Every scenario through real LoadGen and a real gRPC sim SUT (a subprocess on loopback).

Two SUTs serve the module: an instant one (SingleStream, MultiStream, Offline, accuracy) and a
timed one with millisecond steps (Server, Interactive). Overload and a killed SUT get their own.
Each run is a few seconds; the assertions read the parsed results.json and queries.npz.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadgen_harness import RunConfig, RunResult, format_summary, load_query_records, load_results, run_benchmark
from scenarios import resolve_dataset

pytestmark = pytest.mark.integration

DATASET = "synthetic:64:7"
MAX_NEW = 16


def _manifest(tmp: Path, name: str, decode_step_s: float, max_batch: int, prefill_s: float = 0.0) -> Path:
    from sut import ArtifactManifest, TimingModel

    m = ArtifactManifest(
        artifact_id=name,
        backend="sim",
        model="embedded-sim",
        precision="fp32",
        max_context_tokens=4096,
        max_batch=max_batch,
        timing=TimingModel(prefill_base_s=prefill_s, prefill_per_token_s=0.0, decode_step_s=decode_step_s),
        target="sim-lpu",
    )
    p = tmp / f"{name}.json"
    p.write_text(m.model_dump_json())
    return p


def _spawn(manifest: Path) -> Any:
    import sut

    return sut.spawn_server(["--artifact", str(manifest), "--dataset", DATASET])


@pytest.fixture(scope="module")
def instant_sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("instant")
    with _spawn(_manifest(tmp, "instant", 0.0, 1024)) as server:
        yield server.address


@pytest.fixture(scope="module")
def timed_sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("timed")
    with _spawn(_manifest(tmp, "timed", 0.001, 256, prefill_s=0.001)) as server:
        yield server.address


def _run(tmp: Path, address: str, scenario: str, **kw: Any) -> RunResult:
    cfg = RunConfig(
        scenario=scenario,
        sut=address,
        dataset=DATASET,
        out_dir=tmp,
        run_id=kw.pop("run_id", "it"),
        max_new_tokens=kw.pop("max_new_tokens", MAX_NEW),
        **kw,
    )
    return run_benchmark(cfg)


def _assert_every_query_completed(res: RunResult) -> np.ndarray:
    rec = load_query_records(res.log_dir)
    assert rec.size == res.n_queries > 0
    assert (rec["done_ns"] >= 0).all()
    return rec


def _assert_valid(res: RunResult) -> None:
    assert res.valid, res.validity_reasons
    assert res.loadgen_valid is True
    assert res.n_errors == 0
    assert load_results(res.log_dir) == res
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "artifact.json", "queries.npz"):
        assert (Path(res.log_dir) / name).is_file(), name


def test_server_valid_at_low_qps(timed_sut: str, tmp_path: Path) -> None:
    res = _run(tmp_path, timed_sut, "Server", qps=150, duration_s=4)
    _assert_valid(res)
    assert res.scheduled_qps is not None and res.completed_qps is not None
    assert res.completed_qps > 0.9 * res.scheduled_qps
    assert res.ttft_ms.p99 is not None and res.tpot_ms.p99 is not None
    assert res.artifact["artifact_id"] == "timed"
    rec = _assert_every_query_completed(res)
    ok = rec["status"] == 0
    # The SUT streams the first token alone and the harness reports exactly what was streamed.
    assert (rec["first_chunk_tokens"][ok] == 1).all()
    assert rec["stream_matches_output"][ok].all()
    assert (rec["first_token_ns"][ok] >= rec["issue_ns"][ok]).all()
    assert Path(res.log_dir) == tmp_path / "it" / "Server" / "performance"
    # ITL: the bridge kept each query's last message time and longest gap between messages.
    multi = ok & (rec["n_chunks"] > 1)
    assert multi.any() and (rec["last_msg_ns"][multi] >= rec["first_token_ns"][multi]).all()
    assert (rec["last_msg_ns"][multi] <= rec["done_ns"][multi]).all() and (rec["max_gap_ns"][multi] > 0).all()
    assert res.itl is not None and res.itl.itl_ms.p50 is not None and res.itl.max_gap_ms.p99 is not None
    # Goodput over the same records, against the limits LoadGen judged the run by.
    assert res.limits is not None and res.limits.ttft_ms is not None and res.limits.tpot_ms is not None
    assert res.goodput is not None and res.successful is not None and res.goodput.fraction is not None
    assert res.goodput.n_good_queries <= res.successful.n_queries and res.goodput.fraction > 0.9


def _failed_on_latency_only(res: RunResult) -> bool:
    """INVALID for nothing but LoadGen's latency limits (and the early-stopping verdict that follows)."""
    return (
        not res.valid
        and res.n_errors == 0
        and all(r == "LoadGen: INVALID" or "latency" in r or r.startswith("early") for r in res.validity_reasons)
    )


def test_interactive_valid(timed_sut: str, tmp_path: Path) -> None:
    # llama3_1-8b's interactive limits (500 ms / 30 ms) leave room for ordinary scheduling delays of a
    # busy 2-core machine; the embedded profile's 200 ms TTFT is checked by the settings test. A stall of
    # the whole machine is another matter: under `stress-ng --cpu 4` one run saw a 1.36 s gap (max-gap
    # p99), which puts a third of a 4 s run over 30 ms TPOT. So a run that fails on latency alone gets one
    # fresh run; two in a row fail the test.
    res = _run(tmp_path, timed_sut, "Interactive", benchmark="llama3_1-8b", qps=150, duration_s=4)
    if _failed_on_latency_only(res):
        res = _run(tmp_path, timed_sut, "Interactive", benchmark="llama3_1-8b", qps=150, duration_s=4, run_id="rerun")
    _assert_valid(res)
    assert res.settings["requested_server_ttft_latency"] == 500 * 10**6
    assert res.settings["requested_server_tpot_latency"] == 30 * 10**6


def test_offline_valid(instant_sut: str, tmp_path: Path) -> None:
    # Offline issues expected_qps x duration x 1.1 samples at once; expected_qps is set far above
    # what two cores can do so the run outlasts its minimum duration.
    res = _run(tmp_path, instant_sut, "Offline", qps=3000, duration_s=1, max_new_tokens=8)
    _assert_valid(res)
    # LoadGen's trace (megabytes per Server run) only on request: queries.npz has the timings.
    assert not (Path(res.log_dir) / "mlperf_log_trace.json").exists()
    assert res.tokens_per_second is not None and res.tokens_per_second > 0
    _assert_every_query_completed(res)


def test_single_stream_valid(instant_sut: str, tmp_path: Path) -> None:
    res = _run(tmp_path, instant_sut, "SingleStream", duration_s=1, trace=True)
    _assert_valid(res)
    assert (Path(res.log_dir) / "mlperf_log_trace.json").stat().st_size > 0  # asked for with trace=True
    assert res.latency_ms.p90 is not None


def test_multi_stream_valid_with_eight_rpcs_per_query(instant_sut: str, tmp_path: Path) -> None:
    res = _run(tmp_path, instant_sut, "MultiStream", duration_s=1, max_new_tokens=8)
    _assert_valid(res)
    assert res.settings["effective_samples_per_query"] == 8
    rec = _assert_every_query_completed(res)
    assert rec.size % 8 == 0
    assert rec.size >= 8 * 662  # early stopping judges MultiStream after 662 queries


def test_accuracy_mode_logs_every_sample(instant_sut: str, tmp_path: Path) -> None:
    res = _run(tmp_path, instant_sut, "Offline", mode="accuracy", max_new_tokens=MAX_NEW)
    assert res.valid, res.validity_reasons
    log = json.loads((Path(res.log_dir) / "mlperf_log_accuracy.json").read_text())
    ds = resolve_dataset(DATASET)
    assert sorted(e["qsl_idx"] for e in log) == list(range(len(ds)))
    for e in log:
        ids = np.frombuffer(bytes.fromhex(e["data"]), dtype=np.int32)
        assert e["token_count"] == ids.size
        # The sim replays the dataset's reference output, truncated to max_new_tokens.
        ref = ds.reference_ids[e["qsl_idx"]][:MAX_NEW]
        assert ids.tolist() == ref.tolist()


def test_stray_audit_config_is_ignored_unless_asked(
    instant_sut: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "audit.config"
    audit.write_text("*.SingleStream.min_query_count = 97\n")
    monkeypatch.chdir(tmp_path)
    plain = _run(tmp_path / "a", instant_sut, "SingleStream", duration_s=0.5)
    assert plain.settings["effective_min_query_count"] != 97
    audited = _run(tmp_path / "b", instant_sut, "SingleStream", duration_s=0.5, audit_config=audit)
    assert audited.settings["effective_min_query_count"] == 97


def test_server_far_over_capacity_is_not_valid(tmp_path: Path) -> None:
    # Capacity ~ 4 sequences / (8 x 5 ms) = 100 QPS; 400 QPS queues requests for seconds.
    with _spawn(_manifest(tmp_path, "tiny", 0.005, 4)) as server:
        res = _run(tmp_path, server.address, "Server", qps=400, duration_s=1.5, max_new_tokens=8)
    assert res.validity_reasons
    assert res.valid is False or any("overloaded" in w for w in res.warnings)
    assert res.ttft_ms.p99 is not None and res.ttft_ms.p99 > 500
    _assert_every_query_completed(res)


def test_sut_killed_mid_run_counts_errors_and_ends(tmp_path: Path) -> None:
    with _spawn(_manifest(tmp_path, "victim", 0.002, 64)) as server:
        killer = threading.Timer(1.5, server.kill)
        killer.start()
        try:
            res = _run(tmp_path, server.address, "Server", qps=100, duration_s=4, rpc_timeout_s=20)
        finally:
            killer.cancel()
    assert res.n_errors > 0
    assert res.errors_by_status.get("UNAVAILABLE", 0) > 0
    assert res.valid is False
    assert any("queries failed" in r for r in res.validity_reasons)
    rec = _assert_every_query_completed(res)
    assert int((rec["status"] != 0).sum()) == res.n_errors
    assert (rec["status"][rec["status"] != 0] == 14).all()  # grpc.StatusCode.UNAVAILABLE
    # Failed queries complete in about a millisecond and LoadGen counts them as completed: the
    # figures the harness reports are over successful queries only, and the summary headlines those.
    ok = res.successful
    assert ok is not None and ok.n_queries == res.n_queries - res.n_errors > 0 and ok.n_failed == res.n_errors
    failed = rec["status"] != 0
    failed_ms = (rec["done_ns"][failed] - rec["issue_ns"][failed]) / 1e6
    assert ok.latency_ms.p50 is not None and ok.latency_ms.p50 > float(np.median(failed_ms))
    assert ok.qps is not None and res.completed_qps is not None and ok.qps < res.completed_qps
    text = format_summary(res)
    assert "QPS completed" not in text
    assert f"(LoadGen completed {res.completed_qps:.2f} incl. {res.n_errors} failed)" in text

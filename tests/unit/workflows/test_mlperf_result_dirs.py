"""report, compare, gate and load_results on a plain MLPerf result directory (another submitter's tree).

The tree is written by tests/mlperf_tree.py in MLPerf's layout: LoadGen's logs only, no results.json,
no queries.npz. Readers build the RunResult from the detail log; what needs per-query records says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli import main
from loadgen_harness import MLPERF_LOGS_PRESET, RunResult, load_results
from loadgen_harness._results import save_results
from scenarios import MLPERF_ROUND_SEEDS
from tests.mlperf_tree import SUBMITTER, SYSTEM, detail_values, mllog, write_tree


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_tree(tmp_path_factory.mktemp("published"), MLPERF_ROUND_SEEDS["v6.0"].model_dump())
    return root / "closed" / SUBMITTER / "results" / SYSTEM


def test_load_results_reads_every_form_of_the_directory(published: Path) -> None:
    scen = published / "llama2-70b-99" / "Server"
    run_1 = scen / "performance" / "run_1"
    for arg in (scen, scen / "performance", run_1, run_1 / "mlperf_log_detail.txt"):
        res = load_results(arg)
        assert (res.scenario, res.mode, res.benchmark, res.preset) == (
            "Server",
            "performance",
            "llama2-70b",
            MLPERF_LOGS_PRESET,
        )
        assert res.valid and res.loadgen_valid and res.validity_reasons == []
        assert res.ttft_ms.p99 == 1400.0 and res.tpot_ms.p99 == 120.0 and res.latency_ms.p99 == 21000.0
        assert res.completed_qps == 39.97 and res.tokens_per_second == 11800.5 and res.n_queries == 24576
        assert res.log_dir == str(run_1) and res.artifact["accelerator_model_name"] == "ACME LPU-1"
    inter = load_results(published / "llama2-70b-99" / "Interactive")
    assert inter.scenario == "Interactive" and inter.tpot_ms.p99 == 33.0  # summary says "time to output token"
    offline = load_results(published / "llama2-70b-99" / "Offline")
    assert offline.scenario == "Offline" and offline.completed_qps == 61.25 and offline.tokens_per_second == 18010.75
    assert load_results(published / "llama2-70b-99" / "Server" / "accuracy").mode == "accuracy"
    sdxl = load_results(published / "stable-diffusion-xl" / "Offline")
    assert sdxl.benchmark == "stable-diffusion-xl" and sdxl.valid


def test_tpot_from_an_old_summary_label_when_the_detail_log_lacks_it(tmp_path: Path) -> None:
    values = detail_values("Server", MLPERF_ROUND_SEEDS["v5.1"].model_dump(), llm=True)
    d = tmp_path / "llama2-70b-99" / "Server" / "performance" / "run_1"
    d.mkdir(parents=True)
    (d / "mlperf_log_detail.txt").write_text(
        mllog({k: v for k, v in values.items() if not k.startswith("result_time_per_output_token")})
    )
    (d / "mlperf_log_summary.txt").write_text("99.00 percentile time to output token (ns)   : 120000000\n")
    assert load_results(d.parent.parent).tpot_ms.p99 == 120.0


def test_neither_results_nor_logs_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no results\.json and no MLPerf logs"):
        load_results(tmp_path)


def test_report_renders_a_published_result_with_a_note(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "published.html"
    assert main(["report", str(published / "llama2-70b-99" / "Server"), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    page = out.read_text()
    assert "No per-query timings" in page and '<td class="num">1,400</td>' in page and "ACME LPU-1" in page


def test_gate_applies_an_slo_to_a_published_result(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gate_json = tmp_path / "gate.json"
    argv = ["gate", str(published / "llama2-70b-99" / "Server"), "--slo", "latency-only"]
    assert main([*argv, "--json", str(gate_json), "--junit", str(tmp_path / "g.xml")]) == 0
    assert "gate latency-only: PASS" in capsys.readouterr().out
    assert json.loads(gate_json.read_text())["passed"] is True
    # A tighter SLO fails on the published figures like on any run.
    slo = tmp_path / "tight.yaml"
    slo.write_text("ttft_ms: {p99: 1000}\n")
    assert (
        main(
            [
                "gate",
                str(published / "llama2-70b-99" / "Server"),
                "--slo",
                str(slo),
                "--json",
                str(gate_json),
                "--junit",
                str(tmp_path / "g.xml"),
            ]
        )
        == 1
    )
    assert "ttft_p99 1400.0 ms > 1000.0 ms limit" in capsys.readouterr().out


def test_compare_a_run_against_a_published_submission(
    published: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "results" / "mine" / "Server" / "performance"
    mine.mkdir(parents=True)
    res = RunResult(
        run_id="mine",
        scenario="Server",
        mode="performance",
        benchmark="llama2-70b",
        preset="submission",
        valid=True,
        loadgen_valid=True,
        scheduled_qps=40.0,
        completed_qps=39.9,
        tokens_per_second=11000.0,
        n_queries=24000,
    )
    res.ttft_ms.p99, res.tpot_ms.p99, res.latency_ms.p99 = 1300.0, 118.0, 20500.0
    save_results(res, mine)
    rc = main(["compare", str(published / "llama2-70b-99" / "Server"), str(mine), "--resamples", "200"])
    out = capsys.readouterr().out
    assert rc in (0, 1), out
    assert "TTFT p99" in out and "no CI" in out  # percentiles compared without per-query records, and said so
    assert (
        main(["compare", str(published / "llama2-70b-99" / "Server"), str(published / "llama2-70b-99" / "Server")]) == 0
    )

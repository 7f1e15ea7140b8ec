"""Run report: the page holds every plot with the run's data, the verdict, settings and artifact.

Per-query records are written with the harness's own QueryRecords; the trace fallback is checked
against a trace written by a real (short) LoadGen run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cli import main
from loadgen_harness import RunResult, load_results
from loadgen_harness._records import QueryRecords
from loadgen_harness._results import Percentiles, parse_detail_log, save_results
from workflows._report import (
    ReportError,
    cdf_points,
    load_report_inputs,
    rate_series,
    render_report,
    trace_timings,
    write_report,
)

PLOTS = {"ttft-cdf", "tpot-cdf", "e2e-cdf", "e2e-hist", "qps"}


class _Page(HTMLParser):
    """Collects the SVG plots (attributes, polylines, bars) and the text of elements with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: dict[str, dict[str, str]] = {}
        self.polylines: dict[str, list[dict[str, str]]] = {}
        self.bars: dict[str, list[int]] = {}
        self.limits: dict[str, float] = {}
        self.tags: set[str] = set()
        self.attrs_seen: list[tuple[str, str]] = []
        self.text_by_id: dict[str, str] = {}
        self._plot: str | None = None
        self._ids: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        self.attrs_seen += list(a.items())
        if tag == "svg":
            self._plot = a["data-plot"]
            self.plots[self._plot] = a
            self.polylines[self._plot] = []
            self.bars[self._plot] = []
        elif tag == "polyline" and self._plot:
            self.polylines[self._plot].append(a)
        elif tag == "line" and self._plot and a.get("class") == "limit":
            self.limits[self._plot] = float(a["data-limit"])
        elif tag == "rect" and self._plot and a.get("class") == "bar":
            self.bars[self._plot].append(int(a["data-count"]))
        if "id" in a:
            self._ids.append((tag, a["id"]))
            self.text_by_id[a["id"]] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._plot = None
        if self._ids and self._ids[-1][0] == tag:
            self._ids.pop()

    def handle_data(self, data: str) -> None:
        for _, i in self._ids:
            self.text_by_id[i] += data


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    return p


def _points(polyline: dict[str, str]) -> np.ndarray:
    return np.array([[float(v) for v in xy.split(",")] for xy in polyline["points"].split()])


def make_run(d: Path, n: int = 1500, qps: float = 50.0, errors_every: int = 0, seed: int = 3) -> np.ndarray:
    """A Server-like run directory: results.json plus queries.npz written by the harness's record store."""
    rng = np.random.default_rng(seed)
    rec = QueryRecords(n)
    t = 0.0
    for i in range(n):
        t += 1.0 / qps
        s = rec.slot(i % 100, int(t * 1e9))
        ttft = rng.lognormal(np.log(0.02), 0.3)
        n_tok = int(rng.integers(16, 128))
        rec.n_tokens[s] = n_tok
        if errors_every and i % errors_every == 0:
            rec.status[s] = 14
            rec.done_ns[s] = int((t + 0.001) * 1e9)
            continue
        rec.status[s] = 0
        rec.first_token_ns[s] = int((t + ttft) * 1e9)
        rec.done_ns[s] = int((t + ttft + 0.01 * (n_tok - 1)) * 1e9)
    d.mkdir(parents=True, exist_ok=True)
    rec.save(d)
    res = RunResult(
        run_id="r-test",
        scenario="Server",
        mode="performance",
        benchmark="embedded",
        preset="quick",
        valid=False,
        validity_reasons=["completed 41.00 samples/s is well below the scheduled 50.00 <overloaded>"],
        scheduled_qps=qps,
        completed_qps=qps,
        n_queries=n,
        settings={"effective_scenario": "Server", "effective_target_qps": qps},
        artifact={"artifact_id": "sim-fp32", "backend": "sim", "precision": "fp32"},
    )
    res.ttft_ms.p99 = 40.0
    save_results(res, d)
    return rec.to_array()


def test_page_has_every_plot_with_the_run_data(tmp_path: Path) -> None:
    make_run(tmp_path, n=1500, qps=50.0)
    page = _parse(render_report(load_report_inputs(tmp_path)))
    assert set(page.plots) == PLOTS
    for plot in ("ttft-cdf", "tpot-cdf", "e2e-cdf"):
        (line,) = page.polylines[plot]
        assert int(line["data-n"]) == 400  # 1500 queries drawn as 400 quantiles
        pts = _points(line)
        assert pts.shape == (400, 2)
        # SVG y grows downwards: a CDF's y coordinate never increases, its x never decreases.
        assert np.all(np.diff(pts[:, 0]) >= 0) and np.all(np.diff(pts[:, 1]) <= 0)
    assert sum(page.bars["e2e-hist"]) == 1500
    series = {s["data-series"] for s in page.polylines["qps"]}
    assert series == {"issued", "completed", "target"}  # no errors series when there are none
    assert page.text_by_id["verdict"] == "INVALID"
    assert "<overloaded>" in page.text_by_id["validity-reasons"]  # escaped text, shown as written
    assert '"artifact_id": "sim-fp32"' in page.text_by_id["artifact-manifest"]
    assert page.text_by_id["settings-table"].count("effective_") == 2


def test_page_is_self_contained(tmp_path: Path) -> None:
    make_run(tmp_path, n=200)
    html_text = render_report(load_report_inputs(tmp_path))
    page = _parse(html_text)
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert not [kv for kv in page.attrs_seen if kv[0] in ("src", "href")]
    assert "http://" not in html_text and "https://" not in html_text and "url(" not in html_text


def test_errors_get_their_own_rate_series(tmp_path: Path) -> None:
    make_run(tmp_path, n=600, errors_every=10)
    page = _parse(render_report(load_report_inputs(tmp_path)))
    assert "errors" in {s["data-series"] for s in page.polylines["qps"]}
    assert page.plots["e2e-cdf"]["aria-label"] == "End-to-end latency CDF (540 queries)"  # failed ones have none
    assert sum(page.bars["e2e-hist"]) == 540


def test_failures_are_not_headlined_and_an_interrupted_run_says_so(tmp_path: Path) -> None:
    rec = make_run(tmp_path, n=600, errors_every=3)  # 200 failed, each done in 1 ms
    res = load_results(tmp_path).model_copy(
        update={
            "state": "interrupted",
            "interrupted_by": "SIGINT",
            "n_errors": 200,
            "errors_by_status": {"INTERRUPTED": 200},
            "completed_qps": 50.0,
            "latency_ms": Percentiles(p50=1.0, p90=300.0, p99=900.0),  # LoadGen's, failures included
        }
    )
    assert res.successful is None  # an older results.json: the report derives the figures itself
    save_results(res, tmp_path)
    page = _parse(render_report(load_report_inputs(tmp_path)))
    assert page.text_by_id["verdict"] == "INTERRUPTED"
    assert "Stopped by SIGINT" in page.text_by_id["run-state"]
    figures = page.text_by_id["figures"]
    assert "successful QPS" in figures and "LoadGen completed QPS (incl. 200 failed)" in figures
    assert "completed QPS" not in figures.replace("LoadGen completed QPS", "")
    ok = rec["status"] == 0
    e2e_ok = (rec["done_ns"][ok] - rec["issue_ns"][ok]) / 1e6
    rows = page.text_by_id["successful-percentiles"]
    assert f"{np.percentile(e2e_ok, 50, method='higher'):.1f}" in rows  # not LoadGen's 1 ms
    assert "failed queries included" in render_report(load_report_inputs(tmp_path))


def test_limits_are_drawn_and_the_deciding_limit_goodput_and_folded_settings_shown(tmp_path: Path) -> None:
    from loadgen_harness import LatencyLimits

    rec = make_run(tmp_path, n=1500, qps=50.0)
    res = load_results(tmp_path)
    many = {f"requested_setting_{i}": i for i in range(70)}  # LoadGen logs about this many
    res = res.model_copy(
        update={"limits": LatencyLimits(ttft_ms=30.0, tpot_ms=50.0), "settings": {**res.settings, **many}}
    )
    save_results(res, tmp_path)
    html_text = render_report(load_report_inputs(tmp_path))
    page = _parse(html_text)
    # A dashed line at each limit, on the plot of the figure it limits.
    assert page.limits == {"ttft-cdf": 30.0, "tpot-cdf": 50.0}
    assert "limit 30 ms" in page.plots["ttft-cdf"]["aria-label"]
    assert page.text_by_id["verdict-basis"] == "decided by: TTFT p99 40.0 ms > 30 ms limit"
    ok = rec["status"] == 0
    ttft = (rec["first_token_ns"][ok] - rec["issue_ns"][ok]) / 1e6
    tpot = (rec["done_ns"][ok] - rec["first_token_ns"][ok]) / (rec["n_tokens"][ok] - 1) / 1e6
    n_good = int(((ttft <= 30.0) & (tpot <= 50.0)).sum())
    assert 0 < n_good < 1500
    assert f"{n_good / 1500:.1%} ({n_good} of 1500)" in page.text_by_id["figures"]
    assert "goodput: queries with TTFT ≤ 30 ms and TPOT ≤ 50 ms" in page.text_by_id["figures"]
    # The raw settings are folded away below the verdict, not spread over the page.
    start = html_text.index('<details id="settings-details">')
    assert start < html_text.index('id="settings-table"') < html_text.index("</details>", start)
    assert html_text.index('id="verdict"') < start
    assert "Effective LoadGen settings (72)" in page.text_by_id["settings-details"]


def test_a_limit_far_beyond_the_data_is_marked_off_scale(tmp_path: Path) -> None:
    from loadgen_harness import LatencyLimits

    make_run(tmp_path, n=300)
    res = load_results(tmp_path).model_copy(update={"limits": LatencyLimits(ttft_ms=5000.0, tpot_ms=50.0)})
    save_results(res, tmp_path)
    html_text = render_report(load_report_inputs(tmp_path))
    assert "limit 5,000 ms (off scale)" in html_text
    assert _parse(html_text).limits["ttft-cdf"] == 5000.0


def test_rate_series_counts_events_per_second() -> None:
    times = np.arange(0, 10, 0.01)  # 100 events/s for 10 s
    xs, ys = rate_series(times, 10.0, 0.5)
    assert xs.size == 20 and np.allclose(xs[:2], [0.25, 0.75])
    assert np.allclose(ys, 100.0)


def test_cdf_points_small_and_large() -> None:
    xs, ys = cdf_points(np.array([3.0, 1.0, 2.0]))
    assert list(xs) == [1.0, 2.0, 3.0] and list(ys) == pytest.approx([1 / 3, 2 / 3, 1.0])
    xs, ys = cdf_points(np.arange(10_000, dtype=float), max_points=11)
    assert list(ys) == pytest.approx(np.linspace(0, 1, 11)) and xs[0] == 0 and xs[-1] == 9999


_NULL_SUT_RUN = textwrap.dedent(
    """
    import sys
    import mlperf_loadgen as lg
    import numpy as np
    buf = np.arange(8, dtype=np.int32)
    def issue(qs):
        for q in qs:
            lg.FirstTokenComplete([lg.QuerySampleResponse(q.id, buf.ctypes.data, 4, 1)])
            lg.QuerySamplesComplete([lg.QuerySampleResponse(q.id, buf.ctypes.data, 32, 8)])
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(16, 16, lambda s: None, lambda s: None)
    ts = lg.TestSettings()
    ts.scenario = lg.TestScenario.Server
    ts.mode = lg.TestMode.PerformanceOnly
    ts.server_target_qps = 200
    ts.min_duration_ms = 1000
    ts.min_query_count = 100
    ts.use_token_latencies = True
    ls = lg.LogSettings()
    ls.log_output.outdir = sys.argv[1]
    ls.log_output.copy_summary_to_stdout = False
    ls.enable_trace = True
    lg.StartTestWithLogSettings(sut, qsl, ts, ls, "/nonexistent/audit.config")
    lg.DestroySUT(sut)
    lg.DestroyQSL(qsl)
    """
)


@pytest.fixture(scope="module")
def loadgen_trace_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the logs of a real 1 s LoadGen Server run (null SUT, in a child process)."""
    d = tmp_path_factory.mktemp("trace")
    subprocess.run([sys.executable, "-c", _NULL_SUT_RUN, str(d)], check=True, timeout=60, capture_output=True)
    assert (d / "mlperf_log_trace.json").is_file()
    return d


def test_trace_fallback_matches_loadgen_percentiles(loadgen_trace_dir: Path) -> None:
    lat, timeline = trace_timings(loadgen_trace_dir / "mlperf_log_trace.json")
    values = parse_detail_log(loadgen_trace_dir).values
    n = int(values["result_query_count"])
    assert lat["latency_ms"].size == n and lat["ttft_ms"].size == n and timeline.done_s.size == n
    assert "tpot_ms" not in lat  # the trace has no token counts
    # LoadGen's p99 is one of the sampled latencies: it must be among the values read from the trace.
    for key, detail_key in (
        ("latency_ms", "result_99.00_percentile_latency_ns"),
        ("ttft_ms", "result_first_token_99.00_percentile_latency_ns"),
    ):
        p99_ms = values[detail_key] / 1e6
        assert np.min(np.abs(lat[key] - p99_ms)) < 1e-6, key
    # 200 QPS scheduled for >= 1 s: the issue times span about the run.
    assert 0.8 < timeline.issue_s.max() < 5.0


def test_report_falls_back_to_the_trace(loadgen_trace_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run, n=50)
    (run / "queries.npz").unlink()
    (run / "mlperf_log_trace.json").write_bytes((loadgen_trace_dir / "mlperf_log_trace.json").read_bytes())
    page = _parse(Path(write_report(run)).read_text(encoding="utf-8"))
    assert set(page.plots) == PLOTS - {"tpot-cdf"}
    assert "mlperf_log_trace.json" in page.plots["qps"]["aria-label"]


def test_bad_run_dirs_fail_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReportError, match=r"no results.json \(expected a run directory"):
        load_report_inputs(tmp_path)
    make_run(tmp_path, n=20)
    (tmp_path / "queries.npz").write_bytes(b"not an npz")
    with pytest.raises(ReportError, match=r"queries.npz: cannot read per-query records"):
        load_report_inputs(tmp_path)
    (tmp_path / "queries.npz").unlink()
    # Without per-query timings the page still renders LoadGen's figures, and says why there are no curves.
    page = _parse(render_report(load_report_inputs(tmp_path)))
    assert page.plots == {}
    assert "No per-query timings" in page.text_by_id["input-note-0"]
    (tmp_path / "results.json").write_text('{"run_id": "x"}', encoding="utf-8")
    with pytest.raises(ReportError, match=r"results.json: field 'scenario'"):
        load_report_inputs(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lpuperf report: error: ") and "no results.json" in err[0]


def test_cli_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path / "run", n=100)
    out = tmp_path / "pages" / "r.html"
    assert main(["report", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert set(_parse(out.read_text(encoding="utf-8")).plots) == PLOTS
    assert load_results(tmp_path / "run").run_id == "r-test"  # the run directory is left as it was


def test_runs_without_latencies_still_render(tmp_path: Path) -> None:
    make_run(tmp_path / "failed", n=30, errors_every=1)  # every query failed: no latency at all
    page = _parse(render_report(load_report_inputs(tmp_path / "failed")))
    assert set(page.plots) == {"qps"}
    assert {s["data-series"] for s in page.polylines["qps"]} == {"issued", "completed", "errors", "target"}
    make_run(tmp_path / "one", n=1)
    page = _parse(render_report(load_report_inputs(tmp_path / "one")))
    assert set(page.plots) == PLOTS and sum(page.bars["e2e-hist"]) == 1


def _make_reasoning_run(d: Path, n: int = 300) -> None:
    """Queries that reason 400-600 tokens, then answer 20-60 tokens; the answer begins 1-3 s after issue."""
    from loadgen_harness._records import reasoning_stats

    rng = np.random.default_rng(5)
    rec = QueryRecords(n)
    for i in range(n):
        t = i * 0.1
        chunk, j = rec.slot_ref(i % 50, int(t * 1e9))
        reasoning, answer = int(rng.integers(400, 600)), int(rng.integers(20, 60))
        chunk.status[j], chunk.n_tokens[j], chunk.n_reasoning[j] = 0, reasoning + answer, reasoning
        chunk.first_token_ns[j] = int((t + 0.02) * 1e9)
        chunk.first_answer_ns[j] = int((t + rng.uniform(1.0, 3.0)) * 1e9)
        chunk.done_ns[j] = int((t + 4.0) * 1e9)
    d.mkdir(parents=True, exist_ok=True)
    rec.save(d)
    res = RunResult(run_id="r", scenario="Server", mode="performance", benchmark="deepseek-r1", preset="quick")
    res.reasoning = reasoning_stats(rec.to_array())
    save_results(res, d)


def test_a_reasoning_run_shows_ttfa_and_the_token_split(tmp_path: Path) -> None:
    _make_reasoning_run(tmp_path)
    page = _parse(render_report(load_report_inputs(tmp_path)))
    assert {"ttfa-cdf", "reasoning-tokens", "answer-tokens"} <= set(page.plots)
    assert {s["data-series"] for s in page.polylines["ttfa-cdf"]} == {"TTFA", "TTFT"}
    assert sum(page.bars["reasoning-tokens"]) == sum(page.bars["answer-tokens"]) == 300
    summary = page.text_by_id["reasoning-summary"]
    assert "300 of 300 successful queries reasoned" in summary and "TTFA p99" in summary
    # TTFA's curve lies to the right of TTFT's: the answer began seconds after the first token.
    ttfa, ttft = (_points(s) for s in sorted(page.polylines["ttfa-cdf"], key=lambda s: s["data-series"]))
    assert ttfa[:, 0].min() > ttft[:, 0].max()


def test_a_run_without_reasoning_has_no_reasoning_section(tmp_path: Path) -> None:
    make_run(tmp_path, n=100)
    html_text = render_report(load_report_inputs(tmp_path))
    assert 'id="reasoning"' not in html_text and "ttfa-cdf" not in html_text

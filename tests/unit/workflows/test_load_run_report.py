"""The report of a run beside LoadGen (``--load``), from real runs against the spawned sim.

The page says first that the run is not an MLPerf LoadGen run, with its load and validity basis; then its
client's dispatch lag (client-limited in red, with the figure), its sessions (TTFT by turn index as a table
and a chart, session latency, tool calls, cut sessions) and the SUT's prefix-cache hits. A LoadGen run's
page has none of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cli import main
from loadgen_harness import load_query_records, load_results
from tests.load_runs import load_run, plant_lag, sessions_run
from tests.unit.workflows.test_report import _parse, make_run
from workflows._charts import _fmt
from workflows._report import load_report_inputs, render_report

LOAD_IDS = ("load-note", "load-spec", "dispatch-lag", "sessions", "prefix-cache", "turn-table", "client-limited")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("load-report")
    return {
        "sessions": sessions_run(out, "sess"),
        "rate": load_run(out, "rate", "rate:20:constant"),
    }


def test_the_page_says_first_it_is_no_loadgen_run_with_its_load_and_basis(runs: dict[str, Path]) -> None:
    d = runs["rate"]
    res = load_results(d)
    assert res.load is not None
    html_text = render_report(load_report_inputs(d))
    page = _parse(html_text)
    assert "not an MLPerf LoadGen run" in page.text_by_id["load-note"]
    assert html_text.index('id="load-note"') < html_text.index('id="validity"')  # before the verdict
    spec = page.text_by_id["load-spec"]
    assert "rate:20:constant" in spec and "target rate (QPS)" in spec and "constant" in spec
    assert res.load.validity_basis and res.load.validity_basis in page.text_by_id["load-validity-basis"]
    assert "target QPS" in page.text_by_id["figures"] and "scheduled QPS" not in page.text_by_id["figures"]
    assert "percentiles" in page.text_by_id and "loadgen-percentiles" not in page.text_by_id
    assert "target" in {s["data-series"] for s in page.polylines["qps"]}  # the rate's own target line
    assert "Effective LoadGen settings" not in html_text and "Run settings" in html_text


def test_dispatch_lag_section_shows_the_figures_their_cdf_and_bound(runs: dict[str, Path]) -> None:
    d = runs["rate"]
    lag = load_results(d).dispatch_lag
    assert lag is not None and not lag.client_limited
    page = _parse(render_report(load_report_inputs(d)))
    row = page.text_by_id["dispatch-lag-table"]
    assert str(lag.n_queries) in row and _fmt(lag.bound_ms) in row
    assert "kept its schedule" in page.text_by_id["client-on-schedule"]
    assert "client-limited" not in page.text_by_id
    (line,) = page.polylines["dispatch-lag-cdf"]
    rec = load_query_records(d)
    assert int(line["data-n"]) == int((rec["sent_ns"] >= 0).sum()) == lag.n_queries
    assert page.limits["dispatch-lag-cdf"] == lag.bound_ms


def test_a_client_limited_run_is_flagged_in_red_with_the_figure(runs: dict[str, Path], tmp_path: Path) -> None:
    d = tmp_path / "limited"
    shutil.copytree(runs["rate"], d)
    plant_lag(d, p99_ms=42.5, bound_ms=10.0)
    html_text = render_report(load_report_inputs(d))
    page = _parse(html_text)
    flagged = page.text_by_id["client-limited"]
    assert "dispatch lag p99 42.5 ms > 10 ms bound" in flagged
    assert 'id="client-limited" style="color:#b3262c' in html_text
    assert page.text_by_id["verdict"] == "INVALID"
    assert "client-limited: dispatch lag p99 42.5 ms" in page.text_by_id["validity-reasons"]


def test_sessions_show_ttft_by_turn_session_latency_tool_calls_and_cache_hits(runs: dict[str, Path]) -> None:
    d = runs["sessions"]
    res = load_results(d)
    s, cache = res.sessions, res.prefix_cache
    assert s is not None and cache is not None and len(s.turns) == 3
    page = _parse(render_report(load_report_inputs(d)))
    figures = page.text_by_id["session-figures"]
    assert s.tool_calls > 0 and f"toolcalls{s.tool_calls}" in figures.replace(" ", "")
    assert "session latency p99" in figures and "cut: later turns fell after the run's end" in figures
    table = page.text_by_id["turn-table"]
    for t in s.turns:
        assert t.ttft_ms.p50 is not None
        assert f"{t.ttft_ms.p50:.1f}" in table or f"{t.ttft_ms.p50:.3g}" in table
    # TTFT by turn as a chart: one point per turn index for p50 and p99.
    lines = {x["data-series"]: int(x["data-n"]) for x in page.polylines["turn-ttft"]}
    assert lines == {"TTFT p50": 3, "TTFT p99": 3}
    # The sim's prefix cache served later turns' history: overall and by turn.
    assert cache.cached_tokens > 0 and cache.hit_fraction is not None
    assert f"{cache.hit_fraction:.1%}" in page.text_by_id["prefix-cache-summary"]
    assert "prompt tokens cached" in table
    by_turn = [t.cached_fraction for t in s.turns]
    assert by_turn[0] is not None and by_turn[-1] is not None and by_turn[-1] > by_turn[0]
    assert f"{by_turn[-1]:.1%}" in table


def test_a_run_without_sessions_or_cache_hits_says_so_and_the_cli_writes_it(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    assert main(["report", str(runs["rate"]), "-o", str(out)]) == 0
    page = _parse(out.read_text())
    assert "sessions" not in page.text_by_id and "turn-table" not in page.text_by_id
    assert "no prefix-cache hit" in page.text_by_id["prefix-cache-none"]


def test_a_loadgen_run_page_has_no_load_section(tmp_path: Path) -> None:
    rec = make_run(tmp_path, n=300)
    assert (rec["session"] == -1).all()
    html_text = render_report(load_report_inputs(tmp_path))
    page = _parse(html_text)
    assert not set(LOAD_IDS) & set(page.text_by_id)
    assert "not an MLPerf LoadGen run" not in html_text and "Effective LoadGen settings" in html_text
    assert "loadgen-percentiles" in page.text_by_id and "dispatch-lag-cdf" not in page.plots
    assert np.isfinite(rec["issue_ns"]).all()

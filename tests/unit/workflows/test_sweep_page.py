"""What a sweep shows: the console rows and the page's curves, points, limits, best point and knee."""

from __future__ import annotations

import re

from tests.unit.workflows.test_sweep_decisions import pt
from workflows._sweep import SweepResult, choose_best, detect_saturation
from workflows._sweep_page import format_row, render_sweep_page, table_header


def _result() -> SweepResult:
    points = [pt(1, 100, 20), pt(2, 190, 25), pt(4, 350, 40), pt(8, 360, 900, meets=False)]
    for p in points:
        p.per_user_output_tokens_per_s = (p.output_tokens_per_s or 0) / (p.concurrency or 1)
        p.tpot_p99_ms = 10.0 + (p.concurrency or 0)
    best, why = choose_best(points)
    return SweepResult(
        sweep_id="s1",
        kind="concurrency",
        benchmark="embedded",
        point_duration_s=2.0,
        slo="embedded's limits",
        ttft_limit_ms=500.0,
        tpot_limit_ms=50.0,
        points=points,
        best=best,
        best_reason=why,
        saturation=detect_saturation(points),
    )


def test_the_page_draws_four_curves_with_the_best_point_ringed_and_the_knee_marked() -> None:
    result = _result()
    page = render_sweep_page(result)
    plots = re.findall(r'<svg class="plot" id="plot-([\w-]+)"', page)
    assert plots == ["ttft", "tpot", "per-user", "load"]
    assert 'id="verdict">best: concurrency:4 (' in page
    # The ring sits on the best point, on every curve.
    rings = re.findall(r'<circle class="best" data-label="([^"]+)" cx="([\d.]+)" cy="([\d.]+)"', page)
    assert len(rings) == 4 and {r[0] for r in rings} == {"04-concurrency-4"}
    dots = re.findall(r'<circle class="point" data-label="04-concurrency-4"[^>]* cx="([\d.]+)" cy="([\d.]+)"', page)
    assert [(cx, cy) for _, cx, cy in rings] == dots
    # The point over the SLO is red on every curve.
    over = re.findall(r'data-label="08-concurrency-8" data-verdict="misses SLO"[^>]*fill="#b3262c"', page)
    assert len(over) == 4
    assert re.findall(r'class="limit" data-limit="([\d.]+)"', page) == ["500", "50"]
    assert re.findall(r'<line class="marker" data-x="([\d.]+)"', page) == ["4"]  # the knee, on throughput vs load
    assert "knee c=4" in page
    assert page.count("<tr>") == 1 + len(result.points) and "04-concurrency-4 (best)" in page


def test_an_interrupted_sweep_says_so_on_top() -> None:
    result = _result()
    result.state = "interrupted"
    assert 'class="verdict interrupted" id="verdict">INTERRUPTED: best: concurrency:4' in render_sweep_page(result)


def test_console_rows_line_up_under_the_header_and_say_why_a_point_misses() -> None:
    result = _result()
    head = table_header("concurrency")
    rows = [format_row(p) for p in result.points]
    assert head.index("SLO") == rows[0].index("meets SLO")
    assert rows[3].endswith("misses SLO (TTFT p99 900 ms > 500 ms)")
    assert rows[0].split()[:5] == ["01-concurrency-1", "c=1", "10", "100", "100"]

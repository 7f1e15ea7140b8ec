"""What find-peak prints: a plan with its expected time before anything runs, bound lines with only the
figures their scenario measures, and a peak written as the run lines write its confirm run's rate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.workflows.test_find_peak_search import ModelSearch, _cfg
from workflows._find_peak import FindPeakConfig, FindPeakResult, Probe, plan_line


def test_the_plan_and_its_expected_time_come_before_any_run(tmp_path: Path) -> None:
    line = plan_line(FindPeakConfig(out_dir=tmp_path))
    assert line.startswith("find-peak: 2 bound runs of 3 s, about 5 Server probes (at most 10) of 5-30 s")
    lo, hi = (float(x) for x in re.findall(r"expect ([\d.]+) min to ([\d.]+) min", line)[0])
    # 2 x (3 + 1.5) + 5 x (5 + 1.5) + (10 + 1.5) s at the quickest; 30 s probes and a 120 s confirm (the quick
    # preset at 1 qps) at the slowest.
    assert lo == pytest.approx(0.9, abs=0.05) and hi == pytest.approx(4.8, abs=0.05)
    assert "the search stops probing after 30 min" in line
    given = plan_line(FindPeakConfig(out_dir=tmp_path, preset="submission", confirm_duration_s=120.0))
    assert "confirm run of at least 120 s (submission preset, --confirm-duration)" in given


def test_the_estimate_line_says_how_much_is_left(tmp_path: Path) -> None:
    lines: list[str] = []
    search = ModelSearch(_cfg(tmp_path), probe_capacity=28.3, confirm_capacity=28.3)
    search.echo = lines.append
    search.run(500.0, 50.0)
    estimate = next(line for line in lines if line.startswith("estimate:"))
    assert re.search(r"next about 5 probes of \d+ s and a \d+ s confirm run: ~[\d.]+ min more$", estimate), estimate


def test_bound_lines_show_only_the_figures_their_scenario_has() -> None:
    offline = Probe(kind="offline", completed_qps=97.1, latency_p50_ms=1067.1, ttft_p99_ms=None).line()
    assert offline == "bound   Offline: 97.1 samples/s"  # was: "..., latency p50 1067.1 ms, TTFT p99 - ms"
    single = Probe(kind="singlestream", completed_qps=15.3, latency_p50_ms=64.7, ttft_p99_ms=11.6).line()
    assert single == "bound   SingleStream: 15.3 samples/s, latency p50 64.7 ms, TTFT p99 11.6 ms"
    probe = Probe(kind="probe", qps=30.0, duration_s=10.0, verdict="ERRORS", completed_qps=20.0, n_errors=3).line()
    assert " - " not in probe and "TTFT" not in probe and probe.endswith("completed 20.0 qps, 3 errors")


def test_the_peak_is_written_as_its_confirm_run_writes_its_rate(tmp_path: Path) -> None:
    """A slow SUT's peak (9.94 qps) was printed "9.9", under its confirm run's "9.94"; and LoadGen's drawn
    schedule (10.3 qps, Poisson arrivals) was shown as "completed 9.8/10.3 qps", a rate above the peak."""
    confirm = Probe(
        kind="confirm",
        qps=9.94,
        duration_s=120.0,
        verdict="PASS",
        valid=True,
        scheduled_qps=10.3,
        completed_qps=9.8,
        ttft_p99_ms=812.0,
        tpot_p99_ms=31.0,
        log_dir=str(tmp_path / "p" / "probes" / "09-confirm"),
    )
    result = FindPeakResult(peak_qps=9.94, confirmed=True, bracket=(9.94, 10.2), trace=[confirm], evidence=confirm)
    (peak,) = result.summary_lines()
    run_rate = re.match(r"confirm Server (\S+) qps", confirm.line())
    assert run_rate is not None and f"peak {run_rate[1]} qps" in peak
    assert "completed 9.8 of the 10.3 qps LoadGen scheduled" in confirm.line()
    assert "LoadGen scheduled 10.3 qps" in peak and "TTFT p99 812.0 ms" in peak
    for line in (peak, confirm.line()):
        assert not re.search(r"\d/\d", line)


def test_a_search_without_a_confirmed_rate_says_so(tmp_path: Path) -> None:
    result = FindPeakResult(
        peak_qps=None, confirmed=False, bracket=(9.94321, None), confirm_failures=["9.9 qps: INVALID for 120 s (x)"]
    )
    assert result.summary_lines() == [
        "find-peak: confirm run failed at 9.9 qps: INVALID for 120 s (x)",
        "find-peak: no VALID Server rate confirmed (probes passed up to 9.94 qps, failed from - qps; "
        "every confirm run failed, see above)",
    ]

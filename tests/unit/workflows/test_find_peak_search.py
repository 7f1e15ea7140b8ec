"""find-peak's search and confirmation on a modelled SUT (no LoadGen): confirm length, stepping down, output.

The model: a probe passes up to ``probe_capacity`` qps; on the loaded machine of the planted fault a
full-length run only passes up to ``confirm_capacity`` (lower), and any run shorter than the probes
at a rate above ``confirm_capacity`` fails early stopping for lack of queries.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workflows._find_peak import FindPeakConfig, FindPeakResult, PeakSearch, Probe, preset_duration_s
from workflows._peak_chart import render_peak_report


class ModelSearch(PeakSearch):
    def __init__(self, cfg: FindPeakConfig, probe_capacity: float, confirm_capacity: float) -> None:
        super().__init__(cfg, "127.0.0.1:1", echo=lambda _line: None)
        self.probe_capacity, self.confirm_capacity = probe_capacity, confirm_capacity
        self.durations: list[tuple[str, float, float]] = []  # (kind, qps, effective duration)

    def _run(self, scenario: str, kind, qps: float | None, duration: float | None) -> Probe:  # type: ignore[no-untyped-def, override]
        if kind == "offline":
            p = Probe(kind=kind, completed_qps=40.0, latency_p50_ms=200.0, ttft_p99_ms=30.0)
        elif kind == "singlestream":
            p = Probe(kind=kind, completed_qps=5.0, latency_p50_ms=200.0, ttft_p99_ms=20.0)
        else:
            assert qps is not None
            eff = duration if duration is not None else preset_duration_s(self.cfg.benchmark, self.cfg.preset, qps)
            assert eff is not None
            self.durations.append((kind, qps, eff))
            cap = self.probe_capacity if kind == "probe" else self.confirm_capacity
            ok = qps <= cap
            ttft = 100.0 + 300.0 * qps / cap if ok else 2000.0
            p = Probe(kind=kind, qps=qps, duration_s=eff, scheduled_qps=qps, completed_qps=qps, ttft_p99_ms=ttft)
            p.tpot_p99_ms = 20.0
            p.verdict = "PASS" if ok else "INVALID"
            p.valid = ok
            p.kept_up = True
            if not ok:
                p.reasons = ["LoadGen: INVALID", "performance constraints (latency limits) not met"]
            p.log_dir = str(self.probes_dir / f"{len(self.trace) + 1:02d}-{kind}" / "Server" / "performance")
        self.trace.append(p)
        return p


def _cfg(tmp_path: Path, **kw: object) -> FindPeakConfig:
    return FindPeakConfig(out_dir=tmp_path, run_id="peak", resolution=0.03, **kw)  # type: ignore[arg-type]


def test_confirm_runs_are_never_shorter_than_the_probes(tmp_path: Path) -> None:
    search = ModelSearch(_cfg(tmp_path), probe_capacity=28.3, confirm_capacity=28.3)
    result = search.run(500.0, 50.0)
    assert result.confirmed and result.peak_qps is not None
    longest_probe = max(d for kind, _, d in search.durations if kind == "probe")
    confirms = [d for kind, _, d in search.durations if kind == "confirm"]
    assert confirms and min(confirms) >= longest_probe
    # At this rate the quick preset alone would be shorter than the probes (600 vs 800 queries).
    assert preset_duration_s("embedded", "quick", result.peak_qps) < longest_probe  # type: ignore[operator]


def test_a_failed_confirmation_steps_down_and_reports_the_best_confirmed_rate(tmp_path: Path) -> None:
    search = ModelSearch(_cfg(tmp_path), probe_capacity=28.3, confirm_capacity=25.0)
    result = search.run(500.0, 50.0)
    assert result.confirmed and result.peak_qps is not None
    assert result.peak_qps <= 25.0 and result.peak_qps > 0.8 * 25.0
    assert result.confirm_failures and all("INVALID" in f and "latency limits" in f for f in result.confirm_failures)
    first_rate = float(result.confirm_failures[0].split(" qps")[0])
    assert first_rate > 25.0
    lo, hi = result.bracket
    assert lo == pytest.approx(result.peak_qps, abs=1e-3) and hi is not None and lo < hi <= first_rate
    assert result.evidence is not None and result.evidence.kind == "confirm"


def test_no_confirmable_rate_leaves_no_peak_but_the_reasons(tmp_path: Path) -> None:
    search = ModelSearch(_cfg(tmp_path, max_confirms=2), probe_capacity=28.3, confirm_capacity=5.0)
    result = search.run(500.0, 50.0)
    assert result.peak_qps is None and not result.confirmed
    assert len(result.confirm_failures) == 2


def test_runs_are_grouped_under_the_find_peak_directory(tmp_path: Path) -> None:
    search = ModelSearch(_cfg(tmp_path), probe_capacity=28.3, confirm_capacity=28.3)
    assert search.probes_dir == tmp_path / "peak" / "probes"
    cfg = search.cfg
    # What _run hands to the harness: every run's directory is below OUT/<run-id>/probes/.
    from loadgen_harness import RunConfig

    run_cfg = RunConfig(scenario="Server", out_dir=search.probes_dir, run_id="03-probe")
    assert run_cfg.log_dir("03-probe").is_relative_to(Path(cfg.out_dir) / "peak" / "probes")


def test_cli_prints_rounded_numbers_and_the_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import workflows
    from cli import main

    def fake(cfg: FindPeakConfig, echo: object = print) -> FindPeakResult:
        return FindPeakResult(
            peak_qps=None,
            confirmed=False,
            bracket=(28.312345678, 31.98765432),
            confirm_failures=["28.3 qps: INVALID for 28 s (LoadGen: INVALID)"],
        )

    monkeypatch.setattr(workflows, "find_peak", fake)
    assert main(["find-peak", "--out", str(tmp_path), "--run-id", "p"]) == 1
    out = capsys.readouterr().out
    assert "28.312345678" not in out and "31.98765432" not in out
    assert "probes passed up to 28.3 qps, failed from 32.0 qps" in out
    assert "confirm run failed at 28.3 qps: INVALID for 28 s (LoadGen: INVALID)" in out


def test_sweep_chart_marks_each_run_the_limit_and_the_peak(tmp_path: Path) -> None:
    search = ModelSearch(_cfg(tmp_path), probe_capacity=28.3, confirm_capacity=25.0)
    result = search.run(500.0, 50.0)
    result.out_dir = str(tmp_path / "peak")
    page = render_peak_report(result)
    runs = [p for p in result.trace if p.kind in ("probe", "confirm")]
    assert page.count('class="point"') == 2 * len(runs)  # TTFT and TPOT charts
    assert page.count('data-kind="confirm"') == 2 * sum(p.kind == "confirm" for p in runs)
    assert 'class="limit" data-limit="500"' in page and 'class="limit" data-limit="50"' in page
    assert f'class="peak" data-qps="{result.peak_qps:.4g}"' in page
    # Overloaded probes (2 s TTFT) are clipped to the top edge at 3x the limit, not stretching the axis.
    assert 'data-p99-ms="2000" data-clipped="1"' in page
    assert "probes/" in page and str(tmp_path) not in page.split('id="trace-table"')[1]

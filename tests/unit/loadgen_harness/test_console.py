"""Console output: the final summary and the live progress line."""

from __future__ import annotations

import io
import threading

import pytest

from loadgen_harness import RunResult, _console, format_summary
from loadgen_harness._console import ProgressTicker, progress_printer
from loadgen_harness._results import Percentiles


def _res(**kw: object) -> RunResult:
    base: dict[str, object] = {
        "run_id": "r1",
        "scenario": "Server",
        "mode": "performance",
        "benchmark": "embedded",
        "preset": "quick",
        "log_dir": "/tmp/out/r1/Server/performance",
    }
    base.update(kw)
    return RunResult.model_validate(base)


def test_summary_valid_shows_rates_and_percentiles() -> None:
    text = format_summary(
        _res(
            valid=True,
            completed_qps=11.6,
            scheduled_qps=11.9,
            tokens_per_second=1363.0,
            ttft_ms=Percentiles(p50=20.7, p90=34.2, p99=52.8),
            tpot_ms=Percentiles(p50=11.5, p90=12.1, p99=12.8),
            n_queries=595,
        )
    )
    assert "): VALID" in text
    assert "not submittable" in text
    assert "TTFT     p50 20.70  p90 34.20  p99 52.80 ms" in text
    assert "TPOT     p50 11.50  p90 12.10  p99 12.80 ms" in text
    assert "QPS completed 11.60 / scheduled 11.90" in text
    assert "results: /tmp/out/r1/Server/performance/results.json" in text


def test_summary_invalid_lists_reasons_and_errors() -> None:
    text = format_summary(
        _res(
            valid=False,
            validity_reasons=["LoadGen: INVALID", "3 of 10 queries failed (UNAVAILABLE: 3)"],
            n_queries=10,
            n_errors=3,
            errors_by_status={"UNAVAILABLE": 3},
        )
    )
    assert "): INVALID" in text
    assert "  reason: LoadGen: INVALID" in text
    assert "errors 3 (UNAVAILABLE 3)" in text


def test_summary_shows_warnings_and_a_reasoning_models_split() -> None:
    text = format_summary(
        _res(
            valid=True,
            n_queries=40,
            warnings=["reasoning_scale 0.1: the SUT shortens its reasoning to 10% of deepseek-r1's length"],
            reasoning={
                "n_queries": 40,
                "n_with_reasoning": 40,
                "n_without_answer": 2,
                "reasoning_tokens": {"mean": 382.0, "p50": 342.0, "p90": 700.0, "p99": 1001.0, "max": 1001},
                "answer_tokens": {"mean": 28.0, "p50": 24.0, "p90": 60.0, "p99": 80.0, "max": 80},
                "reasoning_fraction": 0.93,
                "ttfa_ms": {"p50": 3550.0, "p90": 6748.5, "p99": 10272.0},
            },
        )
    )
    assert "  warning: reasoning_scale 0.1: the SUT shortens its reasoning" in text
    assert "TTFA     p50 3550.00  p90 6748.50  p99 10272.00 ms" in text
    assert "reasoning tokens mean 382 (p50 342, p99 1,001, max 1,001), 93% of output tokens" in text
    assert "answer tokens    mean 28 (p50 24, p99 80, max 80)" in text
    assert "2 of 40 queries ended inside their reasoning (no answer)" in text
    assert "TTFA" not in format_summary(_res(valid=True, n_queries=40))


class _Counter:
    """Stands in for the bridge: only its ``completed`` count is read."""

    completed = 0


def test_progress_ticker_reports_elapsed_completed_and_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_console, "PROGRESS_INTERVAL_S", 0.05)
    seen: list[tuple[float, int, float]] = []
    got = threading.Event()
    src = _Counter()

    def cb(elapsed: float, completed: int, rate: float) -> None:
        seen.append((elapsed, completed, rate))
        if len(seen) >= 3:
            got.set()

    ticker = ProgressTicker(src, cb)
    ticker.start()
    for _ in range(20):
        src.completed += 5
        if got.wait(0.02):
            break
    got.wait(2)
    ticker.stop()
    assert len(seen) >= 3
    assert seen[-1][1] > 0 and seen[-1][0] > seen[0][0]
    buf = io.StringIO()
    progress_printer(buf)(12.34, 500, 41.5)
    assert buf.getvalue() == "\r     12.3 s  completed      500  rate      41.5/s "

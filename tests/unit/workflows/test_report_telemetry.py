"""The report's server side from constructed telemetry: the correlation line finds the queue depth past which
TTFT p99 rose, and says so only when it did; panels per canonical series; nothing without telemetry."""

from __future__ import annotations

import numpy as np

from loadgen_harness import CanonicalSeries, EnergyStats
from workflows._report_telemetry import TelemetryView, correlation_line, telemetry_panels, telemetry_section

T = np.arange(0.0, 20.0, 0.5)  # scrapes every 0.5 s over 20 s


def _view(queue: np.ndarray, ttft_of_queue: object, seed: int = 0) -> TelemetryView:
    """40 queries per second; each one's TTFT from the queue depth at its issue time."""
    rng = np.random.default_rng(seed)
    issue = np.sort(rng.uniform(0.0, 20.0, 800))
    q_at = np.interp(issue, T, queue)
    ttft = np.asarray([ttft_of_queue(q) for q in q_at]) * rng.uniform(0.9, 1.1, issue.size)  # type: ignore[operator]
    series = [
        CanonicalSeries("http://sut:1/metrics", "lpuperf", "queue_depth", T, queue),
        CanonicalSeries("http://sut:1/metrics", "lpuperf", "power_watts", T, np.full(T.size, 1500.0)),
        CanonicalSeries("http://sut:1/metrics", "lpuperf", "energy_joules", T, 1500.0 * T),
    ]
    return TelemetryView(
        series=series, targets=["http://sut:1/metrics"], interval_s=0.5, ttft_issue_s=issue, ttft_ms=ttft
    )


QUEUE = np.where(T < 10, 2.0, 30.0)  # the queue builds up half way


def test_ttft_that_follows_the_queue_is_named_with_its_threshold() -> None:
    line = correlation_line(_view(QUEUE, lambda q: 20.0 if q < 10 else 400.0))
    assert line.startswith("TTFT p99 rose from ") and "when queue depth exceeded 2 " in line
    lo, hi = (float(x) for x in line.split("rose from ")[1].split(" ms (")[0].split(" ms to "))
    assert 18 <= lo <= 23 and 380 <= hi <= 445


def test_ttft_that_ignores_the_queue_is_not_blamed_on_it() -> None:
    # Planted: the same queue, TTFT flat: no rise may be claimed.
    line = correlation_line(_view(QUEUE, lambda q: 50.0))
    assert line.startswith("TTFT p99 did not rise with queue depth")
    # And a TTFT that rises while the queue stays flat is not pinned on the queue either.
    flat = np.full(T.size, 3.0)
    assert correlation_line(_view(flat, lambda q: 50.0)).startswith("TTFT p99 did not rise")


def test_panels_order_and_counters_as_rates() -> None:
    plots = telemetry_panels(_view(QUEUE, lambda q: 20.0))
    ids = [p.split('data-plot="')[1].split('"')[0] for p in plots]
    assert ids == ["server-queue-depth", "server-power-watts", "server-energy-joules"]
    # The energy counter is drawn as its rate: 1500 W flat, not a growing total.
    pts = plots[2].split('class="series"')[1].split('points="')[1].split('"')[0].split()
    ys = {p.split(",")[1] for p in pts}
    assert len(ys) == 1


def test_section_is_absent_without_telemetry_and_shows_energy_with_it() -> None:
    assert telemetry_section(None, None, "") == ""
    e = EnergyStats(source="sim", window_s=4.0, joules=400.0, average_watts=100.0, joules_per_token=1.0)
    html = telemetry_section(_view(QUEUE, lambda q: 20.0), e, "")
    assert 'id="energy-table"' in html and "400.0 J" in html and 'id="correlation"' in html

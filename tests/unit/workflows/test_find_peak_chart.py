"""find-peak's sweep chart keeps the peak label inside the plot area, also for a peak at the highest rate
(the right edge, where the label used to run past the frame and get clipped)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from workflows._charts import _PAD_L, _PAD_R, _W
from workflows._find_peak import FindPeakResult, Probe
from workflows._peak_chart import render_peak_report, sweep_chart

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _result(peak: float, rates: list[float]) -> FindPeakResult:
    trace = [
        Probe(kind="confirm" if q == peak else "probe", qps=q, verdict="PASS", ttft_p99_ms=100.0 + q, tpot_p99_ms=20.0)
        for q in rates
    ]
    return FindPeakResult(
        peak_qps=peak, confirmed=True, bracket=(peak, None), trace=trace, ttft_limit_ms=500.0, tpot_limit_ms=50.0
    )


@pytest.mark.parametrize(("peak", "rates"), [(1234.5, [800.0, 1000.0, 1234.5]), (12.0, [12.0, 30.0, 40.0])])
def test_the_peak_label_is_placed_inside_the_frame(peak: float, rates: list[float]) -> None:
    svg = sweep_chart(_result(peak, rates))
    m = re.search(r'<text class="peak-label" x="([\d.]+)" y="[\d.]+" text-anchor="(\w+)"[^>]*>([^<]+)</text>', svg)
    assert m is not None, svg
    x, anchor, text = float(m[1]), m[2], m[3]
    # 7 px a character is wider than the 11 px font's: a generous bound.
    left, right = (x, x + 7 * len(text)) if anchor == "start" else (x - 7 * len(text), x)
    assert left >= _PAD_L and right <= _W - _PAD_R, (anchor, left, right, text)


_MEASURE = """<script>
window.addEventListener("load", () => {
  const out = [];
  for (const svg of document.querySelectorAll("svg.plot")) {
    const area = svg.querySelector("rect.area").getBBox();
    const label = [...svg.querySelectorAll("text")].find((t) => t.textContent.startsWith("peak "));
    if (!label) continue;
    const b = label.getBBox();
    out.push({left: b.x, right: b.x + b.width, area_left: area.x, area_right: area.x + area.width});
  }
  const pre = document.createElement("pre");
  pre.id = "measured";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (Debian package 'chromium')")
def test_chromium_draws_the_peak_label_inside_the_plot_area(tmp_path: Path) -> None:
    page = tmp_path / "find_peak.html"
    page.write_text(render_peak_report(_result(1234.5, [800.0, 1000.0, 1234.5])).replace("</body>", _MEASURE))
    assert CHROMIUM is not None
    chrome = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    chrome += ["--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}"]
    dom = subprocess.run(
        [*chrome, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    m = re.search(r'<pre id="measured">(.*?)</pre>', dom)
    assert m is not None, dom[-2000:]
    boxes = json.loads(m[1])
    assert len(boxes) == 2  # the TTFT and the TPOT chart
    for b in boxes:
        assert b["area_left"] <= b["left"] and b["right"] <= b["area_right"], b

"""End to end: a real Server run with ``--scrape`` against the embedded sim, ``lpuperf report`` on it, and the
page rendered by headless Chromium: the server-side panels (queue depth, batch occupancy, power) are in the
DOM with their points, drawn in the screenshot, and the energy table and correlation line are on the page.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_report_render import CHROMIUM, SERIES_BLUE, _chromium, _Dom, _pixels_near, _png_rgb

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium (Debian package 'chromium'; .ci/run installs it)"
)
SERVER_PLOTS = {"server-queue-depth", "server-running", "server-power-watts"}


@pytest.fixture(scope="module")
def scraped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    made = subprocess.run(
        [
            *(sys.executable, "-m", "cli", "run", "--qps", "40", "--duration", "5", "--max-new-tokens", "48"),
            *("--out", str(out), "--run-id", "scraped", "--metrics-linger", "0"),
            *("--scrape", "--scrape-interval", "0.5", "--no-record"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert made.returncode in (0, 1), made.stderr
    return out / "scraped" / "Server" / "performance"


def test_report_shows_server_panels_energy_and_correlation(scraped_run: Path, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    made = subprocess.run(
        [sys.executable, "-m", "cli", "report", str(scraped_run), "--out", str(page)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    text = page.read_text(encoding="utf-8")
    energy = json.loads((scraped_run / "results.json").read_text())["energy"]
    assert 'id="energy-table"' in text and f"{energy['joules']:,.1f} J" in text
    line = re.search(r'<p id="correlation">([^<]*)</p>', text)
    assert line is not None and "TTFT p99" in line.group(1) and "queue depth" in line.group(1)

    dom = _Dom()
    dom.feed(_chromium(tmp_path, "--dump-dom", page.as_uri()).stdout)
    assert set(dom.plots) >= SERVER_PLOTS, dom.plots
    for plot in SERVER_PLOTS:
        key = next(k for k in dom.points if k.startswith(plot + "/"))
        assert dom.points[key] >= 8, (key, dom.points[key])  # a scrape every 0.5 s over a 5 s run

    # Only the server-side panels shown: their lines are drawn (blue, the first series colour) ...
    shot_args = ["--window-size=1340,1800", "--force-device-scale-factor=0.5", "--hide-scrollbars"]
    only_server = tmp_path / "server.html"
    only_server.write_text(re.sub(r'<svg (?=class="plot" id="plot-(?!server-))', '<svg style="display:none" ', text))
    shot = tmp_path / "server.png"
    _chromium(tmp_path, *shot_args, f"--screenshot={shot}", only_server.as_uri())
    blue = _pixels_near(_png_rgb(shot), SERIES_BLUE)
    # ... and with them hidden too, nothing blue is left: the pixels above are the server panels'.
    none = tmp_path / "none.html"
    none.write_text(text.replace("<svg ", '<svg style="display:none" '))
    shot2 = tmp_path / "none.png"
    _chromium(tmp_path, *shot_args, f"--screenshot={shot2}", none.as_uri())
    assert blue > 120 and _pixels_near(_png_rgb(shot2), SERIES_BLUE) < 30, blue

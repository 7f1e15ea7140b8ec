"""End to end: a real short Server run, ``lpuperf report`` on its directory, and the page rendered by
headless Chromium. The DOM Chromium builds must hold every plot with its data points, and the
screenshot must show them: pixels in the plots' colours, which vanish when the plots are hidden.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium (Debian package 'chromium'; .ci/run installs it)"
)
PLOTS = {"ttft-cdf", "tpot-cdf", "e2e-cdf", "e2e-hist", "qps"}
SERIES_BLUE = (0x1F, 0x6F, 0xB4)  # the first series colour in workflows._report
SERIES_ORANGE = (0xD9, 0x66, 0x1A)  # the second ("completed" in the QPS plot)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True)


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.plots: list[str] = []
        self.points: dict[str, int] = {}
        self.bars = 0
        self.verdict = ""
        self._plot = ""
        self._in_verdict = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self._plot = a.get("data-plot", "")
            self.plots.append(self._plot)
        elif tag == "polyline":
            self.points[f"{self._plot}/{a.get('data-series')}"] = len(a.get("points", "").split())
        elif tag == "rect" and a.get("class") == "bar":
            self.bars += 1
        self._in_verdict = a.get("id") == "verdict"

    def handle_data(self, data: str) -> None:
        if self._in_verdict:
            self.verdict += data.strip()
            self._in_verdict = False


def _png_rgb(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) into an HxWx3 array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.int32)
    prev = np.zeros(width * bpp, dtype=np.int32)
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            cur = row
        elif kind == 1:  # Sub: a running sum per channel
            cur = np.cumsum(row.reshape(width, bpp), axis=0).reshape(-1) & 0xFF
        elif kind == 2:
            cur = (row + prev) & 0xFF
        else:  # Average and Paeth depend on the decoded byte to the left: plain Python lists are fastest
            r, up_row, c = row.tolist(), prev.tolist(), [0] * row.size
            for i in range(len(r)):
                left = c[i - bpp] if i >= bpp else 0
                up = up_row[i]
                if kind == 3:
                    c[i] = (r[i] + (left + up) // 2) & 0xFF
                    continue
                ul = up_row[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(up - ul), abs(left - ul), abs(left + up - 2 * ul)
                c[i] = (r[i] + (left if pa <= pb and pa <= pc else (up if pb <= pc else ul))) & 0xFF
            cur = np.array(c, dtype=np.int32)
        out[y], prev = cur, cur
    return out.reshape(height, width, bpp)[:, :, :3]


def _pixels_near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 24) -> int:
    return int(np.all(np.abs(img - np.array(rgb)) <= tol, axis=2).sum())


@pytest.fixture(scope="module")
def server_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 4 s Server run against the embedded sim SUT (spawned by the harness)."""
    from loadgen_harness import RunConfig, run_benchmark

    out = tmp_path_factory.mktemp("runs")
    res = run_benchmark(
        RunConfig(scenario="Server", qps=25, duration_s=4, max_new_tokens=32, out_dir=out, run_id="render")
    )
    return Path(res.log_dir)


def test_report_renders_with_plots_in_chromium(server_run: Path, tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "cli", "report", str(server_run), "--out", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    page = tmp_path / "r.html"
    assert made.stdout.strip() == f"wrote {page}"

    dom = _Dom()
    dom.feed(_chromium(tmp_path, "--dump-dom", page.as_uri()).stdout)
    assert set(dom.plots) == PLOTS
    assert dom.verdict in ("VALID", "INVALID")
    for cdf in ("ttft-cdf", "tpot-cdf", "e2e-cdf"):
        key = next(k for k in dom.points if k.startswith(cdf + "/"))
        assert dom.points[key] >= 50, (key, dom.points[key])  # 25 QPS x 4 s: one point per query
    assert dom.points["qps/completed"] >= 5 and dom.points["qps/issued"] >= 5
    assert dom.bars == 40

    # Half scale keeps the PNG small enough to decode quickly; the window (taller since the report gained
    # the verdict, goodput and limit lines) still holds every plot.
    shot_args = ["--window-size=1340,2600", "--force-device-scale-factor=0.5", "--hide-scrollbars"]
    shot = tmp_path / "report.png"
    _chromium(tmp_path, *shot_args, f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 10_000
    img = _png_rgb(shot)
    blue, orange = _pixels_near(img, SERIES_BLUE), _pixels_near(img, SERIES_ORANGE)
    assert blue > 1500 and orange > 60, (blue, orange)  # about 5000 and 200 seen

    # Control: the same page with its plots hidden has none of those pixels, so the count above
    # really comes from the drawn plots.
    hidden = tmp_path / "hidden.html"
    hidden.write_text(page.read_text(encoding="utf-8").replace("<svg ", '<svg style="display:none" '))
    shot2 = tmp_path / "hidden.png"
    _chromium(tmp_path, *shot_args, f"--screenshot={shot2}", hidden.as_uri())
    img2 = _png_rgb(shot2)
    assert _pixels_near(img2, SERIES_BLUE) < 30 and _pixels_near(img2, SERIES_ORANGE) < 30

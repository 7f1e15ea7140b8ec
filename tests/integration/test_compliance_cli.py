"""``lpuperf compliance test06`` end to end in a subprocess: embedded sim SUT, real LoadGen pass."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _lpuperf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from cli import main; raise SystemExit(main())", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_test06_cli_on_a_planted_fault_lands_in_the_submission_layout(tmp_path: Path) -> None:
    proc = _lpuperf(
        "compliance", "test06", "--artifact", "sim-instant", "--fault", "duplicate_trailing_eos",
        "--scenario", "Server", "--qps", "400", "--out", str(tmp_path), "--run-id", "r1",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    t06 = tmp_path / "r1" / "Server" / "TEST06"
    assert (t06 / "verify_accuracy.txt").read_text() == (
        "First token check pass: True\n"
        "EOS check pass: False\n"
        "Sample length check pass: True\n"
        "TEST06 verification failed\n"
    )
    assert proc.stdout.startswith((t06 / "verify_accuracy.txt").read_text())
    assert (t06 / "accuracy" / "mlperf_log_accuracy.json").is_file() and (t06 / "audit.config").is_file()
    strict = json.loads((t06 / "strict_report.json").read_text())
    assert {c["name"] for c in strict["checks"] if c["status"] == "fail"} == {"strict_eos"}
    # The gate reads the same reports: `passed` and a one-line `message`.
    report = json.loads((t06 / "test06_report.json").read_text())
    assert report["passed"] is False and report["message"].startswith("TEST06 FAIL: eos: FAIL")
    # The LoadGen pass itself is kept apart from the run id's ordinary performance directory.
    assert (tmp_path / "r1" / "TEST06" / "Server" / "performance" / "queries.npz").is_file()


def test_offline_skips_the_first_token_line_but_strict_still_catches_the_stream(tmp_path: Path) -> None:
    proc = _lpuperf(
        "compliance", "test06", "--artifact", "sim-instant", "--fault", "wrong_first_token",
        "--scenario", "Offline", "--out", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    t06 = tmp_path / "compliance" / "Offline" / "TEST06"  # the default run id
    # No directory name twice in a row (the default run id once gave compliance/compliance/).
    for p in tmp_path.rglob("*"):
        parts = p.relative_to(tmp_path).parts
        assert all(a != b for a, b in itertools.pairwise(parts)), p
    assert (t06 / "verify_accuracy.txt").read_text() == (
        "First token check pass: Skipped\n"
        "EOS check pass: True\n"
        "Sample length check pass: True\n"
        "TEST06 verification complete\n"
    )
    strict = json.loads((t06 / "strict_report.json").read_text())
    assert {c["name"] for c in strict["checks"] if c["status"] == "fail"} == {"stream_matches_output"}
    assert "audit:" not in proc.stdout  # Offline's effective settings are read as Offline reports them

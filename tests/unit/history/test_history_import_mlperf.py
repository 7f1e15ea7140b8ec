"""``history import`` of a published MLPerf tree counts what it stores.

The tree (written here, in MLPerf's layout) holds llama2-70b-99 and llama2-70b-99.9 with byte-identical
logs, as a submitter who ran once for both accuracy tiers publishes them, and compliance folders with
LoadGen logs of their own (TEST01 and TEST04 carry performance runs, TEST06 a verification file).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from cli import main
from scenarios import MLPERF_ROUND_SEEDS
from tests.mlperf_tree import SUBMITTER, SYSTEM, write_tree

MODELS = (("llama2-70b-99", ("Server", "Offline"), True), ("llama2-70b-99.9", ("Server", "Offline"), True))


def _tree(tmp: Path, test01_verdict: str = "TEST PASS") -> Path:
    root = write_tree(tmp / "published", MLPERF_ROUND_SEEDS["v6.0"].model_dump(), MODELS, code_folder="src")
    results = root / "closed" / SUBMITTER / "results" / SYSTEM
    for scen in (results / "llama2-70b-99" / "Server", results / "llama2-70b-99.9" / "Server"):
        for test in ("TEST01", "TEST04"):
            run = scen / test / "performance" / "run_1"
            run.mkdir(parents=True)
            shutil.copy(scen / "performance" / "run_1" / "mlperf_log_detail.txt", run / "mlperf_log_detail.txt")
            (scen / test / "verify_performance.txt").write_text(f"performance delta 0.2 %\n{test01_verdict}\n")
    return root


def _rows(store: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(store / "lpuperf.db") as conn:
        return conn.execute("SELECT benchmark, scenario, mode FROM records").fetchall()


def test_import_stores_one_record_per_result_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path)
    store = tmp_path / "results"
    assert main(["history", "import", str(root), "--out", str(store)]) == 0
    out = capsys.readouterr().out
    rows = _rows(store)
    # 2 benchmark dirs x 2 scenarios x (performance + accuracy); no TEST01/TEST04 record, nothing "unknown".
    assert len(rows) == 8 and not any(b == "unknown" for b, _, _ in rows), rows
    assert f"{len(rows)} run(s) stored" in out and "(8 new, 0 already there)" in out, out
    # 2 Server runs carry TEST01, TEST04 and TEST06 (6), 2 Offline runs TEST06 (2).
    assert "8 compliance result(s) attached" in out, out
    assert main(["history", "import", str(root), "--out", str(store)]) == 0
    again = capsys.readouterr().out
    assert len(_rows(store)) == 8 and "8 run(s) stored" in again and "(0 new, 8 already there)" in again


def test_compliance_verdicts_are_on_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _tree(tmp_path, test01_verdict="TEST FAIL")
    store = tmp_path / "results"
    assert main(["history", "import", str(root), "--out", str(store)]) == 0
    capsys.readouterr()
    assert main(["history", "list", "--out", str(store), "--json", "--mode", "performance"]) == 0
    runs = json.loads(capsys.readouterr().out)
    server = [r for r in runs if r["scenario"] == "Server"]
    assert len(server) == 2
    for run in server:
        verdicts = {v["name"]: v["passed"] for v in run["verdicts"] if v["kind"] == "compliance"}
        # Planted: TEST01's and TEST04's verification files say TEST FAIL.
        assert verdicts == {"TEST01": False, "TEST04": False, "TEST06": True}, run["verdicts"]

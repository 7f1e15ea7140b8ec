"""Energy in the run store: a run's energy figures are recorded with their units, trend over builds, and a build
that spends more energy per token than the last good one is a regression (history regressions and
``gate --against last-good``), while an unchanged build and a run that measured no energy are not."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from cli import main
from history import metric_unit
from loadgen_harness import QUERIES_FILE, EnergyStats, RunResult
from tests.history_runs import manifest, write_run


def _with_energy(run_dir: Path, joules_per_token: float) -> Path:
    """Give a written run the energy block a SUT spending ``joules_per_token`` per output token reports."""
    rec = np.load(run_dir / QUERIES_FILE)["records"]
    path = run_dir / "results.json"
    res = RunResult.model_validate_json(path.read_text())
    tokens = int(rec["n_tokens"].sum())
    joules = joules_per_token * tokens
    res.energy = EnergyStats(
        source="sim", window_s=res.duration_s, joules=joules, average_watts=joules / res.duration_s,
        n_queries=res.n_queries, output_tokens=tokens, joules_per_query=joules / res.n_queries,
        joules_per_token=joules_per_token, tokens_per_joule=1 / joules_per_token,
        queries_per_second_per_watt=res.n_queries / joules,
    )  # fmt: skip
    stat = path.stat()
    path.write_text(res.model_dump_json(indent=2) + "\n")
    os.utime(path, (stat.st_atime, stat.st_mtime))  # keep the run's age: the store orders by it
    return run_dir


@pytest.fixture
def builds(tmp_path: Path) -> dict[str, Path]:
    """Two builds at 0.5 J per token, a build at 0.75, and one that measured no energy; oldest first."""
    out = tmp_path / "results"
    plan = [("b1", 0.5), ("b2", 0.5), ("b3-hungry", 0.75), ("b4-unmetered", None)]
    runs = {}
    for i, (name, jpt) in enumerate(plan):
        d = write_run(out, f"run-{name}", manifest(name), n_queries=400, age_s=100.0 - 10 * i)
        runs[name] = d if jpt is None else _with_energy(d, jpt)
    return runs


def _history(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["history", *argv])
    return rc, capsys.readouterr().out


def test_energy_is_recorded_trended_and_a_hungrier_build_regresses(
    store_url: str, builds: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", store_url]
    rc, out = _history(capsys, "import", str(builds["b1"].parents[2]), *db)
    assert rc == 0 and "4 run(s) stored" in out
    rc, out = _history(capsys, "show", "run-b3-hungry", *db, "--json")
    metrics = {m["name"]: m for m in json.loads(out)["metrics"]}
    assert metrics["energy.joules_per_token"]["value"] == pytest.approx(0.75)
    assert metrics["energy.joules_per_token"]["unit"] == "J/token" and metrics["energy.average_watts"]["unit"] == "W"
    assert metrics["energy.tokens_per_joule"]["unit"] == metric_unit("energy.tokens_per_joule") == "tok/J"
    rc, out = _history(capsys, "trend", "energy.joules_per_token", "--by", "build", *db)
    rows = out.strip().splitlines()[1:]
    assert rc == 0 and [r.split()[5] for r in rows] == ["b1", "b2", "b3-hungry"]  # the unmetered run has none
    assert "(J/token)" in out.splitlines()[0]
    rc, out = _history(capsys, "mark-good", "run-b1", *db)
    rc, out = _history(capsys, "regressions", *db)
    lines = out.strip().splitlines()
    hungry = next(line for line in lines if line.startswith("lpu-llm build b3-hungry"))
    assert "vs good build b1" in hungry and "no regression" not in hungry
    flagged = [line for line in lines if line.startswith("  REGRESSION")]
    assert any("joules per token regressed 50%" in line for line in flagged), flagged
    assert not any("TTFT" in line or "TPOT" in line for line in flagged)  # the same records: only energy moved
    same = next(line for line in lines if line.startswith("lpu-llm build b2"))
    assert same.endswith("no regression")
    unmetered = next(line for line in lines if line.startswith("lpu-llm build b4-unmetered"))
    assert unmetered.endswith("no regression")


def test_gate_against_last_good_fails_on_energy(builds: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = builds["b1"].parents[2]
    assert main(["history", "import", str(root), "--out", str(root)]) == 0
    main(["history", "mark-good", "run-b1", "--out", str(root)])
    capsys.readouterr()
    assert main(["gate", "--against", "last-good", str(builds["b3-hungry"])]) == 1
    assert "joules per token regressed 50%" in capsys.readouterr().out
    assert main(["gate", "--against", "last-good", str(builds["b2"])]) == 0


def test_history_report_plots_energy_per_token_and_rings_the_hungrier_build(
    builds: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = builds["b1"].parents[2]
    main(["history", "import", str(root), "--out", str(root)])
    main(["history", "mark-good", "run-b1", "--out", str(root)])
    capsys.readouterr()
    assert main(["history", "report", "--out", str(root)]) == 0
    page = (root / "history.html").read_text(encoding="utf-8")
    plot = re.search(r'<svg[^>]*data-plot="joules-per-token"[^>]*>(.*?)</svg>', page, re.S)
    assert plot is not None and 'data-points="3"' in plot.group(0)
    assert plot.group(1).count('class="regression"') == 1  # b3-hungry, against b1

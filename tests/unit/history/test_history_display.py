"""What ``lpuperf history`` shows of a record: each metric in the unit its name states, a compliance pass by
its checks' verdict, a find-peak record as the search's confirm run, and a run a signal stopped as
INTERRUPTED (recorded on the way out, quickly, and silently skipped when the store cannot be reached)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import compliance
from cli import main
from cli._record import record
from compliance import StrictReport
from loadgen_harness import Goodput, load_results
from tests.history_runs import manifest, write_run
from workflows import FindPeakResult
from workflows._find_peak import Probe

ROOT = Path(__file__).resolve().parents[3]


def _record(out: Path, command: str, outcome: object, quiet: bool = False) -> None:
    args = argparse.Namespace(command=command, db=None, no_record=False)
    if quiet:
        record(args, out, outcome, quiet=True)
    else:
        record(args, out, outcome)


def _history(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(["history", *argv]) == 0
    return capsys.readouterr().out


def _rows(text: str) -> dict[str, list[str]]:
    """``history list`` as {run id column: the row's cells}, cells split on the column gaps."""
    lines = text.strip().splitlines()
    starts = [i for i, c in enumerate(lines[0]) if c != " " and (i == 0 or lines[0][i - 1] == " ")]
    starts = [s for s in starts if s == 0 or lines[0][s - 2 : s] == "  "]
    cells = [[line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)] for line in lines]
    head = cells[0]
    return {row[head.index("run id")]: row for row in cells[1:]} | {"#head": head}


def test_show_list_and_trend_give_each_metric_the_unit_its_name_states(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    goodput = Goodput(n_good_queries=150, n_queries=200, fraction=0.75, qps=15.0, ttft_limit_ms=100.0)
    write_run(out, "r1", manifest("b1"), n_errors=4, errors_by_status={"UNAVAILABLE": 4}, goodput=goodput)
    assert main(["history", "import", str(out), "--out", str(out)]) == 0
    shown = _history(capsys, "show", "1", "--out", str(out))
    table = shown[shown.index("  metric ") :].splitlines()[1:]
    rows = {cells[0]: cells[1:] for cells in (line.split() for line in table)}
    # A share of 0..1 is a fraction, never labelled "%" (it was: "goodput.fraction 0.75 %").
    assert rows["goodput.fraction"][:2] == ["0.75", "fraction"]
    assert rows["error_rate"][:2] == ["0.02", "fraction"]
    assert rows["ttft_ms.p99"][1] == "ms" and rows["tokens_per_second"][1] == "tok/s"
    assert not any(len(c) > 1 and c[1] == "%" and float(c[0]) <= 1.0 for c in rows.values())
    trend = _history(capsys, "trend", "goodput.fraction", "--out", str(out))
    assert "goodput.fraction (fraction)" in trend.splitlines()[0]
    head = _rows(_history(capsys, "list", "--out", str(out)))["#head"]
    assert "TTFT p99 ms" in head and "TPOT p99 ms" in head


def test_each_recorded_figure_carries_its_names_unit(tmp_path: Path) -> None:
    """Accuracy scores are 0..100 ("%"), fidelity's exact match a fraction, ROUGE-L against FP32 0..100."""
    from accuracy import AccuracyOutcome, AccuracyReport, CategoryFidelity, FidelityReport, ScoredSamples
    from history import metric_unit, records_for

    d = write_run(tmp_path / "out", "acc", manifest("b1"))
    report = AccuracyReport(
        benchmark="embedded", scores_percent={"rougeL": 44.0}, log_path=str(d / "mlperf_log_accuracy.json")
    )
    section = CategoryFidelity(n=10, exact_match_fraction=0.9, rouge_l_percent=97.0, mean_first_divergence=1.0)
    fidelity = FidelityReport(
        candidate="bf16", reference="fp32", dataset="embedded", n_samples=10, overall=section, by_category={}, worst=[]
    )
    samples = ScoredSamples(qsl_indices=[], predictions=[], outputs=[], rougeL=[])
    (rec,) = records_for("accuracy", AccuracyOutcome(report=report, samples=samples, fidelity=fidelity))
    units = {m.name: m.unit for m in rec.metrics}
    assert units["accuracy.rougeL"] == "%" and units["fidelity.rouge_l[all]"] == "%"
    assert (
        units["fidelity.exact_match[all]"] == units["goodput.fraction" if "goodput.fraction" in units else "error_rate"]
    )
    assert units["fidelity.exact_match[all]"] == "fraction"
    assert all(m.unit == metric_unit(m.name) for m in rec.metrics)


def test_list_shows_what_each_recorded_run_was(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    # A TEST06 pass: LoadGen calls its short performance pass INVALID; its verdict is the checks'.
    t06_dir = write_run(out / "compliance", "TEST06", manifest("b1"), valid=False)
    t06 = compliance.Test06Report(
        scenario="Server",
        accuracy_log="x",
        eos_token_id=2,
        n_samples=100,
        checks=[],
        verify_lines=[],
        mlperf_passed=True,
        passed=True,
        message="TEST06 PASS: 100 samples",
    )
    strict = StrictReport(eos_token_id=2, n_samples=100, n_queries=100, checks=[], passed=True, message="strict PASS")
    _record(
        out,
        "compliance",
        compliance.Test06Outcome(
            test06=t06, strict=strict, test06_dir=str(t06_dir.parent), run_dir=str(t06_dir), passed=True, message="ok"
        ),
    )
    # A find-peak search's confirm run: its own run id is its place in the search.
    confirm = write_run(out / "peak-1" / "probes", "09-confirm", manifest("b1"), seed=1)
    _record(
        out,
        "find-peak",
        FindPeakResult(
            peak_qps=41.25,
            confirmed=True,
            bracket=(41.25, 42.5),
            evidence=Probe(kind="confirm", qps=41.25, verdict="PASS", valid=True, log_dir=str(confirm)),
            out_dir=str(out / "peak-1"),
        ),
    )
    write_run(out, "plain", manifest("b1"), seed=3)
    _record(out, "run", load_results(out / "plain" / "Server" / "performance"))
    rows = _rows(_history(capsys, "list", "--out", str(out)))
    result = rows["#head"].index("result")
    assert rows["TEST06"][result] == "TEST06 PASS"  # was: INVALID
    assert rows["peak-1 confirm at 41.2 qps"][result] == "VALID"  # was: "09-confirm"
    assert "09-confirm" not in rows
    assert rows["plain"][result] == "VALID"

    # A run Ctrl-C stopped, recorded as `lpuperf run` records it on the way out.
    stopped = write_run(
        out, "stopped", manifest("b1"), seed=2, valid=False, state="interrupted", interrupted_by="SIGINT"
    )
    _record(out, "run", load_results(stopped), quiet=True)
    rows = _rows(_history(capsys, "list", "--out", str(out)))
    assert rows["stopped"][result] == "INTERRUPTED"
    shown = _history(capsys, "show", "TEST06", "--out", str(out))
    assert ": TEST06 PASS (LoadGen INVALID)" in shown
    shown = _history(capsys, "show", "stopped", "--out", str(out))
    assert ": INTERRUPTED (LoadGen INVALID)" in shown
    shown = _history(capsys, "show", "peak-1", "--out", str(out))
    assert "find-peak 'peak-1' (confirm at 41.2 qps)" in shown and "confirm at 41.2 qps; bracket" in shown
    listed = json.loads(_history(capsys, "list", "--out", str(out), "--json"))
    assert [r["state"] for r in listed if r["run_id"] == "stopped"] == ["interrupted"]


_STOPPED = """
import argparse, json, sys, time
import grpc, loadgen_harness  # what a run has loaded when Ctrl-C ends it
from cli._record import record
from loadgen_harness import load_results

res = load_results(sys.argv[1])
args = argparse.Namespace(command="run", db=sys.argv[3] or None, no_record=False)
t0 = time.perf_counter()
record(args, sys.argv[2], res, quiet=True)
elapsed = time.perf_counter() - t0
heavy = ("scipy", "nltk", "alembic", "accuracy", "gate", "compliance", "workflows", "yaml")
print(json.dumps({"elapsed_s": elapsed, "heavy": [m for m in heavy if m in sys.modules]}))
"""


def _record_stopped(run_dir: Path, out: Path, db: str = "") -> tuple[dict[str, object], str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _STOPPED, str(run_dir), str(out), db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1]), proc.stderr


def test_a_stopped_run_is_recorded_from_its_results_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On the way out of a Ctrl-C'd run: no intervals, no reports, none of the stages' packages or scipy."""
    out = tmp_path / "results"
    write_run(out, "earlier", manifest("b1"))
    assert main(["history", "import", str(out), "--out", str(out)]) == 0  # the store exists, at the newest schema
    stopped = write_run(
        out, "stopped", manifest("b1"), seed=2, valid=False, state="interrupted", interrupted_by="SIGINT"
    )
    got, printed, err = _record_stopped(stopped, out)
    assert got["heavy"] == [] and err == ""
    assert printed == f"recorded #2 in {(out / 'lpuperf.db').resolve()}"
    # Loose: it measures a few tenths of a second on the 2-core box; the import check above is the real guard.
    assert float(got["elapsed_s"]) < 5.0  # type: ignore[arg-type]
    listed = json.loads(_history(capsys, "list", "--out", str(out), "--json"))
    rec = next(r for r in listed if r["run_id"] == "stopped")
    assert rec["state"] == "interrupted"
    assert all(m["ci_low"] is None and m["ci_high"] is None for m in rec["metrics"])


def test_a_stopped_run_skips_a_store_it_cannot_reach_without_a_word(tmp_path: Path) -> None:
    stopped = write_run(tmp_path / "results", "stopped", manifest("b1"), state="interrupted", interrupted_by="SIGINT")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database file at all" * 100)
    for db in (str(corrupt), "postgresql://nobody@127.0.0.1:1/none"):  # nothing listens on port 1
        got, printed, err = _record_stopped(stopped, tmp_path / "results", db)
        assert printed == "" and err == "", (db, printed, err)
        assert float(got["elapsed_s"]) < 10.0  # type: ignore[arg-type]


def test_a_stopped_run_is_not_its_builds_run_in_the_regressions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    write_run(out, "good", manifest("b1"), age_s=300)
    write_run(out, "b2-done", manifest("b2"), age_s=200)  # the same figures as the good build
    # The newest run of build b2 was stopped with Ctrl-C, 4x slower while it ran: no measurement of b2.
    write_run(
        out, "b2-stopped", manifest("b2"), age_s=100, seed=2, slower=4.0, state="interrupted", interrupted_by="SIGINT"
    )
    assert main(["history", "import", str(out), "--out", str(out)]) == 0
    assert main(["history", "mark-good", "good", "--out", str(out)]) == 0
    text = _history(capsys, "regressions", "--out", str(out))
    line = next(x for x in text.splitlines() if x.startswith("lpu-llm build b2 "))
    assert "b2-done" in line and "b2-stopped" not in line and line.endswith("no regression"), text

"""``lpuperf history`` and recording by the commands, on run directories written as the harness writes them:
import, list, show, trend, mark-good, regressions, report, ``gate --against last-good``, and a store
that cannot be reached (one warning line; the command's exit status stands)."""

from __future__ import annotations

import json
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cli import main
from tests.history_runs import manifest, write_run


def _history(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["history", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def builds(tmp_path: Path) -> dict[str, Path]:
    """Three good builds of one artifact, a 2x slower build, then an unchanged build; oldest first."""
    out = tmp_path / "results"
    plan = [("b1", 1.0), ("b2", 1.0), ("b3", 1.0), ("b4-slow", 2.0), ("b5", 1.0)]
    return {
        name: write_run(out, f"run-{name}", manifest(name), slower=slower, age_s=100.0 - 10 * i)
        for i, (name, slower) in enumerate(plan)
    }


def test_import_list_show_trend_mark_good_and_regressions(
    store_url: str, builds: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", store_url]
    root = builds["b1"].parents[2]
    rc, out, _ = _history(capsys, "import", str(root), *db)
    assert rc == 0 and "5 run(s) stored" in out
    rc, out, _ = _history(capsys, "import", str(root), *db)  # the same runs again: the same records
    assert rc == 0
    rc, out, _ = _history(capsys, "list", *db, "--json")
    listed = json.loads(out)
    assert [r["run_id"] for r in listed] == [f"run-{b}" for b in ("b1", "b2", "b3", "b4-slow", "b5")]
    ids = {r["artifact"]["build_id"]: r["id"] for r in listed}

    rc, out, _ = _history(capsys, "list", *db, "--artifact", "lpu-llm", "--last", "2")
    assert rc == 0 and "run-b4-slow" in out and "run-b5" in out and "run-b3" not in out
    rc, out, _ = _history(capsys, "show", f"#{ids['b4-slow']}", *db)
    assert "artifact lpu-llm (sim, embedded-sim, fp32)" in out and "build b4-slow" in out
    assert "compiler lpc 3.1" in out and "lpuperf 0.1.0, mlcommons-loadgen 6.0.17" in out
    assert "ttft_ms.p99" in out and str(builds["b4-slow"].resolve()) in out

    rc, out, _ = _history(capsys, "trend", "tpot_ms.p50", "--by", "build", *db)
    rows = out.strip().splitlines()[1:]
    assert [r.split()[5] for r in rows] == ["b1", "b2", "b3", "b4-slow", "b5"]
    values = [float(r.split()[6]) for r in rows]
    assert values[0] == values[1] == values[2] == values[4] == pytest.approx(10.0, rel=0.01)
    assert values[3] == pytest.approx(2 * values[0], rel=0.01)

    # Before any build is marked good nothing can be judged.
    rc, out, _ = _history(capsys, "regressions", *db)
    assert rc == 0 and "no other build of artifact 'lpu-llm' marked good" in out
    for b in ("b1", "b2", "b3"):
        rc, out, _ = _history(capsys, "mark-good", str(ids[b]), "--note", "release", *db)
        assert rc == 0 and "marked good" in out
    rc, out, _ = _history(capsys, "regressions", *db)
    lines = out.strip().splitlines()
    slow = next(line for line in lines if line.startswith("lpu-llm build b4-slow"))
    assert "vs good build b3" in slow and "regression" in slow and "no regression" not in slow
    flagged = [line for line in lines if line.startswith("  REGRESSION")]
    assert any("TPOT p99 regressed 100%" in line for line in flagged), flagged
    unchanged = next(line for line in lines if line.startswith("lpu-llm build b5"))
    assert unchanged.endswith(f"vs good build b3 (#{ids['b3']} run-b3): no regression")
    assert lines[-1] == "regressions: 1 of 5 build(s) regressed against the last good build"
    rc, out, _ = _history(capsys, "mark-good", str(ids["b3"]), "--undo", *db)
    rc, out, _ = _history(capsys, "regressions", *db, "--last", "1")
    assert "vs good build b2" in out


def test_gate_against_last_good_fails_the_slower_build_and_passes_an_unchanged_one(
    builds: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = builds["b1"].parents[2]
    assert main(["history", "import", str(root), "--out", str(root)]) == 0
    gate = ["gate", "--against", "last-good"]
    # No build marked good yet: the gate cannot see a baseline and fails, saying so.
    capsys.readouterr()
    assert main([*gate, str(builds["b5"])]) == 1
    assert "last-good: no other build of artifact 'lpu-llm' marked good" in capsys.readouterr().out
    for b in ("b1", "b2", "b3"):
        main(["history", "mark-good", f"run-{b}", "--out", str(root)])
    capsys.readouterr()
    assert main([*gate, str(builds["b4-slow"])]) == 1
    out = capsys.readouterr().out
    assert "vs last good #3 (b3): TPOT p99 regressed 100%" in out
    report = json.loads((builds["b4-slow"] / "gate.json").read_text())
    assert report["slo"] == "last-good" and not report["passed"]
    assert main([*gate, str(builds["b5"]), "--slo", "latency-only"]) == 0
    out = capsys.readouterr().out
    assert "gate latency-only: PASS" in out
    # The gate's verdicts are recorded on the runs they judged.
    capsys.readouterr()
    main(["history", "show", "run-b4-slow", "--out", str(root)])
    assert "gate last-good: FAIL" in capsys.readouterr().out


def test_commands_record_by_default_and_not_with_no_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "results", "r1", manifest("b1"))
    assert main(["gate", str(run), "--slo", "latency-only", "--no-record"]) == 0
    assert not (tmp_path / "results" / "lpuperf.db").exists()
    capsys.readouterr()
    assert main(["gate", str(run), "--slo", "latency-only"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == f"recorded #1 in {(tmp_path / 'results' / 'lpuperf.db').resolve()}"
    capsys.readouterr()
    main(["history", "show", "1", "--out", str(tmp_path / "results")])
    out = capsys.readouterr().out
    assert "record #1: gate 'r1'" in out and "gate latency-only: PASS" in out


@pytest.mark.parametrize(
    ("db", "why"),
    [
        ("postgresql://nobody@127.0.0.1:1/none", "connection"),  # nothing listens on port 1
        ("CORRUPT", "file is not a database"),
        ("mysql://u@h/db", "'mysql' stores are not supported"),
    ],
)
def test_a_store_that_cannot_be_reached_is_one_warning_and_never_fails_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db: str, why: str
) -> None:
    run = write_run(tmp_path / "results", "r1", manifest("b1"), slower=100.0)
    if db == "CORRUPT":
        db = str(tmp_path / "corrupt.db")
        Path(db).write_bytes(b"this is not a database file at all" * 100)
    capsys.readouterr()
    rc = main(["gate", str(run), "--slo", "latency-only", "--db", db])
    out, err = capsys.readouterr()
    assert rc == 1  # the gate's own verdict (TTFT over its limit), not the store's failure
    assert "gate latency-only: FAIL" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lpuperf gate: warning: not recorded in the run store"), err
    assert why in lines[0] and "Traceback" not in err
    assert "pw" not in lines[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["history", "show", "42"], "no record '42'"),
        (["history", "trend", "ttft_p99"], "no metric 'ttft_p99'"),
        (["history", "list", "--since", "last tuesday"], "argument --since: expected a date"),
        (["history", "list", "--db", "mysql://u@h/db"], "'mysql' stores are not supported"),
        (["history", "mark-good", "nope"], "no record 'nope'"),
        (["gate", "DIR"], "--slo: required (or --against last-good)"),
        (["gate", "DIR", "--against", "last-good", "--tolerance", "-1"], "expected a relative tolerance"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    out = tmp_path / "results"
    run = write_run(out, "r1", manifest("b1"))
    assert main(["history", "import", str(out), "--out", str(out)]) == 0
    argv = [str(run) if a == "DIR" else a for a in argv]
    if argv[0] == "history" and "--db" not in argv:
        argv += ["--out", str(out)]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_history_without_a_store_says_where_it_looked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "list", "--out", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert f"no run store at {(tmp_path / 'nothing' / 'lpuperf.db').resolve()}" in err
    assert not (tmp_path / "nothing").exists()  # reading never creates a store


class _Plots(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.plots: dict[str, int] = {}
        self.rings: list[str] = []
        self._plot = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self._plot = a["data-plot"]
            self.plots[self._plot] = int(a["data-points"])
        elif tag == "circle" and a.get("class") == "regression":
            self.rings.append(self._plot)


def test_report_plots_every_trend_and_rings_the_regressed_build(
    builds: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = builds["b1"].parents[2]
    main(["history", "import", str(root), "--out", str(root)])
    for b in ("b1", "b2", "b3"):
        main(["history", "mark-good", f"run-{b}", "--out", str(root)])
    capsys.readouterr()
    assert main(["history", "report", "--out", str(root)]) == 0
    page = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert page == root / "history.html"
    dom = _Plots()
    dom.feed(page.read_text(encoding="utf-8"))
    assert dom.plots == {"ttft-p99": 5, "tpot-p99": 5, "tokens-per-second": 5, "rouge-l": 0, "fidelity": 0}
    # The slow build's latencies regressed (its throughput did not: Server mode at the same offered rate).
    assert sorted(dom.rings) == ["tpot-p99", "ttft-p99"]


def test_the_sqlite_store_is_a_plain_file_other_tools_can_read(builds: dict[str, Path]) -> None:
    root = builds["b1"].parents[2]
    main(["history", "import", str(root), "--out", str(root)])
    with sqlite3.connect(root / "lpuperf.db") as conn:
        rows = conn.execute(
            "SELECT r.build_id, m.value FROM records r JOIN metrics m ON m.record_id = r.id "
            "WHERE m.name = 'tpot_ms.p50' ORDER BY r.run_at"
        ).fetchall()
    assert [b for b, _ in rows] == ["b1", "b2", "b3", "b4-slow", "b5"]
    assert [round(v / rows[0][1], 2) for _, v in rows] == [1.0, 1.0, 1.0, 2.0, 1.0]


def test_import_reads_a_plain_mlperf_result_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A published submission's tree (LoadGen's logs, nothing of lpuperf's): each performance and accuracy
    log directory is one record, read from LoadGen's detail log."""
    from scenarios import MLPERF_ROUND_SEEDS
    from tests.mlperf_tree import MODELS, SYSTEM, write_tree

    root = write_tree(tmp_path / "published", MLPERF_ROUND_SEEDS["v6.0"].model_dump())
    store = tmp_path / "results"
    rc, out, _ = _history(capsys, "import", str(root), "--out", str(store))
    n_dirs = 2 * sum(len(scenarios) for _, scenarios, _ in MODELS)  # performance/run_1 and accuracy per scenario
    assert rc == 0 and f"{n_dirs} run(s) stored" in out and "0 skipped" in out, out
    rc, out, _ = _history(capsys, "list", "--out", str(store), "--json", "--mode", "performance", "--last", "500")
    listed = json.loads(out)
    assert len(listed) == n_dirs // 2
    assert {r["run_id"] for r in listed} == {SYSTEM} and {r["preset"] for r in listed} == {"mlperf-logs"}
    assert all(r["valid"] for r in listed)
    server = next(r for r in listed if r["scenario"] == "Server")
    assert {m["name"] for m in server["metrics"]} >= {"ttft_ms.p99", "tpot_ms.p99", "tokens_per_second"}
    rc, out, _ = _history(capsys, "import", str(root), "--out", str(store))  # again: the same records
    rc, out, _ = _history(capsys, "list", "--out", str(store), "--json", "--last", "500")
    assert len(json.loads(out)) == n_dirs


def test_a_database_error_after_the_store_opened_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    write_run(out, "r1", manifest("b1"))
    assert main(["history", "import", str(out), "--out", str(out)]) == 0
    # Planted: a table the queries read is gone (a store damaged by hand, or a half-restored backup).
    with sqlite3.connect(out / "lpuperf.db") as conn:
        conn.execute("DROP TABLE metrics")
    capsys.readouterr()
    assert main(["history", "list", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("lpuperf history: error: run store ") and "no such table: metrics" in err[0]
    )

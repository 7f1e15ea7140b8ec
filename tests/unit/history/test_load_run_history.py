"""The run store and ``lpuperf history`` on runs beside LoadGen (``--load``), from real runs against the sim.

A load run's record names its scenario (Concurrency, Sessions, ...) and its load (kind and --load value);
its figures include the dispatch lag, session latency, TTFT by turn and the prefix-cache hit fraction, named
as ``lpuperf compare`` names them; list/show/trend read it, ``--load KIND`` filters on it, and the last good
build is looked up among runs of the same load. A store made before the load columns is upgraded in place.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from cli import main
from history import metric_unit, open_store, record_run_dir, store_url
from loadgen_harness import LoadInfo, load_results
from tests.history_runs import manifest, write_run
from tests.load_runs import sessions_run


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sessions_run(tmp_path_factory.mktemp("load-history") / "results", "sess")


def _history(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["history", *argv])
    return rc, capsys.readouterr().out


def test_a_load_run_is_recorded_with_its_scenario_load_and_figures(
    session_dir: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = ["--db", store_url]
    res = load_results(session_dir)
    assert res.load is not None and res.sessions is not None and res.prefix_cache is not None
    rc, out = _history(capsys, "import", str(session_dir.parents[2]), *db)
    assert rc == 0 and "1 run(s) stored" in out
    rc, out = _history(capsys, "list", *db, "--json")
    (listed,) = json.loads(out)
    assert (listed["scenario"], listed["load_kind"], listed["load_spec"]) == ("Sessions", "sessions", res.load.spec)
    rc, out = _history(capsys, "list", *db, "--load", "sessions")
    assert rc == 0 and "Sessions" in out
    rc, out = _history(capsys, "list", *db, "--load", "concurrency")
    assert rc == 0 and out.strip() == "no records"
    rc, out = _history(capsys, "show", "sess", *db)
    assert rc == 0 and f"load sessions: --load {res.load.spec} (not an MLPerf LoadGen run)" in out
    rc, out = _history(capsys, "show", "sess", *db, "--json")
    metrics = {m["name"]: m for m in json.loads(out)["metrics"]}
    assert metrics["dispatch_lag_ms.p99"]["value"] == pytest.approx(res.dispatch_lag.p99_ms)  # type: ignore[union-attr]
    assert metrics["session_latency_ms.p99"]["value"] == pytest.approx(res.sessions.session_latency_ms.p99)
    assert metrics["prefix_cache.hit_fraction"]["value"] == pytest.approx(res.prefix_cache.hit_fraction)
    assert metrics["prefix_cache.hit_fraction"]["unit"] == "fraction" and metrics["dispatch_lag_ms.p99"]["unit"] == "ms"
    assert metrics["sessions.tool_calls"]["value"] == res.sessions.tool_calls
    assert metrics["client_limited"]["value"] == 0.0
    for t in res.sessions.turns:
        assert metrics[f"turn_ttft_ms.p99[turn={t.turn}]"]["value"] == pytest.approx(t.ttft_ms.p99)
        assert metrics[f"turn_ttft_ms.p99[turn={t.turn}]"]["unit"] == "ms"
    assert all(m["unit"] == metric_unit(m["name"]) for m in metrics.values())
    rc, out = _history(capsys, "trend", "session_latency_ms.p99", *db)
    assert rc == 0 and "sess" in out


def test_lpuperf_run_with_a_load_records_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    argv = ["run", "--load", "concurrency:2", "--duration", "1", "--out", str(out), "--run-id", "conc",
            "--metrics-linger", "0", "--max-new-tokens", "8", "--max-dispatch-lag-ms", "1000"]  # fmt: skip
    assert main(argv) in (0, 1)  # 1: not valid (a loaded machine can miss the TTFT limit); recorded either way
    _, text = _history(capsys, "list", "--out", str(out), "--json")
    (rec,) = json.loads(text)
    assert (rec["command"], rec["scenario"], rec["load_kind"], rec["load_spec"]) == (
        "run",
        "Concurrency",
        "concurrency",
        "concurrency:2",
    )
    names = {m["name"] for m in rec["metrics"]}
    assert {"dispatch_lag_ms.p50", "dispatch_lag_ms.p99", "dispatch_lag_ms.max", "client_limited"} <= names
    assert not any(n.startswith(("session", "turn_ttft")) for n in names)  # no sessions in a closed loop


def test_the_last_good_build_is_one_of_the_same_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    db = ["--db", str(tmp_path / "h.db")]

    def load(spec: str) -> LoadInfo:
        return LoadInfo(kind="concurrency", spec=spec)

    plan = [("b1", "concurrency:2", 1.0), ("b2", "concurrency:8", 3.0), ("b3", "concurrency:2", 1.0)]
    for i, (build, spec, slower) in enumerate(plan):
        write_run(out, f"run-{build}", manifest(build), slower=slower, scenario="Concurrency", age_s=100.0 - 10 * i,
                  load=load(spec))  # fmt: skip
    assert _history(capsys, "import", str(out), *db)[0] == 0
    assert _history(capsys, "mark-good", "run-b1", *db)[0] == 0
    _, text = _history(capsys, "regressions", *db)
    lines = {line.split(" (#")[0].split()[-1]: line for line in text.splitlines() if " build " in line}
    assert "vs good build b1" in lines["b3"] and "no regression" in lines["b3"]
    # The 3x slower build ran a heavier load: no baseline of its load, so nothing to call a regression.
    assert "marked good for import Concurrency --load concurrency:8" in lines["b2"]
    assert "regressions: 0 of" in text


def test_a_store_from_before_the_load_columns_is_upgraded_in_place(store_url: str, tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from history._store import MIGRATIONS_DIR, _engine

    url = store_url_of(store_url)
    engine = _engine(url, create=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "r0003")
    with engine.begin() as conn:
        assert "load_kind" not in {c["name"] for c in sa.inspect(conn).get_columns("records")}
        conn.execute(
            sa.text(
                "INSERT INTO records (recorded_at, run_at, command, run_id, scenario, mode, benchmark, preset, state,"
                " validity_reasons, artifact_name, artifact_backend, model, precision, manifest_sha256,"
                " toolchain_version, target, checksum, build_id, build, run_dir, lpuperf_version, loadgen_version)"
                " VALUES (:t, :t, 'run', 'old-run', 'Server', 'performance', 'embedded', 'quick', 'complete', '[]',"
                " 'lpu-llm', 'sim', 'm', 'fp32', 'abc', '', '', '', 'b1', '{}', '/x', '0.1.0', '6.0.17')"
            ),
            {"t": datetime(2025, 3, 1, 12, 0, tzinfo=UTC)},
        )
    engine.dispose()
    with open_store(url) as store:
        (old,) = store.runs()
        assert (old.run_id, old.load_kind, old.load_spec) == ("old-run", "", "")
        conc = write_run(tmp_path / "results", "new", manifest("b2"), scenario="Concurrency",
                         load=LoadInfo(kind="concurrency", spec="concurrency:4"))  # fmt: skip
        store.record(record_run_dir(conc, "import"))
        assert [(r.run_id, r.load_kind) for r in store.runs()] == [("old-run", ""), ("new", "concurrency")]
        assert store.revision() == "r0004"
    # And back: the downgrade drops the two columns, the records stay.
    engine = _engine(url, create=False)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "r0003")
    with engine.begin() as conn:
        assert "load_kind" not in {c["name"] for c in sa.inspect(conn).get_columns("records")}
        assert conn.execute(sa.text("SELECT count(*) FROM records")).scalar_one() == 2
    engine.dispose()


def store_url_of(db: str) -> str:
    return store_url(db, None)

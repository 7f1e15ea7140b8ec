"""The run store on SQLite and on a real PostgreSQL: records, the same run recorded twice, filters, the
last good build, schema upgrades from the first revision, and two processes writing at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from history import (
    ArtifactBuild,
    MetricValue,
    RunFilter,
    RunRecord,
    StoreError,
    Verdict,
    open_store,
    record_run_dir,
    store_url,
)
from loadgen_harness import Goodput
from tests.history_runs import manifest, write_run

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _rec(run_id: str, build: str, minutes: int, sha: str = "", **over: object) -> RunRecord:
    art = ArtifactBuild(name="lpu-llm", manifest_sha256=build * 8, build_id=build)
    base: dict[str, object] = {
        "command": "run",
        "run_id": run_id,
        "run_at": T0 + timedelta(minutes=minutes),
        "scenario": "Server",
        "mode": "performance",
        "benchmark": "embedded",
        "artifact": art,
        "results_sha256": sha,
        "metrics": [MetricValue(name="ttft_ms.p99", value=80.0 + minutes, unit="ms", ci_low=70.0, ci_high=None)],
    }
    base.update(over)
    return RunRecord.model_validate(base)


def test_store_url_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LPUPERF_DB", raising=False)
    assert store_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/lpuperf.db"
    assert store_url(str(tmp_path / "x.db"), "ignored") == f"sqlite:///{tmp_path.resolve()}/x.db"
    assert store_url("postgresql://u:pw@db:5432/runs", None) == "postgresql+psycopg://u:pw@db:5432/runs"
    assert store_url("postgres://u@db/runs", None) == "postgresql+psycopg://u@db/runs"
    monkeypatch.setenv("LPUPERF_DB", "postgresql://team@db/runs")
    assert store_url(None, tmp_path) == "postgresql+psycopg://team@db/runs"
    assert store_url(str(tmp_path / "mine.db"), tmp_path).endswith("/mine.db")  # --db wins over the env
    monkeypatch.delenv("LPUPERF_DB")
    secret = tmp_path / "pg_password"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("LPUPERF_DB_PASSWORD_FILE", str(secret))
    assert store_url("postgresql://team@db/runs", None) == "postgresql+psycopg://team:s3cret@db/runs"
    assert store_url("postgresql://team:given@db/runs", None) == "postgresql+psycopg://team:given@db/runs"
    secret.unlink()
    with pytest.raises(StoreError, match=r"LPUPERF_DB_PASSWORD_FILE: .*pg_password: No such file"):
        store_url("postgresql://team@db/runs", None)
    monkeypatch.delenv("LPUPERF_DB_PASSWORD_FILE")
    with pytest.raises(StoreError, match="'mysql' stores are not supported"):
        store_url("mysql://u@db/runs", tmp_path)
    with pytest.raises(StoreError, match="give --db or set LPUPERF_DB"):
        store_url(None, None)


def test_records_filters_and_the_same_run_recorded_twice(store_url: str, tmp_path: Path) -> None:
    with open_store(_url(store_url)) as store:
        a = store.record(_rec("a", "1111", 0, sha="s" * 64))
        b = store.record(_rec("b", "2222", 10, scenario="Offline"))
        # A later command on the same run (same results.json) adds its verdicts and figures to it.
        again = _rec("a", "1111", 0, sha="s" * 64, command="gate", metrics=[MetricValue(name="peak_qps", value=9.0)])
        again.add_verdicts([Verdict(kind="gate", name="embedded", passed=False, message="1/2 objectives met")])
        assert store.record(again) == a
        runs = store.runs()
        assert [r.id for r in runs] == [a, b]
        first = store.get(str(a))
        assert first.command == "run"  # the command that recorded it first
        assert {m.name for m in first.metrics} == {"ttft_ms.p99", "peak_qps"}
        assert first.metric("ttft_ms.p99") == MetricValue(name="ttft_ms.p99", value=80.0, unit="ms", ci_low=70.0)
        assert [(v.kind, v.passed, v.command) for v in first.verdicts] == [("gate", False, "gate")]
        assert first.run_at == T0 and first.run_at.tzinfo is not None
        assert [r.run_id for r in store.runs(RunFilter(scenario="Offline"))] == ["b"]
        assert [r.run_id for r in store.runs(RunFilter(since=T0 + timedelta(minutes=5)))] == ["b"]
        assert [r.run_id for r in store.runs(RunFilter(limit=1))] == ["b"]
        assert store.runs(RunFilter(artifact="other")) == []
        assert store.get("#" + str(b)).run_id == store.get("b").run_id == "b"
        with pytest.raises(StoreError, match="no record 'zzz'"):
            store.get("zzz")
        store.record(_rec("b", "3333", 20))
        with pytest.raises(StoreError, match="run id 'b' names 2 records"):
            store.get("b")
        assert "ttft_ms.p99" in store.metric_names()


def test_last_good_is_the_newest_good_other_build_of_the_same_kind(store_url: str) -> None:
    with open_store(_url(store_url)) as store:
        ids = {
            name: store.record(_rec(name, build, m))
            for name, build, m in (
                ("g1", "1111", 0),
                ("g2", "2222", 10),
                ("offline", "2222", 11),
                ("bad", "3333", 20),
                ("cand", "4444", 30),
            )
        }
        cand = store.get(str(ids["cand"]))
        assert store.last_good(cand) is None  # nothing marked yet
        for name in ("g1", "g2"):
            store.mark_good(ids[name], note="release")
        assert store.get("g2").good and store.get("g2").good_note == "release"
        assert store.last_good(cand).run_id == "g2"  # type: ignore[union-attr]
        # A rerun of the good build is compared with the good build before it, never with itself.
        assert store.last_good(store.get("g2")).run_id == "g1"  # type: ignore[union-attr]
        # Only a good build that ran before the candidate counts.
        assert store.last_good(store.get("g1")) is None
        # Another scenario or another artifact is another kind of run.
        store.mark_good(ids["g2"], good=False)
        store.mark_good(ids["offline"])
        off = store.get("offline")
        assert off.good and not store.get("g2").good
        other = store.record(_rec("other", "9999", 40, artifact=ArtifactBuild(name="other", manifest_sha256="9" * 32)))
        assert store.last_good(store.get(str(other))) is None
        assert store.last_good(cand).run_id == "offline"  # type: ignore[union-attr]
        # A run of another command measures another thing; an imported run's origin is unknown, so it counts.
        store.mark_good(ids["offline"], good=False)
        store.mark_good(ids["g1"], good=False)
        peak = store.record(_rec("peak", "5555", 25, command="find-peak"))
        store.mark_good(peak)
        assert store.last_good(cand) is None
        imported = store.record(_rec("imported", "6666", 26, command="import"))
        store.mark_good(imported)
        assert store.last_good(cand).run_id == "imported"  # type: ignore[union-attr]
        assert store.last_good(store.get("peak")) is None  # the only earlier good run is another command's


def _url(db: str) -> str:
    return store_url(db, None)


def test_schema_upgrades_in_place_from_the_first_revision(store_url: str) -> None:
    """A store created by the first revision (no good marks yet) keeps its records and gains the marks; the
    units older lpuperf gave its fractions ("%") and 0..100 scores (none) become the ones their names state."""
    from alembic import command
    from alembic.config import Config

    from history._store import MIGRATIONS_DIR, _engine

    url = _url(store_url)
    engine = _engine(url, create=True)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "r0001")
    with engine.begin() as conn:
        assert "good_marks" not in sa.inspect(conn).get_table_names()
    # A row as the first revision stored it (the code of that time wrote exactly these columns).
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO records (recorded_at, run_at, command, run_id, scenario, mode, benchmark, preset, state,"
                " validity_reasons, artifact_name, artifact_backend, model, precision, manifest_sha256,"
                " toolchain_version, target, checksum, build_id, build, run_dir, lpuperf_version, loadgen_version)"
                " VALUES (:t, :t, 'run', 'old-run', 'Server', 'performance', 'embedded', 'quick', 'complete', '[]',"
                " 'lpu-llm', 'sim', 'm', 'fp32', 'abc', '', '', '', 'b1', '{}', '/x', '0.1.0', '6.0.17')"
            ),
            {"t": T0},
        )
        old_units = [
            ("goodput.fraction", 0.75, "%"),
            ("error_rate", 0.02, "%"),
            ("fidelity.exact_match[all]", 0.9, "%"),
            ("fidelity.rouge_l[all]", 97.0, ""),
            ("accuracy.rougeL", 44.0, ""),
            ("ttft_ms.p99", 80.0, "ms"),
            ("tokens_per_second", 600.0, "tok/s"),
        ]
        rid = conn.execute(sa.text("SELECT id FROM records")).scalar_one()
        for name, value, unit in old_units:
            conn.execute(
                sa.text("INSERT INTO metrics (record_id, name, value, unit) VALUES (:r, :n, :v, :u)"),
                {"r": rid, "n": name, "v": value, "u": unit},
            )
    engine.dispose()
    with open_store(url) as store:
        (r,) = store.runs()
        assert (r.run_id, r.artifact.build_id, r.good) == ("old-run", "b1", False)
        assert {m.name: (m.value, m.unit) for m in r.metrics} == {
            "goodput.fraction": (0.75, "fraction"),
            "error_rate": (0.02, "fraction"),
            "fidelity.exact_match[all]": (0.9, "fraction"),
            "fidelity.rouge_l[all]": (97.0, "%"),
            "accuracy.rougeL": (44.0, "%"),
            "ttft_ms.p99": (80.0, "ms"),
            "tokens_per_second": (600.0, "tok/s"),
        }
        from history import metric_unit
        from history._schema import SCHEMA_REVISION

        assert all(m.unit == metric_unit(m.name) for m in r.metrics)
        assert store.revision() == SCHEMA_REVISION == "r0004"
        store.mark_good(r.id)
        assert store.get("old-run").good


def test_the_schema_revision_the_store_checks_is_the_newest_migration() -> None:
    """Opening a store compares its stamp with SCHEMA_REVISION instead of loading Alembic: the two must agree."""
    from alembic.script import ScriptDirectory

    from history._schema import SCHEMA_REVISION
    from history._store import MIGRATIONS_DIR

    assert ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head() == SCHEMA_REVISION


def test_a_store_from_a_newer_lpuperf_is_refused(store_url: str) -> None:
    url = _url(store_url)
    open_store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'r9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema revision 'r9999' is newer than this lpuperf knows"):
        open_store(url)


def test_the_migrations_create_exactly_the_tables_the_code_queries(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from history._schema import metadata

    url = _url(store_url)
    open_store(url).close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, metadata) == []
        # Planted: a column the code would query but no migration creates is caught.
        planted = sa.MetaData()
        for table in metadata.tables.values():
            table.to_metadata(planted)
        planted.tables["records"].append_column(sa.Column("goodput", sa.Float, nullable=True))
        diff = compare_metadata(ctx, planted)
        assert [d[0] for d in diff] == ["add_column"] and diff[0][3].name == "goodput"
    engine.dispose()


_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from history import MetricValue, RunRecord, open_store, store_url

    url, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open_store(store_url(url, None)) as store:
        for i in range(n):
            rec = RunRecord(command="run", run_id=f"{tag}-{i}", run_at=datetime.now(UTC), results_sha256=f"{tag}{i:062d}",
                            metrics=[MetricValue(name="tokens_per_second", value=float(i))])
            store.record(rec)
    print("done", tag)
    """
)


def test_two_processes_writing_at_once_lose_no_row(store_url: str, tmp_path: Path) -> None:
    """Both start on an empty database: the schema creation and every insert race; all rows land."""
    n = 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, store_url, tag, str(n)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    with open_store(_url(store_url)) as store:
        runs = store.runs()
        assert len(runs) == 2 * n
        assert {r.run_id for r in runs} == {f"{t}-{i}" for t in "ab" for i in range(n)}


def test_a_run_directory_becomes_a_record(tmp_path: Path) -> None:
    """results.json, artifact.json and the reports beside the run: figures, build fields, verdicts."""
    from gate import GateReport

    goodput = Goodput(n_good_queries=150, n_queries=200, fraction=0.75, qps=15.0, ttft_limit_ms=100.0)
    d = write_run(tmp_path, "r1", manifest("build-7"), n_errors=4, errors_by_status={"UNAVAILABLE": 4}, goodput=goodput)
    GateReport(slo="embedded", source=str(d / "results.json"), passed=False, objectives=[]).write(d / "gate.json")
    rec = record_run_dir(d, "import")
    assert (rec.run_id, rec.scenario, rec.mode, rec.valid) == ("r1", "Server", "performance", True)
    assert rec.artifact.build_id == rec.artifact.build_key == "build-7"
    assert rec.artifact.build == {"compiler": "lpc 3.1", "flags": "-O3"}
    assert len(rec.artifact.manifest_sha256) == 64
    assert (rec.lpuperf_version, rec.loadgen_version) == ("0.1.0", "6.0.17")
    assert rec.metric("error_rate").value == pytest.approx(0.02)  # type: ignore[union-attr]
    assert rec.metric("goodput.fraction").value == 0.75  # type: ignore[union-attr]
    # queries.npz gives each latency percentile a distribution-free interval around LoadGen's figure;
    # 200 queries bound p50 on both sides, but too few lie beyond p99 to bound it from above.
    p50, p99 = rec.metric("ttft_ms.p50"), rec.metric("ttft_ms.p99")
    assert p50 is not None and p99 is not None
    assert p50.ci_low is not None and p50.ci_high is not None and p50.ci_low <= p50.value <= p50.ci_high
    assert p99.ci_low is not None and p99.ci_high is None
    (d / "queries.npz").unlink()
    assert record_run_dir(d, "import").metric("ttft_ms.p50").ci_low is None  # type: ignore[union-attr]
    assert [(v.kind, v.name, v.passed) for v in rec.verdicts] == [("gate", "embedded", False)]
    # Another build of the same artifact is another manifest hash; the same manifest is the same build.
    again = record_run_dir(write_run(tmp_path, "r2", manifest("build-7")), "import")
    other = record_run_dir(write_run(tmp_path, "r3", manifest("build-8")), "import")
    assert again.artifact.manifest_sha256 == rec.artifact.manifest_sha256 != other.artifact.manifest_sha256

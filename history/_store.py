"""The run store: SQLite by default (``OUT/lpuperf.db``), PostgreSQL for a team (``--db postgresql://...``).

SQLAlchemy Core does the queries; Alembic migrations (``history/migrations``) version the schema, and
opening a store upgrades it in place. Two writers finishing at once must both land:

- SQLite: every transaction starts with ``BEGIN IMMEDIATE`` and waits up to 30 s for the lock, so
  writers (and a first-time schema creation) take turns instead of failing with "database is locked".
- PostgreSQL: the schema upgrade runs under an advisory lock; rows are inserted concurrently.

A run recorded twice (``run`` then ``gate`` on the same directory, or ``history import`` of a directory
already recorded) is one record: ``results_sha256`` is unique and the later recording adds its verdicts
and figures to it.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from common import UsageError
from history._models import ArtifactBuild, MetricValue, RunFilter, RunRecord, StoredRun, Verdict
from history._schema import SCHEMA_REVISION, good_marks, metrics, records, verdicts

DB_ENV = "LPUPERF_DB"
# A file holding the PostgreSQL password, for a URL that names none (a container secret, never argv).
DB_PASSWORD_FILE_ENV = "LPUPERF_DB_PASSWORD_FILE"
DB_FILE = "lpuperf.db"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_S = 30.0
POSTGRES_CONNECT_TIMEOUT_S = 5
_PG_MIGRATION_LOCK = 0x6C707570  # any constant; every lpuperf process upgrading a store takes this one
# Commands that record a run made elsewhere: its record does not say how it was made, so it is compared
# with runs of any command (the others only with runs the same command made: a find-peak confirm run,
# a TEST06 pass and a plain run measure different things).
UNKNOWN_ORIGIN = ("import", "gate")
_IN_CHUNK = 500  # ids per IN (...) query: well under SQLite's bound-parameter limit


class StoreError(UsageError):
    """The store could not be opened, read or written: one line naming the store."""


def store_url(db: str | None, out_dir: str | Path | None) -> str:
    """The store a command uses: ``--db``, else ``$LPUPERF_DB``, else SQLite at ``OUT/lpuperf.db``.

    A value without ``://`` is a SQLite file path. ``postgresql://`` and ``postgres://`` use psycopg 3; a
    PostgreSQL URL without a password takes it from the file ``$LPUPERF_DB_PASSWORD_FILE`` names, if set.
    """
    text = (db or os.environ.get(DB_ENV) or "").strip()
    if not text:
        if out_dir is None:
            raise StoreError(f"no output root to keep a run store in: give --db or set {DB_ENV}")
        return f"sqlite:///{(Path(out_dir) / DB_FILE).resolve()}"
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    try:
        url = sa.engine.make_url(text)
    except sa.exc.ArgumentError:
        raise StoreError(
            f"--db: expected a SQLite path or a URL like postgresql://user@host/db, got '{text}'"
        ) from None
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        url = url.set(drivername="postgresql+psycopg")
        secret = os.environ.get(DB_PASSWORD_FILE_ENV, "")
        if url.password is None and secret:
            try:
                url = url.set(password=Path(secret).read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise StoreError(f"{DB_PASSWORD_FILE_ENV}: {secret}: {exc.strerror or exc}") from None
        return url.render_as_string(hide_password=False)
    if url.drivername == "sqlite":
        return text
    raise StoreError(f"--db: '{url.drivername}' stores are not supported; expected sqlite or postgresql")


def describe(url: str) -> str:
    """The store as shown to people: a SQLite file's path, or the URL without its password."""
    u = sa.engine.make_url(url)
    if u.drivername.startswith("sqlite"):
        return u.database or ":memory:"
    return u.set(drivername="postgresql").render_as_string(hide_password=True)


def _sqlite_engine(url: sa.engine.URL, create: bool, timeout_s: float) -> sa.Engine:
    path = url.database or ""
    if path and path != ":memory:":
        if not create and not Path(path).is_file():
            raise StoreError(f"no run store at {path} (a command records there after its first run, or use --db)")
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"run store {path}: cannot create its directory ({exc.strerror or exc})") from None
    engine = sa.create_engine(url, connect_args={"timeout": timeout_s})

    # The driver's own transaction handling starts transactions lazily and would let two writers both
    # read and then collide on the write; BEGIN IMMEDIATE takes the write lock up front and waits for it.
    @sa.event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _engine(url_text: str, create: bool, timeout_s: float | None = None) -> sa.Engine:
    url = sa.engine.make_url(url_text)
    if url.drivername.startswith("sqlite"):
        return _sqlite_engine(url, create, SQLITE_BUSY_TIMEOUT_S if timeout_s is None else timeout_s)
    # libpq takes whole seconds and treats less than 2 as 2.
    connect_s = POSTGRES_CONNECT_TIMEOUT_S if timeout_s is None else max(2, math.ceil(timeout_s))
    try:
        return sa.create_engine(url, connect_args={"connect_timeout": connect_s}, pool_pre_ping=True)
    except ModuleNotFoundError:
        raise StoreError("a PostgreSQL store needs psycopg: pip install 'lpuperf[postgres]'") from None


def current_revision(conn: sa.Connection) -> str | None:
    """The schema revision Alembic stamped in the store; None for an empty database."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def _upgrade(engine: sa.Engine) -> str:
    """Bring the schema to the newest revision (creating it in an empty database); returns the revision.

    A store already at the newest revision is read with one query: Alembic (a quarter of a second to
    import) loads only when there is something to upgrade.
    """
    with engine.begin() as conn:
        if current_revision(conn) == SCHEMA_REVISION:
            return SCHEMA_REVISION
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    known = {rev.revision for rev in script.walk_revisions()}
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return head
        if current is not None and current not in known:
            raise StoreError(f"schema revision '{current}' is newer than this lpuperf knows ({head}): upgrade lpuperf")
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return head


def open_store(url: str, create: bool = True, timeout_s: float | None = None) -> Store:
    """Connect and upgrade the schema in place; ``create=False`` refuses a SQLite file that does not exist.

    ``timeout_s`` bounds the wait for SQLite's write lock (30 s) and for a PostgreSQL connection (5 s).
    """
    engine = _engine(url, create, timeout_s)
    try:
        _upgrade(engine)
    except StoreError:
        engine.dispose()
        raise
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        engine.dispose()
        raise StoreError(f"run store {describe(url)}: {error_text(exc)}") from None
    return Store(engine, url)


def error_text(exc: BaseException) -> str:
    """One line for a database error: the driver's message without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i : i + _IN_CHUNK]


def _row(rec: RunRecord, now: datetime) -> dict[str, Any]:
    a = rec.artifact
    fidelity = None if rec.fidelity is None else rec.fidelity.model_copy(update={"samples": [], "worst": []})
    return {
        "recorded_at": now,
        "run_at": _utc(rec.run_at),
        "command": rec.command,
        "run_id": rec.run_id,
        "results_sha256": rec.results_sha256 or None,
        "scenario": rec.scenario,
        "load_kind": rec.load_kind,
        "load_spec": rec.load_spec,
        "mode": rec.mode,
        "benchmark": rec.benchmark,
        "preset": rec.preset,
        "state": rec.state,
        "valid": rec.valid,
        "validity_reasons": list(rec.validity_reasons),
        "artifact_name": a.name,
        "artifact_backend": a.backend,
        "model": a.model,
        "precision": a.precision,
        "manifest_sha256": a.manifest_sha256,
        "toolchain_version": a.toolchain_version,
        "target": a.target,
        "checksum": a.checksum,
        "build_id": a.build_id,
        "build": dict(a.build),
        "run_dir": rec.run_dir,
        "lpuperf_version": rec.lpuperf_version,
        "loadgen_version": rec.loadgen_version,
        "results": None if rec.results is None else rec.results.model_dump(mode="json"),
        "accuracy": None if rec.accuracy is None else rec.accuracy.model_dump(mode="json"),
        "fidelity": None if fidelity is None else fidelity.model_dump(mode="json"),
    }


def _document(module: str, name: str, raw: Any) -> Any:
    """A stored report as its model; None when absent or written by an lpuperf whose model differs.

    The model's package is imported only for a record that holds the document: listing records reads none.
    """
    if raw is None:
        return None
    model = getattr(importlib.import_module(module), name)
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


class Store:
    """An open run store. Use as a context manager, or call :meth:`close`."""

    def __init__(self, engine: sa.Engine, url: str) -> None:
        self.engine, self.url = engine, url

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def where(self) -> str:
        return describe(self.url)

    # ---- writing ----

    def record(self, rec: RunRecord) -> int:
        """Store ``rec``, or add its figures and verdicts to the record of the same results; returns its id."""
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    return self._record(conn, rec)
            except sa.exc.IntegrityError:
                # Another writer inserted the same run between our lookup and insert: next time we find it.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _record(self, conn: sa.Connection, rec: RunRecord) -> int:
        row = _row(rec, datetime.now(UTC))
        rid: int | None = None
        if rec.results_sha256:
            rid = conn.execute(
                sa.select(records.c.id).where(records.c.results_sha256 == rec.results_sha256)
            ).scalar_one_or_none()
        if rid is None:
            key = conn.execute(sa.insert(records).values(**row)).inserted_primary_key
            assert key is not None
            rid = int(key[0])
        else:
            later = {k: row[k] for k in ("accuracy", "fidelity") if row[k] is not None}
            if later:
                conn.execute(sa.update(records).where(records.c.id == rid).values(**later))
        if rec.metrics:
            names = [m.name for m in rec.metrics]
            conn.execute(sa.delete(metrics).where(metrics.c.record_id == rid, metrics.c.name.in_(names)))
            conn.execute(sa.insert(metrics), [{"record_id": rid, **m.model_dump()} for m in rec.metrics])
        for v in rec.verdicts:
            conn.execute(
                sa.delete(verdicts).where(
                    verdicts.c.record_id == rid, verdicts.c.kind == v.kind, verdicts.c.name == v.name
                )
            )
            conn.execute(sa.insert(verdicts).values(record_id=rid, **v.model_dump()))
        return rid

    def mark_good(self, record_id: int, note: str = "", good: bool = True) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(good_marks).where(good_marks.c.record_id == record_id))
            if good:
                conn.execute(sa.insert(good_marks).values(record_id=record_id, marked_at=datetime.now(UTC), note=note))

    # ---- reading ----

    def runs(self, flt: RunFilter | None = None, documents: bool = False) -> list[StoredRun]:
        """Records matching ``flt``, oldest first (the newest ``limit`` when a limit is set)."""
        flt = flt or RunFilter()
        query = self._select(documents).where(*self._conditions(flt))
        if flt.limit is not None:
            query = query.order_by(records.c.run_at.desc(), records.c.id.desc()).limit(flt.limit)
            with self.engine.begin() as conn:
                rows = list(reversed(conn.execute(query).mappings().all()))
        else:
            with self.engine.begin() as conn:
                rows = list(conn.execute(query.order_by(records.c.run_at, records.c.id)).mappings().all())
        return self._stored(rows)

    def get(self, ref: str, documents: bool = True) -> StoredRun:
        """A record by its number (``12`` or ``#12``) or by its run id when one record has it."""
        text = ref.strip().lstrip("#")
        cond = records.c.id == int(text) if text.isdigit() else records.c.run_id == text
        with self.engine.begin() as conn:
            rows = list(conn.execute(self._select(documents).where(cond).order_by(records.c.id)).mappings().all())
        if not rows:
            raise StoreError(f"no record '{ref}' in {self.where} (see lpuperf history list)")
        if len(rows) > 1:
            ids = ", ".join(f"#{r['id']}" for r in rows[-5:])
            raise StoreError(f"run id '{ref}' names {len(rows)} records (latest {ids}): give the record number")
        return self._stored(rows)[0]

    def find_results(self, results_sha256: str) -> StoredRun | None:
        """The record of the run whose results.json has this sha256, if it was recorded."""
        if not results_sha256:
            return None
        query = self._select(True).where(records.c.results_sha256 == results_sha256)
        with self.engine.begin() as conn:
            rows = list(conn.execute(query).mappings().all())
        return self._stored(rows)[0] if rows else None

    def last_good(self, candidate: RunRecord) -> StoredRun | None:
        """The newest record marked good of the same artifact name and kind of run (command, scenario, load, mode,
        benchmark; see UNKNOWN_ORIGIN) whose build differs from the candidate's and which ran before it."""
        query = (
            self._select(True)
            .where(
                good_marks.c.record_id.is_not(None),
                records.c.artifact_name == candidate.artifact.name,
                sa.true()
                if candidate.command in UNKNOWN_ORIGIN
                else records.c.command.in_([candidate.command, *UNKNOWN_ORIGIN]),
                records.c.scenario == candidate.scenario,
                records.c.load_spec == candidate.load_spec,
                records.c.mode == candidate.mode,
                records.c.benchmark == candidate.benchmark,
                records.c.manifest_sha256 != candidate.artifact.manifest_sha256,
                records.c.run_at <= _utc(candidate.run_at),
            )
            .order_by(records.c.run_at.desc(), records.c.id.desc())
            .limit(1)
        )
        with self.engine.begin() as conn:
            rows = list(conn.execute(query).mappings().all())
        return self._stored(rows)[0] if rows else None

    def metric_names(self) -> list[str]:
        with self.engine.begin() as conn:
            return list(conn.execute(sa.select(metrics.c.name).distinct().order_by(metrics.c.name)).scalars())

    def revision(self) -> str | None:
        with self.engine.begin() as conn:
            return current_revision(conn)

    def _select(self, documents: bool) -> sa.Select[Any]:
        cols = [c for c in records.c if documents or c.name not in ("results", "accuracy", "fidelity")]
        return sa.select(*cols, good_marks.c.note.label("good_note"), good_marks.c.record_id.label("good_id")).join(
            good_marks, good_marks.c.record_id == records.c.id, isouter=True
        )

    @staticmethod
    def _conditions(flt: RunFilter) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        for value, column in (
            (flt.artifact, records.c.artifact_name),
            (flt.benchmark, records.c.benchmark),
            (flt.scenario, records.c.scenario),
            (flt.load_kind, records.c.load_kind),
            (flt.mode, records.c.mode),
            (flt.command, records.c.command),
        ):
            if value:
                out.append(column == value)
        if flt.since is not None:
            out.append(records.c.run_at >= _utc(flt.since))
        return out

    def _stored(self, rows: Sequence[sa.RowMapping]) -> list[StoredRun]:
        ids = [int(r["id"]) for r in rows]
        figures: dict[int, list[MetricValue]] = {i: [] for i in ids}
        outcomes: dict[int, list[Verdict]] = {i: [] for i in ids}
        with self.engine.begin() as conn:
            for chunk in _chunks(ids):
                for m in conn.execute(sa.select(metrics).where(metrics.c.record_id.in_(chunk))).mappings():
                    figures[m["record_id"]].append(
                        MetricValue(
                            name=m["name"], value=m["value"], unit=m["unit"], ci_low=m["ci_low"], ci_high=m["ci_high"]
                        )
                    )
                for v in conn.execute(sa.select(verdicts).where(verdicts.c.record_id.in_(chunk))).mappings():
                    outcomes[v["record_id"]].append(
                        Verdict(
                            kind=v["kind"],
                            name=v["name"],
                            passed=v["passed"],
                            message=v["message"],
                            command=v["command"],
                        )
                    )
        out = []
        for r in rows:
            rid = int(r["id"])
            out.append(
                StoredRun(
                    id=rid,
                    recorded_at=_utc(r["recorded_at"]),
                    good=r["good_id"] is not None,
                    good_note=r["good_note"] or "",
                    command=r["command"],
                    run_id=r["run_id"],
                    run_at=_utc(r["run_at"]),
                    scenario=r["scenario"],
                    load_kind=r["load_kind"] or "",
                    load_spec=r["load_spec"] or "",
                    mode=r["mode"],
                    benchmark=r["benchmark"],
                    preset=r["preset"],
                    state=r["state"],
                    valid=r["valid"],
                    validity_reasons=list(r["validity_reasons"] or []),
                    artifact=ArtifactBuild(
                        name=r["artifact_name"],
                        backend=r["artifact_backend"],
                        model=r["model"],
                        precision=r["precision"],
                        manifest_sha256=r["manifest_sha256"],
                        toolchain_version=r["toolchain_version"],
                        target=r["target"],
                        checksum=r["checksum"],
                        build_id=r["build_id"],
                        build=dict(r["build"] or {}),
                    ),
                    run_dir=r["run_dir"],
                    lpuperf_version=r["lpuperf_version"],
                    loadgen_version=r["loadgen_version"],
                    results_sha256=r["results_sha256"] or "",
                    metrics=sorted(figures[rid], key=lambda m: m.name),
                    verdicts=sorted(outcomes[rid], key=lambda v: (v.kind, v.name)),
                    results=_document("loadgen_harness", "RunResult", r.get("results")),
                    accuracy=_document("accuracy", "AccuracyReport", r.get("accuracy")),
                    fidelity=_document("accuracy", "FidelityReport", r.get("fidelity")),
                )
            )
        return out

"""The run store's tables (SQLAlchemy Core), as the newest migration leaves them.

``records`` holds one row per recorded run; ``metrics`` its figures by name (one row each, so a trend
or a Grafana panel is one query on ``name``); ``verdicts`` its pass/fail outcomes; ``good_marks`` the
records someone marked as a good build. The migrations in ``history/migrations/versions`` create
exactly these tables; tests/unit/history check that the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# The newest migration in history/migrations/versions (a test checks they agree): a store stamped with it
# needs no upgrade, so opening one does not load Alembic.
SCHEMA_REVISION = "r0004"

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("command", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(255), nullable=False, index=True),
    sa.Column("results_sha256", sa.String(64), nullable=True),
    sa.Column("scenario", sa.String(64), nullable=False),
    # A run beside LoadGen (lpuperf run --load): its load shape and --load value; '' for a LoadGen run.
    sa.Column("load_kind", sa.String(32), nullable=False, server_default=""),
    sa.Column("load_spec", sa.Text, nullable=False, server_default=""),
    sa.Column("mode", sa.String(32), nullable=False),
    sa.Column("benchmark", sa.String(128), nullable=False),
    sa.Column("preset", sa.String(64), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("valid", sa.Boolean, nullable=True),
    sa.Column("validity_reasons", sa.JSON, nullable=False),
    sa.Column("artifact_name", sa.String(255), nullable=False, index=True),
    sa.Column("artifact_backend", sa.String(64), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("precision", sa.String(64), nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("toolchain_version", sa.String(255), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("checksum", sa.String(255), nullable=False),
    sa.Column("build_id", sa.String(255), nullable=False),
    sa.Column("build", sa.JSON, nullable=False),
    sa.Column("run_dir", sa.Text, nullable=False),
    sa.Column("lpuperf_version", sa.String(64), nullable=False),
    sa.Column("loadgen_version", sa.String(64), nullable=False),
    sa.Column("results", sa.JSON, nullable=True),
    sa.Column("accuracy", sa.JSON, nullable=True),
    sa.Column("fidelity", sa.JSON, nullable=True),
    sa.UniqueConstraint("results_sha256", name="uq_records_results_sha256"),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True, index=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("ci_low", sa.Float, nullable=True),
    sa.Column("ci_high", sa.Float, nullable=True),
)

verdicts = sa.Table(
    "verdicts",
    metadata,
    sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("command", sa.String(64), nullable=False),
)

good_marks = sa.Table(
    "good_marks",
    metadata,
    sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

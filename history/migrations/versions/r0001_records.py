"""records, metrics and verdicts

Revision ID: r0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("results_sha256", sa.String(64), nullable=True),
        sa.Column("scenario", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("benchmark", sa.String(128), nullable=False),
        sa.Column("preset", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("valid", sa.Boolean, nullable=True),
        sa.Column("validity_reasons", sa.JSON, nullable=False),
        sa.Column("artifact_name", sa.String(255), nullable=False),
        sa.Column("artifact_backend", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("precision", sa.String(64), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
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
    op.create_index("ix_records_run_at", "records", ["run_at"])
    op.create_index("ix_records_run_id", "records", ["run_id"])
    op.create_index("ix_records_artifact_name", "records", ["artifact_name"])
    op.create_index("ix_records_manifest_sha256", "records", ["manifest_sha256"])
    op.create_table(
        "metrics",
        sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("ci_low", sa.Float, nullable=True),
        sa.Column("ci_high", sa.Float, nullable=True),
    )
    op.create_index("ix_metrics_name", "metrics", ["name"])
    op.create_table(
        "verdicts",
        sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("command", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("verdicts")
    op.drop_table("metrics")
    op.drop_table("records")

"""records.load_kind and records.load_spec: the load a run beside LoadGen sent (lpuperf run --load)

Revision ID: r0004
Revises: r0003

A run beside LoadGen names its load shape (concurrency, rate, trace, sessions) and the --load value it
ran with; a listing filters on the kind and the last good build is looked up among runs of the same load.
Records made before this revision are LoadGen runs or checks: both columns stay empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0004"
down_revision = "r0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("records", sa.Column("load_kind", sa.String(32), nullable=False, server_default=""))
    op.add_column("records", sa.Column("load_spec", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("load_spec")
        batch.drop_column("load_kind")

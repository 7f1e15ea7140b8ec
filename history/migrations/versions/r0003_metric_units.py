"""metric units as their names state them: fractions of 0..1 are "fraction", 0..100 scores "%"

Revision ID: r0003
Revises: r0002

lpuperf before this revision labelled ``goodput.fraction``, ``error_rate`` and
``fidelity.exact_match[...]`` (values 0..1) as "%", and left ``accuracy.*`` and ``fidelity.rouge_l[...]``
(values 0..100) without a unit. Only the labels were wrong; the values keep their scale.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None

_metrics = sa.table("metrics", sa.column("name", sa.String), sa.column("unit", sa.String))
_FRACTIONS = sa.or_(
    _metrics.c.name.in_(("error_rate", "goodput.fraction")),
    _metrics.c.name.startswith("fidelity.exact_match[", autoescape=True),
)
_PERCENTS = sa.or_(
    _metrics.c.name.startswith("accuracy.", autoescape=True),
    _metrics.c.name.startswith("fidelity.rouge_l[", autoescape=True),
)


def upgrade() -> None:
    op.execute(_metrics.update().where(_FRACTIONS).values(unit="fraction"))
    op.execute(_metrics.update().where(_PERCENTS).values(unit="%"))


def downgrade() -> None:
    op.execute(_metrics.update().where(_FRACTIONS).values(unit="%"))
    op.execute(_metrics.update().where(_PERCENTS).values(unit=""))

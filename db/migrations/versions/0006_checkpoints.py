"""a trial's latest checkpoint, resumed by its retry; a complete trial's weights, and a
preset's copy of them; a population-based trial's lineage

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 10:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "checkpoints",
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trial_id"),
    )
    op.create_table(
        "trial_weights",
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trial_id"),
    )

    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lineage", sa.JSON(), nullable=True))
    with op.batch_alter_table("presets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weights", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("weights_size", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_column("lineage")
    with op.batch_alter_table("presets", schema=None) as batch_op:
        batch_op.drop_column("weights_size")
        batch_op.drop_column("weights")
    op.drop_table("trial_weights")
    op.drop_table("checkpoints")

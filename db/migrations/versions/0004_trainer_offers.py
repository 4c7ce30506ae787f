"""trainer offers, and each study's trainer

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Workers announce the trainers they can import; the API reads them instead of importing.
    op.create_table(
        "trainer_offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("config_schema", sa.JSON(), nullable=False),
        sa.Column("step_metrics", sa.JSON(), nullable=False),
        sa.Column("final_metrics", sa.JSON(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trainer_offers")),
        sa.UniqueConstraint("name", "worker", name=op.f("uq_trainer_offers_name_worker")),
    )
    with op.batch_alter_table("trainer_offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trainer_offers_name"), ["name"], unique=False)
    # A trial goes to the queue of its study's trainer; every study so far used the engine.
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trainer", sa.String(length=40), server_default="numpy", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_column("trainer")
    with op.batch_alter_table("trainer_offers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trainer_offers_name"))
    op.drop_table("trainer_offers")

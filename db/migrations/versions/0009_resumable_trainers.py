"""a trainer offer says whether the trainer saves and resumes its state

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 11:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Population-based training runs only trainers that resume their state; offers made before
    # say nothing of it, and count as not resumable until their worker offers again.
    with op.batch_alter_table("trainer_offers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("resumable", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("trainer_offers", schema=None) as batch_op:
        batch_op.drop_column("resumable")

"""agents offer trainers to their team; a study says who runs its trials

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A worker's offer is every team's (no team); an agent's is its study's team's alone. An
    # agent running a plain function declares no schema nor metrics: nothing to check against.
    with op.batch_alter_table("trainer_offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("declared", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_trainer_offers_team_id"), ["team_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_trainer_offers_team_id_teams"),
            "teams",
            ["team_id"],
            ["id"],
            ondelete="CASCADE",
        )
    # Uploads are streamed to agents a part at a time: uncompressed out-of-line storage lets
    # PostgreSQL read a part's chunks alone (uploads stored before keep theirs, read whole
    # for each part). SQLite has no such setting, nor need of it.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE datasets ALTER COLUMN content SET STORAGE EXTERNAL")
    # Every study so far was run by whoever could: workers, the local pool, agents.
    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("runs_on", sa.String(length=8), server_default="any", nullable=False)
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE datasets ALTER COLUMN content SET STORAGE EXTENDED")
    # Not a batch: on SQLite that copies the table, and dropping the old copy would delete
    # every trial (ON DELETE CASCADE). SQLite drops a plain column in place since 3.35.
    op.execute("ALTER TABLE studies DROP COLUMN runs_on")
    with op.batch_alter_table("trainer_offers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_trainer_offers_team_id_teams"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_trainer_offers_team_id"))
        batch_op.drop_column("declared")
        batch_op.drop_column("team_id")

"""accounts, idempotency, dataset summary

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 20:04:00.527239
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows written before this revision get empty defaults for the new non-null columns.
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("name", sa.String(length=100), nullable=False, server_default="")
        )

    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("summary", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("created_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_datasets_created_by_users"),
            "users",
            ["created_by"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("created_by", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_studies_team_id_idempotency_key"), ["team_id", "idempotency_key"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_studies_created_by_users"),
            "users",
            ["created_by"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_of", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default=sa.text("1"))
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_trials_retry_of_trials"),
            "trials",
            ["retry_of"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.drop_index(batch_op.f("ix_trials_study_state"))
        batch_op.create_index(
            "ix_trials_study_state_value", ["study_id", "state", "value"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_index("ix_trials_study_state_value")
        batch_op.drop_constraint(batch_op.f("fk_trials_retry_of_trials"), type_="foreignkey")
        batch_op.drop_column("attempt")
        batch_op.drop_column("retry_of")
        batch_op.create_index(
            batch_op.f("ix_trials_study_state"), ["study_id", "state"], unique=False
        )

    with op.batch_alter_table("studies", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_studies_created_by_users"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_studies_team_id_idempotency_key"), type_="unique")
        batch_op.drop_column("created_by")
        batch_op.drop_column("deadline_at")
        batch_op.drop_column("request_hash")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("tags")

    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_datasets_created_by_users"), type_="foreignkey")
        batch_op.drop_column("created_by")
        batch_op.drop_column("summary")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("name")

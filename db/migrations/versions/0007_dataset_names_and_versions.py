"""uploaded datasets get versions under team-unique names; studies keep the versions they use

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_datasets = sa.table(
    "datasets",
    sa.column("id", sa.Integer),
    sa.column("team_id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("version", sa.Integer),
)


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    # Uploads made before under one name become its versions, in the order they were made.
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_datasets.c.id, _datasets.c.team_id, _datasets.c.name).order_by(_datasets.c.id)
    ).all()
    seen: dict[tuple[int, str], int] = {}
    for dataset_id, team_id, name in rows:
        version = seen[team_id, name] = seen.get((team_id, name), 0) + 1
        if version > 1:
            connection.execute(
                _datasets.update().where(_datasets.c.id == dataset_id).values(version=version)
            )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        # The same bytes under another name are another dataset now.
        batch_op.drop_constraint("uq_datasets_team_id_content_hash", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_datasets_team_id_name_version"), ["team_id", "name", "version"]
        )
    op.add_column("studies", sa.Column("datasets", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    # Not in batch mode: SQLite's batch copies the table and drops the old one, and dropping
    # `studies` would cascade to every trial. SQLite drops a column itself since 3.35.
    op.drop_column("studies", "datasets")
    # Only one row per content survives the constraint of before: later copies go, as they
    # would never have been stored.
    connection = op.get_bind()
    hashes = sa.table(
        "datasets", sa.column("id", sa.Integer), sa.column("team_id"), sa.column("content_hash")
    )
    keep = (
        sa.select(sa.func.min(hashes.c.id))
        .group_by(hashes.c.team_id, hashes.c.content_hash)
        .scalar_subquery()
    )
    connection.execute(hashes.delete().where(hashes.c.id.not_in(keep)))
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_constraint("uq_datasets_team_id_name_version", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_datasets_team_id_content_hash"), ["team_id", "content_hash"]
        )
        batch_op.drop_column("version")

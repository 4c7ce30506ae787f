"""Accounts on a real PostgreSQL: migration 0003 both ways, and invitations' locking paths."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect

from hpsearch.db import accounts
from hpsearch.db.migrate import alembic_config, upgrade
from hpsearch.db.models import Role
from hpsearch.db.session import get_engine, session_scope


def test_the_invitations_migration_runs_both_ways_and_matches_the_models(
    fresh_database_url: str,
) -> None:
    upgrade(fresh_database_url)
    command.check(alembic_config(fresh_database_url))
    command.downgrade(alembic_config(fresh_database_url), "0002")
    assert "invitations" not in inspect(get_engine(fresh_database_url)).get_table_names()
    upgrade(fresh_database_url)
    command.check(alembic_config(fresh_database_url))


def test_a_second_invitation_is_refused_and_the_first_accepted(fresh_database_url: str) -> None:
    upgrade(fresh_database_url)
    with session_scope(fresh_database_url) as session:
        team = accounts.create_team(session, "beta")
        bob, ana = accounts.create_user(session, "bob"), accounts.create_user(session, "ana")
        accounts.set_role(session, bob.id, team.id, Role.ADMIN)
        first = accounts.invite(
            session, team_id=team.id, user_name="ana", role=Role.VIEWER, invited_by=bob.id
        )
        # The unique (team, name) pair refuses the second inside a savepoint: the first stays.
        with pytest.raises(accounts.AccountError, match="pending invitation"):
            accounts.invite(
                session, team_id=team.id, user_name="ana", role=Role.ADMIN, invited_by=bob.id
            )
    with session_scope(fresh_database_url) as session:
        joined = accounts.accept_invitation(session, ana.id, first.id)
        assert joined is not None and (joined.team, joined.role) == ("beta", Role.VIEWER)
    with session_scope(fresh_database_url) as session:
        assert [m.name for m in accounts.members_of(session, team.id)] == ["ana", "bob"]

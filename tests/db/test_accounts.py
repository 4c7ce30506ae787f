"""Token authentication: who a token acts for, with their teams, in one statement."""

from __future__ import annotations

from db import accounts
from db.migrate import upgrade
from db.models import Role
from db.session import session_scope


def test_a_token_gives_its_user_and_all_their_teams_by_name(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        ana = accounts.create_user(session, "ana")
        for name, role in (("zeta", Role.VIEWER), ("alpha", Role.ADMIN)):
            accounts.set_role(session, ana.id, accounts.create_team(session, name).id, role)
        token, secret = accounts.issue_token(session, ana.id, "test", None)
    with session_scope(sqlite_url) as session:
        identity = accounts.authenticate(session, secret)
        assert identity is not None
        assert (identity.token_id, identity.user_id, identity.user) == (token.id, ana.id, "ana")
        assert [(t.team, t.role) for t in identity.teams] == [
            ("alpha", Role.ADMIN),
            ("zeta", Role.VIEWER),
        ]


def test_a_user_in_no_team_authenticates_with_no_teams(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        bo = accounts.create_user(session, "bo")
        _, secret = accounts.issue_token(session, bo.id, "test", None)
    with session_scope(sqlite_url) as session:
        identity = accounts.authenticate(session, secret)
        assert identity is not None and identity.user == "bo" and identity.teams == ()


def test_revoked_and_unknown_tokens_authenticate_no_one(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        cy = accounts.create_user(session, "cy")
        accounts.set_role(session, cy.id, accounts.create_team(session, "alpha").id, Role.MEMBER)
        token, secret = accounts.issue_token(session, cy.id, "test", None)
        assert accounts.revoke_token(session, cy.id, token.id)
    with session_scope(sqlite_url) as session:
        assert accounts.authenticate(session, secret) is None
        assert accounts.authenticate(session, "hps_unknown") is None

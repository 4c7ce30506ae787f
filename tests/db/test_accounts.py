"""Token authentication: who a token acts for, with their teams, in one statement."""

from __future__ import annotations

from hpsearch.db import accounts
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Invitation, Role
from hpsearch.db.session import session_scope


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


def test_an_invitation_reaches_only_the_user_named_when_it_was_made(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        team = accounts.create_team(session, "beta")
        bob = accounts.create_user(session, "bob")
        accounts.set_role(session, bob.id, team.id, Role.ADMIN)
        ana = accounts.create_user(session, "ana")
        for name in ("ana", "ghost"):
            accounts.invite(
                session, team_id=team.id, user_name=name, role=Role.MEMBER, invited_by=bob.id
            )
        ghost = accounts.create_user(session, "ghost")
        assert [i.user for i in accounts.team_invitations(session, team.id)] == ["ana", "ghost"]
        assert [i.team for i in accounts.invitations_for(session, ana.id)] == ["beta"]
        assert accounts.invitations_for(session, ghost.id) == []
        ghost_invitation = accounts.team_invitations(session, team.id)[1].id
        assert accounts.accept_invitation(session, ghost.id, ghost_invitation) is None
        assert accounts.member_named(session, team.id, "ghost") is None


def test_accepting_never_demotes_and_the_operator_adding_clears_invitations(
    sqlite_url: str,
) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        team = accounts.create_team(session, "beta")
        bob, ana, cy = (accounts.create_user(session, n) for n in ("bob", "ana", "cy"))
        accounts.set_role(session, bob.id, team.id, Role.ADMIN)
        accounts.invite(
            session, team_id=team.id, user_name="ana", role=Role.VIEWER, invited_by=bob.id
        )
        [invitation] = accounts.invitations_for(session, ana.id)
        # The operator adds ana meanwhile: her invitation has nothing left to offer.
        accounts.set_role(session, ana.id, team.id, Role.ADMIN)
        assert accounts.invitations_for(session, ana.id) == []
        assert accounts.accept_invitation(session, ana.id, invitation.id) is None
        # An invitation accepted by someone already in the team (a race) keeps their role.
        accounts.set_role(session, cy.id, team.id, Role.ADMIN)
        stale = Invitation(team_id=team.id, user_name="cy", user_id=cy.id, role=Role.VIEWER)
        session.add(stale)
        session.flush()
        joined = accounts.accept_invitation(session, cy.id, stale.id)
        assert joined is not None and joined.role == Role.ADMIN
        assert accounts.invitations_for(session, cy.id) == []

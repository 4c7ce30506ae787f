"""Teams and their members; team admins manage membership and members' tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CallerDep, SessionDep
from api.errors import Conflict, NotFound
from api.params import TeamName, TokenId, UserName
from api.schemas import MemberPublic, MemberUpdate, TeamPublic, TokenPublic
from db import accounts
from db.models import Role, User

router = APIRouter(prefix="/api/v1/teams", tags=["teams"])


@router.get("")
def list_teams(caller: CallerDep) -> list[TeamPublic]:
    """Your teams and your role in each."""
    return [
        TeamPublic(id=team_id, name=caller.team_names[team_id], role=role.value)
        for team_id, role in caller.roles.items()
    ]


@router.get("/{team}/members")
def list_members(team: TeamName, session: SessionDep, caller: CallerDep) -> list[MemberPublic]:
    """A team's members and their roles."""
    team_id = caller.team_named(team, Role.VIEWER)
    return [
        MemberPublic(user_id=m.user_id, name=m.name, role=m.role.value)
        for m in accounts.members_of(session, team_id)
    ]


@router.put("/{team}/members/{user}")
def set_member(
    team: TeamName, user: UserName, body: MemberUpdate, session: SessionDep, caller: CallerDep
) -> MemberPublic:
    """Add a user to the team, or change their role (team admins only)."""
    team_id = caller.team_named(team, Role.ADMIN)
    member = accounts.user_named(session, user)
    if member is None:
        raise NotFound("user")
    if body.role != Role.ADMIN and _last_admin(session, team_id, member.id):
        raise Conflict("role: a team keeps at least one admin", "role")
    accounts.set_role(session, member.id, team_id, body.role)
    return MemberPublic(user_id=member.id, name=member.name, role=body.role.value)


@router.delete("/{team}/members/{user}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(team: TeamName, user: UserName, session: SessionDep, caller: CallerDep) -> None:
    """Take a user out of the team (team admins only)."""
    team_id = caller.team_named(team, Role.ADMIN)
    member = accounts.user_named(session, user)
    if member is None:
        raise NotFound("user")
    if _last_admin(session, team_id, member.id):
        raise Conflict("user: a team keeps at least one admin", "user")
    if not accounts.remove_member(session, member.id, team_id):
        raise NotFound("member")


# Team admins may see and revoke a member's tokens but not issue them: a token acts for its user
# in all their teams, so issuing one would reach into teams this admin does not manage. New
# tokens come from the user themselves or from the server's operator (`hpsearch admin`).
@router.get("/{team}/members/{user}/tokens")
def list_member_tokens(
    team: TeamName, user: UserName, session: SessionDep, caller: CallerDep
) -> list[TokenPublic]:
    """A member's tokens, newest first, by prefix (team admins only)."""
    member = _member(session, caller.team_named(team, Role.ADMIN), user)
    return [
        TokenPublic.model_validate(t, from_attributes=True)
        for t in accounts.tokens_of(session, member.id)
    ]


@router.delete("/{team}/members/{user}/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_member_token(
    team: TeamName, user: UserName, token_id: TokenId, session: SessionDep, caller: CallerDep
) -> None:
    """Revoke a member's token at once, e.g. a lost laptop's (team admins only)."""
    member = _member(session, caller.team_named(team, Role.ADMIN), user)
    if not accounts.revoke_token(session, member.id, token_id):
        raise NotFound("token")


def _member(session: SessionDep, team_id: int, name: str) -> User:
    member = accounts.member_named(session, team_id, name)
    if member is None:
        raise NotFound("user")
    return member


def _last_admin(session: SessionDep, team_id: int, user_id: int) -> bool:
    members = accounts.members_of(session, team_id)
    admins = [m.user_id for m in members if m.role == Role.ADMIN]
    return admins == [user_id]

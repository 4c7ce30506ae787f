"""Teams, their members and invitations; team admins manage membership, never tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from hpsearch.api.deps import CallerDep, SessionDep
from hpsearch.api.errors import Conflict, NotFound
from hpsearch.api.params import InvitationId, TeamName, UserName
from hpsearch.api.schemas import (
    InvitationCreate,
    InvitationPublic,
    MemberPublic,
    MemberUpdate,
    TeamPublic,
)
from hpsearch.db import accounts
from hpsearch.db.models import Role, User

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


@router.get("/{team}/members/{user}")
def get_member(
    team: TeamName, user: UserName, session: SessionDep, caller: CallerDep
) -> MemberPublic:
    """One member of a team and their role: what the team's listing says of them."""
    team_id = caller.team_named(team, Role.VIEWER)
    for member in accounts.members_of(session, team_id):
        if member.name == user:
            return MemberPublic(user_id=member.user_id, name=member.name, role=member.role.value)
    raise NotFound("member")


@router.put("/{team}/members/{user}")
def set_member(
    team: TeamName, user: UserName, body: MemberUpdate, session: SessionDep, caller: CallerDep
) -> MemberPublic:
    """Change a member's role (team admins only); a user joins by accepting an invitation."""
    team_id = caller.team_named(team, Role.ADMIN)
    member = _member(session, team_id, user)
    if body.role != Role.ADMIN and _last_admin(session, team_id, member.id):
        raise Conflict("role: a team keeps at least one admin", "role")
    accounts.set_role(session, member.id, team_id, body.role)
    return MemberPublic(user_id=member.id, name=member.name, role=body.role.value)


@router.delete("/{team}/members/{user}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(team: TeamName, user: UserName, session: SessionDep, caller: CallerDep) -> None:
    """Take a member out of the team (team admins only): their tokens stop reaching it at once,
    and keep working in their other teams."""
    team_id = caller.team_named(team, Role.ADMIN)
    member = _member(session, team_id, user)
    if _last_admin(session, team_id, member.id):
        raise Conflict("user: a team keeps at least one admin", "user")
    accounts.remove_member(session, member.id, team_id)


# Whether a name is a user is not a team admin's business: an invitation to a name nobody has
# is answered, listed and withdrawn like any other, and simply never reaches anyone.
@router.post("/{team}/invitations", status_code=status.HTTP_201_CREATED)
def invite(
    team: TeamName, body: InvitationCreate, session: SessionDep, caller: CallerDep
) -> InvitationPublic:
    """Invite a user by name to a role; they join when they accept (team admins only)."""
    team_id = caller.team_named(team, Role.ADMIN)
    try:
        invitation = accounts.invite(
            session, team_id=team_id, user_name=body.user, role=body.role, invited_by=caller.user_id
        )
    except accounts.AccountError as exc:
        raise Conflict(str(exc), exc.field) from None
    return InvitationPublic.model_validate(invitation, from_attributes=True)


@router.get("/{team}/invitations")
def list_invitations(
    team: TeamName, session: SessionDep, caller: CallerDep
) -> list[InvitationPublic]:
    """The team's pending invitations, oldest first (team admins only)."""
    team_id = caller.team_named(team, Role.ADMIN)
    return [
        InvitationPublic.model_validate(i, from_attributes=True)
        for i in accounts.team_invitations(session, team_id)
    ]


@router.delete("/{team}/invitations/{invitation_id}", status_code=status.HTTP_204_NO_CONTENT)
def withdraw_invitation(
    team: TeamName, invitation_id: InvitationId, session: SessionDep, caller: CallerDep
) -> None:
    """Withdraw a pending invitation (team admins only)."""
    team_id = caller.team_named(team, Role.ADMIN)
    if not accounts.withdraw_invitation(session, team_id, invitation_id):
        raise NotFound("invitation")


def _member(session: SessionDep, team_id: int, name: str) -> User:
    # One answer for a name that is no user and for a user of no concern to this team.
    member = accounts.member_named(session, team_id, name)
    if member is None:
        raise NotFound("member")
    return member


def _last_admin(session: SessionDep, team_id: int, user_id: int) -> bool:
    members = accounts.members_of(session, team_id)
    admins = [m.user_id for m in members if m.role == Role.ADMIN]
    return admins == [user_id]

"""The caller's own account: who they are, their teams, their invitations, their tokens."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, status

from hpsearch.api.deps import CallerDep, SessionDep
from hpsearch.api.errors import NotFound
from hpsearch.api.params import InvitationId, TokenId
from hpsearch.api.schemas import (
    InvitationPublic,
    MePublic,
    TeamPublic,
    TokenCreate,
    TokenCreated,
    TokenPublic,
)
from hpsearch.db import accounts
from hpsearch.db.models import utcnow

router = APIRouter(prefix="/api/v1", tags=["account"])


@router.get("/me")
def me(caller: CallerDep) -> MePublic:
    """The user this token acts for, and their teams with their role in each."""
    return MePublic(
        id=caller.user_id,
        name=caller.user,
        teams=[
            TeamPublic(id=team_id, name=caller.team_names[team_id], role=role.value)
            for team_id, role in caller.roles.items()
        ],
    )


@router.get("/invitations")
def list_invitations(session: SessionDep, caller: CallerDep) -> list[InvitationPublic]:
    """Your pending invitations to teams, oldest first."""
    return [
        InvitationPublic.model_validate(i, from_attributes=True)
        for i in accounts.invitations_for(session, caller.user_id)
    ]


@router.post("/invitations/{invitation_id}/accept")
def accept_invitation(
    invitation_id: InvitationId, session: SessionDep, caller: CallerDep
) -> TeamPublic:
    """Join the invitation's team with its role (a member already keeps their role)."""
    joined = accounts.accept_invitation(session, caller.user_id, invitation_id)
    if joined is None:
        raise NotFound("invitation")
    return TeamPublic(id=joined.team_id, name=joined.team, role=joined.role.value)


@router.post("/invitations/{invitation_id}/decline", status_code=status.HTTP_204_NO_CONTENT)
def decline_invitation(invitation_id: InvitationId, session: SessionDep, caller: CallerDep) -> None:
    """Decline an invitation: it is gone, for you and for the team's admins."""
    if not accounts.decline_invitation(session, caller.user_id, invitation_id):
        raise NotFound("invitation")


@router.get("/tokens")
def list_tokens(session: SessionDep, caller: CallerDep) -> list[TokenPublic]:
    """Your tokens, newest first: their prefixes only."""
    return [
        TokenPublic.model_validate(t, from_attributes=True)
        for t in accounts.tokens_of(session, caller.user_id)
    ]


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, session: SessionDep, caller: CallerDep) -> TokenCreated:
    """A new token for you; the secret is in this answer only."""
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    token, secret = accounts.issue_token(session, caller.user_id, body.name, expires)
    public = TokenPublic.model_validate(token, from_attributes=True)
    return TokenCreated(**public.model_dump(), token=secret)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: TokenId, session: SessionDep, caller: CallerDep) -> None:
    """Revoke one of your tokens; it stops working at once."""
    if not accounts.revoke_token(session, caller.user_id, token_id):
        raise NotFound("token")

"""Users, teams, memberships, invitations and API tokens.

A user joins a team only by accepting a team admin's invitation (or when the operator adds them):
a token acts for its user in all their teams, so nobody is put in a team without consenting.

A token is 32 random bytes shown once; only its SHA-256 is stored. A slow password hash buys
nothing here: the secret has 256 bits of entropy, so a fast hash cannot be brute-forced, and
every request pays for the lookup.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from hpsearch.db.models import ApiToken, Invitation, Membership, Role, Team, User, utcnow
from hpsearch.db.names import check_name

TOKEN_PREFIX = "hps_"
# The part of a token shown in listings: enough to tell tokens apart, useless to an attacker.
SHOWN_CHARS = len(TOKEN_PREFIX) + 8
# A token's last use is written at most this often, so that polling is not a write per request.
LAST_USED_EVERY = timedelta(minutes=1)

ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}


class AccountError(ValueError):
    """A bootstrap or membership change that cannot be made (names the field at fault)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _check_name(field: str, name: str, min_length: int = 1) -> None:
    try:
        check_name(name, 100, min_length)
    except ValueError as exc:
        raise AccountError(field, f"{name!r} {exc}") from None


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, name: str) -> User:
    """A new user; the name must be printable and free."""
    _check_name("user", name)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise AccountError("user", f"a user named {name!r} exists")
    user = User(name=name)
    session.add(user)
    session.flush()
    return user


def create_team(session: Session, name: str) -> Team:
    """A new team; the name must be printable and free."""
    _check_name("team", name)
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise AccountError("team", f"a team named {name!r} exists")
    team = Team(name=name)
    session.add(team)
    session.flush()
    return team


def user_named(session: Session, name: str) -> User | None:
    """The user called `name`."""
    return session.scalars(select(User).where(User.name == name)).one_or_none()


def team_named(session: Session, name: str) -> Team | None:
    """The team called `name`."""
    return session.scalars(select(Team).where(Team.name == name)).one_or_none()


def set_role(session: Session, user_id: int, team_id: int, role: Role) -> None:
    """Make the user a member of the team with `role` (added, or their role changed).

    Adding is for the operator and for an accepted invitation; team admins only change roles.
    """
    membership = session.get(Membership, (user_id, team_id))
    if membership is None:
        session.add(Membership(user_id=user_id, team_id=team_id, role=role))
        # An invitation to a team the user is now in has nothing left to offer.
        session.execute(
            delete(Invitation).where(Invitation.user_id == user_id, Invitation.team_id == team_id)
        )
    else:
        membership.role = role
    session.flush()


def member_named(session: Session, team_id: int, name: str) -> User | None:
    """The user called `name`, if they are a member of the team."""
    return session.scalars(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(User.name == name, Membership.team_id == team_id)
    ).one_or_none()


def remove_member(session: Session, user_id: int, team_id: int) -> bool:
    """Take the user out of the team; False when they were not in it."""
    result = session.execute(
        delete(Membership).where(Membership.user_id == user_id, Membership.team_id == team_id)
    )
    return result.rowcount == 1


@dataclass(frozen=True)
class Member:
    user_id: int
    name: str
    role: Role


def members_of(session: Session, team_id: int) -> list[Member]:
    """A team's members, by name."""
    rows = session.execute(
        select(User.id, User.name, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.team_id == team_id)
        .order_by(User.name)
    ).all()
    return [Member(*row) for row in rows]


@dataclass(frozen=True)
class PendingInvitation:
    """An invitation as its team's admins and its user see it: the name as typed, never
    whether that name is a user."""

    id: int
    team: str
    user: str
    role: Role
    invited_by: str | None
    created_at: datetime


def invite(
    session: Session, *, team_id: int, user_name: str, role: Role, invited_by: int
) -> PendingInvitation:
    """Invite `user_name` to the team with `role`; the same whether or not the name exists.

    Raises AccountError when the name is already a member (the admin sees members anyway) or
    already has a pending invitation to this team.
    """
    if member_named(session, team_id, user_name) is not None:
        raise AccountError("user", f"{user_name!r} is already a member of the team")
    user = user_named(session, user_name)
    invitation = Invitation(
        team_id=team_id,
        user_name=user_name,
        user_id=user.id if user is not None else None,
        role=role,
        invited_by=invited_by,
    )
    try:
        with session.begin_nested():
            session.add(invitation)
    except IntegrityError:
        # The unique (team, typed name) pair: a pending invitation to this name exists.
        raise AccountError(
            "user", f"{user_name!r} already has a pending invitation to the team"
        ) from None
    return _pending(session, Invitation.id == invitation.id)[0]


def team_invitations(session: Session, team_id: int) -> list[PendingInvitation]:
    """A team's pending invitations, oldest first."""
    return _pending(session, Invitation.team_id == team_id)


def withdraw_invitation(session: Session, team_id: int, invitation_id: int) -> bool:
    """Withdraw one of the team's pending invitations; False when the team has no such one."""
    result = session.execute(
        delete(Invitation).where(Invitation.id == invitation_id, Invitation.team_id == team_id)
    )
    return result.rowcount == 1


def invitations_for(session: Session, user_id: int) -> list[PendingInvitation]:
    """The user's pending invitations, oldest first."""
    return _pending(session, Invitation.user_id == user_id)


def accept_invitation(session: Session, user_id: int, invitation_id: int) -> TeamRole | None:
    """Join the team with the invitation's role; None when the user has no such invitation.

    A user who is already a member (the operator added them meanwhile) keeps their role: an
    invitation never demotes, so it cannot take a team's last admin away.
    """
    invitation = session.scalars(
        select(Invitation)
        .where(Invitation.id == invitation_id, Invitation.user_id == user_id)
        .with_for_update()
    ).one_or_none()
    if invitation is None:
        return None
    team_id = invitation.team_id
    membership = session.get(Membership, (user_id, team_id))
    if membership is None:
        set_role(session, user_id, team_id, invitation.role)
        role = invitation.role
    else:
        role = membership.role
    session.execute(delete(Invitation).where(Invitation.id == invitation_id))
    return TeamRole(team_id, session.get_one(Team, team_id).name, role)


def decline_invitation(session: Session, user_id: int, invitation_id: int) -> bool:
    """Decline one of the user's invitations; False when the user has no such one."""
    result = session.execute(
        delete(Invitation).where(Invitation.id == invitation_id, Invitation.user_id == user_id)
    )
    return result.rowcount == 1


def _pending(session: Session, where: ColumnElement[bool]) -> list[PendingInvitation]:
    inviter = aliased(User)
    rows = session.execute(
        select(
            Invitation.id,
            Team.name,
            Invitation.user_name,
            Invitation.role,
            inviter.name,
            Invitation.created_at,
        )
        .join(Team, Team.id == Invitation.team_id)
        .outerjoin(inviter, inviter.id == Invitation.invited_by)
        .where(where)
        .order_by(Invitation.id)
    ).all()
    return [PendingInvitation(*row) for row in rows]


@dataclass(frozen=True)
class TeamRole:
    team_id: int
    team: str
    role: Role


def issue_token(
    session: Session, user_id: int, name: str, expires_at: datetime | None
) -> tuple[ApiToken, str]:
    """A new token for the user: its row, and the secret, which is never stored."""
    _check_name("name", name, min_length=0)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user_id,
        name=name,
        prefix=secret[:SHOWN_CHARS],
        token_hash=hash_token(secret),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token, secret


@dataclass(frozen=True)
class Identity:
    """Who a valid token acts for, and their teams (by name)."""

    token_id: int
    user_id: int
    user: str
    teams: tuple[TeamRole, ...] = ()


def authenticate(session: Session, secret: str) -> Identity | None:
    """The identity behind a token; None when it is unknown, revoked or expired."""
    now = utcnow()
    # The user's teams come in the same statement (a row per membership, or one with no team):
    # every API request authenticates, and the second round trip was a tenth of a poll's CPU
    # time in the API server (bench/api.py).
    rows = session.execute(
        select(
            ApiToken.id,
            ApiToken.user_id,
            User.name,
            ApiToken.last_used_at,
            Team.id,
            Team.name,
            Membership.role,
        )
        .join(User, User.id == ApiToken.user_id)
        .outerjoin(Membership, Membership.user_id == User.id)
        .outerjoin(Team, Team.id == Membership.team_id)
        .where(ApiToken.token_hash == hash_token(secret), ApiToken.revoked_at.is_(None))
        .where((ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now))
        .order_by(Team.name)
    ).all()
    if not rows:
        return None
    token_id, user_id, user, last_used = rows[0][:4]
    if last_used is None or now - last_used >= LAST_USED_EVERY:
        session.execute(
            update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now),
            execution_options={"synchronize_session": False},
        )
    teams = tuple(TeamRole(*row[4:]) for row in rows if row[4] is not None)
    return Identity(token_id, user_id, user, teams)


def tokens_of(session: Session, user_id: int) -> Sequence[ApiToken]:
    """A user's tokens, revoked and expired ones included, newest first."""
    return session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
    ).all()


def revoke_token(session: Session, user_id: int, token_id: int) -> bool:
    """Revoke one of the user's tokens at once; False when the user has no such token."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user_id:
        return False
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return True


def has_users(session: Session) -> bool:
    """Whether any account exists yet (a server's first start has none)."""
    return session.scalar(select(User.id).limit(1)) is not None


LOCAL_ADMIN = "admin"


def bootstrap_admin(session: Session, team_id: int) -> str | None:
    """On a server's first start (no user yet): user `admin`, admin of the team, and a token
    that never expires, returned to be shown once. None when users exist already."""
    if has_users(session):
        return None
    user = create_user(session, LOCAL_ADMIN)
    set_role(session, user.id, team_id, Role.ADMIN)
    return issue_token(session, user.id, "first start", None)[1]

"""`hpsearch admin ...`: bootstrap a server's accounts straight in its database."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from db import accounts
from db.migrate import upgrade
from db.models import Role, utcnow
from db.session import session_scope

admin_app = typer.Typer(
    help="Create users, teams and tokens (run on the server, against its database).",
    no_args_is_help=True,
)
console = Console()

DbOption = Annotated[str | None, typer.Option(help="Database URL (default: HPSEARCH_DATABASE_URL)")]


def _fail(message: str) -> NoReturn:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(2)


@admin_app.command("create-team")
def create_team(name: str, db: DbOption = None) -> None:
    """Create a team."""
    upgrade(db)
    try:
        with session_scope(db) as session:
            team = accounts.create_team(session, name)
            console.print(f"team {team.name} (id {team.id}) created")
    except accounts.AccountError as exc:
        _fail(str(exc))


@admin_app.command("create-user")
def create_user(
    name: str,
    team: Annotated[str | None, typer.Option(help="Add the user to this team.")] = None,
    role: Annotated[Role, typer.Option(help="Their role in --team.")] = Role.MEMBER,
    db: DbOption = None,
) -> None:
    """Create a user, optionally in a team with a role."""
    upgrade(db)
    try:
        with session_scope(db) as session:
            user = accounts.create_user(session, name)
            if team is not None:
                found = accounts.team_named(session, team)
                if found is None:
                    raise accounts.AccountError("team", f"no team named {team!r}")
                accounts.set_role(session, user.id, found.id, role)
            console.print(f"user {name} created" + (f", {role.value} of {team}" if team else ""))
    except accounts.AccountError as exc:
        _fail(str(exc))


@admin_app.command("set-role")
def set_role(team: str, user: str, role: Role, db: DbOption = None) -> None:
    """Add a user to a team, or change their role there."""
    upgrade(db)
    with session_scope(db) as session:
        found_team = accounts.team_named(session, team)
        found_user = accounts.user_named(session, user)
        if found_team is None or found_user is None:
            _fail(f"no team {team!r}" if found_team is None else f"no user {user!r}")
        accounts.set_role(session, found_user.id, found_team.id, role)
    console.print(f"{user} is {role.value} of {team}")


@admin_app.command("create-token")
def create_token(
    user: str,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Days until it expires (default: never).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Issue a token for a user and print it (once: only its hash is stored)."""
    upgrade(db)
    try:
        with session_scope(db) as session:
            found = accounts.user_named(session, user)
            if found is None:
                _fail(f"no user {user!r}")
            expires = utcnow() + timedelta(days=expires_days) if expires_days else None
            _, secret = accounts.issue_token(session, found.id, name, expires)
    except accounts.AccountError as exc:
        _fail(str(exc))
    print(secret)

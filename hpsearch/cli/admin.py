"""`hpsearch admin ...`: the operator's hand on a server's accounts, straight in its database.

The operator is trusted: they add users to teams directly (team admins can only invite), and
they list and revoke any user's tokens (team admins cannot: a token acts in all its user's
teams).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from hpsearch.cli.listing import FormatOption, LazyConsole, command_group, escape, show, table
from hpsearch.db.states import Role

if TYPE_CHECKING:  # SQLAlchemy loads when an admin command runs, not with every `hpsearch` one
    from rich.table import Table
    from sqlalchemy.orm import Session

    from hpsearch.db.models import ApiToken, User

admin_app = command_group(
    "Manage users, teams and tokens (run on the server, against its database)."
)
console = LazyConsole()

DbOption = Annotated[str | None, typer.Option(help="Database URL (default: HPSEARCH_DATABASE_URL)")]


@contextmanager
def _database(db: str | None) -> Iterator[Session]:
    """A session on the database at `db`, brought to the newest schema first."""
    # Alembic loads here, when an admin command runs, not with every `hpsearch` command.
    from hpsearch.db.migrate import upgrade
    from hpsearch.db.session import session_scope

    upgrade(db)
    with session_scope(db) as session:
        yield session


def _fail(message: str) -> NoReturn:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(2)


@admin_app.command("create-team")
def create_team(name: str, db: DbOption = None) -> None:
    """Create a team."""
    from hpsearch.db import accounts

    try:
        with _database(db) as session:
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
    from hpsearch.db import accounts

    try:
        with _database(db) as session:
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
    from hpsearch.db import accounts

    with _database(db) as session:
        found_team = accounts.team_named(session, team)
        if found_team is None:
            _fail(f"no team {team!r}")
        accounts.set_role(session, _user(session, user).id, found_team.id, role)
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
    from hpsearch.db import accounts
    from hpsearch.db.models import utcnow

    try:
        with _database(db) as session:
            found = _user(session, user)
            expires = utcnow() + timedelta(days=expires_days) if expires_days else None
            _, secret = accounts.issue_token(session, found.id, name, expires)
    except accounts.AccountError as exc:
        _fail(str(exc))
    print(secret)


@admin_app.command("list-tokens")
def list_tokens(user: str, format: FormatOption = "table", db: DbOption = None) -> None:
    """A user's tokens, newest first, by prefix (the secrets are never stored)."""
    from hpsearch.db import accounts

    with _database(db) as session:
        tokens = [
            {
                "id": token.id,
                "name": token.name,
                "prefix": token.prefix,
                "state": _state(token),
                "created": _when(token.created_at),
                "expires": _when(token.expires_at),
                "last_used": _when(token.last_used_at),
            }
            for token in accounts.tokens_of(session, _user(session, user).id)
        ]

    def draw(shown: Sequence[Mapping[str, Any]]) -> Table:
        rows = [
            (
                str(row["id"]),
                escape(row["name"]),
                row["prefix"],
                row["state"],
                row["created"],
                row["expires"] or "never",
                row["last_used"],
            )
            for row in shown
        ]
        columns = ("id", "name", "prefix", "state", "created", "expires", "last used")
        return table(*columns, rows=rows, numeric=("id",), title=f"tokens of {escape(user)}")

    show(tokens, format, empty=f"{escape(user)} has no tokens", draw=draw, console=console)


@admin_app.command("revoke-token")
def revoke_token(user: str, token_id: int, db: DbOption = None) -> None:
    """Revoke one of a user's tokens (its id from list-tokens); it stops working at once."""
    from hpsearch.db import accounts

    with _database(db) as session:
        if not accounts.revoke_token(session, _user(session, user).id, token_id):
            _fail(f"user {user!r} has no token {token_id}")
    console.print(f"token {token_id} of {escape(user)} revoked")


def _user(session: Session, name: str) -> User:
    from hpsearch.db import accounts

    found = accounts.user_named(session, name)
    if found is None:
        _fail(f"no user {name!r}")
    return found


def _state(token: ApiToken) -> str:
    from hpsearch.db.models import utcnow

    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= utcnow():
        return "expired"
    return "active"


def _when(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else ""

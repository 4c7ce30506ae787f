"""Presets: named, versioned training configs published from trials. Never overwritten: each
publication under a name is its next version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hpsearch.db.models import Preset, Team

PUBLIC = "public"


def publish(session: Session, **fields: Any) -> Preset:
    """Store the next version of the team's preset `fields['name']`."""
    team_id, name = fields["team_id"], fields["name"]
    for _ in range(5):  # two publications at once race for a version number; the loser retries
        latest = session.scalar(
            select(func.max(Preset.version)).where(Preset.team_id == team_id, Preset.name == name)
        )
        preset = Preset(version=(latest or 0) + 1, **fields)
        try:
            with session.begin_nested():
                session.add(preset)
        except IntegrityError:
            continue
        return preset
    raise RuntimeError(f"could not number a new version of preset {name!r}")


def visible(team_ids: Sequence[int]) -> Any:
    """The presets a member of `team_ids` may see: their teams' and public ones."""
    return or_(Preset.team_id.in_(team_ids), Preset.visibility == PUBLIC)


def list_visible(
    session: Session, team_ids: Sequence[int], team: str | None = None, name: str | None = None
) -> Sequence[tuple[Preset, str]]:
    """Every version of every preset the caller may see (or only of `team/name`), with its
    team's name."""
    statement = (
        select(Preset, Team.name)
        .join(Team, Team.id == Preset.team_id)
        .where(visible(team_ids))
        .order_by(Team.name, Preset.name, Preset.version)
    )
    if team is not None and name is not None:
        statement = statement.where(Team.name == team, Preset.name == name)
    return session.execute(statement).all()  # type: ignore[return-value]


def find(
    session: Session, team_ids: Sequence[int], team: str, name: str, version: int | None
) -> Preset | None:
    """Version `version` (None: the latest) of `team/name`, if the caller may see it."""
    statement = (
        select(Preset)
        .join(Team, Team.id == Preset.team_id)
        .where(Team.name == team, Preset.name == name, visible(team_ids))
    )
    if version is not None:
        statement = statement.where(Preset.version == version)
    return session.scalars(statement.order_by(Preset.version.desc()).limit(1)).first()

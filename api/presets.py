"""Preset references (team/name@version) and the preset as the API shows it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hpsearch.api.schemas import PresetPublic
from hpsearch.db.models import Preset, Team, Trial, User


def parse_ref(ref: str) -> tuple[str, str, int | None]:
    """team/name@version -> (team, name, version); @latest gives None."""
    path, _, version = ref.partition("@")
    team, _, name = path.partition("/")
    return team, name, None if version in ("", "latest") else int(version)


def preset_public(session: Session, preset: Preset, team: str | None = None) -> PresetPublic:
    """A preset with its provenance, names resolved."""
    team = team or session.get_one(Team, preset.team_id).name
    creator = session.get(User, preset.created_by) if preset.created_by else None
    trial = session.get(Trial, preset.trial_id) if preset.trial_id else None
    return PresetPublic(
        ref=f"{team}/{preset.name}@{preset.version}",
        team=team,
        name=preset.name,
        version=preset.version,
        visibility=preset.visibility,
        config=preset.config,
        study_id=preset.study_id,
        trial_id=preset.trial_id,
        trial_number=trial.number if trial else None,
        dataset_hash=preset.dataset_hash,
        values=preset.values,
        engine_version=preset.engine_version,
        weights_bytes=preset.weights_size,
        created_by=creator.name if creator else None,
        created_at=preset.created_at,
    )

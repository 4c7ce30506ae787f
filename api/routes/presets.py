"""Presets: publish a trial's settings as team/name (new version each time), list, get, export."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import ValidationError

from hpsearch.api.access import study_for
from hpsearch.api.deps import CallerDep, SessionDep
from hpsearch.api.errors import Invalid, NotFound
from hpsearch.api.exports import attachment, preset_study_file, study_file_yaml
from hpsearch.api.params import PresetName, TeamName, Version
from hpsearch.api.presets import preset_public
from hpsearch.api.schemas import PresetCreate, PresetPublic, PresetsPublic
from hpsearch.db import checkpoints, datasets, presets, queries
from hpsearch.db.models import Preset, Role, Study, TrialState
from hpsearch.search.definition import StudyDefinition
from hpsearch.worker.engine import ENGINE_VERSION
from hpsearch.worker.engine.config import DatasetConfig

router = APIRouter(prefix="/api/v1/presets", tags=["presets"])


@router.post("", status_code=status.HTTP_201_CREATED)
def publish_preset(body: PresetCreate, session: SessionDep, caller: CallerDep) -> PresetPublic:
    """Publish a complete trial's full training config as the next version of team/name."""
    study = study_for(session, caller, body.study_id, Role.MEMBER)
    trial = queries.trial_by_number(session, study.id, body.trial_number)
    if trial is None:
        raise NotFound("trial")
    if trial.state != TrialState.COMPLETE:
        raise Invalid(
            f"trial_number: trial {trial.number} is {trial.state.value}; only a complete trial"
            " is published",
            "trial_number",
        )
    definition = StudyDefinition.model_validate(study.definition)
    config = _pinned(definition.trial_document(trial.params), study)
    weights = checkpoints.weights_of(session, trial.id)
    preset = presets.publish(
        session,
        team_id=study.team_id,
        name=body.name,
        visibility=body.visibility,
        config=config,
        study_id=study.id,
        trial_id=trial.id,
        dataset_hash=_dataset_hash(session, config.get("dataset") or {}, study.team_id),
        values=trial.values,
        engine_version=ENGINE_VERSION,
        weights=weights,
        weights_size=None if weights is None else len(weights),
        created_by=caller.user_id,
    )
    return preset_public(session, preset, caller.team_names[study.team_id])


@router.get("")
def list_presets(session: SessionDep, caller: CallerDep) -> PresetsPublic:
    """Every version of your teams' presets and of public ones."""
    rows = presets.list_visible(session, caller.team_ids)
    return PresetsPublic(data=[preset_public(session, p, team) for p, team in rows])


@router.get("/{team}/{name}")
def preset_versions(
    team: TeamName, name: PresetName, session: SessionDep, caller: CallerDep
) -> PresetsPublic:
    """Every version of one preset, oldest first."""
    rows = presets.list_visible(session, caller.team_ids, team, name)
    if not rows:
        raise NotFound("preset")
    return PresetsPublic(data=[preset_public(session, p, t) for p, t in rows])


@router.get("/{team}/{name}/{version}")
def get_preset(
    team: TeamName, name: PresetName, version: Version, session: SessionDep, caller: CallerDep
) -> PresetPublic:
    """One version of a preset (or the latest), with its provenance."""
    return preset_public(session, _find(session, caller.team_ids, team, name, version), team)


@router.get(
    "/{team}/{name}/{version}/export",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "application/yaml": {}}}},
)
def export_preset(
    team: TeamName,
    name: PresetName,
    version: Version,
    session: SessionDep,
    caller: CallerDep,
    format: Annotated[Literal["json", "yaml"], Query()] = "yaml",
) -> Response:
    """A preset as a study file that runs its config once (`hpsearch run` takes it as is);
    the YAML's comments say where it came from."""
    preset = _find(session, caller.team_ids, team, name, version)
    public = preset_public(session, preset, team)
    document = preset_study_file(session, preset)
    filename = f"{team}-{name}-{public.version}.{format}"
    if format == "json":
        return attachment(json.dumps(document, indent=2), "application/json", filename)
    return attachment(study_file_yaml(document, public), "application/yaml", filename)


@router.get(
    "/{team}/{name}/{version}/weights",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def preset_weights(
    team: TeamName, name: PresetName, version: Version, session: SessionDep, caller: CallerDep
) -> Response:
    """The trained model a preset carries (its trial's, copied when it was published): NPZ
    for the built-in engine; 404 `preset weights not found` when it carries none."""
    preset = _find(session, caller.team_ids, team, name, version)
    if preset.weights is None:
        raise NotFound("preset weights")
    filename = f"{team}-{name}-{preset.version}.npz"
    return attachment(preset.weights, "application/octet-stream", filename)


def _find(
    session: SessionDep, team_ids: list[int], team: TeamName, name: PresetName, version: str
) -> Preset:
    number = None if version == "latest" else int(version)
    preset = presets.find(session, team_ids, team, name, number)
    if preset is None:
        raise NotFound("preset")
    return preset


def _pinned(config: dict, study: Study) -> dict:
    """The trial's config with its upload named by the version it trained on (`churn@2`, as
    the study pinned `churn`): the preset names the data it was tuned on, whatever comes
    later under the name."""
    dataset = config.get("dataset") or {}
    pin = study.datasets.get(dataset.get("upload") or "")
    parsed = datasets.parse_ref(dataset.get("upload") or "")
    if pin is None or parsed is None:
        return config
    name, _ = parsed
    return {**config, "dataset": {**dataset, "upload": f"{name}@{pin['version']}"}}


def _dataset_hash(session: SessionDep, dataset: dict, team_id: int) -> str:
    """What the trial trained on: an upload's content hash, or a built-in set's definition.
    Only the study's team's uploads count: a preset never carries another team's hash."""
    try:
        ref = DatasetConfig.model_validate(dataset).upload_ref()
    except ValidationError:  # a trainer plugin's section of that name: no upload of ours
        ref = None
    upload = None if ref is None else datasets.resolve(session, team_id, ref)
    if upload is not None:
        return upload.content_hash
    canonical = json.dumps(dataset, sort_keys=True).encode()
    return hashlib.sha256(canonical).hexdigest()

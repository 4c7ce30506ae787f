"""A submitted study file made a stored study: limits, its dataset, its warm start, and
idempotent creation."""

from __future__ import annotations

import hashlib

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hpsearch.api.auth import Caller
from hpsearch.api.errors import Conflict, Invalid
from hpsearch.api.presets import parse_ref
from hpsearch.db import datasets, presets, queries
from hpsearch.db import trainers as offers
from hpsearch.db.models import Dataset, Study, TrainerOffer
from hpsearch.db.settings import get_settings
from hpsearch.search import coordinator
from hpsearch.search.definition import BUILTIN_TRAINER, StudyDefinition
from hpsearch.search.trainer_schema import SettingError, TrainerInfo
from hpsearch.worker.engine import BUILTIN_DATASETS


def submit(
    session: Session,
    caller: Caller,
    team_id: int,
    definition: StudyDefinition,
    idempotency_key: str | None,
) -> tuple[Study, bool]:
    """The study this submission makes, and whether it is new (False: the key's earlier one)."""
    fingerprint = hashlib.sha256(definition.model_dump_json().encode()).hexdigest()
    if idempotency_key and (earlier := queries.study_by_key(session, team_id, idempotency_key)):
        return _same_request(earlier, fingerprint), False
    check_limits(definition)
    if definition.trainer != BUILTIN_TRAINER:  # the study file's own sections are its schema
        offered = offered_trainer(session, definition, team_id)
        if offered is not None:
            check_trainer(definition, offered)
    pinned = check_datasets(session, team_id, definition)
    definition = with_warm_start(session, caller.team_ids, definition)
    try:
        with session.begin_nested():
            study = coordinator.create_study(
                session,
                team_id=team_id,
                definition=definition,
                created_by=caller.user_id,
                idempotency_key=idempotency_key,
                request_hash=fingerprint if idempotency_key else None,
            )
            study.datasets = pinned
    except IntegrityError:
        # The same key raced in from another request, which won: answer with its study.
        earlier = queries.study_by_key(session, team_id, idempotency_key or "")
        if earlier is None:
            raise
        return _same_request(earlier, fingerprint), False
    return study, True


def _same_request(earlier: Study, fingerprint: str) -> Study:
    if earlier.request_hash != fingerprint:
        raise Conflict(
            "Idempotency-Key: this key made a different study; use a new key for a new study",
            "Idempotency-Key",
        )
    return earlier


def check_limits(definition: StudyDefinition) -> None:
    """A study asks for no more than this server allows, in any trial it can run."""
    settings = get_settings()
    for field, epochs in definition.settings_at("training.epochs"):
        if isinstance(epochs, int) and epochs > settings.max_epochs:
            raise Invalid(f"{field}: at most {settings.max_epochs} epochs on this server", field)
    for field, hidden in definition.settings_at("model.hidden"):
        if not isinstance(hidden, list):
            continue
        if len(hidden) > settings.max_hidden_layers:
            raise Invalid(
                f"{field}: at most {settings.max_hidden_layers} hidden layers on this server",
                field,
            )
        if any(isinstance(units, int) and units > settings.max_hidden_units for units in hidden):
            raise Invalid(
                f"{field}: at most {settings.max_hidden_units} units per layer on this server",
                field,
            )
    if definition.budget.trials > settings.max_trials:
        raise Invalid(
            f"budget.trials: at most {settings.max_trials} trials per study on this server",
            "budget.trials",
        )
    if definition.budget.parallelism > settings.max_parallelism:
        raise Invalid(
            f"budget.parallelism: at most {settings.max_parallelism} on this server",
            "budget.parallelism",
        )


def offered_trainer(
    session: Session, definition: StudyDefinition, team_id: int
) -> TrainerInfo | None:
    """The study's trainer plugin as a worker, or an agent of the team, last announced it.

    None for a study run by agents alone (`runs_on: agents`) whose trainer no agent offered
    yet: it is made unchecked, and waits for its first agent, which offers the trainer as it
    starts. Otherwise 422 when nobody ever offered it: most likely a typo."""
    name = definition.trainer
    found = offers.latest(session, name, team_id)
    if found is not None:
        return trainer_info(found) if found.declared else None
    if definition.runs_on == "agents":
        return None
    raise Invalid(
        f"trainer: no worker, nor agent of this team, has offered trainer {name!r}; install"
        " its package on a worker, start `hpsearch agent` with it, or say `runs_on: agents`"
        " to create the study before its first agent starts",
        "trainer",
    )


def trainer_info(offer: TrainerOffer) -> TrainerInfo:
    """What a worker's offer says of its trainer, as the search layer reads it."""
    return TrainerInfo(
        name=offer.name,
        version=offer.version,
        config_schema=offer.config_schema,
        step_metrics=tuple(offer.step_metrics),
        final_metrics=tuple(offer.final_metrics),
        resumable=offer.resumable,
    )


def check_trainer(definition: StudyDefinition, trainer: TrainerInfo) -> None:
    """A trainer plugin's study is one it can run: checked against its schema and metrics."""
    try:
        definition.check_trainer(trainer)
    except SettingError as exc:
        raise Invalid(str(exc), exc.field) from None


def check_datasets(
    session: Session, team_id: int, definition: StudyDefinition
) -> dict[str, dict[str, int]]:
    """Every dataset any trial can train on is a built-in set or one of the team's uploads,
    with the target column: the base config's, and each one the space can choose. The
    uploads named by name, pinned to the version each resolves to now (`Study.datasets`).

    A plugin's config names its datasets where its schema says; its trials reach only their
    team's uploads through `context.dataset`, which the worker scopes."""
    if definition.trainer != BUILTIN_TRAINER:
        return {}
    targets = [target for _, target in definition.settings_at("dataset.target")]
    checks = {
        "dataset.upload": _upload_named,
        "dataset.upload_id": _upload_by_id,
        "dataset.name": _dataset_named,
    }
    named: list[tuple[str, Dataset | None]] = []
    pins: dict[str, dict[str, int]] = {}
    for path, check in checks.items():
        for field, value in definition.settings_at(path):
            ref, dataset = check(session, team_id, field, value)
            named.append((ref, dataset))
            if path == "dataset.upload" and dataset is not None:
                # A later upload under the name changes nothing of this study.
                pins[ref] = {"id": dataset.id, "version": dataset.version}
    for ref, dataset in named:
        if dataset is None or dataset.format != "csv":
            continue
        columns = dataset.summary.get("columns", {})
        for target in targets:
            if target not in columns:
                raise Invalid(
                    f"dataset.target: {target!r} is not a column of dataset {ref}"
                    f" ({', '.join(columns)})",
                    "dataset.target",
                )
    return pins


def _upload_named(
    session: Session, team_id: int, field: str, ref: object
) -> tuple[str, Dataset | None]:
    """The team's upload `ref` (`name` or `name@version`) names."""
    if ref is None:  # this choice trains on a built-in set or an id
        return "", None
    if not isinstance(ref, str) or datasets.parse_ref(ref) is None:
        raise Invalid(
            f"{field}: {ref!r} is not a dataset name (letters, digits, _ . -) with an optional"
            " @version",
            field,
        )
    dataset = datasets.resolve(session, team_id, ref)
    # Another team's dataset answers as one that does not exist.
    if dataset is None:
        raise Invalid(f"{field}: no dataset {ref} in this team", field)
    return ref, dataset


def _upload_by_id(
    session: Session, team_id: int, field: str, dataset_id: object
) -> tuple[str, Dataset | None]:
    """The team's upload `dataset_id` is the id of."""
    if dataset_id is None:
        return "", None
    dataset = datasets.resolve(session, team_id, str(dataset_id))
    if dataset is None:
        raise Invalid(f"{field}: no dataset {dataset_id} in this team", field)
    return str(dataset_id), dataset


def _dataset_named(
    session: Session, team_id: int, field: str, name: object
) -> tuple[str, Dataset | None]:
    """The team's upload that `name` is the id of (the legacy way); None for a built-in set."""
    if name is None:  # the dataset is an upload, named by `upload` or `upload_id`
        return "", None
    if not isinstance(name, str):
        raise Invalid(f"{field}: a dataset is named by a string, not {name!r}", field)
    if datasets.upload_id(name) is None:
        if name not in BUILTIN_DATASETS:
            known = ", ".join(sorted(BUILTIN_DATASETS))
            raise Invalid(
                f"{field}: {name!r} is not a built-in set ({known}); name an upload"
                f" `dataset: {{upload: {name}}}`",
                field,
            )
        return name, None
    dataset = datasets.resolve(session, team_id, name)
    # Another team's dataset answers as one that does not exist: its id reveals nothing.
    if dataset is None:
        raise Invalid(f"{field}: no dataset {name} in this team", field)
    return name, dataset


def with_warm_start(
    session: Session, team_ids: list[int], definition: StudyDefinition
) -> StudyDefinition:
    """The definition with its warm-start preset's settings enqueued first."""
    if definition.warm_start is None:
        return definition
    ref = definition.warm_start.preset
    team, name, version = parse_ref(ref)
    preset = presets.find(session, team_ids, team, name, version)
    if preset is None:
        raise Invalid(f"warm_start.preset: no preset {ref} that you may see", "warm_start.preset")
    params = definition.params_of(preset.config)
    if not definition.search_space().contains(params):
        raise Invalid(
            f"warm_start.preset: {ref} has {params}, which is not a point of this study's space",
            "warm_start.preset",
        )
    return definition.run_first(params)

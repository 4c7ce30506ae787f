"""`hpsearch export optuna` and `hpsearch import optuna`: a server's study into an Optuna
storage, and an Optuna study's trials into a new study's history. Both run on the user's
machine: they talk to the server over REST with the user's token, and to the Optuna storage
(any RDB URL Optuna takes, e.g. sqlite:///optuna.db) directly."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hpsearch.cli.client import TokenOption, UrlOption, _connected, _fail, console
from hpsearch.cli.listing import command_group, escape

if TYPE_CHECKING:  # httpx loads once a command sends a request, not for --help
    from hpsearch.client import ApiError

export_app = command_group("Write a study somewhere else.")
import_app = command_group("Start a study from trials run somewhere else.")

StorageOption = Annotated[
    str, typer.Option(help="Optuna storage URL, e.g. sqlite:///optuna.db", show_default=False)
]


def register(app: typer.Typer) -> None:
    """Add `export` and `import` to the `hpsearch` app."""
    app.add_typer(export_app, name="export")
    app.add_typer(import_app, name="import")


@export_app.command("optuna")
def export_optuna(
    study_id: Annotated[int, typer.Argument(help="The study's id.")],
    storage: StorageOption,
    study_name: Annotated[
        str | None, typer.Option(help="The Optuna study's name; default: the study's.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an Optuna study of that name rather than refuse.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Write a study's finished trials into an Optuna storage, for optuna-dashboard and
    optuna.visualization; queued and running trials are left out."""
    from hpsearch import optuna_bridge as bridge  # Optuna loads only for these commands
    from hpsearch.search.definition import StudyDefinition

    with _connected(url, token) as client:
        study = client.get_study(study_id)
        definition = StudyDefinition.model_validate(client.definition(study_id))
        trials, reports = list(client.trials(study_id)), list(client.metrics(study_id))
        provenance = bridge.Provenance(client.url, study_id, study["trainer"])
    exported = bridge.to_optuna_trials(definition, trials, reports, provenance)
    name = study_name or study["name"]
    try:
        bridge.write_study(storage, name, definition, exported, provenance, overwrite)
    except bridge.BridgeError as exc:
        _fail(str(exc))
    console.print(
        f"wrote {len(exported.trials)} trials of study {study_id} to Optuna study"
        f" {escape(name)!r} in {escape(storage)}{_left_out(exported.skipped)}"
    )


@import_app.command("optuna")
def import_optuna(
    study_file: Annotated[Path, typer.Argument(help="The new study, as YAML or JSON.")],
    storage: StorageOption,
    study: Annotated[str, typer.Option(help="The Optuna study to bring in.", show_default=False)],
    skip_invalid: Annotated[
        bool, typer.Option(help="Leave out trials whose params are not a point of the space.")
    ] = False,
    team: Annotated[str | None, typer.Option(help="Team name; default: your only team.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Submit a study whose history is an Optuna study's complete trials: they are stored as
    complete, never run, not counted in the budget, and its strategy learns from them."""
    from hpsearch import optuna_bridge as bridge
    from hpsearch.cli.study_file import read_study_file
    from hpsearch.client import ApiError

    document, definition = read_study_file(study_file)
    if not isinstance(document, dict):
        _fail(f"{study_file}: expected a study file (a mapping)")
    try:
        history = bridge.read_history(storage, study, definition, skip_invalid)
    except bridge.BridgeError as exc:
        _fail(str(exc))
    with _connected(url, token) as client:
        try:
            created = client.create_study(
                {**document, "history": [*document.get("history", []), *history.entries]},
                team=team,
            )
        except ApiError as exc:
            _fail(_named(exc, len(document.get("history", [])), history.optuna_numbers))
    console.print(
        f"study {created['id']}: {len(history.entries)} trials of Optuna study"
        f" {escape(study)!r} as its history{_left_out(history.skipped)}"
    )
    print(created["id"])


def _named(error: ApiError, own: int, numbers: list[int]) -> str:
    """The server's error, naming the Optuna trial when it is about one of the history's."""
    parts = (error.field or "").split(".")
    if parts[0] == "history" and len(parts) > 1 and parts[1].isdigit():
        index = int(parts[1]) - own
        if 0 <= index < len(numbers):
            return f"Optuna trial {numbers[index]}: {error}"
    return str(error)


def _left_out(skipped: dict[str, int]) -> str:
    if not skipped:
        return ""
    return "; left out: " + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))

"""The `hpsearch` commands that talk to a server: login, submit, status, trials, studies,
datasets, presets, train. Each goes through `hpsearch.Client`'s public methods."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer

from hpsearch.cli.listing import (
    Format,
    FormatOption,
    LazyConsole,
    command_group,
    escape,
    number,
    show,
    table,
    write,
)

# The engine (NumPy) loads for `train` only, the client (httpx) once a command sends a request,
# and rich and PyYAML once a command prints: not for every command's --help.
if TYPE_CHECKING:
    from rich.table import Table

    from hpsearch.client import Client
    from hpsearch.worker.engine import TrainConfig, Upload

console = LazyConsole()
presets_app = command_group("Publish, find and export presets.")
studies_app = command_group("List, cancel, resume and delete studies.")
datasets_app = command_group("Upload, list and delete datasets.")

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="HPSEARCH_URL",
        help="Server URL (default: the saved login, else http://127.0.0.1:8000).",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="HPSEARCH_TOKEN", help="API token (default: the saved login)."),
]
RefArgument = Annotated[str, typer.Argument(help="team/name@version or team/name@latest")]
StudyArgument = Annotated[int, typer.Argument(help="The study's id.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask to confirm.")]


def register(app: typer.Typer) -> None:
    """Add the client commands to the `hpsearch` app."""
    for command in (login, submit, status, trials):
        app.command()(command)
    app.command("train")(train_preset)
    app.add_typer(presets_app, name="presets")
    app.add_typer(studies_app, name="studies")
    app.add_typer(datasets_app, name="datasets")


def _fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[red]{escape(message)}[/red]")
    raise typer.Exit(code)


@contextmanager
def _connected(url: str | None, token: str | None) -> Iterator[Client]:
    """A client of the chosen server; any client error ends the command in one red line."""
    from hpsearch.client import ApiError, Client, resolve

    try:
        with Client(resolve(url, token)) as client:
            yield client
    except ApiError as exc:
        _fail(str(exc), exc.exit_code)


def login(
    token: Annotated[
        str, typer.Option(envvar="HPSEARCH_TOKEN", prompt=True, hide_input=True, help="API token.")
    ],
    url: Annotated[
        str | None,
        typer.Option(
            envvar="HPSEARCH_URL",
            help="Server URL (default: http://127.0.0.1:8000).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check a token against a server and save both for later commands (mode 0600)."""
    from hpsearch.client import DEFAULT_URL, write_config

    url = url or DEFAULT_URL  # not the saved login's: this one replaces it
    with _connected(url, token) as client:
        me = client.me()
    path = write_config(url.rstrip("/"), token)
    teams = ", ".join(f"{t['name']} ({t['role']})" for t in me["teams"]) or "no team"
    console.print(f"signed in to {escape(url)} as {escape(me['name'])}: {escape(teams)}")
    console.print(f"saved to {path}")


def submit(
    study_file: Annotated[Path, typer.Argument(help="The study, as YAML or JSON.")],
    team: Annotated[str | None, typer.Option(help="Team name; default: your only team.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Check a study file here, send it to the server and print the new study's id."""
    from hpsearch.cli.study_file import read_study_file  # the search layer, to check it

    document, _ = read_study_file(study_file)
    with _connected(url, token) as client:
        study = client.create_study(document, team=team)
    print(study["id"])


def status(
    study_id: Annotated[int, typer.Argument(help="The study's id.")],
    watch: Annotated[
        bool, typer.Option(help="Follow it live until it ends; exit 1 unless it completes.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """A study's status, trials finished of its budget, best trial and time left."""
    with _connected(url, token) as client:
        study = client.wait(study_id, progress=True) if watch else client.get_study(study_id)
    _print_study(study)
    if watch and study["status"] != "complete":
        raise typer.Exit(1)


def _print_study(study: dict[str, Any]) -> None:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(study["trials_by_state"].items()))
    console.print(
        f"study {study['id']} [bold]{escape(study['name'])}[/bold] (team"
        f" {escape(study['team'])}): {study['status']}"
    )
    console.print(
        f"  trials  {study['trials_finished']}/{study['budget_trials']} finished"
        f" ({counts or 'none yet'}), {study['trials_in_flight']} in flight"
    )
    if study.get("trials_imported"):  # an older server does not say
        console.print(f"  history {study['trials_imported']} complete trials imported, not run")
    best = study["best_trial"]
    if best is not None:
        params = escape(_params_text(best["params"]))
        from hpsearch.client import best_text

        console.print(f"  best    {best_text(study)}: {params}")
    if study["eta_seconds"] is not None:
        console.print(f"  ETA     {_duration(study['eta_seconds'])}")
    if study.get("waiting"):  # an older server does not say
        console.print(f"  [yellow]waiting: {escape(study['waiting'])}[/yellow]")


def _params_text(params: dict[str, Any], between: str = " ") -> str:
    return between.join(f"{name}={number(value)}" for name, value in params.items())


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def trials(
    study_id: StudyArgument,
    format: Annotated[
        Format, typer.Option(help="csv or json: one flat row per trial, for other tools.")
    ] = "table",
    limit: Annotated[
        int | None, typer.Option(min=1, help="Show at most this many (default: all).")
    ] = None,
    weights: Annotated[
        int | None,
        typer.Option(help="Download trial N's trained model instead (NPZ), to --output."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where --weights writes the model.")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """A study's trials in the order they were queued: state, reason, value and params."""
    if weights is not None:
        target = output or Path(f"study-{study_id}-trial-{weights}.npz")
        with _connected(url, token) as client:
            content = client.weights(study_id, weights)
        target.write_bytes(content)
        console.print(f"trial {weights}'s model: {target} ({len(content):,} bytes)")
        return
    if output is not None:
        _fail("--output: only with --weights")
    if format != "table":
        if limit is not None:
            _fail("--limit: only with --format table")
        with _connected(url, token) as client:
            write(client.export_trials(study_id, format))
        return
    with _connected(url, token) as client:
        rows = client.trials(study_id)

    def draw(shown: Sequence[Mapping[str, Any]]) -> Table:
        rows = [
            (
                str(trial["number"]),
                trial["state"],
                escape(trial["reason"] or ""),
                _cell(trial["value"]),
                escape(_params_text(trial["params"], "\n")),
            )
            for trial in shown
        ]
        columns = ("#", "state", "reason", "value", "params")
        numeric, title = ("#", "value"), f"study {study_id}"
        return table(*columns, rows=rows, numeric=numeric, whole=("params",), title=title)

    show(
        rows[:limit],
        "table",
        empty=f"no trials in study {study_id} yet",
        draw=draw,
        console=console,
    )


def _cell(value: Any) -> str:
    return "" if value is None else number(value)


@studies_app.command("list")
def studies_list(
    team: Annotated[str | None, typer.Option(help="Only this team's studies.")] = None,
    status: Annotated[str | None, typer.Option(help="running, complete, cancelled, ...")] = None,
    name: Annotated[str | None, typer.Option(help="Part of the name.")] = None,
    format: FormatOption = "table",
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Your teams' studies, newest first."""
    with _connected(url, token) as client:
        found = client.studies(team=team, status=status, name=name)
    show(found, format, empty="no studies", draw=_studies_table, console=console)


def _studies_table(studies: Sequence[Mapping[str, Any]]) -> Table:
    rows = [
        (
            str(study["id"]),
            escape(study["name"]),
            escape(study["team"]),
            study["status"],
            f"{study['trials_finished']}/{study['budget_trials']}",
            _cell(study["best_value"]),
            study["created_at"][:19],
        )
        for study in studies
    ]
    columns = ("id", "name", "team", "status", "trials", "best", "created")
    return table(*columns, rows=rows, numeric=("id", "trials", "best"))


@studies_app.command("cancel")
def studies_cancel(
    study_id: StudyArgument, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Stop a running study: no more trials are queued, running ones stop at their next report."""
    with _connected(url, token) as client:
        _print_study(client.cancel_study(study_id))


@studies_app.command("resume")
def studies_resume(
    study_id: StudyArgument, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Run a cancelled or timed-out study on to its budget."""
    with _connected(url, token) as client:
        _print_study(client.resume_study(study_id))


@studies_app.command("delete")
def studies_delete(
    study_id: StudyArgument,
    yes: YesOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete a study with its trials and curves."""
    if not yes:
        typer.confirm(f"Delete study {study_id} with its trials?", abort=True)
    with _connected(url, token) as client:
        client.delete_study(study_id)
    console.print(f"deleted study {study_id}")


@datasets_app.command("upload")
def datasets_upload(
    file: Annotated[Path, typer.Argument(help="A .csv with a header row, or a .npz.")],
    target: Annotated[str | None, typer.Option(help="CSV: the column to predict.")] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Uploads under one name are its versions. Default: the file's stem."),
    ] = None,
    team: Annotated[str | None, typer.Option(help="Team name; default: your only team.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Upload a dataset and print its name@version, what a study file's `dataset: {upload:
    ...}` takes (the name alone: its latest version)."""
    with _connected(url, token) as client:
        dataset = client.upload_dataset(file, target=target, name=name, team=team)
    print(dataset["ref"])


@datasets_app.command("list")
def datasets_list(
    format: FormatOption = "table", url: UrlOption = None, token: TokenOption = None
) -> None:
    """Your teams' uploaded datasets."""
    with _connected(url, token) as client:
        found = client.datasets()
    show(found, format, empty="no datasets", draw=_datasets_table, console=console)


def _datasets_table(datasets: Sequence[Mapping[str, Any]]) -> Table:
    rows = [
        (
            str(dataset["id"]),
            escape(dataset["ref"]),
            escape(dataset["team"]),
            dataset["format"],
            str(dataset["summary"].get("rows", "")),
            str(dataset["summary"].get("task", "")),
            dataset["created_at"][:19],
        )
        for dataset in datasets
    ]
    columns = ("id", "name@version", "team", "format", "rows", "task", "created")
    return table(*columns, rows=rows, numeric=("id", "rows"))


@datasets_app.command("delete")
def datasets_delete(
    dataset_id: Annotated[int, typer.Argument(help="The dataset's id.")],
    yes: YesOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Delete an uploaded dataset."""
    if not yes:
        typer.confirm(f"Delete dataset {dataset_id}?", abort=True)
    with _connected(url, token) as client:
        client.delete_dataset(dataset_id)
    console.print(f"deleted dataset {dataset_id}")


@presets_app.command("list")
def presets_list(
    format: FormatOption = "table", url: UrlOption = None, token: TokenOption = None
) -> None:
    """Every version of your teams' presets and of public ones."""
    with _connected(url, token) as client:
        found = client.presets()
    show(found, format, empty="no presets", draw=_presets_table, console=console)


def _presets_table(presets: Sequence[Mapping[str, Any]]) -> Table:
    rows = [
        (
            escape(preset["ref"]),
            preset["visibility"],
            f"study {preset['study_id']}" if preset["study_id"] else "",
            _metrics_text(preset["values"], prefix="val_", between="\n"),
            escape(preset["created_by"] or ""),
            preset["created_at"][:19],
        )
        for preset in presets
    ]
    columns = ("ref", "visibility", "from", "validation metrics", "by", "created")
    return table(*columns, rows=rows, whole=("validation metrics",))


def _metrics_text(values: dict[str, Any] | None, prefix: str = "", between: str = " ") -> str:
    chosen = sorted((k, v) for k, v in (values or {}).items() if k.startswith(prefix))
    return between.join(f"{k}={number(v)}" for k, v in chosen)


@presets_app.command("show")
def presets_show(ref: RefArgument, url: UrlOption = None, token: TokenOption = None) -> None:
    """One preset: its provenance, the metrics its trial reached and its full config."""
    with _connected(url, token) as client:
        preset = client.preset(ref)
    console.print(f"[bold]{escape(preset['ref'])}[/bold] ({preset['visibility']})")
    console.print(
        f"  from study {preset['study_id']}, trial id {preset['trial_id']}; engine"
        f" {preset['engine_version']}; by {escape(preset['created_by'] or '?')}"
        f" at {preset['created_at'][:19]}"
    )
    console.print(f"  dataset hash {preset['dataset_hash']}")
    console.print(f"  metrics {_metrics_text(preset['values'])}")
    import yaml

    console.print(escape(yaml.safe_dump(preset["config"], sort_keys=False)))


@presets_app.command("export")
def presets_export(
    ref: RefArgument,
    format: Annotated[Literal["yaml", "json"], typer.Option(help="File format.")] = "yaml",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """A preset as a study file that trains its config once: `hpsearch run` takes it as is."""
    with _connected(url, token) as client:
        text = client.export_preset(ref, format)
    if output is None:
        write(text)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc}")
    console.print(f"wrote {escape(ref)} to {output}")


@presets_app.command("publish")
def presets_publish(
    study_id: Annotated[int, typer.Argument(help="The trial's study.")],
    trial_number: Annotated[int, typer.Argument(help="The trial's number in its study.")],
    name: Annotated[str, typer.Argument(help="Published as team/name, a new version each time.")],
    public: Annotated[bool, typer.Option(help="Visible to every team, not only yours.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Publish a complete trial's full training config as a preset; print its reference."""
    with _connected(url, token) as client:
        preset = client.publish_preset(study_id, trial_number, name, "public" if public else "team")
    print(preset["ref"])


def train_preset(
    preset: Annotated[str, typer.Option(help="team/name@version or team/name@latest")],
    data: Annotated[
        Path | None,
        typer.Option(help="A preset trained on an uploaded dataset: the same file, here."),
    ] = None,
    from_weights: Annotated[
        bool,
        typer.Option(
            "--from-weights",
            help="Start from the trained model the preset carries: measure it as it is, or"
            " train --epochs more from it.",
        ),
    ] = False,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs to train (default: the preset's).")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Retrain a preset's config on this machine and show its metrics beside the stored ones."""
    from hpsearch.worker.engine import (
        ENGINE_VERSION,
        CheckpointError,
        ConfigError,
        TrainConfig,
        load_splits,
        train,
    )
    from hpsearch.worker.engine.training import evaluate_weights

    with _connected(url, token) as client:
        found = client.preset(preset)
        weights = client.preset_weights(preset) if from_weights else None
    if found["engine_version"] != ENGINE_VERSION:
        console.print(
            f"[yellow]{escape(found['ref'])} was trained by engine {found['engine_version']},"
            f" this is {ENGINE_VERSION}: the numbers may differ[/yellow]"
        )
    try:
        document = found["config"]
        if epochs is not None:
            document = {**document, "training": {**document["training"], "epochs": epochs}}
        config = TrainConfig.parse(document)
        splits = load_splits(config.dataset, _upload(config, found, data))
        if weights is not None and epochs is None:  # the preset's model, measured as it is
            _print_comparison(found, evaluate_weights(weights, splits))
            return
    except (ConfigError, CheckpointError) as exc:
        _fail(f"{found['ref']}: {exc}")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console.get(), transient=True) as progress:
        bar = progress.add_task("epochs", total=config.training.epochs)
        try:
            result = train(
                config,
                splits,
                lambda epoch, _: progress.update(bar, completed=epoch),
                initial_weights=weights,
            )
        except CheckpointError as exc:
            _fail(f"{found['ref']}: {exc}")
    _print_comparison(found, result.metrics)
    if result.status != "complete":
        _fail(f"training ended {result.status}: {result.reason}", 1)


def _upload(config: TrainConfig, preset: dict[str, Any], data: Path | None) -> Upload | None:
    """The rows to train on when the preset's dataset is an upload.

    The server does not hand uploads out, so the user supplies the file; its hash must be
    the preset's, or the comparison would be with other data.
    """
    from hpsearch.db.datasets import content_hash
    from hpsearch.db.settings import get_settings
    from hpsearch.worker.engine import Upload

    dataset = config.dataset.upload_ref()
    if dataset is None:
        if data is not None:
            _fail(
                f"{preset['ref']} trains on the built-in dataset {config.dataset.name}; drop --data"
            )
        return None
    if data is None:
        _fail(
            f"{preset['ref']} was trained on uploaded dataset {dataset}, which stays on the"
            " server: pass the same file with --data FILE (.csv or .npz) to retrain it here"
        )
    try:
        content = data.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {data}: {exc}")
    if content_hash(content) != preset["dataset_hash"]:
        _fail(f"{data} is not the data {preset['ref']} was trained on (its sha256 differs)")
    kind = data.suffix.lower().removeprefix(".")
    if kind not in ("csv", "npz"):
        _fail(f"{data}: cannot tell the format; name it .csv or .npz")
    return Upload(content, kind, get_settings().max_dataset_cells)  # type: ignore[arg-type]


def _print_comparison(preset: dict[str, Any], metrics: dict[str, float]) -> None:
    from rich.table import Table

    stored = preset["values"] or {}
    table = Table(title=f"{preset['ref']} retrained here")
    table.add_column("metric")
    table.add_column("stored", justify="right")
    table.add_column("here", justify="right")
    table.add_column("difference", justify="right")
    # Wall-clock timings are not results: they differ from machine to machine.
    for name in sorted(k for k in stored.keys() | metrics.keys() if not k.endswith("_seconds")):
        was, now = stored.get(name), metrics.get(name)
        both = isinstance(was, int | float) and isinstance(now, int | float)
        table.add_row(
            name,
            _cell(was),
            _cell(now),
            f"{now - was:+.3g}" if both else "",  # type: ignore[operator]
        )
    console.print(table)

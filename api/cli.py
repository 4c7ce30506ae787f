"""The `hpsearch` command: run a study here, serve the API, run a worker, upgrade the database."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli_admin import DbOption, admin_app
from api.cli_client import register as register_client
from api.study_file import read_study_file
from db import accounts, queries
from db.migrate import upgrade
from db.models import Study, StudyStatus, Trial
from db.session import session_scope
from db.settings import get_settings
from search import coordinator
from search.definition import StudyDefinition
from worker.dispatch import LocalPool, pin_blas_threads

app = typer.Typer(help="hpsearch: hyperparameter search as a service.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
console = Console()

POLL_S = 0.25


@app.command()
def run(
    study_file: Annotated[Path, typer.Argument(help="The study, as YAML or JSON.")],
    db: DbOption = None,
    workers: Annotated[int, typer.Option(help="Local processes; 0: the study's parallelism.")] = 0,
) -> None:
    """Run a study to its end on this machine (SQLite + local process pool), showing progress."""
    _, definition = read_study_file(study_file)
    url = db or get_settings().database_url
    console.print(
        f"[bold]{definition.name}[/bold]: {definition.budget.trials} trials, "
        f"{definition.strategy.type} search, database {url}"
    )
    upgrade(url)
    with session_scope(url) as session:
        study = coordinator.create_study(
            session, team_id=queries.ensure_team(session), definition=definition
        )
    pool = LocalPool(workers or definition.budget.parallelism, url=url)
    try:
        coordinator.refill(study.id, dispatch=pool.dispatch, url=url)
        _watch(study.id, definition, url)
    finally:
        pool.shutdown()
    _print_best(study.id, definition, url)


def _watch(study_id: int, definition: StudyDefinition, url: str) -> None:
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[best]}"),
    )
    metric = definition.objectives[0].metric
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("trials", total=definition.budget.trials, best="")
        while True:
            with session_scope(url) as session:
                study = session.get_one(Study, study_id)
                done = queries.study_progress(session, study_id).finished
                best = queries.best_trial(session, study_id, definition.objectives[0].direction)
                best_text = (
                    f"best {metric} {best.value:.4f}" if best and best.value is not None else ""
                )
                progress.update(bar, completed=done, best=best_text)
                if study.status != StudyStatus.RUNNING:
                    return
            time.sleep(POLL_S)


def _print_best(study_id: int, definition: StudyDefinition, url: str) -> None:
    with session_scope(url) as session:
        progress = queries.study_progress(session, study_id)
        best: Trial | None = queries.best_trial(
            session, study_id, definition.objectives[0].direction
        )
        counts = ", ".join(f"{n} {state}" for state, n in sorted(progress.by_state.items()))
        console.print(f"study {study_id} finished: {counts}")
        if best is None:
            console.print("[red]no trial completed[/red]")
            raise typer.Exit(1)
        table = Table(title=f"best trial #{best.number} ({definition.objectives[0].metric})")
        table.add_column("setting / metric")
        table.add_column("value", justify="right")
        for name, value in best.params.items():
            table.add_row(name, json.dumps(value))
        table.add_section()
        for name, value in sorted((best.values or {}).items()):
            table.add_row(name, f"{value:.6g}" if isinstance(value, float) else str(value))
        console.print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the REST API (with a local process pool unless HPSEARCH_BROKER_URL is set)."""
    import uvicorn

    from api.main import create_app

    upgrade()
    with session_scope() as session:
        secret = accounts.bootstrap_admin(session, queries.ensure_team(session))
    if secret:
        console.print(
            "First start: user [bold]admin[/bold] (admin of team local) can sign in with this"
            f" token, shown once:\n\n    {secret}\n\n"
            "Use it as 'Authorization: Bearer <token>', in the dashboard, or as HPSEARCH_TOKEN."
        )
    uvicorn.run(create_app(), host=host, port=port)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Trial processes in this worker.")] = 1,
    name: Annotated[str | None, typer.Option(help="Celery node name.")] = None,
) -> None:
    """Run a Celery worker that trains trials (needs HPSEARCH_BROKER_URL)."""
    if not get_settings().broker_url:
        console.print(
            "[red]HPSEARCH_BROKER_URL is not set: a worker needs a broker (redis://...)."
            " Without one, `hpsearch run` and `hpsearch serve` train locally.[/red]"
        )
        raise typer.Exit(2)
    pin_blas_threads()  # before the prefork pool's children load NumPy
    upgrade()
    from worker.tasks import app as celery_app

    argv = ["worker", "--loglevel=INFO", f"--concurrency={concurrency}", "--prefetch-multiplier=1"]
    if name:
        argv.append(f"--hostname={name}")
    celery_app.worker_main(argv)


@db_app.command("upgrade")
def db_upgrade(
    db: DbOption = None,
) -> None:
    """Bring the database schema to the newest version."""
    upgrade(db)
    console.print(f"database {db or get_settings().database_url} is at the newest schema")


register_client(app)


def main() -> None:
    """Entry point with logging set up."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app()


if __name__ == "__main__":
    main()

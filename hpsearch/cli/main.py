"""The `hpsearch` command: run a study here, serve the API, run a worker, upgrade the database."""

from __future__ import annotations

from hpsearch.worker.blas import pin_blas_threads

# BLAS reads its thread count once, when NumPy loads, and the imports below load it: pinned
# first, it holds in this process and in every process it forks (Celery's pool) or spawns.
pin_blas_threads()

import logging  # noqa: E402 (every import from here on)
import os
from pathlib import Path
from typing import Annotated

import typer

from hpsearch.cli.admin import DbOption, admin_app
from hpsearch.cli.agent import register as register_agent
from hpsearch.cli.client import register as register_client
from hpsearch.cli.listing import LazyConsole, command_group
from hpsearch.cli.optuna import register as register_optuna

app = command_group("hpsearch: hyperparameter search as a service.")
db_app = command_group("Database maintenance.")
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
console = LazyConsole()

# The server's commands (run, serve, worker, db) import the server's modules when they run, not
# when the CLI loads: uvicorn, the app, Celery and the local pool stay out of the commands
# that only talk to a server.


@app.command()
def run(
    study_file: Annotated[
        Path | None, typer.Argument(help="The study, as YAML or JSON (not with --resume).")
    ] = None,
    db: DbOption = None,
    workers: Annotated[int, typer.Option(help="Local processes; 0: the study's parallelism.")] = 0,
    resume: Annotated[
        int | None,
        typer.Option(
            metavar="ID",
            help="Continue study ID of the database where it stopped (Ctrl-C, cancel, timeout)"
            " instead of starting a new one: its finished trials are kept, the trials that were"
            " running run again.",
        ),
    ] = None,
) -> None:
    """Run a study to its end on this machine (SQLite + local process pool), showing progress.

    Ctrl-C stops it at once and prints the command that continues it: hpsearch run --resume ID.
    """
    if (study_file is None) == (resume is None):
        console.print("[red]Give a study file, or --resume ID of a stopped study.[/red]")
        raise typer.Exit(2)
    import gc
    import threading

    # The start-up builds hundreds of thousands of objects that live to the end (modules,
    # classes, numba's types): collecting them again and again as they are made cost a fifth of
    # its CPU. The runner turns the collector on again before the first trial (`run_here`).
    gc.disable()
    # Started before the runner's modules import (about half a second): numba's own import
    # and start-up overlap them and the database's set-up, rather than follow.
    loading = threading.Thread(target=_load_kernels, name="kernels")
    loading.start()
    from hpsearch.cli.local import end_now, run_here
    from hpsearch.db.settings import get_settings

    url = db or get_settings().database_url
    try:
        run_here(study_file, resume, url, db, workers, loading)
    except typer.Exit as done:
        end_now(done.exit_code)
    end_now(0)


def _load_kernels() -> None:
    """The engine's kernels (numba: about half a second), loaded in this process: `hpsearch
    run`'s pool processes, forked from it, start with them, sharing their memory."""
    from hpsearch.worker.engine import kernels

    kernels.load()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the REST API (with a local process pool unless HPSEARCH_BROKER_URL is set)."""
    import uvicorn

    from hpsearch.api.main import create_app
    from hpsearch.db import accounts, queries
    from hpsearch.db.migrate import upgrade_at_start
    from hpsearch.db.session import session_scope

    upgrade_at_start()
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
    trainers_: Annotated[
        str | None,
        typer.Option(
            "--trainers", help="Comma-separated trainers to run; default: every one installed."
        ),
    ] = None,
) -> None:
    """Run a Celery worker that trains trials (needs HPSEARCH_BROKER_URL)."""
    from hpsearch.db.migrate import upgrade_at_start
    from hpsearch.db.settings import get_settings
    from hpsearch.worker import trainers

    if not get_settings().broker_url:
        console.print(
            "[red]HPSEARCH_BROKER_URL is not set: a worker needs a broker (redis://...)."
            " Without one, `hpsearch run` and `hpsearch serve` train locally.[/red]"
        )
        raise typer.Exit(2)
    if trainers_:  # read by this worker's sweeper too, which offers just these
        os.environ["HPSEARCH_TRAINERS"] = trainers_
        get_settings.cache_clear()
    try:
        chosen = sorted(trainers.offered())
    except LookupError as exc:
        console.print(f"[red]--trainers: {exc}[/red]")
        raise typer.Exit(2) from None
    upgrade_at_start()
    from hpsearch.worker.tasks import app as celery_app
    from hpsearch.worker.tasks import worker_argv

    celery_app.worker_main(worker_argv(concurrency, name, chosen))


@db_app.command("upgrade")
def db_upgrade(
    db: DbOption = None,
) -> None:
    """Bring the database schema to the newest version."""
    from hpsearch.db.migrate import upgrade
    from hpsearch.db.settings import get_settings

    upgrade(db)
    console.print(f"database {db or get_settings().database_url} is at the newest schema")


register_client(app)
register_optuna(app)
register_agent(app)


def main() -> None:
    """Entry point with logging set up."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app()


if __name__ == "__main__":
    main()

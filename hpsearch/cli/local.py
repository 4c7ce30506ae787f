"""`hpsearch run`: a study to its end on this machine, in the database given, with a local
process pool. The server's modules load here, when the command runs, not with the CLI."""

from __future__ import annotations

import atexit
import gc
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hpsearch.cli.study_file import read_study_file
from hpsearch.db import queries
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import Study, StudyStatus, Trial
from hpsearch.db.session import dispose_engines, session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import BUILTIN_TRAINER, StudyDefinition
from hpsearch.worker import trainers
from hpsearch.worker.dispatch import STOP_SIGNALS, LocalPool

console = Console()

POLL_S = 0.25
# How long the progress bar lets trials that end while others run be shown together.
REFRESH_S = 0.1


def run_here(
    study_file: Path | None,
    resume: int | None,
    url: str,
    db: str | None,
    workers: int,
    loading: threading.Thread,
) -> None:
    """Run a new study from `study_file`, or continue stopped study `resume`, to its end;
    print its best trial. `db` is the --db given (repeated in the command that resumes).

    `loading` is the thread that loads the engine's kernels meanwhile: it is waited for before
    the pool forks, so that every trial process starts with them."""
    try:
        if study_file is not None:
            study_id, definition, first = _start(study_file, url)
        else:
            assert resume is not None
            study_id, definition, first = _resume(resume, url)
    finally:
        loading.join()  # no thread may run as the pool forks
    # What the start-up built (collector off, see `run`) stays to the end: kept out of every
    # collection from now on, here and in the forked processes, whose copies of its pages are
    # then not written to by the collector.
    gc.freeze()
    gc.enable()
    # No more processes than trials: each costs a fork and its memory.
    size = min(workers or definition.budget.parallelism, definition.budget.trials)
    pool = LocalPool(size, url=url, ignore_interrupts=True, fork=True, offer_first=False)
    # After the fork: SIGTERM (kill, systemd, a container's stop) and SIGHUP (its terminal
    # closed) end the run as Ctrl-C does, not this process alone with its children left behind.
    for stop in STOP_SIGNALS[1:]:
        signal.signal(stop, _stop)
    try:
        pool.dispatch(first)
        _watch(study_id, definition, url, pool)
    except Stopped as stopped:
        _interrupt(pool, study_id, url, db)
        raise typer.Exit(128 + stopped.signum) from None
    except KeyboardInterrupt:
        _interrupt(pool, study_id, url, db)
        raise typer.Exit(128 + signal.SIGINT) from None
    finally:
        pool.shutdown()
    _print_best(study_id, definition, url)


def end_now(code: int) -> NoReturn:
    """End `hpsearch run`'s process with exit status `code` once its study is done, skipping
    Python's teardown of its modules: freeing numba's, SciPy's and SQLAlchemy's objects one by
    one took 0.25-0.5 s after the last line was printed. Everything a normal exit does for the
    user's data still happens: the exit handlers run (logging's, multiprocessing's), the
    database's connections close (SQLite's WAL back into its file) and the output is flushed."""
    dispose_engines()
    atexit._run_exitfuncs()  # what a normal exit runs first; private, as os._exit skips it
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP reached the runner."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def _start(study_file: Path, url: str) -> tuple[int, StudyDefinition, list[int]]:
    """Store the study with its first trials queued (dispatched once the pool exists)."""
    _, definition = read_study_file(study_file)
    if definition.runs_on == "agents":  # nothing here would ever run a trial
        console.print(
            f"[red]{study_file}: runs_on: agents: `hpsearch run` runs trials here; submit it"
            " to a server (`hpsearch submit`) and start `hpsearch agent` for it[/red]"
        )
        raise typer.Exit(2)
    if definition.trainer != BUILTIN_TRAINER:  # judged by the trainers installed here
        from hpsearch.api.errors import Invalid  # FastAPI loads for a plugin's study only
        from hpsearch.api.submission import check_trainer

        try:
            check_trainer(definition, trainers.describe(trainers.get(definition.trainer)))
        except LookupError as exc:
            console.print(f"[red]{study_file}: trainer: {exc}[/red]")
            raise typer.Exit(2) from None
        except Invalid as exc:
            console.print(f"[red]{study_file}: {exc}[/red]")
            raise typer.Exit(2) from None
    console.print(
        f"[bold]{definition.name}[/bold]: {definition.budget.trials} trials, "
        f"{definition.strategy.type} search, database {url}"
    )
    upgrade(url)
    with session_scope(url) as session:
        study = coordinator.create_study(
            session, team_id=queries.ensure_team(session), definition=definition
        )
        first = coordinator.queue_next(session, study.id)
    console.print(f"study {study.id}")
    return study.id, definition, first


def _resume(study_id: int, url: str) -> tuple[int, StudyDefinition, list[int]]:
    upgrade(url)
    with session_scope(url) as session:
        study = session.get(Study, study_id)
        if study is None:
            console.print(f"[red]No study {study_id} in {url}.[/red]")
            raise typer.Exit(2)
        definition = StudyDefinition.model_validate(study.definition)
        try:
            if study.status == StudyStatus.RUNNING:
                # Its runner died without Ctrl-C (killed, power cut): run its queued trials;
                # the pool's sweeper ends its running ones as lost and retries them.
                coordinator.queue_next(session, study_id)
                trial_ids = queries.queued_trials(session, study_id)
            else:
                trial_ids = coordinator.resume_study(session, study_id)
        except ValueError:
            console.print(
                f"[red]Study {study_id} is {study.status.value}: only a stopped (interrupted,"
                " killed, cancelled or timed-out) study resumes.[/red]"
            )
            raise typer.Exit(2) from None
        finished = queries.study_progress(session, study_id).finished
    console.print(
        f"[bold]{definition.name}[/bold]: resuming study {study_id} at {finished} of"
        f" {definition.budget.trials} finished trials, database {url}"
    )
    return study_id, definition, trial_ids


def _interrupt(pool: LocalPool, study_id: int, url: str, db: str | None) -> None:
    """Ctrl-C (or SIGTERM, SIGHUP): end the trial processes, queue their trials again, say how
    to continue."""
    for stop in STOP_SIGNALS:  # a second one must not cut this short
        signal.signal(stop, signal.SIG_IGN)
    pool.interrupt()
    with session_scope(url) as session:
        requeued = coordinator.interrupt_study(session, study_id)
        finished = queries.study_progress(session, study_id).finished
        status = queries.study_status(session, study_id)
    if status != StudyStatus.CANCELLED:  # it ended on its own just before
        console.print(f"\nInterrupted; study {study_id} had already ended ({status}).")
        return
    again = f" --db {shlex.quote(db)}" if db else ""
    console.print(
        f"\n[yellow]Interrupted.[/yellow] Study {study_id} stopped with {finished} finished"
        f" trials kept; {requeued} interrupted trials will run again.\n"
        f"Continue it with:  hpsearch run --resume {study_id}{again}"
    )


def _watch(study_id: int, definition: StudyDefinition, url: str, pool: LocalPool) -> None:
    with StudyBar(study_id, definition, url) as bar:
        while True:
            # Cleared before the look: a trial that ends after it wakes the next wait at once,
            # and the study's last one ends the run then, not up to a poll later.
            pool.trial_ended.clear()
            if not bar.update():
                return
            # Each look reads the database (about 2 ms while the trials write to it): trials
            # that end while others still run are shown together, up to REFRESH_S later; once
            # none runs (the study's last trial has ended), at once.
            if pool.trial_ended.wait(POLL_S):
                pool.idle.wait(REFRESH_S)


class StudyBar:
    """A study's progress bar: trials finished of its budget, time, best value so far."""

    def __init__(
        self, study_id: int, definition: StudyDefinition, url: str, out: Console = console
    ) -> None:
        self.study_id, self.url = study_id, url
        self.objective = definition.objectives[0]
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[best]}"),
            console=out,
        )
        self.bar = self.progress.add_task("trials", total=definition.budget.trials, best="")
        self.shown = -1  # finished trials when the best was last read

    def __enter__(self) -> StudyBar:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def update(self) -> bool:
        """Show the study as the database has it now; whether it still runs."""
        # Called as each trial ends and every POLL_S: the best trial is read again only once
        # another trial finished.
        with session_scope(self.url, read_only=True) as session:
            status = session.get_one(Study, self.study_id).status
            done = queries.study_progress(session, self.study_id).finished
            if done != self.shown:
                best = queries.best_trial(session, self.study_id, self.objective.direction)
                if best is not None and best.value is not None:
                    best_text = f"best {self.objective.metric} {best.value:.4f}"
                    self.progress.update(self.bar, best=best_text)
                self.shown = done
        self.progress.update(self.bar, completed=done)
        return status == StudyStatus.RUNNING


def _print_best(study_id: int, definition: StudyDefinition, url: str) -> None:
    with session_scope(url, read_only=True) as session:
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

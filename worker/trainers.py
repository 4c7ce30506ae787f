"""The trainers this process can run: the classes registered under the entry-point group
``hpsearch.trainers`` by the packages installed here, the built-in engine (`numpy`) among them.

A trainer that fails to load is logged and left out: one team's broken package must not stop a
worker serving the others. A trainer that lives only in its caller's process (`hpsearch.optimize`
with a function defined in a notebook) is found while it runs there (`running_here`), and never
offered to other processes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import cache
from importlib.metadata import entry_points

from hpsearch.db import trainers as offers
from hpsearch.db.models import utcnow
from hpsearch.db.session import session_scope
from hpsearch.db.settings import get_settings
from hpsearch.search.trainer_schema import TrainerInfo
from hpsearch.trainer import Trainer

log = logging.getLogger(__name__)

GROUP = "hpsearch.trainers"
DEFAULT = "numpy"


@cache
def installed() -> dict[str, Trainer]:
    """Every trainer that loads, by name."""
    found: dict[str, Trainer] = {}
    for entry in entry_points(group=GROUP):
        try:
            loaded = entry.load()
            trainer = loaded() if isinstance(loaded, type) else loaded
            _check(trainer)
        except Exception:
            log.exception("trainer %r (%s) could not be loaded; left out", entry.name, entry.value)
            continue
        if trainer.name in found:
            log.warning("trainer %r is registered twice; keeping the first", trainer.name)
            continue
        found[trainer.name] = trainer
    return found


def offered() -> dict[str, Trainer]:
    """The trainers this process runs: those `HPSEARCH_TRAINERS` names, or every one installed;
    LookupError for a name that is not installed."""
    names = get_settings().trainers
    if not names:
        return installed()
    return {name: get(name) for name in names.split(",")}


# Trainers of this process only, by name: `running_here`.
_HERE: dict[str, Trainer] = {}


def running_here(trainer: Trainer) -> AbstractContextManager[None]:
    """While inside, `get(trainer.name)` answers `trainer` in this process. It is not installed,
    so `Offers` never offers it: no other process could import it. ValueError at once when its
    name is another trainer's, installed or running here: a study names its trainer by name."""
    _check(trainer)
    known = _HERE.get(trainer.name) or installed().get(trainer.name)
    if known is not None and type(known) is not type(trainer):
        raise ValueError(
            f"'{trainer.name}' is already the name of trainer {type(known).__qualname__}"
        )
    return _here(trainer)


@contextmanager
def _here(trainer: Trainer) -> Iterator[None]:
    # Another run of the same trainer in this process (a thread of its own) keeps it found.
    previous = _HERE.get(trainer.name)
    _HERE[trainer.name] = trainer
    try:
        yield
    finally:
        if previous is None:
            _HERE.pop(trainer.name, None)
        else:
            _HERE[trainer.name] = previous


def get(name: str) -> Trainer:
    """The trainer `name`; LookupError, naming the ones there are, when it is not here."""
    if name in _HERE:
        return _HERE[name]
    trainers = installed()
    if name not in trainers:
        raise LookupError(
            f"trainer {name!r} is not installed here (installed: {', '.join(sorted(trainers))})"
        )
    return trainers[name]


def describe(trainer: Trainer) -> TrainerInfo:
    """What a study is checked against: the trainer's name, version, schema and metrics."""
    return TrainerInfo(
        name=trainer.name,
        version=trainer.version,
        config_schema=trainer.Config.model_json_schema(),
        step_metrics=tuple(trainer.step_metrics),
        final_metrics=tuple(trainer.final_metrics),
        resumable=trainer.resumable,
    )


def _check(trainer: object) -> None:
    if not isinstance(trainer, Trainer):
        raise TypeError(f"{trainer!r} is not an hpsearch.trainer.Trainer")
    for attribute in ("name", "version", "Config", "step_metrics", "final_metrics"):
        if not hasattr(trainer, attribute):
            raise TypeError(f"{type(trainer).__name__} declares no {attribute}")


class Offers:
    """This process's offer of the trainers installed here, kept fresh in SQL: the API checks
    studies against what workers offer, and tells a study nobody can run that it waits."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self.host = socket.gethostname()
        self.worker = f"{self.host}:{os.getpid()}"

    def start(self) -> None:
        """Announce the offer; when the database is away, the first `refresh` does."""
        try:
            self.announce()
        except Exception as exc:
            log.warning("could not announce this process's trainers yet (%r)", exc)

    def refresh(self) -> None:
        """`keep_alive`, quiet on failure: the sweeps already say when the database is away."""
        try:
            self.keep_alive()
        except Exception:
            log.debug("keeping this process's trainer offer alive failed", exc_info=True)

    def stop(self) -> None:
        """`withdraw`; if that fails, the offer stops counting as live after `lost_after_s`."""
        try:
            self.withdraw()
        except Exception as exc:
            log.warning("could not withdraw this process's trainers (%r)", exc)

    def announce(self) -> None:
        """Offer every trainer installed here, as of now."""
        described = [dataclasses.asdict(describe(t)) for t in offered().values()]
        with session_scope(self.url) as session:
            offers.offer(session, self.worker, self.host, described, utcnow())

    def keep_alive(self) -> None:
        """Mark the offer seen now (announcing it again if it was withdrawn meanwhile)."""
        with session_scope(self.url) as session:
            if offers.still_offered(session, self.worker, utcnow()):
                return
        self.announce()

    def withdraw(self) -> None:
        """Take the offer back: this process is stopping."""
        with session_scope(self.url) as session:
            offers.withdraw(session, self.worker, utcnow())

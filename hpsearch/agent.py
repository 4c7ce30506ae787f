"""The agent: a study's trials run on this machine with your own code, leased from a server.

As ``wandb agent`` does for a sweep, ``hpsearch agent STUDY --trainer module:function`` (or
``hpsearch.agent(study, train)``) asks the server for the study's next queued trial, trains it
here, sends its steps as it goes (learning when to stop: pruned, cancelled, out of time) and
sends its end; then the next, until the study ends::

    def train(config: dict, context) -> dict:
        for epoch in range(1, config["epochs"] + 1):
            loss = ...
            if context.report(epoch, {"loss": loss}):
                break
        return {"loss": loss}

The trainer is a function ``(config, context) -> final metrics``, handed the trial's full
config as a dict, or an `hpsearch.trainer.Trainer` (its config parsed into its ``Config``). A
leased trial stays this agent's while it reports: its reports, and a heartbeat between them,
renew the lease. An agent that dies has its trial ended ``failed: lost`` once the lease runs
out, and the trial runs again (on any agent or worker), as a dead worker's does.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import Any

from hpsearch.client import ApiError, Client, Unreachable
from hpsearch.trainer import Dataset, Trainer
from hpsearch.worker.outcome import Outcome, Steps, Stopper, train_outcome

log = logging.getLogger(__name__)

# Steps are sent in batches at most this often (as a worker writes them), so that fast steps
# do not turn into one request each.
FLUSH_EVERY_S = 1.0
# How long to wait before asking again when no trial is queued.
POLL_S = 1.0

# Datasets fetched for the trials run here, by server, study (its id and creation time: a
# server on SQLite gives a deleted study's id to the next) and reference: each is fetched
# once however many trials read it, as a worker reads it once per process.
_DATASETS: dict[tuple[str, int, str, str], Dataset] = {}
MAX_DATASETS = 8

TrainFunction = Callable[[dict[str, Any], Any], Mapping[str, float]]


def agent(
    study_id: int,
    trainer: TrainFunction | Trainer | type[Trainer] | str,
    *,
    url: str | None = None,
    token: str | None = None,
    max_trials: int | None = None,
    name: str | None = None,
) -> int:
    """Run study `study_id`'s trials here with `trainer` until the study ends (or after
    `max_trials`); the number of trials run.

    `trainer`: a function ``(config: dict, context) -> final metrics``, a `Trainer`, or
    ``"module:attribute"`` naming either. `url` and `token` default to ``HPSEARCH_URL`` and
    ``HPSEARCH_TOKEN``, then to the saved login (``hpsearch login``). `name` tells this agent
    apart on the trials it runs (recorded as ``agent:<name>``); default ``host:pid``.
    """
    train = load_trainer(trainer) if isinstance(trainer, str) else trainer
    name = name or f"{socket.gethostname()}:{os.getpid()}"
    ran = 0
    with (
        _terminate_as_interrupt(),
        Client(url, token) as client,
        _offering(client, study_id, name, train),
    ):
        while max_trials is None or ran < max_trials:
            try:
                lease = client.lease(study_id, name)
            except ApiError as exc:
                if exc.status == 409 and exc.field == "status":  # the study has ended
                    log.info("study %s: %s", study_id, exc)
                    return ran
                raise
            if lease is None:
                time.sleep(POLL_S)
                continue
            _run(client, lease, train, name)
            ran += 1
    return ran


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM stops this agent as Ctrl-C does (its trial given back, not left
    to run out its lease). Python handles signals in the main thread alone: elsewhere, as
    it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def load_trainer(ref: str) -> TrainFunction | Trainer:
    """The trainer `module:attribute` names (a `Trainer` class is instantiated)."""
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise _bad_trainer(f"trainer {ref!r}: expected module:function, e.g. mytraining:train")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise _bad_trainer(f"trainer {ref!r}: {exc}") from None
    if isinstance(found, type) and issubclass(found, Trainer):
        found = found()
    if not callable(found) and not isinstance(found, Trainer):
        raise _bad_trainer(f"trainer {ref!r} is neither a function nor a Trainer")
    return found


def _bad_trainer(message: str) -> ApiError:
    return ApiError(None, "invalid_trainer", message, "trainer")


def _offer_of(train: TrainFunction | Trainer | type[Trainer], study_trainer: str) -> dict[str, Any]:
    """What this agent tells the server it runs, for a study of trainer `study_trainer`: a
    `Trainer`'s name, version, config schema and metrics, or a function's study trainer name
    alone (it declares nothing to check a study against)."""
    if isinstance(train, type):
        train = train()
    if not isinstance(train, Trainer):
        return {"name": study_trainer, "declared": False}
    if train.name != study_trainer:
        raise _bad_trainer(
            f"trainer {train.name!r} cannot run this study: its trainer is {study_trainer!r}"
        )
    # Imported here: the worker's side loads SQLAlchemy, which a function's agent never needs.
    from hpsearch.worker.trainers import describe

    described = describe(train)
    return {
        "name": described.name,
        "version": described.version,
        "config_schema": described.config_schema,
        "step_metrics": list(described.step_metrics),
        "final_metrics": list(described.final_metrics),
        "resumable": described.resumable,
    }


@contextmanager
def _offering(
    client: Client, study_id: int, name: str, train: TrainFunction | Trainer | type[Trainer]
) -> Iterator[None]:
    """Offer this agent's trainer to the study's team (as a worker offers its trainers) now and
    every `heartbeat_s` while inside, so that the team's studies naming it are accepted and
    shown served. A server away at the start is offered to once it is back."""
    trainer = _offer_of(train, client.get_study(study_id)["trainer"])
    host = socket.gethostname()

    def offer() -> float:
        return float(client.offer(study_id, name, host, trainer)["heartbeat_s"])

    def renew(done: threading.Event) -> None:
        nonlocal every_s
        while not done.wait(every_s):
            try:
                every_s = offer()
            except (ApiError, Unreachable) as exc:  # the lease loop says what matters
                log.debug("offering trainer %s failed (%s)", trainer["name"], exc)

    try:
        every_s = offer()
    except Unreachable:
        every_s = POLL_S
    with _background(renew, "agent-offer"):
        yield


@contextmanager
def _background(loop: Callable[[threading.Event], None], name: str) -> Iterator[None]:
    """Run `loop(done)` on a thread of its own while inside; `done` is set on leaving, and the
    thread joined."""
    done = threading.Event()
    thread = threading.Thread(target=loop, args=(done,), name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _run(
    client: Client, lease: dict[str, Any], train: TrainFunction | Trainer | type[Trainer], name: str
) -> None:
    """Train one leased trial and send its end (unless its lease was lost meanwhile)."""
    study_id, number = lease["study_id"], lease["number"]
    log.info("study %s trial %s: running (params %s)", study_id, number, lease["params"])
    context = _AgentContext(client, lease, name)
    try:
        with context.heartbeats():
            outcome = train_outcome(lambda: _call(train, lease["config"], context), context)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM: the trial runs again now, elsewhere
        context.give_back()
        raise
    if context.lost:
        log.warning("study %s trial %s: its lease was lost; not finishing it", study_id, number)
        return
    try:
        trial = client.finish(study_id, number, name, _end(outcome, context.flushed()))
    except ApiError as exc:  # its lease runs out, and the trial runs again elsewhere
        log.warning("study %s trial %s: its end could not be sent (%s)", study_id, number, exc)
        return
    reason = f" ({trial['reason']})" if trial["reason"] else ""
    log.info("study %s trial %s: %s%s", study_id, number, trial["state"], reason)


def _call(
    train: TrainFunction | Trainer | type[Trainer], config: dict[str, Any], context: _AgentContext
) -> Mapping[str, float]:
    if isinstance(train, type):
        train = train()
    if isinstance(train, Trainer):
        from hpsearch.worker.engine.config import parse_config

        context.step_name = train.step_name
        parsed = parse_config(train.Config, config)
        with context.stopper.running_trainer():
            return train.train(parsed, context)
    with context.stopper.running_trainer():
        return train(config, context)


def _end(outcome: Outcome, pending: list[dict[str, Any]]) -> dict[str, Any]:
    state, reason, values, error_traceback = outcome
    return {
        "state": state.value,
        "reason": reason,
        "values": values,
        "traceback": error_traceback,
        "reports": pending,
    }


class _AgentContext(Steps):
    """The `hpsearch.trainer.Context` of a leased trial: reports go to the server in batches
    (at most every `FLUSH_EVERY_S`), and a heartbeat thread renews the lease between them."""

    def __init__(self, client: Client, lease: dict[str, Any], name: str) -> None:
        super().__init__()
        self.client, self.name = client, name
        self.study_id, self.number = lease["study_id"], lease["number"]
        self.seed: int = lease["seed"]
        self.study_created_at: str = lease["study_created_at"]
        self.heartbeat_s: float = lease["heartbeat_s"]
        self.pending: list[dict[str, Any]] = []
        self.sent_at = time.monotonic()  # the last request: the heartbeat waits on it
        self.flushed_at = self.sent_at  # the last request with steps
        self.stop = False  # the server said stop: every later report answers so too
        self.ended = False  # its study ended (cancelled, out of time): the trainer must stop
        self.lost = False  # the trial is not this agent's any more (or its study is deleted)
        # A trainer that never reports learns of the two above from the heartbeat thread.
        self.stopper = Stopper()
        self.sending = threading.Lock()  # the trainer's flushes and the heartbeats, in turn

    def report(self, step: int, metrics: Mapping[str, float]) -> bool:
        with self.stopper.shielded():
            values = self.check(step, metrics)
            if values is None:
                return True
            self.pending.append({"step": step, "metrics": values})
            if time.monotonic() - self.flushed_at >= FLUSH_EVERY_S:
                self.flushed_at = time.monotonic()
                self._send(self.pending)
            return self.stopped(step, self.stop or self.lost)

    def dataset(self, ref: str) -> Dataset:
        """The study team's upload `ref` (an id, `name` or `name@version`), fetched once per
        study and process."""
        key = (self.client.url, self.study_id, self.study_created_at, ref)
        with self.stopper.shielded():
            if key not in _DATASETS:
                if len(_DATASETS) >= MAX_DATASETS:
                    _DATASETS.clear()  # an agent serves one study: this bounds a long-lived one
                _DATASETS[key] = self._fetch(ref)
            return _DATASETS[key]

    def _fetch(self, ref: str) -> Dataset:
        try:
            dataset_id, format, content = self.client.trial_dataset(
                self.study_id, self.number, self.name, ref
            )
        except ApiError as exc:
            if exc.status in (404, 422):  # none such, or no dataset name at all
                raise LookupError(f"no dataset {ref} in this study's team") from None
            raise
        return Dataset(dataset_id, format, content)  # type: ignore[arg-type]

    def give_back(self) -> None:
        """Hand the trial back unfinished (this agent is stopping): the server queues it again
        at once. If that fails, the trial is lost once its lease runs out, and retried."""
        try:
            self.client.release(self.study_id, self.number, self.name)
        except (ApiError, Unreachable) as exc:
            log.warning(
                "study %s trial %s: could not give it back (%s); it runs again once its lease"
                " runs out",
                self.study_id,
                self.number,
                exc,
            )
            return
        log.warning("study %s trial %s: given back; it runs again", self.study_id, self.number)

    def flushed(self) -> list[dict[str, Any]]:
        """The reports not sent yet, taken: they go with the trial's end."""
        with self.sending:
            pending, self.pending = self.pending, []
        return pending

    def _send(self, reports: list[dict[str, Any]]) -> None:
        """Send `reports` (none: a heartbeat) and learn whether to stop."""
        with self.sending:
            batch = list(reports)
            try:
                answer = self.client.report(self.study_id, self.number, self.name, batch)
            except Unreachable as exc:  # the server is away: the reports wait for the next try
                log.warning(
                    "study %s trial %s: report not sent (%s)", self.study_id, self.number, exc
                )
                return
            except ApiError as exc:
                if exc.status in (404, 409):  # found lost, or its study deleted
                    log.warning("study %s trial %s: %s", self.study_id, self.number, exc)
                    self.lost = True
                    return
                raise
            finally:
                self.sent_at = time.monotonic()
            del reports[: len(batch)]
            self.stop = self.stop or answer["stop"]
            self.ended = self.ended or answer["reason"] in ("cancelled", "timeout")

    @contextmanager
    def heartbeats(self) -> Iterator[None]:
        """Renew the lease every `heartbeat_s` that no report did, while inside; once the
        study ended, or the trial is lost, interrupt a trainer that goes on regardless."""

        def beat(done: threading.Event) -> None:
            while not done.wait(self.heartbeat_s / 2):
                if time.monotonic() - self.sent_at >= self.heartbeat_s / 2 and not self.lost:
                    try:
                        self._send([])
                    except Exception:  # a missed beat is not worth ending the trial for
                        log.warning("heartbeat of trial %s failed", self.number, exc_info=True)
                if self.ended or self.lost:
                    self.stopper.interrupt()  # never killed: this process is the user's

        with _background(beat, "agent-heartbeat"):
            yield
